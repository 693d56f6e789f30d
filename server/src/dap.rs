//! The two-server Prio3 mode: DAP-09 (draft-ietf-ppm-dap-09) leader and
//! helper, interoperable with the published `janus_client` and
//! `janus_collector` 0.7 crates.
//!
//! A DAP task lives on two `hetally-server`s, one provisioned as its
//! *leader* and one as its *helper*, with the same task id, VDAF and
//! verification key. Clients upload reports to the leader (each report holds
//! one HPKE-encrypted Prio3 input share per aggregator); the leader's job
//! driver ([`leader`]) groups stored reports into aggregation jobs and
//! prepares them with the helper ([`helper`]) in one round; both keep the
//! sum of accepted output shares per time-precision bucket. A collector
//! creates a collection job for an aligned interval; when every report of
//! the interval has been aggregated, the leader asks the helper for its
//! aggregate share, and both shares, DP-noised if the task says so and
//! encrypted to the collector's HPKE key, make up the collection.
//!
//! * [`task`]: the task definition and admin provisioning;
//! * [`store`]: the DAP tables, on SQLite or PostgreSQL;
//! * [`handlers`]: the HTTP surface under `/dap/`;
//! * [`problem`]: DAP problem documents (`urn:ietf:params:ppm:dap:error:*`).
//!
//! Wire types are `janus_messages`'; VDAF work is `prio`'s, via
//! [`hetally_crypto::dap`]. CPU work (HPKE, preparation) runs on rayon
//! inside `spawn_blocking`, never on the async executor.

pub mod handlers;
pub mod helper;
pub mod leader;
pub mod problem;
pub mod store;
pub mod task;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hetally_crypto::dap::messages::problem_type::DapProblemType;
use hetally_crypto::dap::messages::{Role, TaskId};
use thiserror::Error;

use crate::datastore::{Datastore, StoreError};
use crate::writer::GroupWriter;
use store::{DapStore, StoredReport, UploadOutcome};
use task::DapTask;

