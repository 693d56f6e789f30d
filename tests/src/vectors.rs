//! The test vectors of protocol version 1 (`test-vectors/v1`): which files
//! there are, and how they are made (`cargo run -p hetally-tests --bin
//! gen-test-vectors`). `tests/vectors.rs` checks every file;
//! `test-vectors/README.md` describes the schema, `docs/protocol.md`
//! section 15 the order in which a client draws its randomness.
//!
//! Everything is derived from fixed seeds (`ChaCha20Rng::seed_from_u64`),
//! keys included, so regenerating writes the same bytes. The JSON is
//! written by [`Json`] with its fields in a fixed order, independent of
//! `serde_json`'s map features.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use hetally_client_core::{Arithmetic, Task};
use hetally_dp::{DpMechanism, Guarantee, Relation, TrusteeNoise};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::report::payload_cap;
use hetally_protocol::{Layout, Report, ReportContext, TaskDefinition};
use hetally_schemes::lwe::scheme::TfheDecrypter;
use hetally_schemes::paillier::threshold::{generate_threshold, ThresholdParams};
use hetally_schemes::paillier::{PaillierDecrypter, SecretKey};

type PaillierKey = hetally_schemes::paillier::PublicKey<hetally_schemes::paillier::Pure>;
use hetally_schemes::{lwe, SecretKeyFile, TaskParams};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Every file of `test-vectors/v1`, relative to it. The check refuses a
/// folder with a file missing or one more.
pub const FILES: &[&str] = &[
    "task-ids.json",
    "reports/paillier-count.json",
    "reports/paillier-count-proofs.json",
    "reports/paillier-sum.json",
    "reports/paillier-sum-proofs.json",
    "reports/paillier-histogram.json",
    "reports/paillier-histogram-proofs.json",
    "reports/paillier-histogram-100.json",
    "reports/paillier-sumvec.json",
    "reports/paillier-sumvec-proofs.json",
    "reports/tfhe-count.json",
    "reports/tfhe-sum.json",
    "reports/tfhe-histogram.json",
    "reports/tfhe-sumvec.json",
    "aggregates/paillier-count-dp.json",
    "aggregates/paillier-sum.json",
    "aggregates/paillier-histogram-dp.json",
    "aggregates/paillier-sumvec.json",
    "aggregates/tfhe-count.json",
    "aggregates/tfhe-histogram-dp.json",
];

/// `test-vectors/v1` in this checkout.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/v1")
}

/// The time every report of the vectors is prepared at (Unix seconds); the
/// tasks' time precision of one hour rounds it down to [`BATCH_START`].
const TIME: u64 = 1_700_000_123;
/// Time precision of every task of the vectors.
const TIME_PRECISION: u64 = 3600;
/// The batch every aggregate releases: `[BATCH_START, BATCH_START + 3600)`.
const BATCH_START: u64 = 1_699_999_200;

/// A JSON value whose objects keep their fields in the order written.
#[derive(Debug, Clone)]
pub enum Json {
    /// A string.
    Str(String),
    /// A non-negative integer.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// `true` or `false`.
    Bool(bool),
    /// An array.
    Arr(Vec<Json>),
    /// An object, fields in order.
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    fn hex(bytes: &[u8]) -> Json {
        Json::Str(hex::encode(bytes))
    }

    fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    fn u64s(values: &[u64]) -> Json {
        Json::Arr(values.iter().map(|v| Json::U64(*v)).collect())
    }

    /// Pretty-printed, two spaces per level; arrays of numbers on one line.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, indent: usize) {
        let pad = |n: usize| "  ".repeat(n);
        match self {
            Json::Str(s) => out.push_str(&serde_json::to_string(s).expect("a string serializes")),
            Json::U64(v) => write!(out, "{v}").expect("writing to a String"),
            Json::I64(v) => write!(out, "{v}").expect("writing to a String"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Arr(items)
                if items
                    .iter()
                    .all(|i| matches!(i, Json::U64(_) | Json::I64(_))) =>
            {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out, indent);
                }
                out.push(']');
            }
            Json::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    item.write(out, indent + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(indent));
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    out.push_str(&serde_json::to_string(key).expect("a string serializes"));
                    out.push_str(": ");
                    value.write(out, indent + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(indent));
                out.push('}');
            }
        }
    }
}

