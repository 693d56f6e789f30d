//! Property tests of the laws every homomorphic scheme's roles keep (issue
//! 18), one generic suite run against Paillier and TFHE, for every
//! measurement type, without input proofs and (Paillier, every type; TFHE,
//! a count: see below) with them:
//!
//! 1. `merge` of partial sums is associative and commutative, `zero()` is
//!    its identity, and merging two sums is summing their shares together.
//!    Both schemes' sums are deterministic (products mod n^2, word-wise
//!    wrapping additions), so sums are compared by their stored bytes.
//! 2. Checking many reports at once gives exactly the verdict each gets
//!    alone, whatever bad reports are mixed in at whatever positions:
//!    tampered bytes, another report's context, one ciphertext too many or
//!    too few, values out of range made with the scheme's unchecked
//!    encryption, truncated and padded payloads. Each verdict is also the
//!    one its kind calls for (an honest report passes; with input proofs,
//!    every forgery fails).
//! 3. Shares and partial sums round-trip through their stored forms, and
//!    the server's type-erased path (`DynAggregator::sum_stored`) sums to
//!    the same bytes as the typed one.
//! 4. Encrypting, checking, summing and releasing random valid
//!    measurements, then decrypting the aggregate file (through its bytes,
//!    with `SecretKeyFile::decrypt`, as `hetally-keytool decrypt` does)
//!    gives their exact sum, value by value.
//! 5. Noise added under encryption at release decrypts to exactly the sum
//!    plus the noise drawn, for any noise the layout makes room for
//!    (Paillier: a slot's signed range less its margin bit; TFHE: Delta's
//!    plaintext space), its ends included.
//!
//! Keys are generated once per test binary from fixed seeds. Every random
//! draw of a case (values, report ids, encryption randomness) comes from a
//! ChaCha20 seeded by a number proptest draws, so a failure reproduces from
//! its case.
//!
//! Cost decides the case counts, given beside each property. Everything
//! without proofs costs milliseconds per report, and a Paillier proof about
//! a millisecond per bit. TFHE's zk-pok does not: in the test profile its
//! CRS takes over ten seconds to make and several more for each role to
//! decode and check (its size follows the LWE dimension, 2,048 in the only
//! parameter set there is, whatever the statement), and a proof takes two
//! to four seconds. So the TFHE task with input proofs is a count, its CRS
//! is made once and its honest and out-of-range reports are proven once,
//! and its few cases choose among those reports and mutate them: what they
//! pay for is verification, a fraction of a second per proof.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use hetally_dp::{DpMechanism, Relation};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::codec::Writer;
use hetally_protocol::keyfile;
use hetally_protocol::roles::{Aggregator, Encrypter, ReportContext, SchemeError};
use hetally_protocol::{Layout, Measurement, ReportId, TaskDefinition, TaskId};
use hetally_schemes::lwe::scheme::{TfheAggregator, TfheDecrypter, TfheEncrypter};
use hetally_schemes::lwe::{self, CiphertextList, ComputeLoad, Proof};
use hetally_schemes::paillier::proofs::{CHALLENGE_BYTES, RESPONSE_BYTES};
use hetally_schemes::paillier::{
    Gmp, Packing, PaillierAggregator, PaillierDecrypter, PaillierEncrypter, SecretKey,
};
use hetally_schemes::{PublicKeyFile, SecretKeyFile};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// `cases` cases. Failures are not written to regression files (proptest
/// cannot place them beside an integration test); the minimal failing
/// input it prints reproduces the case, as every random draw of a case
/// derives from it.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------
// Keys and tasks
// ---------------------------------------------------------------------

fn paillier_key() -> &'static SecretKeyFile {
    static KEY: OnceLock<SecretKeyFile> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(1801);
        SecretKeyFile::Paillier(PaillierDecrypter::new(
            SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap(),
        ))
    })
}

fn tfhe_key() -> &'static SecretKeyFile {
    static KEY: OnceLock<SecretKeyFile> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(1802);
        SecretKeyFile::Tfhe(TfheDecrypter::new(lwe::SecretKey::generate(
            lwe::PKE_ZKV2_2048,
            &mut rng,
        )))
    })
}

/// A task as the server defines one (layout derived, CRS made), without DP:
/// noise is drawn by the tests themselves. The scheme's check of the
/// definition (`hetally_schemes::define_task` runs it too) is left to the
/// roles' constructors, which run it anyway: for a TFHE task with input
/// proofs it decodes and checks the CRS, seconds of work.
fn define(
    key: &SecretKeyFile,
    measurement: &str,
    input_proofs: bool,
    max_batch_size: u64,
) -> (TaskDefinition, Option<Vec<u8>>) {
    let measurement: Measurement = measurement.parse().unwrap();
    let public_key = key.public_key().to_bytes();
    let relation = Some(Relation::ReplaceOne);
    let mut rng = ChaCha20Rng::seed_from_u64(1803);
    let (layout, crs) = hetally_schemes::new_task_layout(
        &public_key,
        &measurement,
        &DpMechanism::None,
        relation,
        None,
        max_batch_size,
        input_proofs,
        &mut rng,
    )
    .unwrap();
    let definition = TaskDefinition {
        measurement,
        min_batch_size: 1,
        max_batch_size,
        time_precision: 60,
        dp: DpMechanism::None,
        budget: None,
        public_key,
        layout,
        input_proofs,
        relation,
        trustee_noise: None,
    };
    definition.check().unwrap();
    (definition, crs)
}

