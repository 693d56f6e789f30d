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
//! * [`task`]: the task definition, admin provisioning, body limits;
//! * [`hpke_keys`]: each task's HPKE key pairs, their rotation and cache;
//! * [`aggregation`]: checksums, bucket aggregates, sealed shares (both
//!   roles);
//! * [`leader`]: the leader's job driver; [`helper`]: the helper's side;
//! * [`handlers`]: the HTTP surface under `/dap/`.
//!
//! The DAP tables are `crate::datastore::dap`'s; bodies are read, problems
//! answered, tasks cached, time told and jobs leased by the server's shared
//! infrastructure (`crate::body`, `crate::problem`, `crate::cache`,
//! `crate::clock`, `crate::lease`), as for the HE API. Wire types are
//! `janus_messages`'; VDAF work is `prio`'s, via [`hetally_dap`]. CPU work
//! (HPKE, preparation) runs on rayon inside `spawn_blocking`, never on the
//! async executor.

pub mod aggregation;
pub mod handlers;
pub mod helper;
pub mod hpke_keys;
pub mod leader;
pub mod task;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use hetally_dap::hpke::generate_keypair;
use hetally_dap::messages::problem_type::DapProblemType;
use hetally_dap::messages::{HpkeConfigId, Role, TaskId};
use rand::Rng;
use thiserror::Error;

use crate::body::BodyError;
use crate::cache::TaskCache;
use crate::clock::SharedClock;
use crate::datastore::crypter::{Crypter, CrypterError};
use crate::datastore::dap::{DapStore, StoredReport, UploadOutcome};
use crate::datastore::{Datastore, StoreError};
use crate::problem::{respond, ProblemDocument};
use crate::queue::QueueLimit;
use crate::writer::{GroupWriter, WriteError};
use hpke_keys::{
    HpkeKeyCache, HpkeKeySet, Rotation, CACHE_TTL, DEFAULT_HPKE_GRACE_SECS, MIN_RELOAD,
};
use leader::DriverConfig;
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
    /// The body is larger than the endpoint accepts, or did not arrive.
    #[error(transparent)]
    Body(#[from] BodyError),
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
    /// A task's stored secrets could not be sealed or opened with the
    /// datastore keys.
    #[error("DAP task {task_id}: {source}")]
    Secrets {
        /// The task.
        task_id: String,
        /// What went wrong (never key material).
        source: CrypterError,
    },
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
    /// The leader's upload queue is full: answered 429 with
    /// `Retry-After` (DAP-09 defines no problem type for it).
    #[error("{0}; the report was not stored")]
    Overloaded(crate::queue::Full),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for DapError {
    fn from(e: sqlx::Error) -> Self {
        DapError::Store(StoreError::Database(e))
    }
}

impl DapError {
    /// Status and DAP problem type (where DAP-09 defines one).
    fn classify(&self) -> (StatusCode, Option<DapProblemType>) {
        use DapProblemType as P;
        match self {
            DapError::UnrecognizedTask(_) => (StatusCode::NOT_FOUND, Some(P::UnrecognizedTask)),
            DapError::MissingTaskId => (StatusCode::BAD_REQUEST, Some(P::MissingTaskId)),
            DapError::InvalidMessage(_) => (StatusCode::BAD_REQUEST, Some(P::InvalidMessage)),
            DapError::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some(P::InvalidMessage))
            }
            DapError::Body(BodyError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, Some(P::InvalidMessage))
            }
            DapError::Body(BodyError::Timeout(_)) => {
                (StatusCode::REQUEST_TIMEOUT, Some(P::InvalidMessage))
            }
            DapError::Body(_) => (StatusCode::BAD_REQUEST, Some(P::InvalidMessage)),
            DapError::Unauthorized(_) => (StatusCode::FORBIDDEN, Some(P::UnauthorizedRequest)),
            DapError::ReportRejected(_) => (StatusCode::BAD_REQUEST, Some(P::ReportRejected)),
            DapError::ReportTooEarly { .. } => (StatusCode::BAD_REQUEST, Some(P::ReportTooEarly)),
            DapError::OutdatedConfig(_) => (StatusCode::BAD_REQUEST, Some(P::OutdatedConfig)),
            DapError::BatchInvalid(_) => (StatusCode::BAD_REQUEST, Some(P::BatchInvalid)),
            DapError::InvalidBatchSize { .. } => {
                (StatusCode::BAD_REQUEST, Some(P::InvalidBatchSize))
            }
            DapError::BatchQueriedTooManyTimes => {
                (StatusCode::BAD_REQUEST, Some(P::BatchQueriedTooManyTimes))
            }
            DapError::BatchOverlap(_) => (StatusCode::BAD_REQUEST, Some(P::BatchOverlap)),
            DapError::BatchMismatch(_) => (StatusCode::BAD_REQUEST, Some(P::BatchMismatch)),
            DapError::UnrecognizedAggregationJob => {
                (StatusCode::NOT_FOUND, Some(P::UnrecognizedAggregationJob))
            }
            DapError::UnrecognizedCollectionJob => (StatusCode::NOT_FOUND, None),
            DapError::Conflict(_) => (StatusCode::CONFLICT, None),
            DapError::InvalidTask(_) => (StatusCode::BAD_REQUEST, Some(P::InvalidTask)),
            DapError::Peer(_) => (StatusCode::BAD_GATEWAY, None),
            DapError::HelperRefused { kind, .. } => (StatusCode::BAD_REQUEST, Some(*kind)),
            DapError::Overloaded(_) => (StatusCode::TOO_MANY_REQUESTS, None),
            DapError::Store(_) | DapError::Secrets { .. } | DapError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        }
    }

    /// The problem document of this error, about `task_id` when the
    /// request named a task (DAP-09 section 3.2: problem documents SHOULD
    /// carry the task id whenever it is known).
    pub fn problem(&self, task_id: Option<&TaskId>) -> ProblemDocument {
        let (status, kind) = self.classify();
        let mut doc = ProblemDocument::new(
            status,
            kind.map(|k| k.type_uri()).unwrap_or("about:blank"),
            self.to_string(),
        );
        doc.title = Some(
            kind.map(|k| k.description())
                .or(status.canonical_reason())
                .unwrap_or("Error")
                .to_string(),
        );
        if let DapError::Overloaded(full) = self {
            doc.retry_after = Some(full.retry_after);
        }
        doc.task_id = match self {
            DapError::UnrecognizedTask(id) => Some(id.to_string()),
            _ => task_id.map(ToString::to_string),
        };
        doc
    }

    /// This error as the answer to a request about `task_id`.
    pub fn in_task(self, task_id: TaskId) -> DapFailure {
        DapFailure {
            error: self,
            task_id: Some(task_id),
        }
    }
}

