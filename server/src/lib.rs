//! hetally-server: accepts encrypted reports, stores them durably, and
//! releases encrypted, DP-noised aggregates of non-overlapping batches.
//!
//! Two services share one infrastructure:
//!
//! * the homomorphic (HE) API: [`http`] (thin actix-web handlers) over the
//!   [`aggregator`] (tasks, uploads, batches, releases, budgets);
//! * the DAP-09 leader and helper ([`dap`], feature `dap`).
//!
//! What both use: [`datastore`] (SQLite, the embedded default, or
//! PostgreSQL for replicas, behind typed methods), [`body`] (request bodies
//! with per-route limits and a deadline), [`problem`] (problem documents),
//! [`auth`] (tokens), [`clock`], [`cache`] (tasks), [`lease`] (job leases
//! with tokens, attempts and backoff), [`gc`] (report expiry and the
//! garbage collector) and the group-commit writer.
//!
//! The binary is `src/main.rs`; [`run`] is the whole server.

pub mod aggregator;
pub mod auth;
pub mod body;
pub mod cache;
pub mod clock;
#[cfg(feature = "dap")]
pub mod dap;
pub mod datastore;
pub mod gc;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod problem;
pub mod queue;
pub mod tls;
mod writer;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{web, App, HttpServer};
use hetally_protocol::keyfile;
use thiserror::Error;

use aggregator::jobs::{self, JobConfig};
use aggregator::Aggregator;
use auth::{hash_token, new_token};
use clock::{RealClock, SharedClock};
use datastore::{Datastore, StoreConfig, StoreError};
use tokio::sync::watch;

/// File in the data directory holding the admin token by default.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The log filter when `HETALLY_LOG` is unset: `info`, except actix-http's
/// HTTP/1 connection handling. That logs at ERROR every connection that
/// sends something other than HTTP (a bad request line or header, a
/// `Content-Length: abc`, a TLS handshake on a plain-HTTP port): anyone can
/// cause those, the client already got its 400, and nothing is wrong with
/// the server. `HETALLY_LOG=info,actix_http=error` shows them again.
pub const DEFAULT_LOG_FILTER: &str = "info,actix_http::h1=off";

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_TIMEOUT_SECS: u64 = 30;

/// Errors that stop the server.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The datastore could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The admin token could not be read or written.
    #[error("admin token: {0}")]
    AdminToken(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Run(#[from] io::Error),
    /// The TLS certificate or key cannot be served.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The datastore keys cannot be had, or the stored DAP secrets do not
    /// open with them.
    #[error("secrets at rest: {0}")]
    Secrets(String),
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory for the SQLite database and (by default) the admin token.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; SQLite in `data_dir` when absent.
    pub database_url: Option<String>,
    /// PostgreSQL pool size.
    pub max_connections: u32,
    /// Admin token file (default `DATA_DIR/admin.token`); replicas sharing
    /// one database share one token file.
    pub admin_token_file: Option<PathBuf>,
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks one).
    pub listen: String,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Serve HTTPS with this certificate and key; plain HTTP without.
    pub tls: Option<tls::TlsFiles>,
    /// Connection limits and timeouts of the listener.
    pub connections: ConnectionLimits,
    /// Which web origins may call the routes a page calls
    /// ([`http::cors`]); off by default.
    pub cors: http::cors::CorsPolicy,
    /// Run the aggregation job driver in this process.
    pub job_driver: bool,
    /// Job driver settings.
    pub jobs: JobConfig,
    /// The DAP leader's driver settings.
    #[cfg(feature = "dap")]
    pub dap: dap::leader::DriverConfig,
    /// Deadline for reading one request body.
    pub body_timeout: std::time::Duration,
    /// Record Prometheus metrics and serve them at `/metrics` ([`metrics`]);
    /// off, the route is absent and requests are only logged.
    pub metrics: bool,
    /// Bounds of the upload queues (proof verification, group commit; the
    /// DAP leader's writer has one of its own, bounded like the writer's):
    /// a full queue answers 429 with `Retry-After`.
    pub upload_queues: aggregator::UploadQueues,
    /// Tests only: draw release noise from this seed rather than from the
    /// operating system ([`Aggregator::with_insecure_noise_seed`]). Anyone
    /// who knows it can remove the noise.
    pub insecure_noise_seed: Option<[u8; 32]>,
    /// Report expiry age of HE tasks created without one, seconds
    /// ([`gc`]).
    pub report_expiry_age: u64,
    /// The garbage collector, run with the job driver ([`gc`]).
    pub gc: gc::GcConfig,
    /// File of datastore keys (`--datastore-keys-file`), which seal the DAP
    /// task secrets at rest ([`datastore::crypter`]).
    pub datastore_keys_file: Option<PathBuf>,
    /// Datastore keys given directly (`HETALLY_DATASTORE_KEYS`). Without
    /// either, SQLite uses (and first generates) `DATA_DIR/datastore.keys`;
    /// PostgreSQL refuses to start.
    pub datastore_keys: Option<datastore::crypter::DatastoreKeys>,
    /// Seconds a rotated-out DAP HPKE configuration keeps decrypting by
    /// default ([`dap::hpke_keys`]).
    #[cfg(feature = "dap")]
    pub hpke_grace_secs: u64,
}

