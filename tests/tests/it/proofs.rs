//! Input proofs over real HTTP (issue 8): on a task with proofs (the
//! default), forged reports get a 400 `invalidProof` problem and are not
//! stored, while honest proven reports are collected and decrypt exactly.

use std::str::FromStr;

use hetally_client::Client;
use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_protocol::{Report, ReportContext, ReportId, TaskId};
use hetally_schemes::paillier::{InputProofs, PublicKey};
use hetally_tests::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reqwest::Url;
use rug::Integer;
use serde_json::Value;

const HONEST: u64 = 300;

async fn put(http: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let r = http
        .put(url)
        .header("content-type", REPORT_MEDIA_TYPE)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_reports_are_rejected_and_honest_ones_collected_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let (task, token_file) = create_task(&server, &pk, "count", 10, &[]);
    let task_id = TaskId::from_str(&task).unwrap();
    let http = reqwest::Client::new();

    // The task says it wants proofs.
    let info: Value = http
        .get(format!("{}/tasks/{task}", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["input_proofs"], true, "{info}");

    // Honest reports through the real client (which proves).
    // A past minute: its batch can be collected at once.
    let time = now() - now() % 60 - 60;
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
            &HONEST.to_string(),
            "--seed",
            "11",
            "--time",
            &time.to_string(),
            "--truth-out",
            &truth_path.display().to_string(),
            "--json",
        ],
    );

    // Forgeries, made with the task's own key and the honest prover's code.
    let client = Client::connect(Url::parse(&server.url).unwrap(), task_id)
        .await
        .unwrap();
    let key = PublicKey::<rug::Integer>::from_bytes(&client.definition().public_key).unwrap();
    let proofs = InputProofs::new(key.clone(), client.definition().measurement).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let reports_url = format!("{}/tasks/{task}/reports", server.url);
    let status_of = || async {
        let s: Value = http
            .get(format!("{}/tasks/{task}/status", server.url))
            .bearer_auth(std::fs::read_to_string(&token_file).unwrap().trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["reports"].as_u64().unwrap()
    };
    assert_eq!(status_of().await, HONEST);

    let report = |id: ReportId, plaintext: Integer, bound_to: ReportId, rng: &mut ChaCha20Rng| {
        let ctx = ReportContext {
            task_id: &task_id,
            report_id: &bound_to,
            time,
        };
        let payload = proofs.prove_unchecked(&[plaintext], &ctx, rng).unwrap();
        Report { id, time, payload }
    };
    let minus_one = Integer::from(key.n() - 1u32);
    let cases = [
        (
            "a count of 2",
            report(ReportId([1; 16]), 2.into(), ReportId([1; 16]), &mut rng),
        ),
        (
            "a count of -1",
            report(ReportId([2; 16]), minus_one, ReportId([2; 16]), &mut rng),
        ),
        (
            "a count of 1,000,000",
            report(
                ReportId([3; 16]),
                1_000_000.into(),
                ReportId([3; 16]),
                &mut rng,
            ),
        ),
        (
            "a valid proof made for another report id",
            report(ReportId([4; 16]), 1.into(), ReportId([5; 16]), &mut rng),
        ),
    ];
    for (case, forged) in cases {
        let (status, problem) = put(&http, &reports_url, forged.to_bytes()).await;
        assert_eq!(status, 400, "{case}: {problem}");
        assert_eq!(problem["type"], "urn:hetally:error:invalidProof", "{case}");
        assert!(
            problem["detail"].as_str().unwrap().contains("proof"),
            "{case}: {problem}"
        );
        assert_eq!(status_of().await, HONEST, "{case}: nothing stored");
    }
    // A truncated proof is a malformed message.
    let mut truncated = report(ReportId([6; 16]), 1.into(), ReportId([6; 16]), &mut rng);
    truncated.payload.truncate(truncated.payload.len() - 10);
    let (status, problem) = put(&http, &reports_url, truncated.to_bytes()).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:hetally:error:invalidMessage");
    assert_eq!(status_of().await, HONEST);
    // The honest prover's own report with a valid value is accepted.
    let fine = report(ReportId([7; 16]), 1.into(), ReportId([7; 16]), &mut rng);
    let (status, problem) = put(&http, &reports_url, fine.to_bytes()).await;
    assert_eq!(status, 201, "{problem}");
    assert_eq!(status_of().await, HONEST + 1);

    // The collector gets exactly the honest reports.
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
            &token_file.display().to_string(),
            "--start",
            &time.to_string(),
            "--duration",
            "60",
            "--out",
            &agg.display().to_string(),
        ],
    );
    let decrypted = decrypt_json(&sk, &agg);
    let truth = read_json(&truth_path);
    let honest_ones = truth["values"][0].as_i64().unwrap();
    assert_eq!(decrypted["report_count"], HONEST + 1);
    assert_eq!(decrypted["values"][0].as_i64().unwrap(), honest_ones + 1);
}

#[test]
fn no_input_proofs_is_recorded_in_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let (with, _) = create_task(&server, &pk, "count", 10, &[]);
    let (without, _) = create_task(&server, &pk, "count", 10, &["--no-input-proofs"]);
    assert_ne!(with, without, "the flag is part of the task id");
    let get = |task: &str| -> String {
        // `=`: a base64url task id may start with '-'.
        let task = format!("--task={task}");
        run_ok(
            "hetally-client",
            &["task", "get", "--server", &server.url, &task],
        )
    };
    assert!(get(&with).contains("input proofs:    on"));
    assert!(get(&without).contains("input proofs:    off (the server trusts every client)"));
}
