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
//! with tokens, attempts and backoff) and the group-commit writer.
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
pub mod http;
pub mod lease;
pub mod problem;
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
    /// Run the aggregation job driver in this process.
    pub job_driver: bool,
    /// Job driver settings.
    pub jobs: JobConfig,
    /// The DAP leader's driver settings.
    #[cfg(feature = "dap")]
    pub dap: dap::leader::DriverConfig,
    /// Deadline for reading one request body.
    pub body_timeout: std::time::Duration,
    /// Tests only: draw release noise from this seed rather than from the
    /// operating system ([`Aggregator::with_insecure_noise_seed`]). Anyone
    /// who knows it can remove the noise.
    pub insecure_noise_seed: Option<[u8; 32]>,
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
            job_driver: true,
            jobs: JobConfig::default(),
            #[cfg(feature = "dap")]
            dap: dap::leader::DriverConfig::default(),
            body_timeout: body::DEFAULT_BODY_TIMEOUT,
            insecure_noise_seed: None,
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

/// Runs the server until SIGINT/SIGTERM, then finishes in-flight requests,
/// drains the report writers and returns.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    let store = Datastore::open(&config.store()).await?;
    let token_path = config.admin_token_path();
    let (admin_token, created) = ensure_admin_token(&token_path)?;
    if created {
        tracing::info!(path = %token_path.display(), "created the admin token (mode 0600)");
    }
    let clock: SharedClock = Arc::new(RealClock);
    let (mut aggregator, writer) =
        Aggregator::new(store.clone(), hash_token(&admin_token), clock.clone());
    if let Some(seed) = config.insecure_noise_seed {
        tracing::warn!(
            "release noise is drawn from a fixed test seed: it gives NO privacy; never run this \
             in production"
        );
        aggregator = aggregator.with_insecure_noise_seed(seed);
    }
    // DAP-09 (two-server Prio3) state and leader job driver, see `dap`.
    #[cfg(feature = "dap")]
    let (dap_state, dap_writer) = {
        let (state, writer) = dap::DapState::new(
            &store,
            hash_token(&admin_token),
            clock.clone(),
            config.dap.clone(),
        )
        .map_err(|e| ServerError::Run(io::Error::other(e.to_string())))?;
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

    let app_state = state.clone();
    #[cfg(feature = "dap")]
    let app_dap_state = dap_state.clone();
    let body_timeout = body::BodyTimeout(config.body_timeout);
    let mut server = HttpServer::new(move || {
        let app = App::new()
            .app_data(app_state.clone())
            .app_data(body_timeout)
            .wrap_fn(|req, srv| {
                let started = Instant::now();
                let method = req.method().clone();
                let path = req.path().to_string();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    let status = res.status().as_u16();
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    if status >= 500 {
                        tracing::error!(%method, %path, status, ms, "request");
                    } else if status >= 400 {
                        tracing::info!(%method, %path, status, ms, "request");
                    } else {
                        tracing::debug!(%method, %path, status, ms, "request");
                    }
                    Ok(res)
                }
            })
            .configure(http::configure);
        #[cfg(feature = "dap")]
        let app = app
            .app_data(app_dap_state.clone())
            .service(web::scope("/dap").configure(dap::handlers::configure));
        app
    })
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    let server = server
        .bind(&config.listen)
        .map_err(|source| ServerError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let addrs: Vec<SocketAddr> = server.addrs();
    for addr in &addrs {
        // A machine-readable line for scripts and tests.
        println!("hetally-server listening on http://{addr}");
    }
    tracing::info!(
        listen = ?addrs,
        store = %store.describe(),
        admin_token = %token_path.display(),
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