/// A report as a client made it: the values, the context it was made for,
/// and the payload.
#[derive(Debug, Clone)]
struct Made {
    values: Vec<u64>,
    task: TaskId,
    id: ReportId,
    time: u64,
    payload: Vec<u8>,
}

impl Made {
    fn ctx(&self) -> ReportContext<'_> {
        ReportContext {
            task_id: &self.task,
            report_id: &self.id,
            time: self.time,
        }
    }
}

/// The client's side of a task, honest or not: a scheme's encrypter, and
/// the forgeries it can make.
trait Client: Send + Sync {
    /// An honest payload.
    fn encrypt(&self, values: &[u64], ctx: &ReportContext<'_>, rng: &mut ChaCha20Rng) -> Vec<u8>;

    /// `honest` with one ciphertext more or fewer than the task's layout
    /// has (Paillier: a value ciphertext, or a bit ciphertext with its
    /// proof; TFHE: a value of a list, or a whole list when the list
    /// carries a proof).
    fn wrong_count(&self, honest: &Made, more: bool, rng: &mut ChaCha20Rng) -> Vec<u8>;

    /// A payload of values outside the measurement's range, made with the
    /// scheme's unchecked encryption (and unchecked prover). `None` when
    /// the scheme refuses to make one at all.
    fn out_of_range(&self, ctx: &ReportContext<'_>, rng: &mut ChaCha20Rng) -> Option<Vec<u8>>;
}

/// Values a measurement does not allow: one value above the type's
/// largest; a histogram with two buckets set, none, or one set to 2.
fn invalid_values(m: &Measurement, rng: &mut ChaCha20Rng) -> Vec<u64> {
    let mut values = m.random_value(rng);
    let len = values.len();
    let i = rng.gen_range(0..len);
    if m.is_one_hot() {
        let set = values.iter().position(|v| *v == 1).unwrap();
        match rng.gen_range(0..3) {
            0 => values[(set + 1 + rng.gen_range(0..len - 1)) % len] = 1,
            1 => values[set] = 0,
            _ => values[set] = 2,
        }
    } else {
        values[i] = m.max_value() + 1;
    }
    values
}

struct PaillierClient {
    encrypter: PaillierEncrypter<Gmp>,
    packing: Packing,
}

impl Client for PaillierClient {
    fn encrypt(&self, values: &[u64], ctx: &ReportContext<'_>, rng: &mut ChaCha20Rng) -> Vec<u8> {
        self.encrypter.encrypt(values, ctx, rng).unwrap()
    }

    fn wrong_count(&self, honest: &Made, more: bool, _rng: &mut ChaCha20Rng) -> Vec<u8> {
        let ct = self.encrypter.public_key().ciphertext_len();
        let p = &honest.payload;
        // Without proofs: u32 count, then the packed ciphertexts. With
        // proofs: a version byte, u32 bit count, the bit ciphertexts, one
        // proof block per bit, and (histograms) the sum proof.
        let (head, count, block) = match self.encrypter.proofs() {
            None => (0, self.encrypter.ciphertext_count(), 0),
            Some(proofs) => (
                1,
                proofs.bit_count(),
                2 * ct + CHALLENGE_BYTES + 2 * RESPONSE_BYTES,
            ),
        };
        let cts = head + 4;
        let blocks = cts + count * ct;
        let rest = blocks + count * block;
        let (new_count, last_ct, last_block) = if more {
            (count + 1, &p[blocks - ct..blocks], &p[rest - block..rest])
        } else {
            (count - 1, &[][..], &[][..])
        };
        let keep = if more { count } else { count - 1 };
        let mut w = Writer::new();
        w.bytes(&p[..head]).count(new_count);
        w.bytes(&p[cts..cts + keep * ct]).bytes(last_ct);
        w.bytes(&p[blocks..blocks + keep * block]).bytes(last_block);
        w.bytes(&p[rest..]);
        w.finish()
    }

    fn out_of_range(&self, ctx: &ReportContext<'_>, rng: &mut ChaCha20Rng) -> Option<Vec<u8>> {
        let m = self.encrypter.measurement();
        match self.encrypter.proofs() {
            None => {
                // The plain payload, from values no client may send.
                let pk = self.encrypter.public_key();
                let plaintexts: Vec<Gmp> = self.packing.pack_u64(&invalid_values(&m, rng)).unwrap();
                let mut w = Writer::new();
                w.count(plaintexts.len());
                for p in &plaintexts {
                    w.bytes(&pk.ciphertext_to_bytes(&pk.encrypt(p, rng).unwrap()));
                }
                Some(w.finish())
            }
            Some(proofs) => {
                // The honest prover's code on a bit that is 2 (or, for a
                // histogram, on valid bits that do not sum to one).
                let values = m.random_value(rng);
                let width = m.value_bits();
                let mut bits: Vec<Gmp> = values
                    .iter()
                    .flat_map(|v| (0..width).map(move |j| Gmp::from((v >> j) & 1)))
                    .collect();
                if m.is_one_hot() && rng.gen() {
                    bits = invalid_values(&m, rng).into_iter().map(Gmp::from).collect();
                } else {
                    let i = rng.gen_range(0..bits.len());
                    bits[i] = Gmp::from(2);
                }
                Some(proofs.prove_unchecked(&bits, ctx, rng).unwrap())
            }
        }
    }
}

struct TfheClient {
    encrypter: TfheEncrypter,
    pk: lwe::PublicKey,
    measurement: Measurement,
}

impl TfheClient {
    fn lengths(&self) -> Vec<usize> {
        lwe::list_lengths(self.measurement.len(), self.pk.params().lwe_dimension)
    }
}

impl Client for TfheClient {
    fn encrypt(&self, values: &[u64], ctx: &ReportContext<'_>, rng: &mut ChaCha20Rng) -> Vec<u8> {
        self.encrypter.encrypt(values, ctx, rng).unwrap()
    }

    fn wrong_count(&self, honest: &Made, more: bool, rng: &mut ChaCha20Rng) -> Vec<u8> {
        let p = &honest.payload;
        if self.encrypter.input_proofs() {
            // One proven list too many, or none. (The proven task here has
            // one list per report; making another proof costs seconds.)
            assert_eq!(self.lengths().len(), 1);
            return if more { p.repeat(2) } else { Vec::new() };
        }
        // The first list with one value more or fewer (a list carries at
        // least one value, so a one-value list gets one more).
        let len = self.lengths()[0];
        let wrong = if more || len == 1 { len + 1 } else { len - 1 };
        let list = self
            .pk
            .encrypt(&vec![0; wrong], self.encrypter.delta(), rng)
            .unwrap();
        let first = CiphertextList::encoded_len(self.pk.params(), len);
        [list.to_bytes(), p[first..].to_vec()].concat()
    }

    fn out_of_range(&self, ctx: &ReportContext<'_>, rng: &mut ChaCha20Rng) -> Option<Vec<u8>> {
        let values = invalid_values(&self.measurement, rng);
        if self.encrypter.input_proofs() {
            // TFHE-rs may refuse to prove such values; then nobody can
            // send them.
            return self.encrypter.encrypt_unchecked(&values, ctx, rng).ok();
        }
        let mut w = Writer::new();
        let mut rest = &values[..];
        for len in self.lengths() {
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            let chunk: Vec<i128> = chunk.iter().map(|&v| i128::from(v)).collect();
            self.pk
                .encrypt(&chunk, self.encrypter.delta(), rng)
                .unwrap()
                .encode(&mut w);
        }
        Some(w.finish())
    }
}

/// One task under test: its three roles, and reports made ahead of time
/// when making them is slow.
struct Fixture<A> {
    name: String,
    definition: TaskDefinition,
    task_id: TaskId,
    client: Box<dyn Client>,
    aggregator: A,
    key: &'static SecretKeyFile,
    /// The largest |value| a released value can hold and still decrypt
    /// exactly.
    room: i128,
    /// Honest reports made once (empty: made fresh for every case).
    pool: Vec<Made>,
    /// An out-of-range report made once, for a task whose pool is used.
    pooled_out_of_range: Option<Made>,
}

impl<A: Aggregator> Fixture<A> {
    fn measurement(&self) -> Measurement {
        self.definition.measurement
    }

    fn proofs(&self) -> bool {
        self.definition.input_proofs
    }

    fn random_context(&self, rng: &mut ChaCha20Rng) -> (ReportId, u64) {
        (
            ReportId::random(rng),
            rng.gen_range(0..1u64 << 40) / 60 * 60,
        )
    }

    fn honest(&self, rng: &mut ChaCha20Rng) -> Made {
        if !self.pool.is_empty() {
            return self.pool[rng.gen_range(0..self.pool.len())].clone();
        }
        let values = self.measurement().random_value(rng);
        let (id, time) = self.random_context(rng);
        let ctx = ReportContext {
            task_id: &self.task_id,
            report_id: &id,
            time,
        };
        let payload = self.client.encrypt(&values, &ctx, rng);
        Made {
            values,
            task: self.task_id,
            id,
            time,
            payload,
        }
    }

    fn out_of_range(&self, rng: &mut ChaCha20Rng) -> Option<Made> {
        if !self.pool.is_empty() {
            return self.pooled_out_of_range.clone();
        }
        let (id, time) = self.random_context(rng);
        let ctx = ReportContext {
            task_id: &self.task_id,
            report_id: &id,
            time,
        };
        let payload = self.client.out_of_range(&ctx, rng)?;
        Some(Made {
            values: Vec::new(),
            task: self.task_id,
            id,
            time,
            payload,
        })
    }

    /// Checks honest reports, which must all pass.
    fn shares(&self, made: &[Made]) -> Vec<A::Share> {
        let batch: Vec<(&[u8], ReportContext<'_>)> =
            made.iter().map(|m| (&m.payload[..], m.ctx())).collect();
        self.aggregator
            .check(&batch)
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{}: an honest report failed: {e}", self.name)))
            .collect()
    }

    /// The aggregate file of a release of `reports` reports, through its
    /// bytes, decrypted with the collector's key.
    fn decrypt(&self, reports: u64, ciphertexts: Vec<Vec<u8>>) -> Vec<i128> {
        let file = AggregateFile {
            task_id: self.task_id.0,
            scheme: self.aggregator.scheme(),
            key_fingerprint: self.aggregator.key_fingerprint(),
            measurement: self.measurement(),
            encoding: self.aggregator.encoding(),
            batch_start: 1_700_000_000,
            batch_duration: 3600,
            relation: self.definition.relation,
            report_count: ReportCount::Exact(reports),
            dp: self.definition.dp.clone(),
            ciphertexts,
            trustee_noise: None,
        };
        let back = AggregateFile::from_bytes(&file.to_bytes()).unwrap();
        assert_eq!(back, file);
        self.key.decrypt(&back).unwrap()
    }
}

/// Sums of `made` value by value.
fn plain_sum(measurement: &Measurement, made: &[Made]) -> Vec<i128> {
    let mut sum = vec![0i128; measurement.len()];
    for m in made {
        for (s, v) in sum.iter_mut().zip(&m.values) {
            *s += i128::from(*v);
        }
    }
    sum
}

fn paillier_fixture(measurement: &str, input_proofs: bool) -> Fixture<PaillierAggregator<Gmp>> {
    let key = paillier_key();
    let (definition, _) = define(key, measurement, input_proofs, 1 << 20);
    let encrypter = PaillierEncrypter::<Gmp>::new(&definition).unwrap();
    let Layout::Paillier { slot_bits } = definition.layout else {
        unreachable!("a Paillier key makes Paillier layouts")
    };
    let packing = Packing::new(slot_bits, encrypter.public_key().modulus_bits()).unwrap();
    Fixture {
        name: format!("paillier {measurement} (input proofs: {input_proofs})"),
        task_id: definition.id(),
        aggregator: PaillierAggregator::new(&definition).unwrap(),
        client: Box::new(PaillierClient { encrypter, packing }),
        definition,
        key,
        // The layout keeps a bit of margin above the largest sum plus noise
        // it makes room for (`Packing::for_max_abs`): noise is drawn up to
        // that, not into the margin.
        room: packing.max_abs() / 2,
        pool: Vec::new(),
        pooled_out_of_range: None,
    }
}

fn tfhe_fixture(measurement: &str, input_proofs: bool) -> Fixture<TfheAggregator> {
    let key = tfhe_key();
    let (definition, crs) = define(key, measurement, input_proofs, 100);
    // Each role decodes and checks the CRS (seconds): side by side.
    let (encrypter, aggregator) = std::thread::scope(|s| {
        let encrypter = s.spawn(|| TfheEncrypter::new(&definition, crs.as_deref()).unwrap());
        let aggregator = TfheAggregator::new(&definition, crs.as_deref()).unwrap();
        (encrypter.join().unwrap(), aggregator)
    });
    let PublicKeyFile::Tfhe(pk) = key.public_key() else {
        unreachable!("a TFHE key")
    };
    let room = i128::from(encrypter.delta().max_abs_value());
    Fixture {
        name: format!("tfhe {measurement} (input proofs: {input_proofs})"),
        task_id: definition.id(),
        aggregator,
        client: Box::new(TfheClient {
            encrypter,
            pk,
            measurement: definition.measurement,
        }),
        definition,
        key,
        room,
        pool: Vec::new(),
        pooled_out_of_range: None,
    }
}

/// Paillier tasks without input proofs, one per measurement type. The
/// sumvec needs three ciphertexts (48 slots of 42 bits per plaintext), the
/// last one partly filled.
const PAILLIER_PLAIN: [&str; 4] = ["count", "sum:16", "histogram:7", "sumvec:120:20"];

/// Paillier tasks with input proofs: few bits, as every bit costs a proof.
const PAILLIER_PROVEN: [&str; 4] = ["count", "sum:5", "histogram:4", "sumvec:3:3"];

/// TFHE tasks without input proofs. The sumvec needs two compact lists of
/// 1,025 values.
const TFHE_PLAIN: [&str; 4] = ["count", "sum:8", "histogram:6", "sumvec:2050:3"];

fn paillier_plain() -> &'static [Fixture<PaillierAggregator<Gmp>>] {
    static F: OnceLock<Vec<Fixture<PaillierAggregator<Gmp>>>> = OnceLock::new();
    F.get_or_init(|| {
        PAILLIER_PLAIN
            .iter()
            .map(|m| paillier_fixture(m, false))
            .collect()
    })
}

fn paillier_proven() -> &'static [Fixture<PaillierAggregator<Gmp>>] {
    static F: OnceLock<Vec<Fixture<PaillierAggregator<Gmp>>>> = OnceLock::new();
    F.get_or_init(|| {
        PAILLIER_PROVEN
            .iter()
            .map(|m| paillier_fixture(m, true))
            .collect()
    })
}

fn tfhe_plain() -> &'static [Fixture<TfheAggregator>] {
    static F: OnceLock<Vec<Fixture<TfheAggregator>>> = OnceLock::new();
    F.get_or_init(|| TFHE_PLAIN.iter().map(|m| tfhe_fixture(m, false)).collect())
}

