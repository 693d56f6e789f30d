//! Helpers for hetally's cross-crate integration tests: real binaries, real
//! server processes, real HTTP.
//!
//! [`bin`] builds the workspace binaries once per test run (`cargo build
//! --workspace --bins` with the same profile and target directory as the
//! tests) and returns their paths, so the tests always run the current code.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

pub mod tls;
pub mod vectors;

/// The directory holding the workspace's binaries for this profile.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Test executables live in target/<profile>/deps/.
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile> directory")
            .to_path_buf();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--workspace", "--bins", "--quiet"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if release {
            cmd.arg("--release");
        }
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let status = cmd
            .status()
            .expect("running cargo build for the test binaries");
        assert!(status.success(), "building the workspace binaries failed");
        dir
    })
}

/// Path of a workspace binary (`hetally-server`, `hetally-client`,
/// `hetally-keytool`), built if needed.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Runs a workspace binary to completion.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}

/// Runs a workspace binary and fails the test unless it succeeds; returns
/// its stdout.
pub fn run_ok(name: &str, args: &[&str]) -> String {
    succeeded(&format!("{name} {args:?}"), run(name, args))
}

/// Fails the test unless `out` (of the command `what`) is a success;
/// returns its stdout.
pub fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP relay on a loopback port that stays bound for as long as the
/// relay lives, forwarding each connection to whichever server it is
/// pointed at ([`Relay::forward_to`]). A test that restarts a server gives
/// its clients the relay's URL: every server binds port 0 (no port is ever
/// released and bound again, so no other process can take it in between),
/// and the clients' URL never changes. While it points nowhere, the relay
/// closes each connection at once, as a dead server would.
pub struct Relay {
    port: u16,
    backend: Arc<Mutex<Option<u16>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    /// A relay on a port of its own, pointing nowhere yet.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the relay");
        let port = listener.local_addr().expect("the relay's address").port();
        let backend = Arc::new(Mutex::new(None::<u16>));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (backend, stop) = (backend.clone(), stop.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let target = *backend.lock().expect("relay backend lock");
                    let Some(target) = target else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                        continue;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone())
                    else {
                        continue;
                    };
                    std::thread::spawn(move || pump(client, server));
                    std::thread::spawn(move || pump(server2, client2));
                }
            })
        };
        Relay {
            port,
            backend,
            stop,
            accept: Some(accept),
        }
    }

    /// The URL clients use: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends new connections to the server on `port` on loopback, or, with
    /// `None`, closes them at once. Connections already relayed stay with
    /// their server.
    pub fn forward_to(&self, port: Option<u16>) {
        *self.backend.lock().expect("relay backend lock") = port;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Copies one direction of a relayed connection until it ends, then passes
/// the end on (a half-close, as HTTP expects).
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// The PostgreSQL server tests use: `HETALLY_TEST_POSTGRES_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test` (CI runs one there).
pub fn postgres_admin_url() -> String {
    std::env::var("HETALLY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// True when the integration suite should run its servers on PostgreSQL
/// (`HETALLY_TEST_STORE=postgres`) rather than SQLite.
pub fn use_postgres() -> bool {
    std::env::var("HETALLY_TEST_STORE").is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// Runs a future to completion on a runtime of its own, on a thread of its
/// own, so it works from sync tests and from inside `#[tokio::test]`.
fn block_on<F: std::future::Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(f)
        })
        .join()
        .expect("the database helper thread panicked")
    })
}

/// A fresh PostgreSQL database for `key` (the same key gives the same
/// database within one test process, so a restarted server finds its data).
/// Databases left by earlier test processes are dropped on first use.
/// Panics with a clear message if PostgreSQL is unreachable.
pub fn postgres_database(key: &str) -> String {
    use sqlx::{Connection, Executor, Row};
    static CLEANED: OnceLock<()> = OnceLock::new();
    let admin = postgres_admin_url();
    let pid = std::process::id();
    let digest = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let name = format!("hetally_test_{pid}_{digest:016x}");
    block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {admin} is needed for this test and is unreachable: {e}")
            });
        let stale = if CLEANED.set(()).is_ok() {
            conn.fetch_all("SELECT datname FROM pg_database WHERE datname LIKE 'hetally_test_%'")
                .await
                .expect("listing databases")
        } else {
            Vec::new()
        };
        for row in stale {
            let db: String = row.get(0);
            let owner_pid: u32 = db
                .split('_')
                .nth(2)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if owner_pid != pid && !Path::new(&format!("/proc/{owner_pid}")).exists() {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                    .await;
            }
        }
        let exists = conn
            .fetch_optional(format!("SELECT 1 FROM pg_database WHERE datname = '{name}'").as_str())
            .await
            .expect("looking up the test database")
            .is_some();
        if !exists {
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("creating the test database");
        }
    });
    let mut url = url::Url::parse(&admin).expect("a valid PostgreSQL URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// The datastore key [`ServerProcess`] gives servers on PostgreSQL
/// (`HETALLY_DATASTORE_KEYS`): a test key, public, never for real data.
pub const TEST_DATASTORE_KEY: &str = "dGVzdCBkYXRhc3RvcmUga2V5LCBub3QgYSBzZWNyZXQ";

/// A running `hetally-server`; killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its port.
    pub port: u16,
}

