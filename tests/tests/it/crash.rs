//! `kill -9` the server while `simulate` is uploading, restart it, collect:
//! every report the client saw acknowledged is in the aggregate, once.
//!
//! The client talks to the server through a [`Relay`] that holds its port
//! for the whole test; each server binds a port the system picks. The
//! restarted server so never needs a port that was released and could have
//! been taken by another process meanwhile.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hetally_tests::*;
use serde_json::Value;

fn reports_stored(url: &str, task: &str, token: &str) -> Option<u64> {
    let out = run(
        "hetally-client",
        &[
            "status",
            "--server",
            url,
            "--task",
            task,
            "--token-file",
            token,
            "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["reports"].as_u64()
}

#[test]
fn kill9_during_uploads_loses_no_acknowledged_report() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let relay = Relay::start();
    let server = ServerProcess::start(&data).unwrap();
    relay.forward_to(Some(server.port));
    // A durability test: proofs would only make it slower (proofs.rs
    // covers them).
    let (task, token) = create_task(&server, &pk, "histogram:4", 100, &["--no-input-proofs"]);
    let token = token.display().to_string();
    let time = now();
    let truth = dir.path().join("truth.json");
    let reports = 12_000u64;
    let simulate = Command::new(bin("hetally-client"))
        .args(["simulate", "--server", &relay.url(), "--task", &task])
        .args([
            "--reports",
            &reports.to_string(),
            "--seed",
            "11",
            "--concurrency",
            "16",
        ])
        .args(["--time", &time.to_string(), "--attempts", "40", "--json"])
        .args(["--truth-out", &truth.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until uploads are under way, then kill the server hard.
    let deadline = Instant::now() + Duration::from_secs(300);
    let at_kill = loop {
        let n = reports_stored(&server.url, &task, &token).unwrap_or(0);
        if n >= 500 {
            break n;
        }
        assert!(Instant::now() < deadline, "uploads never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // New connections are closed until the new server is up, as a dead
    // server's would be refused; the killed one's port is never used again.
    relay.forward_to(None);
    server.kill9();
    std::thread::sleep(Duration::from_millis(700));
    let server = ServerProcess::start(&data).unwrap();
    relay.forward_to(Some(server.port));

    let out = simulate.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth = read_json(&truth);
    assert_eq!(
        truth["report_count"], reports,
        "every report was eventually acknowledged"
    );
    assert!(
        at_kill < reports,
        "the kill happened mid-upload ({at_kill} stored)"
    );

    let agg = dir.path().join("batch.agg");
    run_ok(
        "hetally-client",
        &[
            "collect",
            "--server",
            &server.url,
            "--task",
            &task,
            "--token-file",
            &token,
            "--start",
            &(time - time % 60).to_string(),
            "--duration",
            "60",
            "--out",
            &agg.display().to_string(),
        ],
    );
    let decrypted = decrypt_json(&sk, &agg);
    assert_eq!(decrypted["report_count"], reports);
    assert_eq!(decrypted["values"], truth["values"]);
}