/// Honest reports of the proven TFHE task, made once (2 to 3 seconds of
/// proving each in the test profile).
const TFHE_POOL: usize = 2;

/// The TFHE task with input proofs, with its pool of reports: a count, the
/// shortest statement for its CRS (whose cost is mostly the LWE dimension's:
/// seconds to make, and seconds for each role to decode and check).
fn tfhe_proven() -> &'static Fixture<TfheAggregator> {
    static F: OnceLock<Fixture<TfheAggregator>> = OnceLock::new();
    F.get_or_init(|| {
        let started = std::time::Instant::now();
        let mut f = tfhe_fixture("count", true);
        let made_crs = started.elapsed();
        // Proven side by side, while the pool is empty (so made fresh).
        let rng = |i: u64| ChaCha20Rng::seed_from_u64(1804 + i);
        let fixture = &f;
        let (out_of_range, pool) = std::thread::scope(|s| {
            let bad = s.spawn(move || fixture.out_of_range(&mut rng(0)));
            let honest: Vec<_> = (1..=TFHE_POOL as u64)
                .map(|i| s.spawn(move || fixture.honest(&mut rng(i))))
                .collect();
            let honest: Vec<Made> = honest.into_iter().map(|h| h.join().unwrap()).collect();
            (bad.join().unwrap(), honest)
        });
        f.pooled_out_of_range = out_of_range;
        f.pool = pool;
        eprintln!(
            "proven TFHE count task: CRS in {made_crs:?}, {TFHE_POOL} honest reports and one \
             out of range ({}) in {:?}",
            if f.pooled_out_of_range.is_some() {
                "proven"
            } else {
                "refused by TFHE-rs"
            },
            started.elapsed() - made_crs
        );
        f
    })
}

