//! DAP-09 with an independent client: the npm package `@divviup/dap`
//! 0.9.1 (divviup-ts, TypeScript; its own Prio3, HPKE and DAP codecs, no
//! code shared with janus or prio) uploads to two real `hetally-server`
//! processes through `tests/dap-js/upload.mjs` under Node; hetally's
//! collector (`hetally_client::dap::collect`) collects, and the result must
//! be exact.
//!
//! * `dap_js_interop_vdafs_and_problems`: count, sum, histogram and sumvec
//!   on one leader/helper pair; every upload answered 201 (DAP-09 section
//!   4.4.2). On the same pair, a replay (the same report bytes sent again
//!   at once and after other uploads), a report from the future and one
//!   past the expiry age: each refusal is a problem document the library
//!   turns into its `DAPError`, with the DAP type and the task id
//!   (`taskid`, section 3.2); the collection counts the replayed report
//!   once.
//! * `dap_js_interop_stale_hpke_config`: the client caches both HPKE
//!   configurations; the leader rotates its key, retiring the old one at
//!   once, and the helper rotates with a grace period; the client's next
//!   upload is answered `outdatedConfig`, the library fetches both
//!   configurations again, re-encrypts and retries, and the report is
//!   counted.
//!
//! The Node packages are installed by `npm ci --prefix tests/dap-js` (CI's
//! `.ci/run` does it); without them these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use base64::Engine as _;
use hetally_client::dap::{self as dap_client, DapCollection, DapTaskConfig};
use hetally_dap::hpke::CollectorCredential;
use hetally_dap::messages::{HpkeConfigList, Report};
use hetally_dap::prio::codec::Decode;
use hetally_dap::vdaf::{DpStrategy, VdafSpec};
use hetally_tests::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PRECISION: u64 = 60;
const DAP: &str = "urn:ietf:params:ppm:dap:error:";
/// The version of `@divviup/dap` `tests/dap-js/package.json` pins.
const DAP_JS_VERSION: &str = "0.9.1";

/// `tests/dap-js`, after checking that Node and the pinned `@divviup/dap`
/// are installed: a missing install fails the test with what to run,
/// rather than letting it pass without testing anything.
fn dap_js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dap-js");
    let node = std::process::Command::new("node").arg("--version").output();
    // "v20.20.2": the library needs Node 18's global fetch.
    let major = node
        .as_ref()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok())
        });
    match major {
        Some(m) if m >= 18 => {}
        Some(m) => panic!(
            "Node.js {m} is too old for the @divviup/dap interop tests: install Node 18 or later"
        ),
        None => panic!(
            "Node.js (`node`, 18 or later) is needed for the @divviup/dap interop tests and \
             is not on PATH: install it (Debian: `apt-get install -y nodejs npm`; .ci/run does), \
             then run `npm ci --prefix tests/dap-js`"
        ),
    }
    let manifest = dir.join("node_modules/@divviup/dap/package.json");
    let version = std::fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    match version {
        Some(v) if v == DAP_JS_VERSION => dir,
        Some(v) => panic!(
            "tests/dap-js/node_modules holds @divviup/dap {v}, the tests pin {DAP_JS_VERSION}: \
             run `npm ci --prefix tests/dap-js`"
        ),
        None => panic!(
            "@divviup/dap is not installed in tests/dap-js/node_modules ({} missing): run \
             `npm ci --prefix tests/dap-js` (CI's .ci/run does)",
            manifest.display()
        ),
    }
}

/// A leader and a helper on loopback (SQLite, or PostgreSQL with
/// HETALLY_TEST_STORE=postgres), holding any number of tasks for one
/// collector.
struct Aggregators {
    _dir: tempfile::TempDir,
    leader: ServerProcess,
    helper: ServerProcess,
    credential: CollectorCredential,
    http: reqwest::Client,
}

