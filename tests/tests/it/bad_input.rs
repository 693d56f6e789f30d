//! Bad input gets a specific 4xx problem document and changes nothing:
//! every rejection is checked against the task's status and audit log
//! before and after.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::str::FromStr;

use hetally_client::{Client, ClientError};
use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_protocol::task::TaskError;
use hetally_protocol::{Report, ReportId, TaskId};
use hetally_tests::*;
use reqwest::Url;
use serde_json::{json, Value};

struct Env {
    _dir: tempfile::TempDir,
    server: ServerProcess,
    task: String,
    token: String,
    http: reqwest::Client,
    client: Client,
    pk: std::path::PathBuf,
}

async fn env(measurement: &str, min_batch: u64) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    // These cases craft bare packed payloads, the format of tasks without
    // input proofs; proofs.rs covers forged proofs.
    let (task, token_file) =
        create_task(&server, &pk, measurement, min_batch, &["--no-input-proofs"]);
    let token = std::fs::read_to_string(token_file).unwrap();
    let client = Client::connect(
        Url::parse(&server.url).unwrap(),
        TaskId::from_str(&task).unwrap(),
    )
    .await
    .unwrap();
    Env {
        _dir: dir,
        server,
        task,
        token,
        http: reqwest::Client::new(),
        client,
        pk,
    }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.server.url, path.trim_start_matches('/'))
    }

    /// Everything a rejection must leave unchanged: report counts, budget,
    /// releases.
    async fn snapshot(&self) -> (Value, Value) {
        let get = |p: String| self.http.get(self.url(&p)).bearer_auth(&self.token).send();
        let status: Value = get(format!("tasks/{}/status", self.task))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let releases: Value = get(format!("tasks/{}/releases", self.task))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (status, releases)
    }

    async fn put(&self, task: &str, body: Vec<u8>, media: &str) -> (u16, Value) {
        let r = self
            .http
            .put(self.url(&format!("tasks/{task}/reports")))
            .header("content-type", media)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let media = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = r.bytes().await.unwrap();
        let problem = if body.is_empty() {
            Value::Null
        } else {
            assert_eq!(
                media, "application/problem+json",
                "error bodies are problem documents"
            );
            serde_json::from_slice(&body).unwrap()
        };
        (status, problem)
    }

    async fn upload(&self, body: Vec<u8>) -> (u16, Value) {
        self.put(&self.task, body, REPORT_MEDIA_TYPE).await
    }

    async fn collect(
        &self,
        token: Option<&str>,
        start: u64,
        duration: u64,
    ) -> (u16, Value, Vec<u8>) {
        let mut req = self
            .http
            .post(self.url(&format!("tasks/{}/releases", self.task)))
            .json(&json!({ "start": start, "duration": duration }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap().to_vec();
        let problem = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, problem, bytes)
    }

    fn valid(&self, time: u64) -> Report {
        let values = self
            .client
            .definition()
            .measurement
            .parse_value("1")
            .unwrap();
        self.client.prepare(&values, time).unwrap()
    }
}

