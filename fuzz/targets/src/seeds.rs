//! Seed corpora: real reports, task definitions, keys, aggregates and
//! requests, made by the same code the client, the keytool and the DAP
//! client run, under the [`crate::fixtures`] keys.
//!
//! `cargo run -p hetally-fuzz-targets --bin hetally-fuzz-seeds -- fuzz/corpus`
//! writes them as `fuzz/corpus/<target>/seed-*`; the fuzzer grows the
//! corpora from there.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hetally_dap::hpke::{encode_config, CollectorCredential};
use hetally_dap::messages::ReportId as DapReportId;
use hetally_dap::prio::codec::Encode;
use hetally_dap::prio::vdaf::Client;
use hetally_dap::vdaf::{self, DapPrepare, DapVdaf};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::dp::DpMechanism;
use hetally_protocol::{Report, ReportId};
use hetally_schemes::lwe;
use rand::RngCore;

use crate::fixtures::{self, Task, REPORT_ID, TIME};
use crate::targets::{dap_specs, frame, DAP_REPORT_ID, DAP_VERIFY_KEY};

/// A valid measurement of the task's type.
fn some_values(task: &Task, k: u64) -> Vec<u64> {
    let m = task.definition.measurement;
    if m.is_one_hot() {
        (0..m.len() as u64)
            .map(|i| u64::from(i == k % m.len() as u64))
            .collect()
    } else {
        (0..m.len() as u64)
            .map(|i| (k + i) % (m.max_value() + 1))
            .collect()
    }
}

fn payload(task: &Task, k: u64, id: &ReportId, time: u64) -> Vec<u8> {
    task.encrypter
        .encrypt(
            &some_values(task, k),
            &task.context(id, time),
            &mut fixtures::rng(100 + k),
        )
        .expect("a seed report encrypts")
}

/// An aggregate of `reports` reports of `task`, noised with `noise`.
fn aggregate(task: &Task, reports: u64, noise: i128, relation_none: bool) -> Vec<u8> {
    let stored: Vec<Vec<u8>> = (0..reports)
        .map(|k| {
            let id = ReportId([k as u8; 16]);
            let p = payload(task, k, &id, TIME);
            task.aggregator
                .check_to_stored(&[(&p, task.context(&id, TIME))])
                .pop()
                .expect("one verdict")
                .expect("a seed report passes")
        })
        .collect();
    let sum = task.aggregator.sum_stored(stored).expect("seed sum");
    let noise = vec![noise; task.definition.measurement.len()];
    let ciphertexts = task
        .aggregator
        .release(&sum, reports, &noise, &mut fixtures::rng(4))
        .expect("seed release");
    AggregateFile {
        task_id: task.id.0,
        scheme: task.aggregator.scheme(),
        key_fingerprint: task.aggregator.key_fingerprint(),
        measurement: task.definition.measurement,
        encoding: task.aggregator.encoding(),
        batch_start: TIME,
        batch_duration: 3600,
        relation: if relation_none {
            None
        } else {
            task.definition.relation
        },
        report_count: ReportCount::Exact(reports),
        dp: DpMechanism::None,
        ciphertexts,
        trustee_noise: None,
    }
    .to_bytes()
}

fn dap_seeds<V: DapPrepare + Client<16>>(
    which: u8,
    v: &V,
    measurement: &V::Measurement,
) -> Vec<Vec<u8>> {
    let (public, inputs) = v.shard(measurement, &DAP_REPORT_ID).expect("shard");
    let public = public.get_encoded().expect("encode");
    let leader = inputs[0].get_encoded().expect("encode");
    let helper = inputs[1].get_encoded().expect("encode");
    let report_id = DapReportId::from(DAP_REPORT_ID);
    let (_, message) = vdaf::leader_initialize(v, &DAP_VERIFY_KEY, &report_id, &public, &leader)
        .expect("leader init");
    let message = message.get_encoded().expect("encode");
    let share = vdaf::aggregate(v, std::iter::empty())
        .expect("zero")
        .get_encoded()
        .expect("encode");
    let with = |op: u8, body: Vec<u8>| [vec![which, op], body].concat();
    vec![
        with(0, frame(&[&public, &helper, &message])),
        with(1, frame(&[&public, &leader])),
        with(2, frame(&[&share, &share])),
    ]
}