// ---------------------------------------------------------------------
// 1. Merge laws
// ---------------------------------------------------------------------

fn stored<A: Aggregator>(f: &Fixture<A>, sum: &A::Sum) -> Vec<u8> {
    f.aggregator.encode_sum(sum)
}

fn merged<A: Aggregator>(f: &Fixture<A>, a: &A::Sum, b: &A::Sum) -> A::Sum {
    let mut out = a.clone();
    f.aggregator.merge(&mut out, b);
    out
}

/// Three partial sums of `sizes` fresh reports each.
fn merge_laws<A: Aggregator>(
    f: &Fixture<A>,
    sizes: [usize; 3],
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let made: Vec<Vec<Made>> = sizes
        .iter()
        .map(|&n| (0..n).map(|_| f.honest(&mut rng)).collect())
        .collect();
    let shares: Vec<Vec<A::Share>> = made.iter().map(|m| f.shares(m)).collect();
    let agg = &f.aggregator;
    let [a, b, c] = [0, 1, 2].map(|i| agg.sum(&shares[i]));
    let zero = agg.zero();
    prop_assert_eq!(
        stored(f, &merged(f, &merged(f, &a, &b), &c)),
        stored(f, &merged(f, &a, &merged(f, &b, &c))),
        "{}: merge is not associative",
        f.name
    );
    prop_assert_eq!(
        stored(f, &merged(f, &a, &b)),
        stored(f, &merged(f, &b, &a)),
        "{}: merge is not commutative",
        f.name
    );
    prop_assert_eq!(
        stored(f, &merged(f, &a, &zero)),
        stored(f, &a),
        "{}: zero is not a right identity",
        f.name
    );
    prop_assert_eq!(
        stored(f, &merged(f, &zero, &a)),
        stored(f, &a),
        "{}: zero is not a left identity",
        f.name
    );
    // Merging partial sums is summing their shares at once, in any order.
    let mut all: Vec<A::Share> = shares.into_iter().flatten().collect();
    let whole = stored(f, &merged(f, &merged(f, &a, &b), &c));
    prop_assert_eq!(
        &stored(f, &agg.sum(&all)),
        &whole,
        "{}: merge is not sum",
        f.name
    );
    all.reverse();
    prop_assert_eq!(
        &stored(f, &agg.sum(&all)),
        &whole,
        "{}: sum depends on order",
        f.name
    );
    prop_assert_eq!(stored(f, &agg.sum(&[])), stored(f, &zero));
    Ok(())
}