/// A DAP error with the task it is about, as handlers answer it.
#[derive(Debug, Error)]
#[error("{error}")]
pub struct DapFailure {
    /// What went wrong.
    pub error: DapError,
    /// The task the request named, if it named one.
    pub task_id: Option<TaskId>,
}

impl From<DapError> for DapFailure {
    fn from(error: DapError) -> Self {
        DapFailure {
            error,
            task_id: None,
        }
    }
}

impl ResponseError for DapFailure {
    fn status_code(&self) -> StatusCode {
        self.error.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        respond(self.error.problem(self.task_id.as_ref()))
    }
}

/// State shared by the DAP handlers and the leader's job driver.
#[derive(Debug)]
pub struct DapState {
    store: DapStore,
    admin_token_hash: [u8; 32],
    tasks: TaskCache<TaskId, DapTask>,
    http: reqwest::Client,
    /// The leader's upload group commit.
    uploads: GroupWriter<(TaskId, StoredReport), UploadOutcome>,
    /// Each task's HPKE key pairs, cached ([`hpke_keys`]).
    hpke: HpkeKeyCache,
    /// Seconds rotated-out HPKE configurations keep decrypting by default
    /// (`--hpke-grace-secs`).
    pub hpke_grace_secs: u64,
    /// The clock.
    pub clock: SharedClock,
    /// The leader's job driver settings.
    pub driver: DriverConfig,
}