impl ServerProcess {
    /// Starts a server on `data_dir` and a port the system picks, and waits
    /// until it answers `/healthz`.
    pub fn start(data_dir: &Path) -> Result<Self> {
        Self::start_on(data_dir, 0)
    }

    /// Starts a server on a given port (0: the system picks one, which the
    /// server prints and [`ServerProcess::port`] holds), on SQLite in
    /// `data_dir` or (with `HETALLY_TEST_STORE=postgres`) on a PostgreSQL
    /// database of its own.
    pub fn start_on(data_dir: &Path, port: u16) -> Result<Self> {
        let database = use_postgres().then(|| postgres_database(&data_dir.display().to_string()));
        Self::start_with(data_dir, port, database.as_deref(), &[])
    }

    /// Starts a server with an explicit database URL (`None`: SQLite) and
    /// extra arguments.
    pub fn start_with(
        data_dir: &Path,
        port: u16,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> Result<Self> {
        Self::start_with_env(data_dir, port, database_url, extra, &[])
    }

    /// Starts a server whose release noise comes from a fixed seed
    /// (`HETALLY_INSECURE_TEST_NOISE_SEED`, honoured by debug builds only),
    /// so that statistical tests of the real server are reproducible. A
    /// release build ignores the seed and draws from the operating system.
    pub fn start_seeded(data_dir: &Path, seed: &str) -> Result<Self> {
        let database = use_postgres().then(|| postgres_database(&data_dir.display().to_string()));
        Self::start_with_env(
            data_dir,
            0,
            database.as_deref(),
            &[],
            &[("HETALLY_INSECURE_TEST_NOISE_SEED", seed)],
        )
    }

    /// [`ServerProcess::start_with`] with extra environment variables.
    pub fn start_with_env(
        data_dir: &Path,
        port: u16,
        database_url: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut cmd = Command::new(bin("hetally-server"));
        // PostgreSQL needs a datastore key (SQLite makes its own in the data
        // directory): one fixed test key, so that a restarted server, or a
        // replica, opens what another sealed.
        if database_url.is_some() && !extra.contains(&"--datastore-keys-file") {
            cmd.env("HETALLY_DATASTORE_KEYS", TEST_DATASTORE_KEY);
        }
        cmd.envs(env.iter().copied());
        cmd.args(["--data-dir", &data_dir.display().to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--workers", "2"])
            .args(extra);
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting hetally-server")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        // "hetally-server listening on http://127.0.0.1:PORT": the port it
        // bound, which with port 0 only the server knows.
        let bound = line
            .trim()
            .strip_prefix("hetally-server listening on http://127.0.0.1:")
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = bound else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("hetally-server did not start: {line:?}");
        };
        let server = ServerProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            port,
        };
        server.wait_healthy()?;
        Ok(server)
    }

    fn wait_healthy(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("server on port {} never came up", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin token file.
    pub fn admin_token_file(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    /// Kills the server with SIGKILL (no graceful shutdown) and reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Paillier collector key pair made with `hetally-keytool keygen` in
/// `dir`.
pub fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    keygen_scheme(dir, "paillier")
}

/// A collector key pair of `scheme` (`paillier`, `tfhe`) made with
/// `hetally-keytool keygen` in `dir`.
pub fn keygen_scheme(dir: &Path, scheme: &str) -> (PathBuf, PathBuf) {
    run_ok(
        "hetally-keytool",
        &[
            "keygen",
            "--scheme",
            scheme,
            "--out",
            &dir.display().to_string(),
        ],
    );
    (dir.join("collector.sk"), dir.join("collector.pk"))
}

/// A task created with `hetally-client task create --json`; returns the
/// task id and the path of a file holding the collector token.
pub fn create_task(
    server: &ServerProcess,
    public_key: &Path,
    measurement: &str,
    min_batch: u64,
    extra: &[&str],
) -> (String, PathBuf) {
    let mut args = vec![
        "task".to_string(),
        "create".into(),
        "--server".into(),
        server.url.clone(),
        "--admin-token-file".into(),
        server.admin_token_file().display().to_string(),
        "--public-key".into(),
        public_key.display().to_string(),
        "--measurement".into(),
        measurement.into(),
        "--min-batch-size".into(),
        min_batch.to_string(),
        "--time-precision".into(),
        "60".into(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out: Value =
        serde_json::from_str(&run_ok("hetally-client", &args)).expect("task create JSON");
    let task_id = out["task_id"].as_str().expect("task_id").to_string();
    let token_file = server.data_dir.join(format!("{task_id}.token"));
    std::fs::write(&token_file, out["collector_token"].as_str().expect("token"))
        .expect("token file");
    (task_id, token_file)
}

/// A client of `task` on `server` (the task fetched and checked against
/// its id).
pub async fn connect_client(server: &ServerProcess, task: &str) -> hetally_client::Client {
    use std::str::FromStr;
    hetally_client::Client::connect(
        url::Url::parse(&server.url).expect("a server URL"),
        hetally_protocol::TaskId::from_str(task).expect("a task id"),
    )
    .await
    .expect("connecting to the task")
}

/// Current Unix time.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Parses a JSON file.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("reading JSON file")).expect("valid JSON")
}

/// Runs a query returning one integer on a PostgreSQL database.
pub fn postgres_i64(url: &str, sql: &str) -> i64 {
    use sqlx::{Connection, Row};
    let (url, sql) = (url.to_string(), sql.to_string());
    block_on(async move {
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .expect("connecting to the test database");
        let row = sqlx::query(&sql)
            .fetch_one(&mut conn)
            .await
            .expect("running the query");
        row.try_get::<i64, _>(0).expect("an integer result")
    })
}

/// Runs a query returning one integer on a server's SQLite file (opened
/// read-only).
pub fn sqlite_i64(db: &Path, sql: &str) -> i64 {
    use sqlx::{ConnectOptions, Row};
    let (db, sql) = (db.to_path_buf(), sql.to_string());
    block_on(async move {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true)
            .connect()
            .await
            .expect("opening the SQLite file");
        let row = sqlx::query(&sql)
            .fetch_one(&mut conn)
            .await
            .expect("running the query");
        row.try_get::<i64, _>(0).expect("an integer result")
    })
}

/// `hetally-keytool decrypt --key SK AGG --format json`, parsed.
pub fn decrypt_json(sk: &Path, agg: &Path) -> Value {
    let out = run_ok(
        "hetally-keytool",
        &[
            "decrypt",
            "--key",
            &sk.display().to_string(),
            &agg.display().to_string(),
            "--format",
            "json",
        ],
    );
    serde_json::from_str(&out).expect("decrypt --format json prints JSON")
}

/// `hetally-client simulate` of `reports` random reports stamped `time`,
/// from `seed`, writing the true values to `truth_out` if given; returns
/// the CLI's JSON output.
pub fn simulate(
    server: &ServerProcess,
    task: &str,
    reports: u64,
    seed: u64,
    time: u64,
    truth_out: Option<&Path>,
) -> String {
    let (reports, seed, time) = (reports.to_string(), seed.to_string(), time.to_string());
    let truth = truth_out.map(|p| p.display().to_string());
    let mut args = vec![
        "simulate",
        "--server",
        &server.url,
        "--task",
        task,
        "--reports",
        &reports,
        "--seed",
        &seed,
        "--time",
        &time,
        "--json",
    ];
    if let Some(truth) = &truth {
        args.extend(["--truth-out", truth]);
    }
    run_ok("hetally-client", &args)
}

/// The server's Prometheus scrape (`/metrics`, with the admin token).
pub async fn scrape_metrics(server: &ServerProcess, admin_token: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", server.url))
        .bearer_auth(admin_token)
        .send()
        .await
        .expect("scraping /metrics")
        .text()
        .await
        .expect("the scrape's text")
}

/// `hetally-client collect` of the batch `[start, start + duration)` into
/// `out`, however it ends (a release that waits for its trustees' noise
/// exits 6).
pub fn try_collect(
    server: &ServerProcess,
    task: &str,
    token_file: &Path,
    start: u64,
    duration: u64,
    out: &Path,
) -> Output {
    run(
        "hetally-client",
        &[
            "collect",
            "--server",
            &server.url,
            "--task",
            task,
            "--token-file",
            &token_file.display().to_string(),
            "--start",
            &start.to_string(),
            "--duration",
            &duration.to_string(),
            "--out",
            &out.display().to_string(),
        ],
    )
}

/// [`try_collect`], which must succeed; returns the CLI's stdout.
pub fn collect(
    server: &ServerProcess,
    task: &str,
    token_file: &Path,
    start: u64,
    duration: u64,
    out: &Path,
) -> String {
    succeeded(
        "hetally-client collect",
        try_collect(server, task, token_file, start, duration, out),
    )
}

/// `hetally-client COMMAND --json` of a task with its collector token
/// (`status` or `releases`), parsed.
pub fn collector_json(
    server: &ServerProcess,
    command: &str,
    task: &str,
    token_file: &Path,
) -> Value {
    let out = run_ok(
        "hetally-client",
        &[
            command,
            "--server",
            &server.url,
            "--task",
            task,
            "--token-file",
            &token_file.display().to_string(),
            "--json",
        ],
    );
    serde_json::from_str(&out).expect("the CLI's JSON")
}

/// `hetally-client task get --json`, parsed (the definition checked
/// against the id by the CLI).
pub fn task_json(server: &ServerProcess, task: &str) -> Value {
    let out = run_ok(
        "hetally-client",
        &[
            "task",
            "get",
            "--server",
            &server.url,
            "--task",
            task,
            "--json",
        ],
    );
    serde_json::from_str(&out).expect("the CLI's JSON")
}