/// Every target's seeds, by target name.
pub fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let mut out: Vec<(&'static str, Vec<Vec<u8>>)> = Vec::new();

    let reports: Vec<Vec<u8>> = fixtures::tasks()
        .enumerate()
        .map(|(k, task)| {
            let id = ReportId([k as u8; 16]);
            Report {
                id,
                time: TIME,
                payload: payload(task, k as u64, &id, TIME),
            }
            .to_bytes()
        })
        .collect();
    out.push(("report", reports));

    let payloads = |tasks: &[&Task]| -> Vec<Vec<u8>> {
        tasks
            .iter()
            .enumerate()
            .map(|(i, task)| [vec![i as u8], payload(task, i as u64, &REPORT_ID, TIME)].concat())
            .collect()
    };
    out.push((
        "paillier_payload",
        payloads(&fixtures::paillier_tasks().iter().collect::<Vec<_>>()),
    ));
    out.push(("tfhe_payload", payloads(&fixtures::tfhe_tasks())));

    out.push((
        "task_definition",
        fixtures::tasks()
            .map(|t| t.definition_bytes.clone())
            .collect(),
    ));

    let mut keys = Vec::new();
    for key in [fixtures::paillier_key(), fixtures::tfhe_key()] {
        keys.push([vec![0], key.public_key().to_bytes()].concat());
        keys.push([vec![1], key.to_bytes()].concat());
    }
    // A TFHE threshold public key (kind 4: N and the least lambda follow).
    if let hetally_schemes::PublicKeyFile::Tfhe(pk) = fixtures::tfhe_key().public_key() {
        let declared = lwe::Trustees {
            count: 3,
            min_lambda: 16,
        };
        let threshold = pk.with_trustees(declared).expect("3 trustees, lambda 16");
        keys.push([vec![0], threshold.to_bytes()].concat());
    }
    out.push(("key_file", keys));

    let mut aggregates: Vec<Vec<u8>> = fixtures::tasks()
        .filter(|t| !t.definition.input_proofs)
        .map(|t| aggregate(t, 3, 2, false))
        .collect();
    aggregates.push(aggregate(&fixtures::paillier_tasks()[1], 2, -1, true));
    out.push(("aggregate_file", aggregates));

    let mut dap = Vec::new();
    for (which, spec) in dap_specs().iter().enumerate() {
        let which = which as u8;
        dap.extend(match spec.instantiate().expect("spec") {
            DapVdaf::Count(v) => dap_seeds(which, &v, &true),
            DapVdaf::Sum(v) => dap_seeds(which, &v, &100),
            DapVdaf::Histogram(v) => dap_seeds(which, &v, &2),
            DapVdaf::SumVec(v) => dap_seeds(which, &v, &vec![1, 2, 3]),
        });
    }
    let credential = CollectorCredential::generate(1, "collector-token".into()).expect("hpke");
    let config = encode_config(&credential.hpke_config().expect("config"));
    dap.push([vec![0, 3], frame(&[config.as_bytes()])].concat());
    dap.push([vec![0, 4], frame(&[credential.to_json().as_bytes()])].concat());
    out.push(("dap_message", dap));

    let public_key = STANDARD.encode(fixtures::paillier_key().public_key().to_bytes());
    let create = |measurement: &str, extra: &str| {
        format!(
            r#"{{"public_key":"{public_key}","measurement":"{measurement}","min_batch_size":10,"time_precision":3600{extra}}}"#
        )
    };
    let mut verify_key = [0u8; 16];
    fixtures::rng(6).fill_bytes(&mut verify_key);
    let dap_task = format!(
        r#"{{"task_id":"{}","role":"helper","vdaf":"prio3histogram:4:2","dp_strategy":"pure-dp-discrete-laplace:1","min_batch_size":10,"time_precision":3600,"peer_url":"http://leader:8080/dap/","aggregator_auth_token":"aggregator-token","collector_hpke_config":"{config}","vdaf_verify_key":"{}"}}"#,
        URL_SAFE_NO_PAD.encode([9u8; 32]),
        URL_SAFE_NO_PAD.encode(verify_key),
    );
    let json: Vec<Vec<u8>> = [
        (0, create("count", "")),
        (
            0,
            create(
                "histogram:8",
                r#","dp":"laplace:1","budget":"4","relation":"add-remove","input_proofs":false"#,
            ),
        ),
        (
            0,
            create(
                "sumvec:4:3",
                r#","dp":"gaussian:1/100","max_batch_size":500"#,
            ),
        ),
        (1, r#"{"start":1699999200,"duration":3600}"#.to_string()),
        (2, dap_task),
    ]
    .into_iter()
    .map(|(which, body)| [vec![which], body.into_bytes()].concat())
    .collect();
    out.push(("json_body", json));

    // The upload target builds its reports itself: any bytes are a case.
    let mut rng = fixtures::rng(5);
    let uploads = (0..8)
        .map(|n| {
            let mut case = vec![0u8; 24 + 8 * n];
            rng.fill_bytes(&mut case);
            case
        })
        .collect();
    out.push(("upload", uploads));
    out
}
