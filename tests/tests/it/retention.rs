//! Report expiry and garbage collection through the real server and CLI
//! (issue 17, finding 3), on SQLite or (with `HETALLY_TEST_STORE=postgres`)
//! PostgreSQL: the task's expiry age is set at creation and shown in its
//! info; reports stamped 0, or older than the age, are refused with
//! `reportExpired`; after a release the collector (`--gc-interval-secs 1`)
//! deletes the batch's reports, the release stays, and a replay of a
//! deleted report is still refused.

use std::time::{Duration, Instant};

use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_tests::*;
use serde_json::{json, Value};

async fn put(server: &ServerProcess, task: &str, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/tasks/{task}/reports", server.url))
        .header("content-type", REPORT_MEDIA_TYPE)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn stored_reports(server: &ServerProcess, task: &str, admin: &str) -> u64 {
    let status: Value = reqwest::Client::new()
        .get(format!("{}/tasks/{task}/status", server.url))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["reports"]
        .as_u64()
        .expect("the operator sees the count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reports_are_refused_and_released_batches_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let database = use_postgres().then(|| postgres_database("it retention"));
    let server = ServerProcess::start_with(
        &data,
        0,
        database.as_deref(),
        &[
            "--gc-interval-secs",
            "1",
            "--report-expiry-age-secs",
            "86400",
        ],
    )
    .unwrap();
    let admin = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let admin = admin.trim();
    let (task, token) = create_task(
        &server,
        &pk,
        "count",
        1,
        &["--no-input-proofs", "--report-expiry-age-secs", "7200"],
    );
    let token = std::fs::read_to_string(token).unwrap();
    let info: Value = reqwest::get(format!("{}/tasks/{task}", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["report_expiry_age"], 7200);
    // A task created without one gets the server's default.
    let (other, _) = create_task(&server, &pk, "count", 2, &["--no-input-proofs"]);
    let info: Value = reqwest::get(format!("{}/tasks/{other}", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["report_expiry_age"], 86400);

    let client = connect_client(&server, &task).await;
    let now = now();
    let base = now - now % 60 - 120;
    for time in [0, base - 3 * 3600] {
        let report = client.prepare(&[1], time).unwrap();
        let (status, problem) = put(&server, &task, report.to_bytes()).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["type"], "urn:hetally:error:reportExpired");
        assert!(
            problem["detail"].as_str().unwrap().contains("7200"),
            "{problem}"
        );
    }
    let reports: Vec<_> = (0..3)
        .map(|_| client.prepare(&[1], base).unwrap())
        .collect();
    for report in &reports {
        assert_eq!(put(&server, &task, report.to_bytes()).await.0, 201);
    }
    // A later batch, not released: kept.
    let kept = client.prepare(&[1], base + 60).unwrap();
    assert_eq!(put(&server, &task, kept.to_bytes()).await.0, 201);
    assert_eq!(stored_reports(&server, &task, admin).await, 4);

    let response = reqwest::Client::new()
        .post(format!("{}/tasks/{task}/releases", server.url))
        .bearer_auth(token.trim())
        .json(&json!({ "start": base, "duration": 60 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);

    // The collector runs every second: the released batch's reports go.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_reports(&server, &task, admin).await != 1 {
        assert!(
            Instant::now() < deadline,
            "the released batch was not collected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A replay of a deleted report is still refused; the release stays.
    let (status, problem) = put(&server, &task, reports[0].to_bytes()).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:hetally:error:batchCollected"))
    );
    let releases: Value = reqwest::Client::new()
        .get(format!("{}/tasks/{task}/releases", server.url))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(releases["releases"].as_array().unwrap().len(), 1);
    assert_eq!(releases["releases"][0]["report_count"], 3);
    assert_eq!(stored_reports(&server, &task, admin).await, 1);

    // The collector's work shows in the metrics.
    let scrape = scrape_metrics(&server, admin).await;
    let value = |prefix: &str| -> f64 {
        scrape
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in the scrape:\n{scrape}"))
    };
    assert!(value("hetally_gc_deleted_total{kind=\"reports\"}") >= 3.0);
    assert!(value("hetally_gc_runs_total{outcome=\"done\"}") >= 1.0);
}