impl Aggregators {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let leader = ServerProcess::start(&dir.path().join("leader")).unwrap();
        let helper = ServerProcess::start(&dir.path().join("helper")).unwrap();
        let credential =
            CollectorCredential::generate(1, "collector-token-0123456789".into()).unwrap();
        Aggregators {
            _dir: dir,
            leader,
            helper,
            credential,
            http: reqwest::Client::new(),
        }
    }

    fn dap_url(server: &ServerProcess) -> String {
        format!("{}/dap/", server.url)
    }

    fn admin_token(server: &ServerProcess) -> String {
        std::fs::read_to_string(server.admin_token_file())
            .unwrap()
            .trim()
            .to_string()
    }

    /// A new task of `vdaf` on both; its id.
    async fn task(&self, vdaf: &VdafSpec, min_batch_size: u64) -> String {
        let config = DapTaskConfig {
            leader: dap_client::endpoint(&Self::dap_url(&self.leader)).unwrap(),
            helper: dap_client::endpoint(&Self::dap_url(&self.helper)).unwrap(),
            vdaf: *vdaf,
            dp: DpStrategy::None,
            min_batch_size,
            time_precision: PRECISION,
            collector_hpke_config: self.credential.hpke_config().unwrap(),
            collector_token: self.credential.token.clone(),
        };
        dap_client::provision(
            &self.http,
            &config,
            &Self::admin_token(&self.leader),
            &Self::admin_token(&self.helper),
        )
        .await
        .unwrap()
        .task_id
    }

    /// Collects the test interval of `task` with hetally's collector.
    async fn collect(&self, task: &str, vdaf: &VdafSpec) -> Result<DapCollection> {
        let (start, duration) = test_interval();
        let leader = dap_client::endpoint(&Self::dap_url(&self.leader))?;
        Ok(dap_client::collect_with(
            task,
            &leader,
            vdaf,
            &self.credential,
            start,
            duration,
            dap_client::poll_backoff(Duration::from_secs(120)),
            &dap_client::new_collection_job_id(),
            &self.http,
        )
        .await?)
    }

    /// The id of the HPKE configuration `server` serves for `task` (the
    /// first of its list, the one a client uses).
    async fn hpke_config_id(&self, server: &ServerProcess, task: &str) -> u8 {
        let resp = self
            .http
            .get(format!(
                "{}hpke_config?task_id={task}",
                Self::dap_url(server)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let list = HpkeConfigList::get_decoded(&resp.bytes().await.unwrap()).unwrap();
        u8::from(*list.hpke_configs()[0].id())
    }

    /// Rotates `task`'s HPKE configuration on `server`
    /// (`POST /dap/tasks/{id}/hpke_configs`); `retire_after` seconds of
    /// grace for the previous ones (`None`: the server's default).
    async fn rotate(&self, server: &ServerProcess, task: &str, retire_after: Option<u64>) {
        let mut req = self
            .http
            .post(format!(
                "{}tasks/{task}/hpke_configs",
                Self::dap_url(server)
            ))
            .bearer_auth(Self::admin_token(server));
        if let Some(secs) = retire_after {
            req = req.json(&json!({ "retire_previous_after_secs": secs }));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "rotating the HPKE configuration: {body}");
    }
}

/// From ten minutes before now to twenty minutes after, aligned: holds
/// every report of a test.
fn test_interval() -> (u64, u64) {
    (
        now() / PRECISION * PRECISION - 10 * PRECISION,
        30 * PRECISION,
    )
}

/// `@divviup/dap`'s own description of a VDAF hetally names `spec`, with
/// the same chunk lengths (hetally's default is prio's optimal one; the
/// library wants it spelled out).
fn js_vdaf(spec: &VdafSpec) -> Value {
    match *spec {
        VdafSpec::Count => json!({ "type": "count" }),
        VdafSpec::Sum { bits } => json!({ "type": "sum", "bits": bits }),
        VdafSpec::Histogram {
            length,
            chunk_length,
        } => json!({ "type": "histogram", "length": length, "chunkLength": chunk_length }),
        VdafSpec::SumVec {
            length,
            bits,
            chunk_length,
        } => {
            json!({ "type": "sumVec", "length": length, "bits": bits, "chunkLength": chunk_length })
        }
    }
}

/// One `node upload.mjs` process for one task: one `@divviup/dap` `Task`
/// object, so its HPKE configurations stay cached between requests.
struct JsClient {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// What the script answers to one request: the library's outcome of each
/// send, and every HTTP request it made.
#[derive(Debug)]
struct Answer {
    results: Vec<Value>,
    requests: Vec<Value>,
}

impl Answer {
    /// The report uploads (PUT .../reports) among the requests.
    fn uploads(&self) -> Vec<&Value> {
        self.requests
            .iter()
            .filter(|r| r["method"] == "PUT" && r["path"].as_str().unwrap().ends_with("/reports"))
            .collect()
    }

    /// Fails unless every send succeeded, each with exactly one upload
    /// answered 201 and no other request than HPKE config fetches.
    fn expect_accepted(&self) -> Result<()> {
        ensure!(
            self.results.iter().all(|r| r["ok"] == true),
            "not accepted: {self:?}"
        );
        let uploads = self.uploads();
        ensure!(uploads.len() == self.results.len(), "{self:?}");
        ensure!(
            uploads.iter().all(|u| u["status"] == 201),
            "DAP-09 section 4.4.2: an accepted upload is answered 201: {self:?}"
        );
        ensure!(
            self.requests
                .iter()
                .all(|r| r["method"] == "PUT" || r["path"] == "/dap/hpke_config"),
            "{self:?}"
        );
        Ok(())
    }
}

/// Fails unless `result` is the library's `DAPError` for a problem
/// document of type `kind` and `status` about `task`: the library read the
/// document (including `taskid`, without which it throws a TypeError
/// instead).
fn expect_problem(result: &Value, kind: &str, status: u16, task: &str) -> Result<()> {
    let e = &result["error"];
    ensure!(result["ok"] == false, "accepted, expected {kind}: {result}");
    ensure!(
        e["name"] == "DAPError",
        "@divviup/dap did not read the problem document as a DAPError: {result}"
    );
    ensure!(
        e["type"] == format!("{DAP}{kind}"),
        "expected {kind}: {result}"
    );
    ensure!(e["shortType"] == kind, "{result}");
    ensure!(e["status"] == status, "{result}");
    ensure!(e["taskId"] == task, "taskid: {result}");
    Ok(())
}

/// The decoded report of an upload the script recorded (janus_messages
/// decodes what divviup-ts encoded).
fn report_of(upload: &Value) -> Report {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(upload["body"].as_str().unwrap())
        .unwrap();
    Report::get_decoded(&bytes).unwrap()
}

impl JsClient {
    /// Starts the script for `task` of `vdaf` on `aggs`.
    fn start(aggs: &Aggregators, task: &str, vdaf: &VdafSpec) -> Self {
        let dir = dap_js_dir();
        let mut child = Command::new("node")
            .arg(dir.join("upload.mjs"))
            .arg(format!("--leader={}", Aggregators::dap_url(&aggs.leader)))
            .arg(format!("--helper={}", Aggregators::dap_url(&aggs.helper)))
            .arg(format!("--task={task}"))
            .arg(format!("--vdaf={}", js_vdaf(vdaf)))
            .arg(format!("--time-precision={PRECISION}"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node tests/dap-js/upload.mjs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        JsClient {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one request line and reads its answer line.
    async fn request(&mut self, request: Value) -> Result<Answer> {
        self.stdin
            .write_all(format!("{request}\n").as_bytes())
            .await
            .context("writing to upload.mjs")?;
        self.stdin.flush().await?;
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .context("upload.mjs did not answer within 60 s")??;
        let Some(line) = line else {
            let mut stderr = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut stderr).await;
            }
            bail!("upload.mjs ended without answering {request}: {stderr}");
        };
        let v: Value = serde_json::from_str(&line).with_context(|| line.clone())?;
        Ok(Answer {
            results: v["results"].as_array().context("results")?.clone(),
            requests: v["requests"].as_array().context("requests")?.clone(),
        })
    }

    /// `sendMeasurement(m)`.
    async fn send(&mut self, measurement: Value) -> Result<Answer> {
        self.request(json!({ "measurement": measurement })).await
    }
}

/// Random measurements of `spec` as the library takes them, and their
/// exact aggregate as hetally's collector returns it.
fn measurements(spec: &VdafSpec, n: usize, seed: u64) -> (Vec<Value>, Vec<i128>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut truth = vec![
        0i128;
        match *spec {
            VdafSpec::Count | VdafSpec::Sum { .. } => 1,
            VdafSpec::Histogram { length, .. } | VdafSpec::SumVec { length, .. } => length,
        }
    ];
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(match *spec {
            VdafSpec::Count => {
                let b: bool = rng.gen();
                truth[0] += i128::from(b);
                json!(b)
            }
            VdafSpec::Sum { bits } => {
                let v = rng.gen_range(0..1u64 << bits);
                truth[0] += i128::from(v);
                json!(v)
            }
            VdafSpec::Histogram { length, .. } => {
                let i = rng.gen_range(0..length);
                truth[i] += 1;
                json!(i)
            }
            VdafSpec::SumVec { length, bits, .. } => {
                let v: Vec<u64> = (0..length)
                    .map(|_| rng.gen_range(0..1u64 << bits))
                    .collect();
                for (t, x) in truth.iter_mut().zip(&v) {
                    *t += i128::from(*x);
                }
                json!(v)
            }
        });
    }
    (out, truth)
}

/// Reports per VDAF: enough for a batch (minimum 10) and for every
/// histogram bucket to be likely used, few enough to stay fast.
const N: usize = 12;

/// Uploads `N` measurements of `spec` with the library and checks the
/// collection is exact.
async fn vdaf_case(aggs: &Aggregators, spec: &str, seed: u64) -> Result<()> {
    let spec: VdafSpec = spec.parse()?;
    let task = aggs.task(&spec, 10).await;
    let (ms, truth) = measurements(&spec, N, seed);
    let mut js = JsClient::start(aggs, &task, &spec);
    for (i, m) in ms.into_iter().enumerate() {
        let answer = js.send(m.clone()).await?;
        answer
            .expect_accepted()
            .with_context(|| format!("{spec}: measurement {i} ({m})"))?;
        // The first send fetched both HPKE configurations; the others use
        // the cached ones.
        let fetches = answer.requests.len() - 1;
        ensure!(fetches == if i == 0 { 2 } else { 0 }, "{spec}: {answer:?}");
    }
    let got = aggs.collect(&task, &spec).await.context(spec)?;
    ensure!(
        (got.report_count, &got.values) == (N as u64, &truth),
        "{spec}: collected {} reports {:?}, uploaded {N} of sum {truth:?}",
        got.report_count,
        got.values
    );
    Ok(())
}

/// Replays and refused report times, with the library's own error for
/// each; the collection holds the replayed report once.
async fn problems_case(aggs: &Aggregators) -> Result<()> {
    let spec = VdafSpec::Count;
    let task = aggs.task(&spec, 10).await;
    let mut js = JsClient::start(aggs, &task, &spec);
    // The same report bytes three times at once: accepted once, then
    // refused as a replay.
    let answer = js
        .request(json!({ "measurement": true, "send_times": 3 }))
        .await?;
    let uploads = answer.uploads();
    ensure!(uploads.len() == 3, "{answer:?}");
    ensure!(
        uploads.iter().all(|u| u["body"] == uploads[0]["body"]),
        "the replays are not the same bytes: {answer:?}"
    );
    ensure!(answer.results[0]["ok"] == true, "{answer:?}");
    ensure!(uploads[0]["status"] == 201, "{answer:?}");
    for r in &answer.results[1..] {
        expect_problem(r, "reportRejected", 400, &task).context("replay")?;
    }
    let mut truth = 1i128;
    for i in 0..9 {
        let v = i % 2 == 0;
        truth += i128::from(v);
        js.send(json!(v)).await?.expect_accepted()?;
    }
    // Again, after other uploads (the report has likely been through an
    // aggregation job by now).
    let answer = js.request(json!({ "resend": true })).await?;
    ensure!(answer.uploads()[0]["body"] == uploads[0]["body"]);
    expect_problem(&answer.results[0], "reportRejected", 400, &task).context("later replay")?;
    // A report an hour ahead, and one older than the expiry age (a week).
    let answer = js
        .request(json!({ "measurement": true, "timestamp": now() + 3600 }))
        .await?;
    expect_problem(&answer.results[0], "reportTooEarly", 400, &task).context("future report")?;
    let answer = js
        .request(json!({ "measurement": true, "timestamp": now() - 8 * 24 * 3600 }))
        .await?;
    expect_problem(&answer.results[0], "reportRejected", 400, &task).context("expired report")?;

    // A client of a task neither aggregator knows: fetching the HPKE
    // configurations fails with unrecognizedTask (404, as Janus answers).
    let unknown = dap_client::TaskSecrets::random().task_id;
    let answer = JsClient::start(aggs, &unknown, &spec)
        .send(json!(true))
        .await?;
    ensure!(answer.uploads().is_empty(), "{answer:?}");
    expect_problem(&answer.results[0], "unrecognizedTask", 404, &unknown)
        .context("unknown task")?;

    let got = aggs.collect(&task, &spec).await.context("replay task")?;
    ensure!(
        (got.report_count, &got.values) == (10, &vec![truth]),
        "replay task: collected {} reports, count {:?}; expected 10, {truth}",
        got.report_count,
        got.values
    );
    Ok(())
}

/// Count, sum, histogram, sumvec, then replays and refused times, all on
/// one leader/helper pair, the cases run concurrently; every failure is
/// reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_js_interop_vdafs_and_problems() {
    dap_js_dir();
    let aggs = Aggregators::start();
    let cases = [
        ("prio3count", 1),
        ("prio3sum:16", 2),
        ("prio3histogram:16", 3),
        ("prio3sumvec:5:8", 4),
    ];
    let vdafs = futures::future::join_all(
        cases
            .iter()
            .map(|&(spec, seed)| vdaf_case(&aggs, spec, seed)),
    );
    let (vdafs, problems) = futures::join!(vdafs, problems_case(&aggs));
    let failures: Vec<String> = vdafs
        .into_iter()
        .chain([problems])
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The client's cached HPKE configuration goes stale: the leader rotates
/// and retires the old key at once, the helper rotates with a grace period
/// (so the report already uploaded still opens there). The next upload is
/// answered `outdatedConfig`; the library refetches both configurations,
/// re-encrypts and retries once, and the retried report (new leader and
/// helper config ids) is accepted and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_js_interop_stale_hpke_config() {
    dap_js_dir();
    let aggs = Aggregators::start();
    let spec = VdafSpec::Count;
    let task = aggs.task(&spec, 1).await;
    let old_leader = aggs.hpke_config_id(&aggs.leader, &task).await;
    let old_helper = aggs.hpke_config_id(&aggs.helper, &task).await;
    let mut js = JsClient::start(&aggs, &task, &spec);

    let first = js.send(json!(true)).await.unwrap();
    first.expect_accepted().unwrap();
    let report = report_of(first.uploads()[0]);
    assert_eq!(
        (
            u8::from(*report.leader_encrypted_input_share().config_id()),
            u8::from(*report.helper_encrypted_input_share().config_id())
        ),
        (old_leader, old_helper)
    );

    aggs.rotate(&aggs.leader, &task, Some(0)).await;
    aggs.rotate(&aggs.helper, &task, None).await;
    let new_leader = aggs.hpke_config_id(&aggs.leader, &task).await;
    let new_helper = aggs.hpke_config_id(&aggs.helper, &task).await;
    assert_ne!(new_leader, old_leader);
    assert_ne!(new_helper, old_helper);

    // One sendMeasurement: PUT (outdatedConfig), both configs fetched
    // again, PUT (201).
    let second = js.send(json!(false)).await.unwrap();
    assert_eq!(second.results, vec![json!({ "ok": true })], "{second:?}");
    let steps: Vec<(String, String, u64)> = second
        .requests
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let step = |m: &str, p: &str, s: u64| (m.to_string(), p.to_string(), s);
    assert_eq!(
        steps,
        vec![
            step("PUT", "reports", 400),
            step("GET", "hpke_config", 200),
            step("GET", "hpke_config", 200),
            step("PUT", "reports", 201),
        ],
        "{second:?}"
    );
    assert_eq!(
        second.requests[0]["problem_type"],
        format!("{DAP}outdatedConfig")
    );
    let (stale, retried) = (
        report_of(&second.requests[0]),
        report_of(&second.requests[3]),
    );
    assert_eq!(
        u8::from(*stale.leader_encrypted_input_share().config_id()),
        old_leader
    );
    assert_eq!(
        (
            u8::from(*retried.leader_encrypted_input_share().config_id()),
            u8::from(*retried.helper_encrypted_input_share().config_id())
        ),
        (new_leader, new_helper)
    );

    // The new configurations stay cached.
    let third = js.send(json!(true)).await.unwrap();
    third.expect_accepted().unwrap();
    assert_eq!(third.requests.len(), 1, "{third:?}");

    let got = aggs.collect(&task, &spec).await.unwrap();
    assert_eq!((got.report_count, got.values), (3, vec![2]));
}