/// The collectors' key pairs every vector uses, generated from fixed seeds.
pub struct Keys {
    /// A 2048-bit Paillier key pair (seed 1).
    pub paillier: SecretKeyFile,
    /// A TFHE key pair of parameter set 1 (seed 2).
    pub tfhe: SecretKeyFile,
    /// A 2048-bit Paillier threshold key, 3 of 5 trustees (seed 3): its
    /// public key file.
    pub threshold: Vec<u8>,
    /// The TFHE key declared as a threshold key of 3 trustees with least
    /// smudging lambda 16 (docs/protocol.md section 6.10): its public key
    /// file.
    pub tfhe_threshold: Vec<u8>,
}

impl Keys {
    /// Generates both key pairs (a few seconds).
    pub fn generate() -> Result<Self> {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let paillier = SecretKeyFile::Paillier(PaillierDecrypter::new(
            SecretKey::generate(2048, &mut rng, &mut |_| {})
                .context("generating the Paillier key")?,
        ));
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let tfhe = SecretKeyFile::Tfhe(TfheDecrypter::new(lwe::SecretKey::generate(
            lwe::PKE_ZKV2_2048,
            &mut rng,
        )));
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let params = ThresholdParams::new(5, 3).context("3 of 5")?;
        let (threshold, _) = generate_threshold(2048, params, &mut rng, &mut |_| {})
            .context("generating the threshold key")?;
        let tfhe_threshold = match &tfhe {
            SecretKeyFile::Tfhe(sk) => sk
                .key()
                .public_key()
                .with_trustees(lwe::Trustees {
                    count: 3,
                    min_lambda: 16,
                })
                .context("declaring the TFHE threshold key")?
                .to_bytes(),
            _ => unreachable!("made as a TFHE key above"),
        };
        Ok(Keys {
            paillier,
            tfhe,
            threshold: threshold.to_bytes(),
            tfhe_threshold,
        })
    }

    /// The public key file of `scheme`'s key (`paillier-threshold`: the
    /// threshold key's).
    fn public_key_file(&self, scheme: &str) -> Vec<u8> {
        match scheme {
            "paillier-threshold" => self.threshold.clone(),
            "tfhe-threshold" => self.tfhe_threshold.clone(),
            other => self.get(other).public_key().to_bytes(),
        }
    }

    fn get(&self, scheme: &str) -> &SecretKeyFile {
        match scheme {
            "tfhe" => &self.tfhe,
            _ => &self.paillier,
        }
    }
}

/// What a task of the vectors is made of.
struct Spec {
    scheme: &'static str,
    measurement: &'static str,
    dp: &'static str,
    budget: Option<&'static str>,
    input_proofs: bool,
    relation: Option<Relation>,
    min_batch_size: u64,
    max_batch_size: Option<u64>,
    trustee_noise: Option<TrusteeNoise>,
}

impl Spec {
    fn new(scheme: &'static str, measurement: &'static str, input_proofs: bool) -> Self {
        Spec {
            scheme,
            measurement,
            dp: "none",
            budget: None,
            input_proofs,
            relation: Some(Relation::ReplaceOne),
            min_batch_size: 1,
            // Paillier: 22-bit slots for a count, 93 to a plaintext;
            // TFHE: the largest feasible batch.
            max_batch_size: scheme.starts_with("paillier").then_some(1_000_000),
            trustee_noise: None,
        }
    }

    fn trustee_noise(mut self, contributors: u8, honest: u8) -> Self {
        self.trustee_noise = Some(TrusteeNoise {
            contributors,
            honest,
        });
        self
    }

    fn dp(mut self, dp: &'static str, budget: &'static str) -> Self {
        self.dp = dp;
        self.budget = Some(budget);
        self
    }

    fn relation(mut self, relation: Option<Relation>) -> Self {
        self.relation = relation;
        self
    }

    fn max_batch_size(mut self, max: u64) -> Self {
        self.max_batch_size = Some(max);
        self
    }

    /// The task's definition (and CRS) under `keys`. A TFHE task with input
    /// proofs makes its CRS from `rng`.
    fn define(&self, keys: &Keys, rng: &mut ChaCha20Rng) -> Result<Defined> {
        let params = TaskParams {
            measurement: self.measurement.parse()?,
            min_batch_size: self.min_batch_size,
            max_batch_size: self.max_batch_size,
            time_precision: TIME_PRECISION,
            dp: self.dp.parse()?,
            budget: self.budget.map(str::parse).transpose()?,
            input_proofs: self.input_proofs,
            relation: self.relation,
            trustee_noise: self.trustee_noise,
        };
        let (definition, crs) = hetally_schemes::define_task(
            keys.public_key_file(self.scheme),
            params,
            u32::MAX.into(),
            rng,
        )
        .with_context(|| format!("defining the {} {} task", self.scheme, self.measurement))?;
        Ok(Defined {
            bytes: definition.to_bytes(),
            definition,
            crs,
        })
    }
}

