//! The targets; see the crate docs.

use arbitrary::{Arbitrary, Unstructured};
use hetally_dap::hpke::{decode_config, CollectorCredential};
use hetally_dap::messages::ReportId as DapReportId;
use hetally_dap::prio::codec::Decode;
use hetally_dap::prio::topology::ping_pong::PingPongMessage;
use hetally_dap::vdaf::{self, VdafSpec, VERIFY_KEY_LEN};
use hetally_dap::with_dap_vdaf;
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::api::{CreateTaskRequest, ReleaseRequest};
use hetally_protocol::report::{payload_cap, MAX_REPORT_PAYLOAD};
use hetally_protocol::{Report, ReportContext, ReportId, TaskDefinition};
use hetally_schemes::{PublicKeyFile, SecretKeyFile, TaskParams};
use hetally_server::dap::task::{DapTask, DapTaskRequest};

use crate::fixtures::{self, Task, REPORT_ID, TIME};

/// The report envelope (`PUT /tasks/{id}/reports` bodies): decodes with the
/// largest payload any task accepts; what decodes re-encodes to itself.
pub fn report(data: &[u8]) {
    if let Ok(report) = Report::from_bytes(data, MAX_REPORT_PAYLOAD) {
        assert_eq!(
            report.to_bytes(),
            data,
            "a report re-encodes to other bytes"
        );
    }
}

/// Checks one payload against `task` as the server does, and, if it is
/// accepted, derives everything the server later derives from it.
fn check_payload(task: &Task, payload: &[u8], ctx: ReportContext<'_>) -> Option<Vec<u8>> {
    let verdict = task
        .aggregator
        .check_to_stored(&[(payload, ctx)])
        .pop()
        .expect("one verdict per report");
    let stored = verdict.ok()?;
    let sum = task
        .aggregator
        .sum_stored(vec![stored.clone()])
        .expect("an accepted report's stored form reads back");
    let encoded = task.aggregator.encode_sum(&sum).expect("own sum");
    let decoded = task
        .aggregator
        .decode_sum(encoded.clone())
        .expect("a partial sum reads back");
    assert_eq!(
        task.aggregator.encode_sum(&decoded).expect("own sum"),
        encoded,
        "a partial sum re-encodes to other bytes"
    );
    Some(stored)
}

fn payload_target(tasks: &[&Task], data: &[u8]) {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let task = &tasks[usize::from(which) % tasks.len()];
    check_payload(task, payload, task.context(&REPORT_ID, TIME));
}

/// A Paillier report payload (ciphertexts, and the input proofs where the
/// task asks for them), checked by the aggregator of one of the fixture
/// tasks: every measurement type, with and without proofs. The first byte
/// picks the task.
pub fn paillier_payload(data: &[u8]) {
    payload_target(&fixtures::paillier_tasks().iter().collect::<Vec<_>>(), data);
}

/// A TFHE report payload (the compact ciphertext lists, and the zero-
/// knowledge proof list where the task asks for one), checked by the
/// aggregator of one of the fixture tasks. The first byte picks the task.
pub fn tfhe_payload(data: &[u8]) {
    payload_target(&fixtures::tfhe_tasks(), data);
}

/// A task definition, as a client reads it from `GET /tasks/{id}` and the
/// server from its datastore: decoded, checked against its scheme, and,
/// if it passes, the client's and the server's roles built from it.
pub fn task_definition(data: &[u8]) {
    let Ok(definition) = TaskDefinition::from_bytes(data) else {
        return;
    };
    let again = TaskDefinition::from_bytes(&definition.to_bytes())
        .expect("a decoded definition's encoding decodes");
    assert_eq!(again, definition, "a definition changes on re-encoding");
    if definition.check().is_err() || hetally_schemes::check_definition(&definition, None).is_err()
    {
        return;
    }
    let _ = hetally_schemes::encrypter(&definition, None);
    let _ = hetally_schemes::aggregator(&definition, None);
}

