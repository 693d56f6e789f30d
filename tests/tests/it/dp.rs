//! DP on the server: budgets are spent per release and enforced before any
//! work; the audit log records every release.

use std::str::FromStr;

use hetally_client::Client;
use hetally_protocol::TaskId;
use hetally_tests::*;
use reqwest::Url;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_allows_two_releases_and_refuses_the_third() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let (task, token_file) = create_task(
        &server,
        &pk,
        "count",
        1,
        &["--dp", "laplace:0.4", "--budget", "1.0"],
    );
    let token = std::fs::read_to_string(&token_file).unwrap();
    let client = Client::connect(
        Url::parse(&server.url).unwrap(),
        TaskId::from_str(&task).unwrap(),
    )
    .await
    .unwrap();
    let now = now();
    let base = now - now % 60 - 600;
    // One report in each of three intervals.
    for i in 0..3 {
        let report = client.prepare(&[1], base + 60 * i).unwrap();
        client.upload(&report).await.unwrap();
    }
    let http = reqwest::Client::new();
    let collect = |start: u64| {
        http.post(format!("{}/tasks/{task}/releases", server.url))
            .bearer_auth(&token)
            .json(&json!({ "start": start, "duration": 60 }))
            .send()
    };
    let snapshot = || async {
        let get = |p: &str| {
            http.get(format!("{}/tasks/{task}/{p}", server.url))
                .bearer_auth(&token)
                .send()
        };
        let status: Value = get("status").await.unwrap().json().await.unwrap();
        let releases: Value = get("releases").await.unwrap().json().await.unwrap();
        (status, releases)
    };
    assert_eq!(collect(base).await.unwrap().status().as_u16(), 201);
    assert_eq!(collect(base + 60).await.unwrap().status().as_u16(), 201);
    let before = snapshot().await;
    assert_eq!(before.0["budget"]["spent"], "0.8");
    assert_eq!(before.0["budget"]["remaining"], "0.2");

    let third = collect(base + 120).await.unwrap();
    assert_eq!(third.status().as_u16(), 409);
    let problem: Value = third.json().await.unwrap();
    assert_eq!(problem["type"], "urn:hetally:error:budgetExhausted");
    assert!(
        problem["detail"].as_str().unwrap().contains("budget"),
        "{problem}"
    );
    assert_eq!(
        snapshot().await,
        before,
        "a refused release changes nothing"
    );

    // Re-fetching an earlier release costs nothing and returns its bytes.
    let again = collect(base).await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(snapshot().await, before);

    // The audit log, through the CLI.
    let log: Value = serde_json::from_str(&run_ok(
        "hetally-client",
        &[
            "releases",
            "--server",
            &server.url,
            "--task",
            &task,
            "--token-file",
            &token_file.display().to_string(),
            "--json",
        ],
    ))
    .unwrap();
    let rows = log["releases"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["mechanism"], "laplace:0.4");
    assert_eq!(rows[0]["cost"], "0.4");
    assert_eq!(rows[0]["budget_remaining_after"], "0.6");
    assert_eq!(rows[1]["budget_remaining_after"], "0.2");
    assert_eq!(rows[1]["report_count"], 1);
    assert!(rows[1]["released_at"].as_i64().is_some());
}

#[test]
fn dp_task_creation_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let base = [
        "task",
        "create",
        "--server",
        &server.url,
        "--admin-token-file",
        &server.admin_token_file().display().to_string(),
        "--public-key",
        &pk.display().to_string(),
        "--measurement",
        "histogram:8",
        "--min-batch-size",
        "10",
        "--time-precision",
        "60",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run("hetally-client", &args)
    };
    let out = with(&["--dp", "laplace:1"]);
    assert_eq!(out.status.code(), Some(4), "a DP task needs a budget");
    assert!(String::from_utf8_lossy(&out.stderr).contains("budget"));
    let out = with(&["--dp", "laplace:0"]);
    assert!(!out.status.success());
    let out = with(&["--dp", "wobble:1", "--budget", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = with(&["--dp", "gaussian-eps:1:1e-6", "--budget", "0.1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gaussian:0.0174"),
        "shows the rho it maps to"
    );
}