struct Defined {
    definition: TaskDefinition,
    bytes: Vec<u8>,
    crs: Option<Vec<u8>>,
}

/// The number of random bytes a report of `definition` draws: the rule of
/// `docs/protocol.md` section 15.3, written out here so that every vector
/// checks it (a tape of another length is refused).
pub fn tape_len(definition: &TaskDefinition) -> usize {
    let m = definition.measurement;
    let report_id = 16;
    match definition.layout {
        Layout::Paillier { slot_bits } => {
            let modulus_bits = PaillierKey::from_bytes(&definition.public_key)
                .expect("the definition's key was checked")
                .modulus_bits();
            if definition.input_proofs {
                let bits = m.len() * m.value_bits() as usize;
                // Per bit: alpha (32 bytes), s (67), e_sim (16), z_sim (67);
                // a histogram then draws its sum mask s (67).
                report_id + bits * (32 + 67 + 16 + 67) + if m.is_one_hot() { 67 } else { 0 }
            } else {
                let slots = (modulus_bits - 2) / slot_bits;
                report_id + m.len().div_ceil(slots as usize) * 32
            }
        }
        // Two 16-byte TFHE-rs seeds per list of at most n = 2048 values.
        Layout::Tfhe { .. } => report_id + m.len().div_ceil(2048) * 32,
    }
}

fn header(description: String) -> Vec<(&'static str, Json)> {
    vec![
        ("version", Json::U64(1)),
        ("description", Json::Str(description)),
    ]
}