/// Errors of the DAP surface; [`problem`] maps each to its HTTP status and
/// DAP problem type.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DapError {
    /// No such task here (or not in the role the request needs).
    #[error("unrecognized task {0}")]
    UnrecognizedTask(TaskId),
    /// `GET /hpke_config` without `task_id`.
    #[error("the HPKE configuration request needs a task_id query parameter")]
    MissingTaskId,
    /// A message did not decode or broke a protocol rule.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The request's media type is not the one the endpoint takes.
    #[error("media type {found:?} is not accepted here; send {expected}")]
    UnsupportedMediaType {
        /// What the request said.
        found: String,
        /// What the endpoint takes.
        expected: &'static str,
    },
    /// The body is larger than the endpoint accepts.
    #[error("request body of {0} bytes or more is too large")]
    PayloadTooLarge(u64),
    /// Missing or wrong token.
    #[error("unauthorized request: {0}")]
    Unauthorized(&'static str),
    /// A report was refused at upload.
    #[error("report rejected: {0}")]
    ReportRejected(String),
    /// A report's time is too far in the future.
    #[error("report time {time} is after now + tolerable clock skew ({limit})")]
    ReportTooEarly {
        /// Report time.
        time: u64,
        /// Latest acceptable time.
        limit: u64,
    },
    /// The report was encrypted to an HPKE configuration we do not have.
    #[error("unknown HPKE configuration id {0}; fetch hpke_config again")]
    OutdatedConfig(u8),
    /// The batch interval is not valid for the task.
    #[error("invalid batch: {0}")]
    BatchInvalid(String),
    /// Too few reports in the batch.
    #[error("the batch holds {count} reports, fewer than the task's minimum {min}")]
    InvalidBatchSize {
        /// Reports in the batch.
        count: u64,
        /// The task's minimum batch size.
        min: u64,
    },
    /// The interval was already collected by another collection job.
    #[error("the batch interval has already been collected")]
    BatchQueriedTooManyTimes,
    /// The interval overlaps one already collected.
    #[error("the batch interval overlaps an interval already collected: {0}")]
    BatchOverlap(String),
    /// Leader and helper disagree on the batch's reports.
    #[error("batch mismatch: {0}")]
    BatchMismatch(String),
    /// Unknown aggregation job.
    #[error("unrecognized aggregation job")]
    UnrecognizedAggregationJob,
    /// Unknown collection job.
    #[error("unrecognized collection job")]
    UnrecognizedCollectionJob,
    /// A job of this id exists with different parameters.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The task definition posted to the admin API is invalid.
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The peer aggregator failed or answered nonsense.
    #[error("peer aggregator: {0}")]
    Peer(String),
    /// The helper refused a request with a DAP problem document: a
    /// definitive answer (the leader fails the collection job with it).
    #[error("the helper refused: {detail}")]
    HelperRefused {
        /// The DAP problem type it answered.
        kind: DapProblemType,
        /// Its detail, or the type's description.
        detail: String,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for DapError {
    fn from(e: sqlx::Error) -> Self {
        DapError::Store(StoreError::Database(e))
    }
}

/// State shared by the DAP handlers and the leader's job driver.
#[derive(Debug)]
pub struct DapState {
    store: DapStore,
    admin_token_hash: [u8; 32],
    tasks: RwLock<HashMap<TaskId, Arc<DapTask>>>,
    http: reqwest::Client,
    /// The leader's upload group commit.
    uploads: GroupWriter<(TaskId, StoredReport), UploadOutcome>,
    /// Reports per leader aggregation job.
    pub job_size: u64,
}

impl DapState {
    /// DAP state on the server's datastore, and the handle of its upload
    /// writer, which stops once the state is dropped and every queued
    /// upload is committed (await it on shutdown). Call inside a Tokio
    /// runtime.
    pub fn new(
        store: &Datastore,
        admin_token_hash: [u8; 32],
    ) -> Result<(Self, tokio::task::JoinHandle<()>), DapError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .user_agent(concat!("hetally-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DapError::Internal(format!("HTTP client: {e}")))?;
        let store = DapStore::new(store);
        let writer_store = store.clone();
        let (uploads, handle) = GroupWriter::spawn(move |reports: Vec<(TaskId, StoredReport)>| {
            let store = writer_store.clone();
            async move {
                store
                    .insert_reports(&reports)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
        let state = DapState {
            store,
            admin_token_hash,
            tasks: RwLock::new(HashMap::new()),
            http,
            uploads,
            job_size: 1000,
        };
        Ok((state, handle))
    }

    /// Leader: stores an uploaded report with the next group commit and
    /// returns what became of it once that has committed.
    pub async fn store_upload(
        &self,
        task_id: TaskId,
        report: StoredReport,
    ) -> Result<UploadOutcome, DapError> {
        self.uploads
            .write((task_id, report))
            .await
            .map_err(|e| DapError::Internal(e.to_string()))
    }

    /// The store.
    pub fn store(&self) -> &DapStore {
        &self.store
    }

    /// A task, from the cache or the store. Tasks never change once
    /// created, so the cache needs no invalidation.
    pub async fn task(&self, task_id: &TaskId) -> Result<Arc<DapTask>, DapError> {
        if let Some(task) = self
            .tasks
            .read()
            .map_err(|_| DapError::Internal("task cache poisoned".into()))?
            .get(task_id)
        {
            return Ok(task.clone());
        }
        let task = self
            .store
            .get_task(task_id)
            .await?
            .ok_or(DapError::UnrecognizedTask(*task_id))?;
        let task = Arc::new(task);
        self.tasks
            .write()
            .map_err(|_| DapError::Internal("task cache poisoned".into()))?
            .insert(*task_id, task.clone());
        Ok(task)
    }

    /// A task that must have `role` here.
    pub async fn task_in_role(
        &self,
        task_id: &TaskId,
        role: Role,
    ) -> Result<Arc<DapTask>, DapError> {
        let task = self.task(task_id).await?;
        if task.role != role {
            return Err(DapError::UnrecognizedTask(*task_id));
        }
        Ok(task)
    }
}

/// Now, Unix seconds.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
