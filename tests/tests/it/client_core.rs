//! The client core that apps embed (`client/core`): small to build, and
//! the server accepts what it makes.
//!
//! * Its dependency tree with default features (Paillier, pure Rust) stays
//!   at most 60 crates and holds none of tokio, reqwest, the janus crates,
//!   TFHE-rs, GMP or aws-lc: an app that sends Paillier counts builds no C
//!   code and no async runtime.
//! * Reports it prepares with pure-Rust big integers, proofs included,
//!   are accepted by a real server and decrypt exactly.

use std::collections::BTreeSet;
use std::process::Command;

use hetally_client_core::{Arithmetic, Task};
use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_protocol::TaskId;
use hetally_tests::*;

/// Most crates `cargo tree -e normal -p hetally-client-core` may list.
const MAX_CRATES: usize = 60;

/// Crates the client core must not pull in with its default features.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "reqwest",
    "janus_core",
    "janus_messages",
    "janus_client",
    "janus_collector",
    "tfhe",
    "rug",
    "gmp-mpfr-sys",
    "aws-lc-rs",
    "aws-lc-sys",
    "prio",
    "rayon",
];

#[test]
fn client_core_dependency_tree_is_small_and_pure_rust() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "hetally-client-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    println!("{} crates: {crates:?}", crates.len());
    assert!(crates.contains("hetally-client-core"));
    assert!(
        crates.len() <= MAX_CRATES,
        "the client core pulls in {} crates (at most {MAX_CRATES}): {crates:?}",
        crates.len()
    );
    for name in FORBIDDEN {
        assert!(
            !crates.contains(*name),
            "the client core pulls in {name}: {crates:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pure_rust_reports_with_proofs_are_accepted_and_decrypt_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    // Input proofs are the default.
    let (task, token) = create_task(&server, &pk, "histogram:4", 10, &[]);
    let task_id: TaskId = task.parse().unwrap();
    let http = reqwest::Client::new();
    let info = http
        .get(format!("{}/tasks/{task}", server.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let core = Task::from_info(&task_id, &info, None, Arithmetic::Pure).unwrap();
    assert!(core.definition().input_proofs);
    let time = now();
    let mut truth = [0u64; 4];
    for i in 0..12u64 {
        let bucket = (i * 7 % 4) as usize;
        truth[bucket] += 1;
        let values = core.parse_value(&bucket.to_string()).unwrap();
        let report = core.prepare(&values, time).unwrap();
        let r = http
            .put(format!("{}/{}", server.url, core.upload_path()))
            .header("content-type", REPORT_MEDIA_TYPE)
            .body(report.bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    }
    // A tampered proof is refused.
    let mut bad = core.prepare(&core.parse_value("1").unwrap(), time).unwrap();
    let last = bad.bytes.len() - 1;
    bad.bytes[last] ^= 1;
    let r = http
        .put(format!("{}/{}", server.url, core.upload_path()))
        .header("content-type", REPORT_MEDIA_TYPE)
        .body(bad.bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["type"], "urn:hetally:error:invalidProof");

    let agg = dir.path().join("batch.agg");
    let start = time - time % 60;
    collect(&server, &task, &token, start, 60, &agg);
    let decrypted = decrypt_json(&sk, &agg);
    assert_eq!(decrypted["report_count"], 12);
    assert_eq!(decrypted["values"], serde_json::json!(truth));
}

/// A substituted key changes the definition's hash: the core refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_definition_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let (task, _) = create_task(&server, &pk, "count", 10, &[]);
    let (other, _) = create_task(&server, &pk, "sum:8", 10, &[]);
    let info = reqwest::get(format!("{}/tasks/{other}", server.url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let err = Task::from_info(&task.parse().unwrap(), &info, None, Arithmetic::Pure).unwrap_err();
    assert!(err.to_string().contains("does not match task id"), "{err}");
}