fn task_ids(keys: &Keys) -> Result<Json> {
    let cases: Vec<(&str, Spec)> = vec![
        ("paillier count, input proofs, replace-one (version 3)", Spec::new("paillier", "count", true)),
        ("paillier count, no input proofs (version 3)", Spec::new("paillier", "count", false)),
        (
            "paillier sum:8, laplace:1 with budget 10, input proofs (version 3)",
            Spec::new("paillier", "sum:8", true).dp("laplace:1", "10"),
        ),
        (
            "paillier histogram:4, gaussian:1/8 with budget 1, add-remove, input proofs (version 3)",
            Spec::new("paillier", "histogram:4", true)
                .dp("gaussian:1/8", "1")
                .relation(Some(Relation::AddRemove)),
        ),
        (
            "paillier sumvec:3:4, laplace:0.4 with budget 2/5, no input proofs, max batch 4294967295 (version 3)",
            Spec::new("paillier", "sumvec:3:4", false)
                .dp("laplace:0.4", "2/5")
                .max_batch_size(u32::MAX.into()),
        ),
        (
            "paillier histogram:11, input proofs, no relation (legacy version 2)",
            Spec::new("paillier", "histogram:11", true).relation(None),
        ),
        (
            "paillier count, laplace:1 with budget 5, no input proofs, no relation (legacy version 1)",
            Spec::new("paillier", "count", false).dp("laplace:1", "5").relation(None),
        ),
        ("tfhe count, no input proofs (version 3)", Spec::new("tfhe", "count", false)),
        (
            "tfhe sum:8, laplace:1 with budget 10, no input proofs (version 3)",
            Spec::new("tfhe", "sum:8", false).dp("laplace:1", "10"),
        ),
        (
            "tfhe histogram:4, input proofs: the layout carries the CRS hash (version 3)",
            Spec::new("tfhe", "histogram:4", true),
        ),
        (
            "tfhe sumvec:3:4, max batch 1000, no relation (legacy version 1)",
            Spec::new("tfhe", "sumvec:3:4", false).relation(None).max_batch_size(1000),
        ),
        (
            "paillier histogram:16 under a 3-of-5 threshold key (section 6.8), input proofs (version 3)",
            Spec::new("paillier-threshold", "histogram:16", true),
        ),
        (
            "paillier histogram:16 under the 3-of-5 threshold key, gaussian:1/8 with budget 1, noise from 3 trustees of whom 2 are assumed honest (flag 0x02, section 9.1), input proofs (version 3)",
            Spec::new("paillier-threshold", "histogram:16", true)
                .dp("gaussian:1/8", "1")
                .trustee_noise(3, 2),
        ),
        (
            "tfhe histogram:16 under a threshold TFHE key of 3 trustees with least smudging lambda 16 (section 6.10), max batch 300: Delta 2^52 (section 10.4), no input proofs (version 3)",
            Spec::new("tfhe-threshold", "histogram:16", false).max_batch_size(300),
        ),
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let mut out = Vec::new();
    for (name, spec) in cases {
        let defined = spec.define(keys, &mut rng)?;
        out.push(Json::Obj(vec![
            ("name", Json::str(name)),
            ("definition", Json::hex(&defined.bytes)),
            ("task_id", Json::str(defined.definition.id().to_string())),
        ]));
    }
    let mut fields = header(
        "Canonical task definitions (docs/protocol.md section 7.2) and their task ids \
         (section 7.4): SHA-256 of the domain tag and the definition, shown as base64url \
         without padding."
            .into(),
    );
    fields.push(("cases", Json::Arr(out)));
    Ok(Json::Obj(fields))
}

/// A report vector file: one task, several reports, each from its tape.
fn reports(keys: &Keys, spec: Spec, values: &[Vec<u64>], seed: u64) -> Result<Json> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let defined = spec.define(keys, &mut rng)?;
    let id = defined.definition.id();
    let task = Task::from_definition(
        &id,
        &defined.bytes,
        defined.crs.as_deref(),
        Arithmetic::fastest(),
    )?;
    let len = tape_len(&defined.definition);
    let mut cases = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let mut tape = vec![0u8; len];
        rng.fill_bytes(&mut tape);
        let time = TIME + 600 * i as u64;
        let report = task
            .prepare_from_tape(v, time, &tape)
            .with_context(|| format!("preparing {v:?} from a tape of {len} bytes"))?;
        cases.push(Json::Obj(vec![
            ("values", Json::u64s(v)),
            ("time", Json::U64(time)),
            ("randomness", Json::hex(&tape)),
            ("report_id", Json::hex(&report.id.0)),
            ("report_time", Json::U64(report.time)),
            ("report", Json::hex(&report.bytes)),
        ]));
    }
    let m = defined.definition.measurement;
    let what = match (spec.scheme, spec.input_proofs) {
        ("paillier", false) => format!(
            "{} payloads without input proofs (section 9.3): {} packed ciphertext(s) per \
             report",
            m,
            match defined.definition.layout {
                Layout::Paillier { slot_bits } => m.len().div_ceil((2046 / slot_bits) as usize),
                Layout::Tfhe { .. } => 0,
            }
        ),
        ("paillier", true) => format!(
            "{m} payloads with input proofs (sections 9.4 to 9.6): one ciphertext and one \
             bit proof per bit"
        ),
        _ => format!(
            "{m} payloads without input proofs (section 10.6). TFHE reports depend on \
             TFHE-rs's CSPRNG, seeded from the tape, so only an implementation on TFHE-rs 1.8 \
             reproduces them. There are no TFHE vectors with input proofs: the CRS a file would \
             have to carry is 3,394,035 bytes for histogram:4 (6.8 MB as hex), and its size follows \
             the LWE dimension n = 2048, not the list length"
        ),
    };
    let mut fields = header(format!(
        "{} report envelopes (docs/protocol.md section 8.1) with {what}. Each report is \
         Task::prepare_from_tape(values, time, randomness); the randomness is drawn in the \
         order of docs/protocol.md section 15.3 and must be used up exactly.",
        if spec.scheme == "tfhe" {
            "TFHE"
        } else {
            "Paillier"
        }
    ));
    fields.extend([
        ("scheme", Json::str(spec.scheme)),
        ("measurement", Json::str(m.to_string())),
        ("input_proofs", Json::Bool(spec.input_proofs)),
        ("public_key", Json::hex(&defined.definition.public_key)),
        ("definition", Json::hex(&defined.bytes)),
        ("task_id", Json::str(id.to_string())),
    ]);
    if let Some(crs) = &defined.crs {
        fields.push(("crs", Json::hex(crs)));
    }
    fields.push(("cases", Json::Arr(cases)));
    Ok(Json::Obj(fields))
}

