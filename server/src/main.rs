//! `hetally-server`: see `hetally-server --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hetally_server::datastore::crypter::{DatastoreKeys, KEYS_ENV};
use hetally_server::http::cors::{CorsOrigin, CorsPolicy};
use hetally_server::queue::QueueLimit;
use hetally_server::{run, ServerConfig};

/// hetally's aggregation server.
///
/// Accepts encrypted reports (`PUT /tasks/{id}/reports`), stores them
/// durably, sums them in background aggregation jobs, and releases
/// encrypted, DP-noised aggregates of non-overlapping batches to the
/// collector. The store is an embedded SQLite database in DATA_DIR, or a
/// PostgreSQL database shared by several replicas (--database-url). On the
/// first start it creates the database and an admin token (mode 0600) for
/// `hetally-client task create`.
///
/// Examples:
///   hetally-server --data-dir ./hetally-data --listen 127.0.0.1:8080
///   hetally-server --database-url postgres://hetally@db/hetally --admin-token-file /etc/hetally/admin.token
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Directory for the database and the admin token.
    #[arg(long, env = "HETALLY_DATA_DIR", default_value = "./hetally-data")]
    data_dir: PathBuf,
    /// PostgreSQL URL (e.g. postgres://user:pass@host:5432/db); without it,
    /// SQLite in DATA_DIR. Migrations are applied on start.
    #[arg(long, env = "HETALLY_DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL connection pool size.
    #[arg(long, default_value_t = 16)]
    max_connections: u32,
    /// Admin token file, created (mode 0600) if missing [default:
    /// DATA_DIR/admin.token]. Replicas sharing a database should share it.
    #[arg(long, env = "HETALLY_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Most reports per background aggregation job.
    #[arg(long, default_value_t = 5000)]
    job_size: u64,
    /// Seconds a replica holds an aggregation job before another may redo it.
    #[arg(long, default_value_t = 60)]
    job_lease_secs: u64,
    /// Seconds the DAP leader holds an aggregation or collection job before
    /// another replica may take it over (a late finisher's work is then
    /// discarded).
    #[arg(long, default_value_t = 300)]
    dap_lease_secs: u64,
    /// Seconds before the first retry of a background job that failed (the
    /// DAP helper was down, say); the delay doubles with each failure.
    #[arg(long, default_value_t = 1)]
    retry_base_secs: u64,
    /// Longest delay between retries of a failing background job.
    #[arg(long, default_value_t = 300)]
    retry_cap_secs: u64,
    /// Seconds a request body may take to arrive.
    #[arg(long, default_value_t = 30)]
    body_timeout_secs: u64,
    /// Neither record Prometheus metrics nor serve `GET /metrics` (which
    /// otherwise takes the admin token: see docs/operations.md, Metrics).
    #[arg(long)]
    no_metrics: bool,
    /// Most uploads waiting for, or in, input proof verification. When it
    /// (or --verify-queue-mib) is reached, further uploads are refused at
    /// once with 429 and Retry-After rather than queued.
    #[arg(long, default_value_t = QueueLimit::VERIFIER.items)]
    verify_queue_reports: usize,
    /// Most MiB of upload bodies waiting for, or in, input proof
    /// verification (a lone report larger than this is still taken).
    #[arg(long, default_value_t = QueueLimit::VERIFIER.bytes >> 20)]
    verify_queue_mib: usize,
    /// Most reports waiting for, or in, a group commit, per writer (the HE
    /// uploads' and the DAP leader's each have one). When it (or
    /// --write-queue-mib) is reached, uploads are refused with 429 and
    /// Retry-After.
    #[arg(long, default_value_t = QueueLimit::WRITER.items)]
    write_queue_reports: usize,
    /// Most MiB of stored reports waiting for, or in, a group commit, per
    /// writer.
    #[arg(long, default_value_t = QueueLimit::WRITER.bytes >> 20)]
    write_queue_mib: usize,
    /// Do not run aggregation jobs in this process (releases then sum every
    /// report themselves, or rely on other replicas' jobs).
    #[arg(long)]
    no_job_driver: bool,
    /// Report expiry age, seconds, of HE tasks created without one (their
    /// `report_expiry_age`): older reports are refused (reportExpired), and
    /// the garbage collector deletes the reports of intervals older than it
    /// that were never released. Existing tasks keep theirs.
    #[arg(long, default_value_t = hetally_server::gc::DEFAULT_REPORT_EXPIRY_AGE)]
    report_expiry_age_secs: u64,
    /// Seconds between garbage-collector runs (over all replicas: one
    /// replica at a time runs it, under a lease). It deletes the reports,
    /// jobs and shares of released (or collected) batches and of expired
    /// intervals; releases and the audit log are kept for ever. 0 disables
    /// it. It runs with the job driver (not with --no-job-driver).
    #[arg(long, default_value_t = hetally_server::gc::DEFAULT_GC_INTERVAL_SECS)]
    gc_interval_secs: u64,
    /// Most rows the garbage collector deletes per transaction.
    #[arg(long, default_value_t = hetally_server::gc::DEFAULT_GC_CHUNK)]
    gc_chunk: u64,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "HETALLY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// HTTP worker threads [default: one per CPU core].
    #[arg(long)]
    workers: Option<usize>,
    /// Serve HTTPS with this PEM certificate chain (the server's
    /// certificate first, then intermediates); needs --tls-key. Without
    /// it the server speaks plain HTTP, and warns if it listens on a
    /// non-loopback address.
    #[arg(
        long,
        env = "HETALLY_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1). It
    /// should be readable by its owner only (the server warns otherwise).
    #[arg(
        long,
        env = "HETALLY_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    tls_key: Option<PathBuf>,
    /// A web origin (scheme://host[:port], as browsers send it in
    /// `Origin`) whose pages may call the routes a page needs: GET
    /// /tasks/{id}, GET /tasks/{id}/crs, PUT /tasks/{id}/reports and GET
    /// /openapi.json. Repeat it for several; `*` allows every origin
    /// (uploads carry no credentials). The environment variable takes a
    /// comma-separated list. Without it no CORS header is sent, so only
    /// pages of the server's own origin can call it. Admin and collector
    /// routes never answer other origins (see docs/operations.md, CORS).
    #[arg(
        long = "cors-origin",
        env = "HETALLY_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    cors_origins: Vec<CorsOrigin>,
    /// Most open HTTP connections, all workers together. actix-web counts
    /// connections per worker, so each of the W workers gets
    /// ceil(N / W); a worker at its limit stops accepting, and new
    /// connections wait in the kernel's backlog until one closes. Keep
    /// the open-files limit (ulimit -n) above N plus the database pool.
    #[arg(long, env = "HETALLY_MAX_HTTP_CONNECTIONS", default_value_t = hetally_server::DEFAULT_MAX_CONNECTIONS)]
    max_http_connections: usize,
    /// Seconds an idle keep-alive connection stays open (0: no keep-alive).
    #[arg(long, default_value_t = 5)]
    keep_alive_secs: u64,
    /// Seconds a new connection has to send its first request's head
    /// before it is dropped with 408 (slowloris clients).
    #[arg(long, default_value_t = 5)]
    request_head_timeout_secs: u64,
    /// Seconds a TLS handshake may take.
    #[arg(long, default_value_t = 3)]
    tls_handshake_timeout_secs: u64,
    /// DAP leader: a PEM file of CA certificates to trust, besides the
    /// system's, for HTTPS connections to helpers (a helper with a private
    /// CA or a self-signed certificate).
    #[arg(long, env = "HETALLY_HELPER_CA_FILE", value_name = "FILE")]
    helper_ca_file: Option<PathBuf>,
    /// File of datastore keys that seal the DAP task secrets at rest (HPKE
    /// private keys, verification keys, the leader's token for the helper):
    /// base64url keys of 32 (or 16) bytes, one per line, `#` comments. The
    /// first seals, all are tried to open: to rotate, put a new key first,
    /// restart (every secret is sealed again under it), then remove the old
    /// one. Or give the keys themselves in HETALLY_DATASTORE_KEYS (comma
    /// separated). Without either, SQLite uses DATA_DIR/datastore.keys,
    /// generated (mode 0600) on first start; PostgreSQL requires a key,
    /// shared by every replica. Make one with
    /// `head -c 32 /dev/urandom | basenc --base64url`.
    #[arg(long, env = "HETALLY_DATASTORE_KEYS_FILE", value_name = "FILE")]
    datastore_keys_file: Option<PathBuf>,
    /// Seconds a DAP task's previous HPKE configurations keep decrypting
    /// after a rotation (POST /dap/tasks/{id}/hpke_configs), unless the
    /// rotation says otherwise. The default, 8 days, is the default report
    /// expiry age (7 days) plus the 1-day cache lifetime of hpke_config
    /// answers: no report the leader would still accept is then refused
    /// for its configuration. Raise it with a task's report expiry age.
    #[cfg(feature = "dap")]
    #[arg(long, default_value_t = hetally_server::dap::hpke_keys::DEFAULT_HPKE_GRACE_SECS)]
    hpke_grace_secs: u64,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Environment variable with a hex seed for release noise, honoured by