/// Up to four reports in each of the three partial sums.
fn sizes() -> impl Strategy<Value = [usize; 3]> {
    [0usize..=4, 0usize..=4, 0usize..=4]
}

proptest! {
    // Up to 12 encryptions per case, about a millisecond per ciphertext:
    // 128 cases over the four measurement types take about a second.
    #![proptest_config(config(128))]

    #[test]
    fn paillier_merge_is_associative_and_commutative_with_zero_as_identity(
        i in 0..PAILLIER_PLAIN.len(),
        sizes in sizes(),
        seed in any::<u64>(),
    ) {
        merge_laws(&paillier_plain()[i], sizes, seed)?;
    }
}

proptest! {
    // A TFHE encryption is about a millisecond per list, and a list is 16
    // KB or more: 64 cases take about a second.
    #![proptest_config(config(64))]

    #[test]
    fn tfhe_merge_is_associative_and_commutative_with_zero_as_identity(
        i in 0..TFHE_PLAIN.len(),
        sizes in sizes(),
        seed in any::<u64>(),
    ) {
        merge_laws(&tfhe_plain()[i], sizes, seed)?;
    }
}

// ---------------------------------------------------------------------
// 2. Batch verification agrees with verifying each report alone
// ---------------------------------------------------------------------

/// How a report in a batch is made.
#[derive(Debug, Clone)]
enum Kind {
    Honest,
    /// One bit of an honest payload flipped.
    Tampered(Index, u8),
    /// An honest payload checked against another report id (0), time (1)
    /// or task (2).
    WrongContext(u8),
    /// One ciphertext more (true) or fewer.
    WrongCount(bool),
    /// Values out of range, made with the unchecked encryption.
    OutOfRange,
    /// An honest payload cut short.
    Truncated(Index),
    /// An honest payload with bytes after its end.
    Trailing(Vec<u8>),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Honest),
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Kind::Tampered(i, bit)),
        1 => (0u8..3).prop_map(Kind::WrongContext),
        1 => any::<bool>().prop_map(Kind::WrongCount),
        1 => Just(Kind::OutOfRange),
        1 => any::<Index>().prop_map(Kind::Truncated),
        1 => prop::collection::vec(any::<u8>(), 1..4).prop_map(Kind::Trailing),
    ]
}