/// A collector key file: the first byte picks public (even) or secret
/// (odd). What decodes re-encodes to a file that decodes to the same key.
pub fn key_file(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        if let Ok(key) = PublicKeyFile::from_bytes(bytes) {
            let again = PublicKeyFile::from_bytes(&key.to_bytes()).expect("re-encoded key");
            assert_eq!(again, key, "a public key changes on re-encoding");
            let _ = key.details();
        }
    } else if let Ok(key) = SecretKeyFile::from_bytes(bytes) {
        let encoded = key.to_bytes();
        let again = SecretKeyFile::from_bytes(&encoded).expect("re-encoded key");
        assert_eq!(
            again.to_bytes(),
            encoded,
            "a secret key changes on re-encoding"
        );
        assert_eq!(again.public_key(), key.public_key());
    }
}

/// An aggregate file, as `hetally-keytool inspect` and `decrypt` read it:
/// decoded, its layout checked without a key, then decrypted with the
/// fixture key of its scheme (seeds are made under those keys), both
/// strictly and as keytool does, flagging slots out of range; the two
/// agree wherever the strict one succeeds.
pub fn aggregate_file(data: &[u8]) {
    let Ok(file) = AggregateFile::from_bytes(data) else {
        return;
    };
    let again = AggregateFile::from_bytes(&file.to_bytes()).expect("re-encoded aggregate");
    assert_eq!(again, file, "an aggregate changes on re-encoding");
    if hetally_schemes::check_aggregate(&file).is_err() {
        return;
    }
    let key = fixtures::key(file.scheme);
    let strict = key.decrypt(&file);
    let lenient = key.decrypt_flagged(&file);
    if let Ok(values) = &strict {
        assert_eq!(values.len(), file.measurement.len(), "one value per slot");
        let lenient = lenient.expect("what decrypts strictly decrypts leniently");
        assert_eq!(
            &lenient.values, values,
            "the lenient decryption reads other values"
        );
    }
}

/// Splits a target's input into parts, each a little-endian `u16` length
/// then that many bytes (fewer at the end of the input): a framing that
/// seeds can be written in and that the fuzzer mutates freely.
pub(crate) struct Parts<'a>(pub(crate) &'a [u8]);

impl<'a> Parts<'a> {
    /// The next part; empty once the input is used up.
    pub(crate) fn next(&mut self) -> &'a [u8] {
        let data = self.0;
        let len = match data {
            [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
            _ => 0,
        };
        let rest = data.get(2..).unwrap_or_default();
        let (part, rest) = rest.split_at(len.min(rest.len()));
        self.0 = rest;
        part
    }
}

/// Writes `parts` in the [`Parts`] framing (each at most 65,535 bytes).
pub(crate) fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let len = u16::try_from(part.len()).expect("a part fits the framing");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The DAP target's verification key and report id (seeds are prepared
/// with them).
pub(crate) const DAP_VERIFY_KEY: [u8; VERIFY_KEY_LEN] = [7; VERIFY_KEY_LEN];
pub(crate) const DAP_REPORT_ID: [u8; 16] = [3; 16];

/// The VDAFs the DAP target prepares reports of.
pub(crate) fn dap_specs() -> [VdafSpec; 4] {
    [
        VdafSpec::Count,
        VdafSpec::Sum { bits: 8 },
        VdafSpec::Histogram {
            length: 4,
            chunk_length: 2,
        },
        VdafSpec::SumVec {
            length: 3,
            bits: 2,
            chunk_length: 2,
        },
    ]
}