/// debug builds only, so that statistical tests of the real server are
/// reproducible. A release build ignores it (and says so).
const TEST_NOISE_SEED_VAR: &str = "HETALLY_INSECURE_TEST_NOISE_SEED";

fn test_noise_seed() -> Option<[u8; 32]> {
    let value = std::env::var(TEST_NOISE_SEED_VAR).ok()?;
    if !cfg!(debug_assertions) {
        tracing::warn!("{TEST_NOISE_SEED_VAR} is ignored: this is a release build");
        return None;
    }
    use sha2::Digest;
    Some(sha2::Sha256::digest(value.as_bytes()).into())
}

/// Environment variable with a number of milliseconds each aggregation job
/// keeps its lease after summing, before storing its result: a test that
/// kills a replica can then catch it holding a lease. Debug builds only.
const TEST_JOB_HOLD_VAR: &str = "HETALLY_INSECURE_TEST_JOB_HOLD_MS";

fn test_job_hold() -> Option<std::time::Duration> {
    let value = std::env::var(TEST_JOB_HOLD_VAR).ok()?;
    if !cfg!(debug_assertions) {
        tracing::warn!("{TEST_JOB_HOLD_VAR} is ignored: this is a release build");
        return None;
    }
    match value.parse::<u64>() {
        Ok(ms) => Some(std::time::Duration::from_millis(ms)),
        Err(_) => {
            tracing::warn!(
                "{TEST_JOB_HOLD_VAR}={value:?} is ignored: not a number of milliseconds"
            );
            None
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HETALLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(hetally_server::DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let mut config = ServerConfig::new(args.data_dir, args.listen);
    config.database_url = args.database_url;
    config.max_connections = args.max_connections;
    config.admin_token_file = args.admin_token_file;
    config.workers = args.workers;
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(hetally_server::tls::TlsFiles { cert, key });
    }
    config.cors = match CorsPolicy::from_origins(&args.cors_origins) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("hetally-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    config.connections = hetally_server::ConnectionLimits {
        max_connections: args.max_http_connections.max(1),
        keep_alive: std::time::Duration::from_secs(args.keep_alive_secs),
        request_head_timeout: std::time::Duration::from_secs(args.request_head_timeout_secs.max(1)),
        tls_handshake_timeout: std::time::Duration::from_secs(
            args.tls_handshake_timeout_secs.max(1),
        ),
    };
    config.job_driver = !args.no_job_driver;
    config.jobs.job_size = args.job_size.max(1);
    config.jobs.lease.lease_secs = args.job_lease_secs.max(1);
    let base = args.retry_base_secs.max(1);
    let cap = args.retry_cap_secs.max(base);
    config.jobs.lease.backoff_base_secs = base;
    config.jobs.lease.backoff_cap_secs = cap;
    #[cfg(feature = "dap")]
    {
        config.dap.helper_ca_file = args.helper_ca_file;
    }
    #[cfg(not(feature = "dap"))]
    let _ = args.helper_ca_file;
    #[cfg(feature = "dap")]
    for policy in [&mut config.dap.aggregation, &mut config.dap.collection] {
        policy.lease_secs = args.dap_lease_secs.max(1);
        policy.backoff_base_secs = base;
        policy.backoff_cap_secs = cap;
    }
    config.body_timeout = std::time::Duration::from_secs(args.body_timeout_secs.max(1));
    config.metrics = !args.no_metrics;
    config.upload_queues.verifier = QueueLimit {
        items: args.verify_queue_reports.max(1),
        bytes: args.verify_queue_mib.saturating_mul(1 << 20),
    };
    config.upload_queues.writer = QueueLimit {
        items: args.write_queue_reports.max(1),
        bytes: args.write_queue_mib.saturating_mul(1 << 20),
    };
    config.report_expiry_age = args.report_expiry_age_secs;
    config.gc.interval =
        (args.gc_interval_secs > 0).then(|| std::time::Duration::from_secs(args.gc_interval_secs));
    config.gc.chunk = args.gc_chunk.max(1);
    config.insecure_noise_seed = test_noise_seed();
    config.jobs.insecure_test_hold = test_job_hold();
    config.datastore_keys_file = args.datastore_keys_file;
    #[cfg(feature = "dap")]
    {
        config.hpke_grace_secs = args.hpke_grace_secs;
    }
    // The keys themselves, from the environment only: a command-line flag
    // would show them in `ps`.
    if let Some(text) = std::env::var_os(KEYS_ENV) {
        let text = zeroize::Zeroizing::new(text.to_string_lossy().into_owned());
        match DatastoreKeys::parse(&text, KEYS_ENV) {
            Ok(keys) => config.datastore_keys = Some(keys),
            Err(e) => {
                eprintln!("hetally-server: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match actix_web::rt::System::new().block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hetally-server: {e}");
            ExitCode::FAILURE
        }
    }
}