/// What a report's verdict must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accept,
    Reject,
    /// Without input proofs, some changes leave a valid payload.
    Either,
}

/// A report of `kind`, with the verdict it calls for; `None` if the scheme
/// cannot make such a report.
fn make<A: Aggregator>(f: &Fixture<A>, kind: &Kind, seed: u64) -> Option<(Made, Expect)> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let proofs = f.proofs();
    let unless_proven = if proofs {
        Expect::Reject
    } else {
        Expect::Accept
    };
    let mut made = match kind {
        Kind::OutOfRange => return f.out_of_range(&mut rng).map(|m| (m, unless_proven)),
        _ => f.honest(&mut rng),
    };
    let expect = match kind {
        Kind::Honest => Expect::Accept,
        Kind::OutOfRange => unreachable!(),
        Kind::Tampered(i, bit) => {
            let i = i.index(made.payload.len());
            made.payload[i] ^= 1 << bit;
            if proofs {
                Expect::Reject
            } else {
                Expect::Either
            }
        }
        Kind::WrongContext(which) => {
            match which {
                0 => made.id = ReportId::random(&mut rng),
                1 => made.time += 60,
                _ => made.task = TaskId(rng.gen()),
            }
            unless_proven
        }
        Kind::WrongCount(more) => {
            made.payload = f.client.wrong_count(&made, *more, &mut rng);
            Expect::Reject
        }
        Kind::Truncated(i) => {
            made.payload.truncate(i.index(made.payload.len()));
            Expect::Reject
        }
        Kind::Trailing(extra) => {
            made.payload.extend_from_slice(extra);
            Expect::Reject
        }
    };
    Some((made, expect))
}