/// Asserts the status and the problem type, and that nothing changed.
async fn rejected(
    env: &Env,
    before: &(Value, Value),
    got: (u16, Value),
    status: u16,
    name: &str,
    case: &str,
) {
    assert_eq!(got.0, status, "{case}: status; problem {}", got.1);
    assert_eq!(
        got.1["type"],
        format!("urn:hetally:error:{name}"),
        "{case}: problem {}",
        got.1
    );
    assert_eq!(got.1["status"], status, "{case}");
    assert!(
        got.1["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{case}: the problem says what was wrong"
    );
    assert_eq!(&env.snapshot().await, before, "{case}: stored data changed");
}

/// Asserts that a refusal's detail contains `needle`.
#[track_caller]
fn assert_detail(got: &(u16, Value), needle: &str) {
    let detail = got.1["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(needle), "{needle:?} not in {:?}", got.1);
}

fn aligned_now() -> u64 {
    let t = now();
    t - t % 60
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_rejections() {
    let env = env("count", 2).await;
    let time = aligned_now();
    let good = env.valid(time);
    let before = env.snapshot().await;
    assert_eq!(before.0["reports"], 0);

    rejected(
        &env,
        &before,
        env.upload(b"garbage".to_vec()).await,
        400,
        "invalidMessage",
        "malformed body",
    )
    .await;
    // Envelope errors say what is wrong with the report, in report terms
    // (issue 18): not "malformed payload", not the file-format wording.
    let mut trailing = good.to_bytes();
    trailing.push(0);
    let got = env.upload(trailing).await;
    assert_detail(&got, "report has 1 trailing byte after its payload");
    rejected(&env, &before, got, 400, "invalidMessage", "trailing bytes").await;
    let truncated = good.to_bytes()[..100].to_vec();
    let got = env.upload(truncated).await;
    assert_detail(
        &got,
        "report is truncated: its payload needs 516 bytes but only 71 remain",
    );
    rejected(&env, &before, got, 400, "invalidMessage", "truncated").await;
    let got = env.upload(good.to_bytes()[..10].to_vec()).await;
    assert_detail(
        &got,
        "report is truncated: its id needs 16 bytes but only 9 remain",
    );
    rejected(&env, &before, got, 400, "invalidMessage", "truncated id").await;
    let mut version_2 = good.to_bytes();
    version_2[0] = 2;
    let got = env.upload(version_2).await;
    assert_detail(
        &got,
        "report version 2 is not supported (this server reads report version 1)",
    );
    let detail = got.1["detail"].as_str().unwrap_or_default().to_string();
    assert!(!detail.contains("format version"), "{detail}");
    assert!(!detail.contains("malformed payload"), "{detail}");
    rejected(
        &env,
        &before,
        got,
        400,
        "invalidMessage",
        "report version 2",
    )
    .await;

    // The payload is a u32 count then fixed-width ciphertexts.
    let ct = &good.payload[4..];
    let with_payload = |payload: Vec<u8>| {
        Report {
            id: ReportId([9; 16]),
            time,
            payload,
        }
        .to_bytes()
    };
    let mut two = 2u32.to_be_bytes().to_vec();
    two.extend_from_slice(ct);
    rejected(
        &env,
        &before,
        env.upload(with_payload(two)).await,
        400,
        "wrongCiphertextCount",
        "count of 2 for a count task",
    )
    .await;
    let none = 0u32.to_be_bytes().to_vec();
    rejected(
        &env,
        &before,
        env.upload(with_payload(none)).await,
        400,
        "wrongCiphertextCount",
        "no ciphertexts",
    )
    .await;
    // One ciphertext too many is a wrong count, whether the count prefix
    // says so or not (it was 413 payloadTooLarge: the body limit left no
    // room for it, issue 18).
    let mut two_and_two = 2u32.to_be_bytes().to_vec();
    two_and_two.extend_from_slice(ct);
    two_and_two.extend_from_slice(ct);
    let got = env.upload(with_payload(two_and_two)).await;
    assert_detail(&got, "the task's layout needs 1, the report has 2");
    rejected(
        &env,
        &before,
        got,
        400,
        "wrongCiphertextCount",
        "two ciphertexts, count 2, for a count",
    )
    .await;
    let mut doubled = 1u32.to_be_bytes().to_vec();
    doubled.extend_from_slice(ct);
    doubled.extend_from_slice(ct);
    rejected(
        &env,
        &before,
        env.upload(with_payload(doubled)).await,
        400,
        "wrongCiphertextCount",
        "two ciphertexts, count 1, for a count",
    )
    .await;
    // Far beyond the task's largest report is still refused unread: the
    // body may be at most twice the largest report.
    let mut three = 3u32.to_be_bytes().to_vec();
    for _ in 0..3 {
        three.extend_from_slice(ct);
    }
    rejected(
        &env,
        &before,
        env.upload(with_payload(three)).await,
        413,
        "payloadTooLarge",
        "three ciphertexts for a count",
    )
    .await;

    let mut too_big = 1u32.to_be_bytes().to_vec();
    too_big.extend(std::iter::repeat_n(0xffu8, ct.len()));
    rejected(
        &env,
        &before,
        env.upload(with_payload(too_big)).await,
        400,
        "invalidCiphertext",
        "ciphertext >= n^2",
    )
    .await;
    let mut zero = 1u32.to_be_bytes().to_vec();
    zero.extend(std::iter::repeat_n(0u8, ct.len()));
    rejected(
        &env,
        &before,
        env.upload(with_payload(zero)).await,
        400,
        "invalidCiphertext",
        "ciphertext 0",
    )
    .await;
    // n itself is not a unit mod n^2.
    let pk = hetally_schemes::paillier::PublicKey::<rug::Integer>::from_bytes(
        &std::fs::read(&env.pk).unwrap(),
    )
    .unwrap();
    let n_bytes = pk.n().to_digits::<u8>(rug_order());
    let mut non_unit = 1u32.to_be_bytes().to_vec();
    non_unit.extend(std::iter::repeat_n(0u8, ct.len() - n_bytes.len()));
    non_unit.extend_from_slice(&n_bytes);
    rejected(
        &env,
        &before,
        env.upload(with_payload(non_unit)).await,
        400,
        "invalidCiphertext",
        "ciphertext n",
    )
    .await;

    let unknown = TaskId([7; 32]).to_string();
    rejected(
        &env,
        &before,
        env.put(&unknown, good.to_bytes(), REPORT_MEDIA_TYPE).await,
        404,
        "unrecognizedTask",
        "unknown task",
    )
    .await;
    rejected(
        &env,
        &before,
        env.put(&env.task, good.to_bytes(), "application/octet-stream")
            .await,
        415,
        "unsupportedMediaType",
        "media type",
    )
    .await;
    let huge = vec![1u8; 2 << 20];
    rejected(
        &env,
        &before,
        env.upload(huge).await,
        413,
        "payloadTooLarge",
        "oversized body",
    )
    .await;

    let early = env.valid(time + 3600);
    rejected(
        &env,
        &before,
        env.upload(early.to_bytes()).await,
        400,
        "reportTooEarly",
        "time in the future",
    )
    .await;
    let mut misaligned = env.valid(time);
    misaligned.time += 1;
    rejected(
        &env,
        &before,
        env.upload(misaligned.to_bytes()).await,
        400,
        "misalignedTime",
        "time not rounded",
    )
    .await;

    // The good report is accepted once, then replayed.
    let (status, _) = env.upload(good.to_bytes()).await;
    assert_eq!(status, 201);
    let after_one = env.snapshot().await;
    assert_eq!(after_one.0["reports"], 1);
    rejected(
        &env,
        &after_one,
        env.upload(good.to_bytes()).await,
        409,
        "reportReplayed",
        "duplicate report id",
    )
    .await;

    // Release the interval, then upload into it.
    let second = env.valid(time);
    assert_eq!(env.upload(second.to_bytes()).await.0, 201);
    let (status, problem, _) = env.collect(Some(&env.token), time, 60).await;
    assert_eq!(status, 201, "{problem}");
    let released = env.snapshot().await;
    let late = env.valid(time);
    rejected(
        &env,
        &released,
        env.upload(late.to_bytes()).await,
        409,
        "batchCollected",
        "upload into a released interval",
    )
    .await;
}

/// Task ids are parsed strictly (issue 18): a task id with a space, a
/// newline or padding after it names no task, on the HE routes and the DAP
/// routes alike, and never answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_ids_in_urls_are_parsed_strictly() {
    let env = env("count", 2).await;
    let good = env.valid(aligned_now());
    let get = |path: String| env.http.get(env.url(&path)).send();
    let problem = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (status, body)
    };
    let (status, _) = problem(get(format!("tasks/{}", env.task)).await.unwrap()).await;
    assert_eq!(status, 200, "the task itself");
    let before = env.snapshot().await;
    for bad in [
        format!("{}%20", env.task),
        format!("%20{}", env.task),
        format!("{}%0A", env.task),
        format!("{}=", env.task),
        format!("{}%3D", env.task),
        // The standard alphabet's '+' in place of the first character.
        format!("+{}", &env.task[1..]),
    ] {
        let (status, body) = problem(get(format!("tasks/{bad}")).await.unwrap()).await;
        assert_eq!(status, 400, "GET /tasks/{bad}: {body}");
        assert_eq!(body["type"], "urn:hetally:error:badRequest", "{bad}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("is not a task id"),
            "{bad}: {body}"
        );
        let got = env.put(&bad, good.to_bytes(), REPORT_MEDIA_TYPE).await;
        rejected(&env, &before, got, 400, "badRequest", &format!("PUT {bad}")).await;
    }
    // The DAP routes parse task ids as strictly: a malformed id is an
    // invalid message, a well-formed unknown one an unrecognized task.
    const DAP: &str = "urn:ietf:params:ppm:dap:error:";
    let unknown = TaskId([9; 32]).to_string();
    let (status, body) = problem(
        get(format!("dap/hpke_config?task_id={unknown}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], format!("{DAP}unrecognizedTask"));
    for bad in [
        format!("{unknown}%20"),
        format!("%20{unknown}"),
        format!("{unknown}="),
    ] {
        let (status, body) =
            problem(get(format!("dap/hpke_config?task_id={bad}")).await.unwrap()).await;
        assert_eq!(status, 400, "hpke_config {bad}: {body}");
        assert_eq!(body["type"], format!("{DAP}invalidMessage"), "{bad}");
        let r = env
            .http
            .put(env.url(&format!("dap/tasks/{bad}/reports")))
            .header("content-type", "application/dap-report")
            .body(vec![0u8; 8])
            .send()
            .await
            .unwrap();
        let (status, body) = problem(r).await;
        assert_eq!(status, 400, "DAP upload {bad}: {body}");
        assert_eq!(body["type"], format!("{DAP}invalidMessage"), "{bad}");
    }
}

fn rug_order() -> rug::integer::Order {
    rug::integer::Order::Msf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_rejections() {
    let env = env("count", 3).await;
    let time = aligned_now();
    for _ in 0..2 {
        assert_eq!(env.upload(env.valid(time).to_bytes()).await.0, 201);
    }
    let before = env.snapshot().await;
    let (s, p, _) = env.collect(None, time, 60).await;
    rejected(
        &env,
        &before,
        (s, p),
        401,
        "missingToken",
        "collect without a token",
    )
    .await;
    let (s, p, _) = env.collect(Some("not-the-token"), time, 60).await;
    rejected(
        &env,
        &before,
        (s, p),
        403,
        "wrongToken",
        "collect with a wrong token",
    )
    .await;
    let (s, p, _) = env.collect(Some(&env.token), time, 60).await;
    rejected(
        &env,
        &before,
        (s, p),
        400,
        "invalidBatchSize",
        "batch below the minimum",
    )
    .await;
    let (s, p, _) = env.collect(Some(&env.token), time + 1, 60).await;
    rejected(
        &env,
        &before,
        (s, p),
        400,
        "batchInvalid",
        "misaligned interval",
    )
    .await;
    let (s, p, _) = env.collect(Some(&env.token), time, 0).await;
    rejected(&env, &before, (s, p), 400, "batchInvalid", "empty interval").await;

    assert_eq!(env.upload(env.valid(time).to_bytes()).await.0, 201);
    let (s, p, first) = env.collect(Some(&env.token), time, 60).await;
    assert_eq!(s, 201, "{p}");
    let released = env.snapshot().await;
    assert_eq!(released.1["releases"].as_array().unwrap().len(), 1);
    let (s, p, _) = env.collect(Some(&env.token), time - 60, 120).await;
    rejected(
        &env,
        &released,
        (s, p),
        409,
        "batchOverlap",
        "overlapping interval",
    )
    .await;
    // The same interval again: the same bytes, 200, nothing new.
    let (s, _, again) = env.collect(Some(&env.token), time, 60).await;
    assert_eq!(s, 200);
    assert_eq!(first, again);
    assert_eq!(env.snapshot().await, released);

    // Admin endpoints need the admin token.
    let r = env.http.get(env.url("tasks")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = env
        .http
        .get(env.url("tasks"))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // The status and audit log need the collector token.
    let r = env
        .http
        .get(env.url(&format!("tasks/{}/status", env.task)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// A "server" that answers every request with the given task description,
/// whatever task was asked for: a server swapping in another key.
fn serve_forever(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                body.len(),
                body
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_key_is_detected_by_the_client() {
    let env = env("count", 2).await;
    // A second task whose key the attacker controls.
    let (_, attacker_pk) = keygen(&env._dir.path().join("attacker"));
    let (other, _) = create_task(&env.server, &attacker_pk, "count", 2, &[]);
    let other_info = env
        .http
        .get(env.url(&format!("tasks/{other}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let evil = serve_forever(other_info);

    let err = Client::connect(
        Url::parse(&evil).unwrap(),
        TaskId::from_str(&env.task).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ClientError::Task(TaskError::IdMismatch { .. })),
        "unexpected {err:?}"
    );
    let out = run(
        "hetally-client",
        &[
            "send", "--server", &evil, "--task", &env.task, "--value", "1",
        ],
    );
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match task id"), "{stderr}");
    assert_eq!(env.snapshot().await.0["reports"], 0);
}
