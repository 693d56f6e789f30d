//! `GET /metrics` and request logging, against real `hetally-server`
//! processes (SQLite, or PostgreSQL with `HETALLY_TEST_STORE=postgres`):
//!
//! * the scrape needs the admin token (401 without, 403 with a wrong one),
//!   since upload counts are exact report counts that add/remove tasks hide
//!   from the collector;
//! * after uploads, a replay, a DAP upload to an unknown task and a
//!   release, the upload counters moved by exactly what was sent, each
//!   refusal is labelled with its problem type (HE and DAP alike),
//!   requests are labelled with route patterns (never raw paths), and the
//!   release counter and the budget gauge are right; after a restart the
//!   budget gauge is read back from the store;
//! * malformed requests (garbage, a bad header, `Content-Length: abc`, a
//!   TLS handshake on the plain port) put nothing at ERROR in the log with
//!   the default filter, and a refusal is logged at debug with its problem
//!   type and reason, never with the token sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_tests::{
    bin, collect, connect_client, create_task, keygen, now, postgres_database, use_postgres,
    ServerProcess,
};

/// The value of the series `name` whose labels include all of `labels`,
/// summed over the series that match (0 when none does).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let matches = labels
                .iter()
                .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().expect("a sample value"))
        })
        .sum()
}