/// How many connections the listener holds and how long it waits on them.
///
/// actix-web counts connections per worker thread: a worker at its limit
/// stops accepting, and a new connection waits in the kernel's backlog
/// until one of that worker's closes. The total is split evenly over the
/// workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most open connections, all workers together (at least one per
    /// worker).
    pub max_connections: usize,
    /// How long an idle keep-alive connection stays open; zero turns
    /// keep-alive off.
    pub keep_alive: std::time::Duration,
    /// How long a new connection may take to send its first request's
    /// head (a slowloris client is dropped after it, with 408).
    pub request_head_timeout: std::time::Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: std::time::Duration,
}

impl Default for ConnectionLimits {
    /// 4096 connections in all (actix's own default is 25,000 per worker:
    /// far more file descriptors and buffer memory than a small machine
    /// has), keep-alive and request head 5 s, TLS handshake 3 s.
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            keep_alive: std::time::Duration::from_secs(5),
            request_head_timeout: std::time::Duration::from_secs(5),
            tls_handshake_timeout: std::time::Duration::from_secs(3),
        }
    }
}

/// Default of [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl ConnectionLimits {
    /// The per-worker limit actix-web takes, for `workers` workers.
    pub fn per_worker(&self, workers: usize) -> usize {
        self.max_connections.div_ceil(workers.max(1)).max(1)
    }
}

impl ServerConfig {
    /// Defaults: SQLite in `data_dir`, job driver on.
    pub fn new(data_dir: PathBuf, listen: String) -> Self {
        ServerConfig {
            data_dir,
            database_url: None,
            max_connections: 16,
            admin_token_file: None,
            listen,
            workers: None,
            tls: None,
            connections: ConnectionLimits::default(),
            cors: http::cors::CorsPolicy::Off,
            job_driver: true,
            jobs: JobConfig::default(),
            #[cfg(feature = "dap")]
            dap: dap::leader::DriverConfig::default(),
            body_timeout: body::DEFAULT_BODY_TIMEOUT,
            metrics: true,
            upload_queues: aggregator::UploadQueues::default(),
            insecure_noise_seed: None,
            report_expiry_age: gc::DEFAULT_REPORT_EXPIRY_AGE,
            gc: gc::GcConfig::default(),
            datastore_keys_file: None,
            datastore_keys: None,
            #[cfg(feature = "dap")]
            hpke_grace_secs: dap::hpke_keys::DEFAULT_HPKE_GRACE_SECS,
        }
    }

    fn store(&self) -> StoreConfig {
        match &self.database_url {
            Some(url) => StoreConfig::Postgres {
                url: url.clone(),
                max_connections: self.max_connections,
            },
            None => StoreConfig::Sqlite {
                data_dir: self.data_dir.clone(),
            },
        }
    }

    fn admin_token_path(&self) -> PathBuf {
        self.admin_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(ADMIN_TOKEN_FILE))
    }
}

/// Reads the admin token at `path`, creating it (mode 0600, in a directory
/// created with mode 0700) if missing.
pub fn ensure_admin_token(path: &Path) -> Result<(String, bool), ServerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| ServerError::AdminToken(format!("{}: {e}", dir.display())))?;
    }
    match std::fs::read_to_string(path) {
        Ok(token) => {
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(ServerError::AdminToken(format!(
                    "{} is empty: delete it to have a new one made",
                    path.display()
                )));
            }
            Ok((token, false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let token = new_token();
            match keyfile::write_private_file(path, format!("{token}\n").as_bytes(), false) {
                Ok(()) => Ok((token, true)),
                // Another replica sharing the directory made it first: use
                // theirs, so that every replica accepts the same token.
                Err(_) if path.exists() => ensure_admin_token(path),
                Err(e) => Err(ServerError::AdminToken(e.to_string())),
            }
        }
        Err(e) => Err(ServerError::AdminToken(format!("{}: {e}", path.display()))),
    }
}