/// The DAP messages hetally decodes itself (janus_messages decodes the
/// framing): a report's public and input shares and the leader's prepare
/// message as the helper prepares them, aggregate shares as the leader
/// merges them, and the collector's HPKE configuration and credential.
/// The first byte picks the VDAF, the second the message; the rest is
/// [`Parts`].
pub fn dap_message(data: &[u8]) {
    let mut parts = Parts(data);
    let (Some(&which), Some(&op)) = (parts.0.first(), parts.0.get(1)) else {
        return;
    };
    parts.0 = &parts.0[2..];
    let specs = dap_specs();
    let spec = &specs[usize::from(which) % specs.len()];
    let Ok(dap_vdaf) = spec.instantiate() else {
        return;
    };
    let verify_key = DAP_VERIFY_KEY;
    let report_id = DapReportId::from(DAP_REPORT_ID);
    let mut part = || parts.next().to_vec();
    match op % 6 {
        0 => {
            let (public, input, inbound) = (part(), part(), part());
            if let Ok(inbound) = PingPongMessage::get_decoded(&inbound) {
                with_dap_vdaf!(&dap_vdaf, |v| {
                    let _ = vdaf::helper_initialize(
                        v,
                        &verify_key,
                        &report_id,
                        &public,
                        &input,
                        &inbound,
                    );
                });
            }
        }
        1 => {
            let (public, input) = (part(), part());
            with_dap_vdaf!(&dap_vdaf, |v| {
                let _ = vdaf::leader_initialize(v, &verify_key, &report_id, &public, &input);
                let _ = vdaf::check_shares(v, 1, &public, &input);
            });
        }
        2 => {
            let (a, b) = (part(), part());
            if let Ok(merged) = vdaf::merge_encoded(&dap_vdaf, &a, &b) {
                let zero = vdaf::zero_share(&dap_vdaf).expect("zero share");
                let again = vdaf::merge_encoded(&dap_vdaf, &merged, &zero).expect("merge zero");
                assert_eq!(again, merged, "the zero share is not the identity");
            }
        }
        3 => {
            let text = part();
            if let Ok(text) = std::str::from_utf8(&text) {
                let _ = decode_config(text);
            }
        }
        4 => {
            if let Ok(credential) = CollectorCredential::from_json(&part()) {
                let _ = credential.hpke_config();
                let _ = credential.keypair();
            }
        }
        _ => {
            let _ = vdaf::check_aggregation_parameter(&part());
        }
    }
}

/// The JSON request bodies: the first byte picks which.
///
/// * 0: `POST /tasks` (CreateTaskRequest), read as the server reads it,
///   and, for a Paillier key, the task defined from it;
/// * 1: `POST /tasks/{id}/releases` (ReleaseRequest);
/// * 2: `POST /dap/tasks` (DapTaskRequest), provisioned as the server does
///   and read back from its stored row.
pub fn json_body(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let Ok(request) = serde_json::from_slice::<CreateTaskRequest>(body) else {
                return;
            };
            let Ok(task) = hetally_server::http::tasks::new_task(request) else {
                return;
            };
            // A TFHE task with proofs makes a CRS (seconds); the layout
            // checks are the same for both schemes and the key decoders
            // have their own target.
            if !matches!(
                PublicKeyFile::from_bytes(&task.public_key),
                Ok(PublicKeyFile::Paillier(_))
            ) {
                return;
            }
            let params = TaskParams {
                measurement: task.measurement,
                min_batch_size: task.min_batch_size,
                max_batch_size: task.max_batch_size,
                time_precision: task.time_precision,
                dp: task.dp,
                budget: task.budget,
                input_proofs: task.input_proofs,
                relation: Some(task.relation),
                trustee_noise: None,
            };
            let defined =
                hetally_schemes::define_task(task.public_key, params, 1000, &mut fixtures::rng(0));
            if let Ok((definition, _)) = defined {
                let bytes = definition.to_bytes();
                assert_eq!(TaskDefinition::from_bytes(&bytes).ok(), Some(definition));
            }
        }
        1 => {
            let _ = serde_json::from_slice::<ReleaseRequest>(body);
        }
        _ => {
            let Ok(request) = serde_json::from_slice::<DapTaskRequest>(body) else {
                return;
            };
            if let Ok((_, row)) = DapTask::provision(&request) {
                let task = DapTask::from_row(row).expect("a provisioned task's row reads back");
                let _ = task.check_interval(TIME, 3600);
            }
        }
    }
}

/// One upload, built as a client builds it and then damaged, for the
/// structure-aware [`upload`] target.
#[derive(Debug, Arbitrary)]
pub struct UploadCase {
    /// Whether [`UploadCase::edits`] are applied (else the report reaches
    /// the server intact, and must be accepted).
    pub damage: bool,
    /// Picks the task (the Paillier tasks and the TFHE tasks without
    /// proofs: a TFHE proof takes too long per run).
    pub task: u8,
    /// The measurement, reduced into the task's valid range.
    pub values: Vec<u64>,
    /// The report id.
    pub report_id: [u8; 16],
    /// Hours after the fixture time.
    pub hours: u16,
    /// Damage done to the encoded report before the server sees it.
    pub edits: Vec<Edit>,
}

/// Damage to an encoded report.
#[derive(Debug, Arbitrary)]
pub enum Edit {
    /// XORs one byte (position taken modulo the length).
    Flip {
        /// Position.
        at: u32,
        /// Bits to flip.
        xor: u8,
    },
    /// Cuts the report to this length (modulo its length).
    Truncate(u32),
    /// Inserts bytes (position taken modulo the length).
    Insert {
        /// Position.
        at: u32,
        /// Bytes.
        bytes: Vec<u8>,
    },
}