/// An aggregate vector file: reports made, checked and summed by the
/// server's own scheme code, released with the server's noise, and
/// decrypted as `hetally-keytool decrypt` does.
fn aggregate(keys: &Keys, spec: Spec, count: usize, seed: u64) -> Result<Json> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let defined = spec.define(keys, &mut rng)?;
    let def = &defined.definition;
    let id = def.id();
    let task = Task::from_definition(
        &id,
        &defined.bytes,
        defined.crs.as_deref(),
        Arithmetic::fastest(),
    )?;
    let aggregator = hetally_schemes::aggregator(def, defined.crs.as_deref())?;
    let mut truth = vec![0i128; def.measurement.len()];
    let mut stored = Vec::new();
    for i in 0..count {
        let values = def.measurement.random_value(&mut rng);
        for (t, v) in truth.iter_mut().zip(&values) {
            *t += i128::from(*v);
        }
        let prepared = task.prepare_with_rng(&values, TIME + 60 * i as u64, &mut rng)?;
        let report =
            Report::from_bytes(&prepared.bytes, payload_cap(aggregator.max_payload_len()))?;
        let ctx = ReportContext {
            task_id: &id,
            report_id: &report.id,
            time: report.time,
        };
        let mut checked = aggregator.check_to_stored(&[(report.payload.as_slice(), ctx)]);
        stored.push(checked.pop().context("one result per report")??);
    }
    // As server/src/aggregator/release.rs: the noisy count (add-remove)
    // from one stream, the values' noise and its encryption from another.
    let guarantee = Guarantee::for_task(&def.measurement, &def.dp, def.relation)?;
    let report_count = if guarantee.relation.publishes_batch_size() {
        ReportCount::Exact(count as u64)
    } else {
        let mut count_rng = ChaCha20Rng::seed_from_u64(seed + 1);
        let noise = guarantee.noise.sample(1, &mut count_rng)?;
        let noisy = i64::try_from(count as i128 + noise[0])?;
        ensure!(
            noisy >= def.min_batch_size as i64 && noisy as u64 <= def.max_batch_size,
            "the noisy count {noisy} would withhold the release: choose another seed"
        );
        ReportCount::Noisy(noisy)
    };
    let mut sum = aggregator.zero();
    aggregator.merge(&mut sum, &aggregator.sum_stored(stored)?)?;
    let mut noise_rng = ChaCha20Rng::seed_from_u64(seed + 2);
    let noise = guarantee
        .noise
        .sample(def.measurement.len(), &mut noise_rng)?;
    let ciphertexts = aggregator.release(&sum, count as u64, &noise, &mut noise_rng)?;
    let file = AggregateFile {
        task_id: id.0,
        scheme: aggregator.scheme(),
        key_fingerprint: aggregator.key_fingerprint(),
        measurement: def.measurement,
        encoding: aggregator.encoding(),
        batch_start: BATCH_START,
        batch_duration: TIME_PRECISION,
        relation: def.relation,
        report_count,
        dp: def.dp.clone(),
        ciphertexts,
        trustee_noise: None,
    };
    let bytes = file.to_bytes();
    let key = keys.get(spec.scheme);
    let decrypted = key.decrypt_flagged(&AggregateFile::from_bytes(&bytes)?)?;
    ensure!(
        decrypted.flags.is_empty(),
        "the aggregate decrypts with flags"
    );
    let expected: Vec<i128> = truth.iter().zip(&noise).map(|(t, n)| t + n).collect();
    if decrypted.values != expected {
        bail!(
            "the aggregate decrypts to {:?}, not the sum {truth:?} plus the noise {noise:?}",
            decrypted.values
        );
    }
    let values = decrypted
        .values
        .iter()
        .map(|v| i64::try_from(*v).map(Json::I64))
        .collect::<Result<Vec<_>, _>>()?;
    let noisy = def.dp != DpMechanism::None;
    let count_text = match report_count {
        ReportCount::Exact(n) => format!("{n} reports"),
        ReportCount::Noisy(c) => {
            format!("{count} reports (add-remove: the file carries the noisy count {c} instead)")
        }
    };
    let mut fields = header(format!(
        "A released {} {} aggregate file (docs/protocol.md section 12) of {count_text}, made, \
         checked, summed and released by the server's scheme code{}; values are what \
         hetally-keytool decrypt prints for it with the secret key{}.",
        spec.scheme,
        def.measurement,
        if def.relation.is_none() {
            " for a legacy task (aggregate format version 1)"
        } else {
            ""
        },
        if noisy {
            format!(" ({} noise included: these are the noisy sums)", def.dp)
        } else {
            String::new()
        },
    ));
    fields.extend([
        ("scheme", Json::str(spec.scheme)),
        ("measurement", Json::str(def.measurement.to_string())),
        ("secret_key", Json::hex(&key.to_bytes())),
        ("public_key", Json::hex(&def.public_key)),
        ("definition", Json::hex(&defined.bytes)),
        ("task_id", Json::str(id.to_string())),
        ("aggregate", Json::hex(&bytes)),
        ("report_count", Json::U64(count as u64)),
        ("values", Json::Arr(values)),
    ]);
    Ok(Json::Obj(fields))
}

