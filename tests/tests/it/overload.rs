//! Load shedding over real HTTP (issue 17): a server with tiny upload
//! queues answers a flood of proof-carrying uploads with `429
//! tooManyRequests` and `Retry-After` instead of queueing them, keeps
//! answering `/healthz`, loses no acknowledged report, and clients that
//! honour `Retry-After` all finish. And a replay is refused before its
//! proofs are verified.
//!
//! Nothing here depends on timing: the flood keeps 64 uploads in flight
//! against a verifier queue of 8, each proof verification takes far longer
//! than the 62 others need to arrive, and every assertion is on answers
//! and counts, never on how long something took (latencies are printed).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hetally_client::{Client, RetryPolicy};
use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_protocol::{Report, TaskId};
use hetally_tests::*;
use reqwest::Url;
use serde_json::Value;

/// Uploads in flight during the flood.
const IN_FLIGHT: usize = 64;

/// Attempts per upload of the clients that retry: more than the default
/// 12, so that on a slow machine no client runs out of attempts while
/// hundreds of others compete for a queue of 8. Every retry still waits
/// what `Retry-After` asks.
const ATTEMPTS: u32 = 200;

struct Answer {
    status: u16,
    retry_after: Option<String>,
    problem: Value,
}

async fn put(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Answer {
    let r = http
        .put(url)
        .header("content-type", REPORT_MEDIA_TYPE)
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.bytes().await.unwrap();
    Answer {
        status,
        retry_after,
        problem: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

/// The exact number of reports the task has stored (admin view).
async fn stored_reports(http: &reqwest::Client, server: &ServerProcess, task: &str) -> u64 {
    let token = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let status: Value = http
        .get(format!("{}/tasks/{task}/status", server.url))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["reports"]
        .as_u64()
        .unwrap_or_else(|| panic!("{status}"))
}

/// Proven `count` reports, made by the real client.
async fn prepare(server: &ServerProcess, task: &str, n: usize, time: u64) -> (Client, Vec<Report>) {
    let client = Client::connect(
        Url::parse(&server.url).unwrap(),
        TaskId::from_str(task).unwrap(),
    )
    .await
    .unwrap();
    let reports = tokio::task::block_in_place(|| {
        (0..n)
            .map(|i| client.prepare(&[(i % 2) as u64], time).unwrap())
            .collect::<Vec<_>>()
    });
    (client, reports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_gets_429_with_retry_after_and_no_acknowledged_report_is_lost() {
    const FLOOD: usize = 240;
    const SIMULATED: u64 = 120;
    let dir = tempfile::tempdir().unwrap();
    let (_sk, pk) = keygen(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let database = use_postgres().then(|| postgres_database(&data.display().to_string()));
    let server = ServerProcess::start_with(
        &data,
        0,
        database.as_deref(),
        &["--verify-queue-reports", "8", "--write-queue-reports", "4"],
    )
    .unwrap();
    let (task, _token) = create_task(&server, &pk, "count", 1, &[]);
    let time = now() - now() % 60;
    let (client, reports) = prepare(&server, &task, FLOOD, time).await;
    let upload_url = format!("{}/tasks/{task}/reports", server.url);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .unwrap();

    // /healthz, polled on a connection of its own all through the flood.
    let flooding = Arc::new(AtomicBool::new(true));
    let health = {
        let (flooding, url) = (flooding.clone(), format!("{}/healthz", server.url));
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut answers, mut slowest) = (0u32, Duration::ZERO);
            while flooding.load(Ordering::SeqCst) {
                let started = Instant::now();
                let r = http
                    .get(&url)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                    .expect("/healthz answers while the server is flooded");
                assert_eq!(r.status().as_u16(), 200);
                slowest = slowest.max(started.elapsed());
                answers += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (answers, slowest)
        })
    };

    // The flood: no retries, every answer kept.
    let answers: Vec<(usize, Answer)> = futures::stream::iter(reports.iter().enumerate())
        .map(|(i, r)| {
            let (http, url) = (&http, &upload_url);
            async move { (i, put(http, url, r.to_bytes()).await) }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    flooding.store(false, Ordering::SeqCst);
    let (health_answers, slowest) = health.await.unwrap();

    let mut refused = Vec::new();
    for (i, a) in &answers {
        match a.status {
            201 => {}
            429 => {
                assert_eq!(
                    a.problem["type"], "urn:hetally:error:tooManyRequests",
                    "{}",
                    a.problem
                );
                let wait: u64 = a
                    .retry_after
                    .as_deref()
                    .expect("a 429 carries Retry-After")
                    .parse()
                    .expect("Retry-After in delay-seconds");
                assert!((1..=60).contains(&wait), "Retry-After {wait}");
                refused.push(*i);
            }
            other => panic!("upload {i} answered {other}: {}", a.problem),
        }
    }
    let acknowledged = FLOOD - refused.len();
    eprintln!(
        "flood of {FLOOD}: {acknowledged} acknowledged, {} refused with 429; /healthz answered \
         {health_answers} times, slowest {slowest:?}",
        refused.len()
    );
    assert!(
        !refused.is_empty(),
        "{IN_FLIGHT} uploads in flight against a verifier queue of 8 must be shed"
    );
    assert!(health_answers > 0);
    // Every acknowledged report is stored, and nothing refused is.
    assert_eq!(
        stored_reports(&http, &server, &task).await,
        acknowledged as u64
    );

    // Clients that honour Retry-After all finish: the library's uploader
    // for the refused reports, while the CLI's simulate floods alongside.
    let simulate = {
        let (url, task) = (server.url.clone(), task.clone());
        tokio::task::spawn_blocking(move || {
            run_ok(
                "hetally-client",
                &[
                    "simulate",
                    "--server",
                    &url,
                    "--task",
                    &task,
                    "--reports",
                    &SIMULATED.to_string(),
                    "--concurrency",
                    &IN_FLIGHT.to_string(),
                    "--time",
                    &time.to_string(),
                    "--attempts",
                    &ATTEMPTS.to_string(),
                    "--json",
                ],
            )
        })
    };
    let client = client.with_retry(RetryPolicy {
        attempts: ATTEMPTS,
        ..RetryPolicy::default()
    });
    let retried: Vec<_> = futures::stream::iter(refused.iter())
        .map(|&i| client.upload(&reports[i]))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for r in &retried {
        r.as_ref()
            .expect("an upload honouring Retry-After finishes");
    }
    let summary: Value = serde_json::from_str(&simulate.await.unwrap()).unwrap();
    assert_eq!(summary["acknowledged"], SIMULATED, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(
        stored_reports(&http, &server, &task).await,
        FLOOD as u64 + SIMULATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_refused_before_its_proofs_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (_sk, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let (task, token_file) = create_task(&server, &pk, "count", 1, &[]);
    let precision = 60;
    let time = now() - now() % precision;
    let (_client, reports) = prepare(&server, &task, 2, time - precision).await;
    let upload_url = format!("{}/tasks/{task}/reports", server.url);
    let http = reqwest::Client::new();

    let first = &reports[0];
    assert_eq!(put(&http, &upload_url, first.to_bytes()).await.status, 201);
    // The same report again, and again with its proof broken: a proof
    // checked first would answer `invalidProof` to the second. Refused as
    // replays, neither was verified.
    let mut forged = first.clone();
    let last = forged.payload.len() - 1;
    forged.payload[last] ^= 1;
    for body in [first.to_bytes(), forged.to_bytes()] {
        let a = put(&http, &upload_url, body).await;
        assert_eq!(a.status, 409, "{}", a.problem);
        assert_eq!(a.problem["type"], "urn:hetally:error:reportReplayed");
    }
    // Under a fresh id the same bytes are verified, and refused.
    let mut fresh = forged.clone();
    fresh.id = reports[1].id;
    let a = put(&http, &upload_url, fresh.to_bytes()).await;
    assert_eq!(a.status, 400, "{}", a.problem);

    // A released interval: a new report in it, payload broken, is refused
    // as collected, not verified (which would answer 400).
    collect(
        &server,
        &task,
        &token_file,
        time - precision,
        precision,
        &dir.path().join("batch.agg"),
    );
    let mut late = reports[1].clone();
    late.payload[last] ^= 1;
    let a = put(&http, &upload_url, late.to_bytes()).await;
    assert_eq!(a.status, 409, "{}", a.problem);
    assert_eq!(a.problem["type"], "urn:hetally:error:batchCollected");
}