impl DapState {
    /// DAP state on the server's datastore, and the handle of its upload
    /// writer, which stops once the state is dropped and every queued
    /// upload is committed (await it on shutdown). Task secrets are sealed
    /// and opened with `crypter`. Call inside a Tokio runtime.
    pub fn new(
        store: &Datastore,
        admin_token_hash: [u8; 32],
        clock: SharedClock,
        driver: DriverConfig,
        crypter: Arc<Crypter>,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), DapError> {
        let mut http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(driver.peer_timeout_secs))
            .user_agent(concat!("hetally-server/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &driver.helper_ca_file {
            // Trusted besides the system's roots, for helpers whose
            // certificate a private CA signed.
            let pem = std::fs::read(path).map_err(|e| {
                DapError::Internal(format!("helper CA file {}: {e}", path.display()))
            })?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|roots| !roots.is_empty())
                .ok_or_else(|| {
                    DapError::Internal(format!(
                        "helper CA file {}: no PEM certificate in it",
                        path.display()
                    ))
                })?;
            http = http.tls_certs_merge(roots);
        }
        let http = http
            .build()
            .map_err(|e| DapError::Internal(format!("HTTP client: {e}")))?;
        let store = DapStore::new(store, crypter);
        let writer_store = store.clone();
        let (uploads, handle) = GroupWriter::spawn(
            "dap_writer",
            QueueLimit::WRITER,
            move |reports: Vec<(TaskId, StoredReport)>| {
                let store = writer_store.clone();
                async move {
                    store
                        .insert_reports(&reports)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
        );
        let state = DapState {
            store,
            admin_token_hash,
            tasks: TaskCache::new(),
            http,
            uploads,
            hpke: HpkeKeyCache::default(),
            hpke_grace_secs: DEFAULT_HPKE_GRACE_SECS,
            clock,
            driver,
        };
        Ok((state, handle))
    }

    /// Bounds the leader's upload queue by `limit` instead of the default
    /// [`QueueLimit::WRITER`]; a full queue answers 429. Call before the
    /// state serves requests.
    pub fn with_upload_queue(mut self, limit: QueueLimit) -> Self {
        self.uploads = self.uploads.with_limit(limit);
        self
    }

    /// Leader: stores an uploaded report with the next group commit and
    /// returns what became of it once that has committed.
    pub async fn store_upload(
        &self,
        task_id: TaskId,
        report: StoredReport,
    ) -> Result<UploadOutcome, DapError> {
        let bytes = report.public_share.len()
            + report.leader_input_share.len()
            + report.helper_encrypted.len();
        self.uploads
            .write((task_id, report), bytes)
            .await
            .map_err(|e| match e {
                WriteError::Full(full) => DapError::Overloaded(full),
                WriteError::Failed(message) => DapError::Internal(message.to_string()),
            })
    }

    /// The store.
    pub fn store(&self) -> &DapStore {
        &self.store
    }

    /// A task, from the cache or the store. Tasks never change once
    /// created, so the cache needs no invalidation.
    pub async fn task(&self, task_id: &TaskId) -> Result<Arc<DapTask>, DapError> {
        self.tasks
            .get_or_load(task_id, || self.store.get_task(task_id))
            .await?
            .ok_or(DapError::UnrecognizedTask(*task_id))
    }

    /// A task's HPKE key pairs: the cached set, read again once it is
    /// [`CACHE_TTL`] old.
    pub async fn hpke_keys(&self, task_id: &TaskId) -> Result<Arc<HpkeKeySet>, DapError> {
        match self.hpke.get(task_id) {
            Some((set, at)) if at.elapsed() < CACHE_TTL => Ok(set),
            _ => self.reload_hpke_keys(task_id).await,
        }
    }

    /// A task's HPKE key pairs for reports naming `ids` at `now`: if one of
    /// them is not in the cached set, the set is read again (at most once
    /// per [`MIN_RELOAD`]), so that a rotation made on another replica is
    /// seen by the first report that uses it.
    pub async fn hpke_keys_for(
        &self,
        task_id: &TaskId,
        ids: impl IntoIterator<Item = HpkeConfigId>,
        now: u64,
    ) -> Result<Arc<HpkeKeySet>, DapError> {
        let set = self.hpke_keys(task_id).await?;
        let fresh = self
            .hpke
            .get(task_id)
            .is_some_and(|(_, at)| at.elapsed() < MIN_RELOAD);
        if !fresh && ids.into_iter().any(|id| set.get(&id, now).is_none()) {
            return self.reload_hpke_keys(task_id).await;
        }
        Ok(set)
    }

    async fn reload_hpke_keys(&self, task_id: &TaskId) -> Result<Arc<HpkeKeySet>, DapError> {
        let loaded = Instant::now();
        let now = self.clock.now();
        let keys = self.store.hpke_keys(task_id).await?;
        if keys.iter().any(|k| k.expires_at.is_some_and(|e| e <= now)) {
            // Past their grace: delete the private keys now rather than at
            // the next rotation or restart.
            let mut tx = self.store.begin().await?;
            tx.lock_task(task_id).await?;
            tx.delete_expired_hpke_keys(task_id, now).await?;
            tx.commit().await?;
        }
        let set = Arc::new(HpkeKeySet::new(keys));
        self.hpke.put(*task_id, set.clone(), loaded);
        Ok(set)
    }

    /// Rotates a task's HPKE configuration: a new key pair becomes the
    /// active one, and the previous ones decrypt for `retire_after` more
    /// seconds (0: not at all); those already expired are deleted.
    pub async fn rotate_hpke_config(
        &self,
        task_id: &TaskId,
        retire_after: u64,
    ) -> Result<Rotation, DapError> {
        self.task(task_id).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.lock_task(task_id).await?;
        let taken = tx.hpke_config_ids(task_id).await?;
        let free: Vec<u8> = (0..=u8::MAX).filter(|id| !taken.contains(id)).collect();
        if free.is_empty() {
            return Err(DapError::Conflict(format!(
                "task {task_id} holds 256 HPKE configurations; retire some first \
                 (retire_previous_after_secs: 0)"
            )));
        }
        // A random free id, not one a stale client may still hold.
        let id = free[rand::rngs::OsRng.gen_range(0..free.len())];
        let keypair = generate_keypair(id).map_err(|e| DapError::Internal(e.to_string()))?;
        tx.retire_hpke_keys(task_id, now.saturating_add(retire_after), now)
            .await?;
        tx.put_hpke_key(task_id, &keypair, now).await?;
        tx.commit().await?;
        let keys = self.reload_hpke_keys(task_id).await?;
        Ok(Rotation {
            config: keypair.config().clone(),
            keys,
        })
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
