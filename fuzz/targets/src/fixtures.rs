//! The keys and tasks the fuzz targets check input against.
//!
//! Everything here is derived from fixed seeds, so that every run (each
//! libFuzzer process, each corpus replay) sees the same keys and task ids:
//! a seed report made by [`crate::seeds`] then still verifies, and the
//! fuzzer can mutate it from deep inside the proof checks. The keys are
//! real (2048-bit Paillier, the TFHE parameter set hetally ships) and are
//! never used outside fuzzing.

use std::sync::{Arc, OnceLock};

use hetally_protocol::dp::{DpMechanism, Relation};
use hetally_protocol::{DynAggregator, Encrypter, Measurement, ReportContext, ReportId, TaskId};
use hetally_protocol::{Scheme, TaskDefinition};
use hetally_schemes::{lwe, paillier, SecretKeyFile, TaskParams};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The report id every fixed-context check uses.
pub const REPORT_ID: ReportId = ReportId([0x5a; 16]);

/// The report time every fixed-context check uses (a multiple of every
/// fixture task's time precision).
pub const TIME: u64 = 1_700_000_000 - 1_700_000_000 % 3600;

/// A seeded generator; `stream` keeps the fixtures' draws apart.
pub fn rng(stream: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(0x6865_7461_6c6c_7900 ^ stream)
}

/// One task of the fixtures, with every role built.
pub struct Task {
    /// A short name (`paillier-histogram:4-proofs`), for seeds and docs.
    pub name: String,
    /// The definition.
    pub definition: TaskDefinition,
    /// Its encoding, as the server stores and serves it.
    pub definition_bytes: Vec<u8>,
    /// The task id.
    pub id: TaskId,
    /// The CRS of a TFHE task with input proofs.
    pub crs: Option<Vec<u8>>,
    /// The client's side.
    pub encrypter: Arc<dyn Encrypter>,
    /// The server's side.
    pub aggregator: Arc<dyn DynAggregator>,
}

impl Task {
    /// The context a report with `report_id` and `time` is checked in.
    pub fn context<'a>(&'a self, report_id: &'a ReportId, time: u64) -> ReportContext<'a> {
        ReportContext {
            task_id: &self.id,
            report_id,
            time,
        }
    }
}

fn task(key: &SecretKeyFile, measurement: &str, proofs: bool, stream: u64) -> Task {
    let measurement: Measurement = measurement.parse().expect("fixture measurement");
    let params = TaskParams {
        measurement,
        min_batch_size: 1,
        max_batch_size: Some(1000),
        time_precision: 3600,
        dp: DpMechanism::None,
        budget: None,
        input_proofs: proofs,
        relation: Some(Relation::ReplaceOne),
        trustee_noise: None,
    };
    let (definition, crs) =
        hetally_schemes::define_task(key.public_key().to_bytes(), params, 1000, &mut rng(stream))
            .expect("fixture task");
    let definition_bytes = definition.to_bytes();
    let encrypter = hetally_schemes::encrypter(&definition, crs.as_deref()).expect("encrypter");
    let aggregator = hetally_schemes::aggregator(&definition, crs.as_deref()).expect("aggregator");
    Task {
        name: format!(
            "{}-{measurement}-{}",
            key.scheme(),
            if proofs { "proofs" } else { "no-proofs" }
        ),
        id: definition.id(),
        definition,
        definition_bytes,
        crs,
        encrypter,
        aggregator,
    }
}

/// The collector's Paillier secret key (built on first use, in about a
/// second).
pub fn paillier_key() -> &'static SecretKeyFile {
    static KEY: OnceLock<SecretKeyFile> = OnceLock::new();
    KEY.get_or_init(|| {
        SecretKeyFile::Paillier(paillier::PaillierDecrypter::new(
            paillier::SecretKey::generate(2048, &mut rng(1), &mut |_| {})
                .expect("fixture Paillier key"),
        ))
    })
}

/// The collector's TFHE secret key.
pub fn tfhe_key() -> &'static SecretKeyFile {
    static KEY: OnceLock<SecretKeyFile> = OnceLock::new();
    KEY.get_or_init(|| {
        SecretKeyFile::Tfhe(lwe::scheme::TfheDecrypter::new(lwe::SecretKey::generate(
            lwe::PKE_ZKV2_2048,
            &mut rng(2),
        )))
    })
}

/// The secret key of `scheme`.
pub fn key(scheme: Scheme) -> &'static SecretKeyFile {
    match scheme {
        Scheme::Paillier => paillier_key(),
        _ => tfhe_key(),
    }
}

/// Paillier tasks: every measurement type, with and without proofs.
pub fn paillier_tasks() -> &'static [Task] {
    static TASKS: OnceLock<Vec<Task>> = OnceLock::new();
    TASKS.get_or_init(|| {
        let mut tasks = Vec::new();
        for (i, measurement) in ["count", "sum:8", "histogram:4", "sumvec:3:4"]
            .into_iter()
            .enumerate()
        {
            for (j, proofs) in [true, false].into_iter().enumerate() {
                let stream = 10 + 2 * i as u64 + j as u64;
                tasks.push(task(paillier_key(), measurement, proofs, stream));
            }
        }
        tasks
    })
}

/// TFHE tasks without proofs: count and histogram.
pub fn tfhe_plain_tasks() -> &'static [Task] {
    static TASKS: OnceLock<Vec<Task>> = OnceLock::new();
    TASKS.get_or_init(|| {
        vec![
            task(tfhe_key(), "count", false, 20),
            task(tfhe_key(), "histogram:4", false, 21),
        ]
    })
}

/// The TFHE task with input proofs (a count). Its CRS takes seconds to
/// make, so only the targets that use it build it.
pub fn tfhe_proof_task() -> &'static Task {
    static TASK: OnceLock<Task> = OnceLock::new();
    TASK.get_or_init(|| task(tfhe_key(), "count", true, 22))
}

/// Every TFHE task: the plain ones, then the one with proofs.
pub fn tfhe_tasks() -> Vec<&'static Task> {
    tfhe_plain_tasks()
        .iter()
        .chain(std::iter::once(tfhe_proof_task()))
        .collect()
}

/// Every task, Paillier first.
pub fn tasks() -> impl Iterator<Item = &'static Task> {
    paillier_tasks().iter().chain(tfhe_tasks())
}

/// Builds, ahead of the first input, the fixtures `target` uses: a
/// fuzzer's per-input timeout then measures the input, not the setup.
pub fn warm_up(target: &str) {
    match target {
        "paillier_payload" => {
            paillier_tasks();
        }
        "tfhe_payload" => {
            tfhe_tasks();
        }
        "aggregate_file" => {
            paillier_key();
            tfhe_key();
        }
        "upload" => {
            paillier_tasks();
            tfhe_plain_tasks();
            paillier_key();
            tfhe_key();
        }
        _ => {}
    }
}
