//! hetally-server: accepts encrypted reports, stores them durably, and
//! releases encrypted, DP-noised aggregates of non-overlapping batches.
//!
//! * [`http`]: thin actix-web handlers and the problem-document mapping;
//! * [`aggregator`]: tasks, uploads (group commit), releases, budgets;
//! * [`datastore`]: SQLite (embedded default) or PostgreSQL (replicas)
//!   behind typed methods.
//!
//! The binary is `src/main.rs`; [`run`] is the whole server.

pub mod aggregator;
pub mod dap;
pub mod datastore;
pub mod http;
mod writer;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{web, App, HttpServer};
use hetally_crypto::keyfile;
use thiserror::Error;

use aggregator::jobs::{self, JobConfig};
use aggregator::{hash_token, new_token, Aggregator};
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

/// Reads the admin token at `path`, creating it (mode 0600) if missing.
pub fn ensure_admin_token(path: &Path) -> Result<(String, bool), ServerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
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
/// drains the report writer and returns.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    let store = Datastore::open(&config.store()).await?;
    let token_path = config.admin_token_path();
    let (admin_token, created) = ensure_admin_token(&token_path)?;
    if created {
        tracing::info!(path = %token_path.display(), "created the admin token (mode 0600)");
    }
    let (aggregator, writer) = Aggregator::new(store.clone(), hash_token(&admin_token));
    // DAP-09 (two-server Prio3) state and leader job driver, see `dap`.
    let (dap_state, dap_writer) = dap::DapState::new(&store, hash_token(&admin_token))
        .map_err(|e| ServerError::Run(io::Error::other(e.to_string())))?;
    let dap_state = web::Data::new(dap_state);
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

    let dap_driver = config
        .job_driver
        .then(|| dap::leader::spawn(dap_state.clone().into_inner(), stop_rx.clone()));

    let app_state = state.clone();
    let app_dap_state = dap_state.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(app_dap_state.clone())
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
            .configure(http::configure)
            .service(web::scope("/dap").configure(dap::handlers::configure))
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
    tracing::info!("stopped accepting requests; draining the report writer");
    let _ = stop_jobs.send(true);
    if let Some(driver) = driver {
        let _ = driver.await;
    }
    if let Some(driver) = dap_driver {
        let _ = driver.await;
    }
    drop(state);
    drop(dap_state);
    let _ = writer.await;
    let _ = dap_writer.await;
    tracing::info!("hetally-server stopped");
    Ok(())
}