/// A valid measurement of `task`'s type from arbitrary numbers.
fn valid_values(task: &Task, raw: &[u64]) -> Vec<u64> {
    let m = task.definition.measurement;
    let mut it = raw.iter().copied().chain(std::iter::repeat(0));
    if m.is_one_hot() {
        let hot = it.next().unwrap_or(0) % m.len() as u64;
        (0..m.len() as u64).map(|i| u64::from(i == hot)).collect()
    } else {
        let modulus = m.max_value() + 1;
        it.take(m.len()).map(|v| v % modulus).collect()
    }
}

/// The whole upload check, structure-aware: a client encrypts (and proves)
/// a valid measurement for a fixture task, the encoded report may be
/// damaged, then the server's path runs: decode the envelope, check the
/// payload (and its proofs), derive the stored form, sum, release and
/// decrypt. An undamaged report must be accepted and decrypt to its
/// measurement.
pub fn upload(data: &[u8]) {
    let Ok(case) = UploadCase::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let tasks: Vec<&Task> = fixtures::paillier_tasks()
        .iter()
        .chain(fixtures::tfhe_plain_tasks())
        .collect();
    let task = tasks[usize::from(case.task) % tasks.len()];
    let values = valid_values(task, &case.values);
    let sent_id = ReportId(case.report_id);
    let sent_time = TIME + u64::from(case.hours) * 3600;
    let mut rng = fixtures::rng(u64::from_le_bytes(
        case.report_id[..8].try_into().expect("8 bytes"),
    ));
    let payload = task
        .encrypter
        .encrypt(&values, &task.context(&sent_id, sent_time), &mut rng)
        .expect("a valid measurement encrypts");
    let mut body = Report {
        id: sent_id,
        time: sent_time,
        payload,
    }
    .to_bytes();
    for edit in case.edits.iter().filter(|_| case.damage) {
        let len = body.len().max(1) as u32;
        match edit {
            Edit::Flip { at, xor } => {
                if let Some(b) = body.get_mut((at % len) as usize) {
                    *b ^= xor;
                }
            }
            Edit::Truncate(to) => body.truncate((to % len) as usize),
            Edit::Insert { at, bytes } => {
                let at = ((at % len) as usize).min(body.len());
                body.splice(at..at, bytes.iter().copied());
            }
        }
    }
    let intact = !case.damage || case.edits.is_empty();

    // The server's side, in the order it checks.
    let max = payload_cap(task.aggregator.max_payload_len());
    let report = match Report::from_bytes(&body, max) {
        Ok(report) => report,
        Err(e) => {
            assert!(!intact, "an intact report was refused: {e}");
            return;
        }
    };
    if report.time % task.definition.time_precision != 0 {
        assert!(!intact, "an intact report has a misaligned time");
        return;
    }
    let ctx = task.context(&report.id, report.time);
    let Some(stored) = check_payload(task, &report.payload, ctx) else {
        assert!(!intact, "an intact report failed its checks");
        return;
    };
    let sum = task
        .aggregator
        .sum_stored(vec![stored])
        .expect("an accepted report's stored form reads back");
    let noise = vec![0; task.definition.measurement.len()];
    let ciphertexts = task
        .aggregator
        .release(&sum, 1, &noise, &mut fixtures::rng(3))
        .expect("an accepted report releases");
    let file = AggregateFile {
        task_id: task.id.0,
        scheme: task.aggregator.scheme(),
        key_fingerprint: task.aggregator.key_fingerprint(),
        measurement: task.definition.measurement,
        encoding: task.aggregator.encoding(),
        batch_start: report.time,
        batch_duration: task.definition.time_precision,
        relation: task.definition.relation,
        report_count: ReportCount::Exact(1),
        dp: task.definition.dp.clone(),
        ciphertexts,
        trustee_noise: None,
    };
    let decrypted = fixtures::key(file.scheme).decrypt(&file);
    if intact {
        let expected: Vec<i128> = values.iter().map(|&v| i128::from(v)).collect();
        assert_eq!(
            decrypted.expect("an intact report decrypts"),
            expected,
            "an intact report decrypts to another measurement"
        );
    }
}