async fn scrape(http: &reqwest::Client, url: &str, token: &str) -> String {
    let resp = http
        .get(format!("{url}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    resp.text().await.unwrap()
}

async fn upload(http: &reqwest::Client, url: &str, task: &str, body: Vec<u8>) -> u16 {
    http.put(format!("{url}/tasks/{task}/reports"))
        .header("content-type", REPORT_MEDIA_TYPE)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_counts_uploads_refusals_and_releases() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data).unwrap();
    let admin = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let admin = admin.trim();
    let http = reqwest::Client::new();

    // Operator only.
    let anonymous = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    let wrong = http
        .get(format!("{}/metrics", server.url))
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);

    let (task, token_file) = create_task(
        &server,
        &pk,
        "count",
        1,
        &["--no-input-proofs", "--dp", "laplace:0.5", "--budget", "2"],
    );
    let before = scrape(&http, &server.url, admin).await;
    assert!(before.contains("hetally_process_start_time_seconds "));
    assert_eq!(
        sample(&before, "hetally_dp_budget_spent", &[("task_id", &task)]),
        0.0
    );

    let client = connect_client(&server, &task).await;
    let time = now() - now() % 60;
    let reports: Vec<Vec<u8>> = (0..3)
        .map(|_| client.prepare(&[1], time).unwrap().to_bytes())
        .collect();
    for report in &reports {
        assert_eq!(upload(&http, &server.url, &task, report.clone()).await, 201);
    }
    assert_eq!(
        upload(&http, &server.url, &task, reports[0].clone()).await,
        409
    );
    // A DAP upload to a task this server does not have.
    let dap = http
        .put(format!(
            "{}/dap/tasks/{}/reports",
            server.url,
            "A".repeat(43)
        ))
        .header("content-type", "application/dap-report")
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(dap.status(), 404);
    let after = scrape(&http, &server.url, admin).await;

    let delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let uploads = "hetally_uploads_total";
    assert_eq!(
        delta(uploads, &[("api", "he"), ("outcome", "accepted")]),
        3.0,
        "{after}"
    );
    assert_eq!(
        delta(uploads, &[("api", "he"), ("outcome", "reportReplayed")]),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(uploads, &[("api", "dap"), ("outcome", "unrecognizedTask")]),
        1.0,
        "{after}"
    );
    assert_eq!(delta(uploads, &[("api", "dap")]), 1.0);
    let route = ("route", "/tasks/{task_id}/reports");
    let requests = "hetally_http_requests_total";
    assert_eq!(
        delta(requests, &[route, ("method", "PUT"), ("status", "2xx")]),
        3.0
    );
    assert_eq!(
        delta(requests, &[route, ("method", "PUT"), ("status", "4xx")]),
        1.0
    );
    assert_eq!(
        delta(
            "hetally_http_request_duration_seconds_count",
            &[route, ("method", "PUT")]
        ),
        4.0
    );
    // Route patterns only: no task id (or any raw path) becomes a label.
    assert!(
        !after.contains(&format!("route=\"/tasks/{task}")),
        "{after}"
    );
    // Sampled at scrape time.
    assert!(sample(&after, "hetally_db_connections", &[("state", "idle")]) >= 0.0);
    assert!(after.contains("hetally_db_connections{pool="), "{after}");
    assert!(after.contains("hetally_aggregation_lag_seconds{api=\"he\"}"));
    assert!(after.contains("hetally_aggregation_lag_seconds{api=\"dap\"}"));

    // A release: counted for its task, and the budget gauge follows it.
    let out = dir.path().join("batch.agg");
    let (server_ref, task_ref, token_ref) = (&server, task.as_str(), token_file.as_path());
    tokio::task::block_in_place(|| collect(server_ref, task_ref, token_ref, time, 60, &out));
    let released = scrape(&http, &server.url, admin).await;
    let of_task = [("task_id", task.as_str())];
    assert_eq!(
        sample(
            &released,
            "hetally_releases_total",
            &[of_task[0], ("outcome", "released")]
        ),
        1.0,
        "{released}"
    );
    assert_eq!(sample(&released, "hetally_dp_budget_spent", &of_task), 0.5);
    assert!(released.contains("# TYPE hetally_dp_budget_spent gauge"));
    assert!(released.contains("# HELP hetally_uploads_total "));

    // A new process reads the budget spent back from the store at start.
    server.terminate().unwrap();
    let server = ServerProcess::start(&data).unwrap();
    let restarted = scrape(&http, &server.url, admin).await;
    assert_eq!(
        sample(&restarted, "hetally_dp_budget_spent", &of_task),
        0.5,
        "{restarted}"
    );
    assert_eq!(sample(&restarted, "hetally_releases_total", &of_task), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregation_lag_grows_while_no_job_driver_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let database = use_postgres().then(|| postgres_database(&data.display().to_string()));
    let server =
        ServerProcess::start_with(&data, 0, database.as_deref(), &["--no-job-driver"]).unwrap();
    let admin = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let http = reqwest::Client::new();
    let (task, _) = create_task(&server, &pk, "count", 1, &["--no-input-proofs"]);
    let idle = scrape(&http, &server.url, admin.trim()).await;
    assert_eq!(
        sample(&idle, "hetally_aggregation_lag_seconds", &[("api", "he")]),
        0.0
    );
    // A report stamped ten minutes ago stays in no job: no driver runs.
    let client = connect_client(&server, &task).await;
    let stamped = now() - now() % 60 - 600;
    let report = client.prepare(&[1], stamped).unwrap().to_bytes();
    assert_eq!(upload(&http, &server.url, &task, report).await, 201);
    let text = scrape(&http, &server.url, admin.trim()).await;
    let lag = sample(&text, "hetally_aggregation_lag_seconds", &[("api", "he")]);
    let bound = (now() - stamped) as f64;
    assert!(lag >= 600.0 && lag <= bound, "lag {lag}, at most {bound}");
    assert_eq!(
        sample(&text, "hetally_aggregation_lag_seconds", &[("api", "dap")]),
        0.0
    );
}

#[test]
fn no_metrics_turns_the_route_off() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database = use_postgres().then(|| postgres_database(&data.display().to_string()));
    let server =
        ServerProcess::start_with(&data, 0, database.as_deref(), &["--no-metrics"]).unwrap();
    let admin = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let answer = send_raw(
        server.port,
        format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            admin.trim()
        )
        .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

/// A server process whose stderr goes to `log`; the caller kills it.
fn spawn_logged(data: &Path, log: &Path, filter: Option<&str>) -> (Child, u16) {
    let mut cmd = Command::new(bin("hetally-server"));
    cmd.args(["--data-dir", &data.display().to_string()])
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .env_remove("HETALLY_LOG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(filter) = filter {
        cmd.env("HETALLY_LOG", filter);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"));
    (child, port)
}

/// Sends `bytes` on a new connection and reads until the server closes
/// it, so that whatever it logs about the connection is logged.
fn send_raw(port: u16, bytes: &[u8]) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(bytes).unwrap();
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

const MALFORMED: &[&[u8]] = &[
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"PUT /tasks/x/reports HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"PUT /tasks/x/reports HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\xff\xfe\x00\x01",
    b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
];

#[test]
fn malformed_requests_stay_below_error_and_refusals_log_their_reason() {
    let dir = tempfile::tempdir().unwrap();

    // The default filter (HETALLY_LOG unset).
    let log = dir.path().join("default.log");
    let (mut child, port) = spawn_logged(&dir.path().join("a"), &log, None);
    for bytes in MALFORMED {
        let answer = send_raw(port, bytes);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    let healthy = send_raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(healthy.starts_with("HTTP/1.1 200"), "{healthy}");
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("hetally-server started"), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "malformed requests logged at ERROR:\n{text}"
    );

    // With hetally_server at debug: a refusal carries its problem type and
    // reason, and the token sent is nowhere in the log.
    let log = dir.path().join("debug.log");
    let filter = format!(
        "{},hetally_server=debug",
        hetally_server::DEFAULT_LOG_FILTER
    );
    let (mut child, port) = spawn_logged(&dir.path().join("b"), &log, Some(&filter));
    let secret = "SECRET-token-0123456789";
    let refused = send_raw(
        port,
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let unknown = send_raw(
        port,
        b"GET /tasks/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(unknown.starts_with("HTTP/1.1 4"), "{unknown}");
    for bytes in MALFORMED {
        send_raw(port, bytes);
    }
    // Log lines are written before the answer is sent, but give a loaded
    // machine time to flush stderr.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("problem=\"wrongToken\"") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let line = text
        .lines()
        .find(|l| l.contains("problem=\"wrongToken\""))
        .unwrap_or_else(|| panic!("no refusal line:\n{text}"));
    assert!(line.contains("DEBUG"), "{line}");
    assert!(line.contains("status=403"), "{line}");
    assert!(
        line.contains("reason=\"the admin token is wrong\""),
        "{line}"
    );
    assert!(line.contains("path=\"/metrics\""), "{line}");
    assert!(!text.contains(secret), "the token reached the log:\n{text}");
    assert!(
        !text.lines().any(|l| l.contains("ERROR")),
        "ERROR in the log:\n{text}"
    );
}