/// A verdict in a comparable form: the hash of the share's stored form,
/// or the error's message.
fn verdict<A: Aggregator>(f: &Fixture<A>, r: Result<A::Share, SchemeError>) -> Result<u64, String> {
    match r {
        Ok(share) => {
            let mut h = DefaultHasher::new();
            f.aggregator.encode_share(&share).hash(&mut h);
            Ok(h.finish())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn batch_agrees_with_singles<A: Aggregator>(
    f: &Fixture<A>,
    reports: &[(Kind, u64)],
) -> Result<(), TestCaseError> {
    let made: Vec<(Made, Expect, &Kind)> = reports
        .iter()
        .filter_map(|(kind, seed)| make(f, kind, *seed).map(|(m, e)| (m, e, kind)))
        .collect();
    let batch: Vec<(&[u8], ReportContext<'_>)> = made
        .iter()
        .map(|(m, _, _)| (&m.payload[..], m.ctx()))
        .collect();
    let together: Vec<_> = f
        .aggregator
        .check(&batch)
        .into_iter()
        .map(|r| verdict(f, r))
        .collect();
    prop_assert_eq!(together.len(), batch.len());
    for (i, report) in batch.iter().enumerate() {
        let alone = f.aggregator.check(std::slice::from_ref(report));
        prop_assert_eq!(alone.len(), 1);
        let alone = verdict(f, alone.into_iter().next().unwrap());
        prop_assert_eq!(
            &together[i],
            &alone,
            "{}: report {} ({:?}) of {} has another verdict in the batch",
            f.name,
            i,
            made[i].2,
            batch.len()
        );
        let (_, expect, kind) = &made[i];
        match expect {
            Expect::Accept => prop_assert!(
                alone.is_ok(),
                "{}: {:?} was refused: {:?}",
                f.name,
                kind,
                alone
            ),
            Expect::Reject => prop_assert!(alone.is_err(), "{}: {:?} was accepted", f.name, kind),
            Expect::Either => {}
        }
    }
    Ok(())
}

fn batch(most: usize) -> impl Strategy<Value = Vec<(Kind, u64)>> {
    prop::collection::vec((kind(), any::<u64>()), 1..=most)
}

proptest! {
    // Without proofs a check is microseconds and an encryption about a
    // millisecond per ciphertext: 128 cases of up to 8 reports, about a
    // second.
    #![proptest_config(config(128))]

    #[test]
    fn paillier_batch_check_agrees_with_single_checks(
        i in 0..PAILLIER_PLAIN.len(),
        reports in batch(8),
    ) {
        batch_agrees_with_singles(&paillier_plain()[i], &reports)?;
    }
}

proptest! {
    // A Paillier proof costs about a millisecond per bit to make and as
    // much to verify alone (a fifth in a batch); these tasks have 1 to 9
    // bits: 48 cases of up to 8 reports, about six seconds.
    #![proptest_config(config(48))]

    #[test]
    fn paillier_proven_batch_check_agrees_with_single_checks(
        i in 0..PAILLIER_PROVEN.len(),
        reports in batch(8),
    ) {
        batch_agrees_with_singles(&paillier_proven()[i], &reports)?;
    }
}

proptest! {
    // A TFHE check without proofs only decodes; encryption is about a
    // millisecond per list: 64 cases of up to 6 reports, under a second.
    #![proptest_config(config(64))]

    #[test]
    fn tfhe_batch_check_agrees_with_single_checks(
        i in 0..TFHE_PLAIN.len(),
        reports in batch(6),
    ) {
        batch_agrees_with_singles(&tfhe_plain()[i], &reports)?;
    }
}

// ---------------------------------------------------------------------
// 3 and 4. Stored forms, and exact sums of valid reports
// ---------------------------------------------------------------------

/// `reports` fresh honest reports: checked, stored and read back, summed
/// (typed, and through the server's type-erased path), released without
/// noise and decrypted.
fn exact_sum<A: Aggregator>(
    f: &Fixture<A>,
    reports: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let made: Vec<Made> = (0..reports).map(|_| f.honest(&mut rng)).collect();
    let shares = f.shares(&made);
    let agg = &f.aggregator;
    let mut stored_shares = Vec::new();
    for share in &shares {
        let bytes = agg.encode_share(share);
        let back = agg.decode_share(bytes.clone()).unwrap();
        prop_assert_eq!(
            &agg.encode_share(&back),
            &bytes,
            "{}: share round trip",
            f.name
        );
        stored_shares.push(bytes);
    }
    let sum = agg.sum(&shares);
    let bytes = agg.encode_sum(&sum);
    let back = agg.decode_sum(bytes.clone()).unwrap();
    prop_assert_eq!(&agg.encode_sum(&back), &bytes, "{}: sum round trip", f.name);
    // Only `Aggregator` is imported: the two traits share method names.
    let erased = hetally_protocol::DynAggregator::sum_stored(agg, stored_shares).unwrap();
    prop_assert_eq!(
        &hetally_protocol::DynAggregator::encode_sum(agg, &erased).unwrap(),
        &bytes,
        "{}: the type-erased sum differs",
        f.name
    );
    let zeros = vec![0; f.measurement().len()];
    let released = agg
        .release(&back, reports as u64, &zeros, &mut rng)
        .unwrap();
    prop_assert_eq!(
        f.decrypt(reports as u64, released),
        plain_sum(&f.measurement(), &made),
        "{}: the decrypted sum is not the sum",
        f.name
    );
    Ok(())
}

proptest! {
    // Up to 8 encryptions and one decryption (a few milliseconds per
    // ciphertext) per case: 128 cases, about two seconds.
    #![proptest_config(config(128))]

    #[test]
    fn paillier_valid_reports_decrypt_to_their_exact_sum(
        i in 0..PAILLIER_PLAIN.len(),
        reports in 0usize..=8,
        seed in any::<u64>(),
    ) {
        exact_sum(&paillier_plain()[i], reports, seed)?;
    }
}

proptest! {
    // Proofs made and verified for up to 6 reports of up to 9 bits: 32
    // cases, about three seconds.
    #![proptest_config(config(32))]

    #[test]
    fn paillier_proven_valid_reports_decrypt_to_their_exact_sum(
        i in 0..PAILLIER_PROVEN.len(),
        reports in 0usize..=6,
        seed in any::<u64>(),
    ) {
        exact_sum(&paillier_proven()[i], reports, seed)?;
    }
}

proptest! {
    // Up to 8 encryptions (about a millisecond per list) and one decryption
    // (expanding and decrypting up to 2,050 values): 64 cases, under a
    // second.
    #![proptest_config(config(64))]

    #[test]
    fn tfhe_valid_reports_decrypt_to_their_exact_sum(
        i in 0..TFHE_PLAIN.len(),
        reports in 0usize..=8,
        seed in any::<u64>(),
    ) {
        exact_sum(&tfhe_plain()[i], reports, seed)?;
    }
}

// ---------------------------------------------------------------------
// 5. Noise under encryption
// ---------------------------------------------------------------------

/// How a noise value is chosen within what its value can take: small, at
/// either end, or anywhere (proptest shrinks towards small).
fn noise_choice() -> impl Strategy<Value = (u8, u128)> {
    (0u8..4, any::<u128>())
}

/// Noise for a value whose sum is `sum`, so that sum + noise stays within
/// [-room, room]: noise in [-room, room - sum].
fn noise_value(room: i128, sum: i128, (how, raw): (u8, u128)) -> i128 {
    let (lo, hi) = (-room, room - sum);
    match how {
        0 => ((raw % 7) as i128 - 3).clamp(lo, hi),
        1 => lo,
        2 => hi,
        // hi - lo + 1 <= 2 room + 1 < 2^127.
        _ => lo + (raw % (hi - lo + 1) as u128) as i128,
    }
}

fn noise_decrypts_to_the_drawn_value<A: Aggregator>(
    f: &Fixture<A>,
    reports: usize,
    choices: &[(u8, u128)],
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let made: Vec<Made> = (0..reports).map(|_| f.honest(&mut rng)).collect();
    let sum = f.aggregator.sum(&f.shares(&made));
    let truth = plain_sum(&f.measurement(), &made);
    let noise: Vec<i128> = truth
        .iter()
        .enumerate()
        .map(|(i, s)| noise_value(f.room, *s, choices[i % choices.len()]))
        .collect();
    let released = f
        .aggregator
        .release(&sum, reports as u64, &noise, &mut rng)
        .unwrap();
    let want: Vec<i128> = truth.iter().zip(&noise).map(|(s, n)| s + n).collect();
    prop_assert_eq!(
        f.decrypt(reports as u64, released),
        want,
        "{}: sum plus noise",
        f.name
    );
    Ok(())
}

proptest! {
    // As the exact sums, plus one noise encryption per ciphertext: 128
    // cases, about two seconds.
    #![proptest_config(config(128))]

    #[test]
    fn paillier_noise_decrypts_to_the_drawn_value(
        i in 0..PAILLIER_PLAIN.len(),
        reports in 0usize..=4,
        choices in prop::collection::vec(noise_choice(), 1..=16),
        seed in any::<u64>(),
    ) {
        noise_decrypts_to_the_drawn_value(&paillier_plain()[i], reports, &choices, seed)?;
    }
}

proptest! {
    // As the exact sums, plus one noise list per list: 64 cases, under a
    // second.
    #![proptest_config(config(64))]

    #[test]
    fn tfhe_noise_decrypts_to_the_drawn_value(
        i in 0..TFHE_PLAIN.len(),
        reports in 0usize..=4,
        choices in prop::collection::vec(noise_choice(), 1..=16),
        seed in any::<u64>(),
    ) {
        noise_decrypts_to_the_drawn_value(&tfhe_plain()[i], reports, &choices, seed)?;
    }
}

// ---------------------------------------------------------------------
// Round trips of the key files, the CRS and the TFHE proofs
// ---------------------------------------------------------------------

/// Both schemes' key files through `PublicKeyFile` and `SecretKeyFile` (the
/// keys are the two made for this binary: key generation is too slow to
/// draw keys per case; `crypto/lwe/tests/properties.rs` does draw TFHE keys).
#[test]
fn key_files_round_trip() {
    for key in [paillier_key(), tfhe_key()] {
        let secret = key.to_bytes();
        let back = SecretKeyFile::from_bytes(&secret).unwrap();
        assert_eq!(back.scheme(), key.scheme());
        assert_eq!(back.to_bytes(), secret);
        let public = key.public_key().to_bytes();
        let pk = PublicKeyFile::from_bytes(&public).unwrap();
        assert_eq!(pk, key.public_key());
        assert_eq!(pk.to_bytes(), public);
        assert_eq!(pk.fingerprint(), keyfile::fingerprint(&public));
        assert_eq!(back.public_key(), pk);
    }
}

// ---------------------------------------------------------------------
// The TFHE task with input proofs
// ---------------------------------------------------------------------

/// Properties 2 to 4 for the TFHE task with input proofs, in one test so
/// that only one test thread waits for its CRS and pool (about 40 seconds
/// in the test profile) while the other runs the rest:
///
/// * its proofs round-trip through their encoding (its CRS was decoded by
///   both roles' constructors, which check that it hashes to the task's
///   CRS hash and proves the task's statement; decoding keeps the bytes it
///   read, so its own round trip holds by construction);
/// * batches of pooled, tampered, re-addressed, miscounted, cut and
///   padded reports, and the out-of-range report (when TFHE-rs proves one;
///   it does for this seed), get the verdicts they get alone, and the
///   right ones;
/// * pooled valid reports sum and decrypt exactly.
#[test]
fn tfhe_proven_reports_keep_the_laws() {
    let f = tfhe_proven();
    let list_len = CiphertextList::encoded_len(lwe::PKE_ZKV2_2048, 1);
    for made in &f.pool {
        // One list, then the proof's u32 length and bytes.
        let proof = &made.payload[list_len + 4..];
        let back = Proof::from_bytes(proof, ComputeLoad::Proof).unwrap();
        assert_eq!(back.to_bytes(), proof);
    }
    // A case pays for verifying each report twice (in the batch and
    // alone), a tenth of a second or more per proof: 4 cases of up to 4.
    proptest!(config(4), |(reports in batch(4))| {
        batch_agrees_with_singles(f, &reports)?;
    });
    // One verification per report: 2 cases of up to 3 pooled reports.
    proptest!(config(2), |(reports in 0usize..=3, seed in any::<u64>())| {
        exact_sum(f, reports, seed)?;
    });
}
