//! `hetally-server`: see `hetally-server --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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
    /// Do not run aggregation jobs in this process (releases then sum every
    /// report themselves, or rely on other replicas' jobs).
    #[arg(long)]
    no_job_driver: bool,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "HETALLY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// HTTP worker threads [default: one per CPU core].
    #[arg(long)]
    workers: Option<usize>,
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
    config.job_driver = !args.no_job_driver;
    config.jobs.job_size = args.job_size.max(1);
    config.jobs.lease.lease_secs = args.job_lease_secs.max(1);
    let base = args.retry_base_secs.max(1);
    let cap = args.retry_cap_secs.max(base);
    config.jobs.lease.backoff_base_secs = base;
    config.jobs.lease.backoff_cap_secs = cap;
    #[cfg(feature = "dap")]
    for policy in [&mut config.dap.aggregation, &mut config.dap.collection] {
        policy.lease_secs = args.dap_lease_secs.max(1);
        policy.backoff_base_secs = base;
        policy.backoff_cap_secs = cap;
    }
    config.body_timeout = std::time::Duration::from_secs(args.body_timeout_secs.max(1));
    config.insecure_noise_seed = test_noise_seed();
    config.jobs.insecure_test_hold = test_job_hold();
    match actix_web::rt::System::new().block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hetally-server: {e}");
            ExitCode::FAILURE
        }
    }
}