/// Logs one answered request and records its metrics
/// ([`metrics::record_request`]). Refusals (4xx) are logged at debug with
/// their problem type and reason, server errors at error with their cause,
/// the rest at debug. The path is logged (it names at most a task and a
/// job), never the query, headers or body, so no token or report leaves in
/// a log line.
fn log_and_count<B>(
    res: &actix_web::dev::ServiceResponse<B>,
    elapsed: std::time::Duration,
    count: bool,
) {
    let req = res.request();
    let status = res.status();
    let response = res.response();
    let summary = response.extensions();
    let summary = summary.get::<problem::ProblemSummary>();
    let problem = summary.map(problem::ProblemSummary::name);
    if status.is_client_error() || status.is_server_error() {
        let method = req.method();
        let path = req.path();
        let code = status.as_u16();
        let ms = elapsed.as_secs_f64() * 1e3;
        let problem = problem.unwrap_or("-");
        let reason = summary.map_or("-", |s| s.detail.as_str());
        if status.is_server_error() {
            tracing::error!(%method, path, status = code, ms, problem, cause = reason, "request failed");
        } else {
            tracing::debug!(%method, path, status = code, ms, problem, reason, "request refused");
        }
    } else {
        tracing::debug!(method = %req.method(), path = req.path(), status = status.as_u16(), ms = elapsed.as_secs_f64() * 1e3, "request");
    }
    if count {
        metrics::record_request(req.method(), req.match_pattern(), status, problem, elapsed);
    }
}

/// Sets the DP-budget gauge of every HE task from the store, so that it is
/// right from the start, before any release in this process.
async fn seed_budget_gauges(store: &Datastore) {
    match store.list_tasks().await {
        Ok(tasks) => {
            for task in tasks {
                metrics::set_budget_spent(&task.task_id, task.budget_spent.to_f64());
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the tasks' budgets for the metrics"),
    }
}

/// The datastore keys' crypter ([`datastore::crypter::load_keys`]): from
/// the configured file or keys, else, on SQLite, from the data directory.
#[cfg(feature = "dap")]
fn open_crypter(config: &ServerConfig) -> Result<Arc<datastore::crypter::Crypter>, ServerError> {
    use datastore::crypter::{load_keys, Crypter, KeysOrigin};
    let sqlite_dir = config
        .database_url
        .is_none()
        .then_some(config.data_dir.as_path());
    let (keys, origin) = load_keys(
        config.datastore_keys_file.as_deref(),
        config.datastore_keys.clone(),
        sqlite_dir,
    )
    .map_err(|e| ServerError::Secrets(e.to_string()))?;
    if let KeysOrigin::Generated(path) = &origin {
        tracing::info!(
            path = %path.display(),
            "generated a datastore key (mode 0600) that seals the DAP task secrets; back it up              with the database, which cannot be read without it"
        );
    }
    #[cfg(unix)]
    if let KeysOrigin::File(path) | KeysOrigin::DataDir(path) = &origin {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the datastore keys file is readable by others than its owner: chmod 600 it"
                );
            }
        }
    }
    tracing::info!(keys = keys.len(), from = %origin, "datastore keys loaded");
    Ok(Arc::new(Crypter::new(&keys)))
}

