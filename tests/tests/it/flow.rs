//! The main job end to end: keygen, server, task, `simulate` 10,000
//! reports, `collect`, `hetally-keytool decrypt --format json` equals the
//! truth exactly, for every measurement type.
//!
//! `count` runs with input proofs (the default). The other types, with 8
//! to 32 proven bits per report, would cost minutes of CI per run with
//! them, so they run with `--no-input-proofs`; their proofs are covered by
//! `crypto/tests/proofs.rs` (10,000 proven `histogram:16` reports verified
//! in batches and summed exactly) and by `proofs.rs` here.

use hetally_tests::*;

fn end_to_end(measurement: &str, reports: u64, extra: &[&str]) {
    end_to_end_with("paillier", measurement, reports, extra);
}

/// keygen of `scheme`, server, task, simulate, collect twice, decrypt: the
/// decrypted values equal the truth and the second collect the same bytes.
pub(crate) fn end_to_end_with(scheme: &str, measurement: &str, reports: u64, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen_scheme(&dir.path().join("keys"), scheme);
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let (task, token) = create_task(&server, &pk, measurement, 100, extra);
    let time = now();
    let truth_path = dir.path().join("truth.json");
    run_ok(
        "hetally-client",
        &[
            "simulate",
            "--server",
            &server.url,
            "--task",
            &task,
            "--reports",
            &reports.to_string(),
            "--seed",
            "7",
            "--time",
            &time.to_string(),
            "--truth-out",
            &truth_path.display().to_string(),
            "--json",
        ],
    );
    let agg = dir.path().join("batch.agg");
    let start = time - time % 60;
    let collect = |out: &std::path::Path| {
        run_ok(
            "hetally-client",
            &[
                "collect",
                "--server",
                &server.url,
                "--task",
                &task,
                "--token-file",
                &token.display().to_string(),
                "--start",
                &start.to_string(),
                "--duration",
                "60",
                "--out",
                &out.display().to_string(),
            ],
        )
    };
    collect(&agg);
    let decrypted = decrypt_json(&sk, &agg);
    let truth = read_json(&truth_path);
    assert_eq!(truth["report_count"], reports);
    assert_eq!(decrypted["report_count"], reports, "{measurement}");
    assert_eq!(decrypted["values"], truth["values"], "{measurement}");
    assert_eq!(decrypted["task_id"], task.as_str());

    // Collecting the same interval again returns the identical bytes.
    let again = dir.path().join("again.agg");
    collect(&again);
    assert_eq!(std::fs::read(&agg).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn histogram_end_to_end() {
    end_to_end("histogram:11", 10_000, &["--no-input-proofs"]);
}

#[test]
fn count_end_to_end() {
    end_to_end("count", 10_000, &[]);
}

#[test]
fn sum_end_to_end() {
    end_to_end("sum:8", 10_000, &["--no-input-proofs"]);
}

#[test]
fn sumvec_end_to_end() {
    end_to_end("sumvec:4:8", 10_000, &["--no-input-proofs"]);
}