/// Writes every file of [`FILES`] into `out` (normally [`dir`]), replacing
/// what is there, and removes nothing else.
pub fn generate(out: &Path) -> Result<()> {
    let keys = Keys::generate()?;
    let p = |m| Spec::new("paillier", m, false);
    let pp = |m| Spec::new("paillier", m, true);
    let t = |m| Spec::new("tfhe", m, false);
    let mut files: Vec<(&str, Json)> = vec![("task-ids.json", task_ids(&keys)?)];
    let report_files: Vec<(&str, Spec, Vec<Vec<u64>>)> = vec![
        (
            "reports/paillier-count.json",
            p("count"),
            vec![vec![0], vec![1]],
        ),
        (
            "reports/paillier-count-proofs.json",
            pp("count"),
            vec![vec![0], vec![1]],
        ),
        (
            "reports/paillier-sum.json",
            p("sum:8"),
            vec![vec![0], vec![5], vec![255]],
        ),
        (
            "reports/paillier-sum-proofs.json",
            pp("sum:8"),
            vec![vec![5], vec![255]],
        ),
        (
            "reports/paillier-histogram.json",
            p("histogram:4"),
            vec![vec![1, 0, 0, 0], vec![0, 0, 1, 0]],
        ),
        (
            "reports/paillier-histogram-proofs.json",
            pp("histogram:4"),
            vec![vec![1, 0, 0, 0], vec![0, 0, 1, 0]],
        ),
        (
            "reports/paillier-sumvec.json",
            p("sumvec:3:4"),
            vec![vec![0, 0, 0], vec![3, 15, 7]],
        ),
        (
            "reports/paillier-sumvec-proofs.json",
            pp("sumvec:3:4"),
            vec![vec![3, 15, 7]],
        ),
        (
            "reports/tfhe-count.json",
            t("count"),
            vec![vec![0], vec![1]],
        ),
        (
            "reports/tfhe-sum.json",
            t("sum:8"),
            vec![vec![5], vec![255]],
        ),
        (
            "reports/tfhe-histogram.json",
            t("histogram:4"),
            vec![vec![0, 1, 0, 0]],
        ),
        (
            "reports/tfhe-sumvec.json",
            t("sumvec:3:4"),
            vec![vec![3, 15, 7]],
        ),
    ];
    for (i, (name, spec, values)) in report_files.into_iter().enumerate() {
        files.push((name, reports(&keys, spec, &values, 100 + i as u64)?));
    }
    // Two ciphertexts: 100 buckets in 22-bit slots, 93 to a plaintext.
    let mut hundred = vec![0u64; 100];
    hundred[95] = 1;
    files.push((
        "reports/paillier-histogram-100.json",
        reports(&keys, p("histogram:100"), &[hundred], 200)?,
    ));
    let aggregates: Vec<(&str, Spec, usize)> = vec![
        (
            "aggregates/paillier-count-dp.json",
            p("count")
                .dp("laplace:1", "10")
                .relation(Some(Relation::AddRemove))
                .max_batch_size(1000),
            8,
        ),
        (
            "aggregates/paillier-sum.json",
            pp("sum:8").relation(None),
            5,
        ),
        (
            "aggregates/paillier-histogram-dp.json",
            pp("histogram:4")
                .dp("gaussian:1/2", "4")
                .max_batch_size(1000),
            6,
        ),
        ("aggregates/paillier-sumvec.json", p("sumvec:3:4"), 5),
        ("aggregates/tfhe-count.json", t("count"), 5),
        (
            "aggregates/tfhe-histogram-dp.json",
            t("histogram:4").dp("laplace:1", "10").max_batch_size(1000),
            6,
        ),
    ];
    for (i, (name, spec, count)) in aggregates.into_iter().enumerate() {
        files.push((name, aggregate(&keys, spec, count, 300 + 10 * i as u64)?));
    }
    let mut names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    let mut expected = FILES.to_vec();
    expected.sort_unstable();
    ensure!(names == expected, "the generator and FILES disagree");
    for (name, json) in files {
        let path = out.join(name);
        std::fs::create_dir_all(path.parent().context("a file has a folder")?)?;
        std::fs::write(&path, json.to_pretty())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