/// Runs the server until SIGINT/SIGTERM, then finishes in-flight requests,
/// drains the report writers and returns.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    // Read the certificate and key first: a bad pair stops the start
    // before anything else is opened.
    let tls_config = config.tls.as_ref().map(tls::server_config).transpose()?;
    let store = Datastore::open(&config.store()).await?;
    if config.metrics {
        metrics::install();
        seed_budget_gauges(&store).await;
    }
    let token_path = config.admin_token_path();
    let (admin_token, created) = ensure_admin_token(&token_path)?;
    if created {
        tracing::info!(path = %token_path.display(), "created the admin token (mode 0600)");
    }
    let clock: SharedClock = Arc::new(RealClock);
    let (mut aggregator, writer) = Aggregator::with_queues(
        store.clone(),
        hash_token(&admin_token),
        clock.clone(),
        config.upload_queues,
    );
    if let Some(seed) = config.insecure_noise_seed {
        tracing::warn!(
            "release noise is drawn from a fixed test seed: it gives NO privacy; never run this \
             in production"
        );
        aggregator = aggregator.with_insecure_noise_seed(seed);
    }
    aggregator = aggregator.with_default_report_expiry_age(config.report_expiry_age);
    // DAP-09 (two-server Prio3) state and leader job driver, see `dap`.
    #[cfg(feature = "dap")]
    let (dap_state, dap_writer) = {
        let crypter = open_crypter(&config)?;
        let (mut state, writer) = dap::DapState::new(
            &store,
            hash_token(&admin_token),
            clock.clone(),
            config.dap.clone(),
            crypter,
        )
        .map_err(|e| ServerError::Run(io::Error::other(e.to_string())))?;
        state = state.with_upload_queue(config.upload_queues.writer);
        state.hpke_grace_secs = config.hpke_grace_secs;
        // Seal what an older server stored in plaintext, re-seal what an
        // older datastore key sealed, and make sure every secret opens:
        // better no start than a task that fails at its first report.
        let pass = state
            .store()
            .secure_secrets(clock.now())
            .await
            .map_err(|e| ServerError::Secrets(e.to_string()))?;
        if pass.migrated > 0 || pass.resealed > 0 || pass.expired_hpke_keys > 0 {
            tracing::info!(
                tasks = pass.tasks,
                sealed_plaintext_tasks = pass.migrated,
                resealed_under_the_first_key = pass.resealed,
                expired_hpke_keys_deleted = pass.expired_hpke_keys,
                "DAP task secrets at rest brought up to date"
            );
        }
        (web::Data::new(state), writer)
    };
    drop(admin_token);
    let state = web::Data::new(aggregator);
    let (stop_jobs, stop_rx) = watch::channel(false);
    let driver = config.job_driver.then(|| {
        jobs::spawn(
            state.clone().into_inner(),
            config.jobs.clone(),
            jobs::replica_name(),
            stop_rx.clone(),
        )
    });
    #[cfg(feature = "dap")]
    let dap_driver = config
        .job_driver
        .then(|| dap::leader::spawn(dap_state.clone().into_inner(), stop_rx.clone()));
    // The garbage collector runs with the job driver (leased: one replica
    // at a time).
    let collector = if config.job_driver {
        let collector = gc::Collector::new(store.clone());
        #[cfg(feature = "dap")]
        let collector = collector.with_dap(dap_state.store().clone());
        gc::spawn(collector, clock.clone(), config.gc.clone(), stop_rx.clone())
    } else {
        None
    };

    let app_state = state.clone();
    #[cfg(feature = "dap")]
    let app_dap_state = dap_state.clone();
    let body_timeout = body::BodyTimeout(config.body_timeout);
    let serve_metrics = config.metrics;
    let cors = config.cors.clone();
    let mut server = HttpServer::new(move || {
        let app = App::new()
            .app_data(app_state.clone())
            .app_data(body_timeout)
            .wrap_fn(move |req, srv| {
                let started = Instant::now();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    log_and_count(&res, started.elapsed(), serve_metrics);
                    Ok(res)
                }
            })
            .configure(|cfg| http::configure(cfg, &cors));
        let app = if serve_metrics {
            app.route("/metrics", web::get().to(metrics::scrape))
        } else {
            app
        };
        #[cfg(feature = "dap")]
        let app = app
            .app_data(app_dap_state.clone())
            .service(web::scope("/dap").configure(dap::handlers::configure));
        app
    })
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
    // actix-web's own default, one worker per core, made explicit so that
    // the connection cap can be split over the workers.
    let workers = config.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let limits = &config.connections;
    server = server
        .workers(workers)
        .max_connections(limits.per_worker(workers))
        .keep_alive(if limits.keep_alive.is_zero() {
            actix_web::http::KeepAlive::Disabled
        } else {
            actix_web::http::KeepAlive::Timeout(limits.keep_alive)
        })
        .client_request_timeout(limits.request_head_timeout)
        .tls_handshake_timeout(limits.tls_handshake_timeout);
    let bound = match tls_config {
        Some(tls) => server.bind_rustls_0_23(&config.listen, tls),
        None => server.bind(&config.listen),
    };
    let server = bound.map_err(|source| ServerError::Bind {
        addr: config.listen.clone(),
        source,
    })?;
    let addrs: Vec<SocketAddr> = server.addrs();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    for addr in &addrs {
        // A machine-readable line for scripts and tests.
        println!("hetally-server listening on {scheme}://{addr}");
        if config.tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "serving plain HTTP on a non-loopback address: tokens and reports cross the \
                 network unencrypted; give --tls-cert and --tls-key, or terminate TLS in front"
            );
        }
    }
    tracing::info!(
        listen = ?addrs,
        store = %store.describe(),
        admin_token = %token_path.display(),
        tls = config.tls.is_some(),
        cors = %config.cors.describe(),
        workers,
        max_connections_per_worker = limits.per_worker(workers),
        "hetally-server started"
    );
    server.run().await?;
    tracing::info!("stopped accepting requests; draining the report writers");
    let _ = stop_jobs.send(true);
    if let Some(driver) = driver {
        let _ = driver.await;
    }
    #[cfg(feature = "dap")]
    if let Some(driver) = dap_driver {
        let _ = driver.await;
    }
    if let Some(collector) = collector {
        let _ = collector.await;
    }
    drop(state);
    let _ = writer.await;
    #[cfg(feature = "dap")]
    {
        drop(dap_state);
        let _ = dap_writer.await;
    }
    tracing::info!("hetally-server stopped");
    Ok(())
}
