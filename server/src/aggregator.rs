//! The aggregator: tasks, uploads, batches, releases, budgets.
//!
//! HTTP handlers are thin and call into [`Aggregator`]; everything the
//! service decides (which report is accepted, which batch may be released,
//! how much budget a release spends) is decided here, and every error is a
//! variant of [`Error`] that the HTTP layer maps to a problem document in
//! one place.

pub mod jobs;
mod release;
mod verifier;

use std::sync::Arc;

use hetally_dp::Guarantee;
use hetally_protocol::dp::{DpMechanism, Rational, Relation, TrusteeNoise};
use hetally_protocol::report::{self, ReportError};
use hetally_protocol::{
    DynAggregator, Measurement, Report, ReportContext, ReportId, SchemeError, TaskDefinition,
    TaskId,
};
use thiserror::Error;

use crate::auth::{hash_token, new_token, token_matches};
use crate::cache::TaskCache;
use crate::clock::SharedClock;
use crate::datastore::{Datastore, InsertOutcome, NewReport, StoreError, TaskRecord};
use crate::queue::{Full, QueueLimit};
use crate::writer::{spawn_report_writer, ReportWriter, WriteError};
pub use release::ReleaseOutcome;
use verifier::{ReportVerifier, Verdict};

/// Reports may carry a time at most this many seconds in the future.
pub const TOLERABLE_CLOCK_SKEW: u64 = 60;

/// Longest report expiry age a task may have, seconds (100 years).
pub const MAX_REPORT_EXPIRY_AGE: u64 = 100 * 365 * 24 * 3600;

/// Default most reports per release: the slot layout is sized for it.
pub const DEFAULT_MAX_BATCH_SIZE: u64 = u32::MAX as u64;

/// Errors the service answers with; see `http::problem` for the mapping.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// No such task.
    #[error("no task with id {0}")]
    UnknownTask(TaskId),
    /// The task exists but has no such resource.
    #[error("{0}")]
    NotFound(String),
    /// A token is required and none was sent.
    #[error("{0}")]
    MissingToken(&'static str),
    /// The token sent is not the right one.
    #[error("{0}")]
    WrongToken(&'static str),
    /// The task definition is not acceptable.
    #[error("{0}")]
    InvalidTask(String),
    /// The task exists already.
    #[error("task {0} already exists")]
    TaskExists(TaskId),
    /// A request body is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The media type is wrong.
    #[error("unsupported media type {found:?}: send {expected}")]
    UnsupportedMediaType {
        /// Media type received.
        found: String,
        /// Media type expected.
        expected: &'static str,
    },
    /// The body is over the limit.
    #[error("request body of {len} bytes is over the limit of {max} bytes for this task")]
    PayloadTooLarge {
        /// Bytes received (or announced).
        len: u64,
        /// Limit.
        max: u64,
    },
    /// The report envelope does not decode.
    #[error("{0}")]
    MalformedReport(ReportError),
    /// The report's payload fails the scheme's checks.
    #[error("invalid report: {0}")]
    InvalidReport(SchemeError),
    /// The report's time is not a multiple of the task's precision.
    #[error("report time {time} is not a multiple of the task's time precision ({precision} s): round it down")]
    MisalignedReportTime {
        /// Report time.
        time: u64,
        /// Task time precision.
        precision: u64,
    },
    /// The report's time is too far in the future.
    #[error("report time {time} is more than {TOLERABLE_CLOCK_SKEW} s ahead of the server's clock ({now})")]
    ReportTooEarly {
        /// Report time.
        time: u64,
        /// Server time.
        now: u64,
    },
    /// The report's time is older than the task's report expiry age.
    #[error(
        "report time {time} is older than the task's report expiry age ({age} s): the oldest \
         report time accepted now is {oldest}; such reports are no longer collected"
    )]
    ReportExpired {
        /// Report time.
        time: u64,
        /// The task's report expiry age, seconds.
        age: u64,
        /// The oldest report time accepted now.
        oldest: u64,
    },
    /// A report with this id was already accepted.
    #[error("report {0} was already uploaded")]
    ReportReplayed(ReportId),
    /// The report's interval has been released.
    #[error("report {0} falls in a batch interval that has already been released")]
    BatchCollected(ReportId),
    /// A batch interval is not aligned to the time precision.
    #[error("batch interval [{start}, {start}+{duration}) must start and last a positive multiple of the time precision ({precision} s)")]
    MisalignedInterval {
        /// Start.
        start: u64,
        /// Duration.
        duration: u64,
        /// Task time precision.
        precision: u64,
    },
    /// Too few reports to release.
    #[error("the batch holds {count} reports; the task's minimum is {min}")]
    BatchTooSmall {
        /// Reports in the batch.
        count: u64,
        /// Task minimum.
        min: u64,
    },
    /// Too many reports to release in one batch.
    #[error(
        "the batch holds {count} reports; the task's maximum is {max}: collect a shorter interval"
    )]
    BatchTooLarge {
        /// Reports in the batch.
        count: u64,
        /// Task maximum.
        max: u64,
    },
    /// The interval overlaps an earlier release.
    #[error("the batch overlaps the released batch [{start}, {start}+{duration}): batches may not overlap")]
    BatchOverlap {
        /// Start of the release it overlaps.
        start: u64,
        /// Its duration.
        duration: u64,
    },
    /// Add/remove: the batch's noisy report count fell outside the task's
    /// limits, so no values were released. It names only the noisy count.
    #[error(
        "no values were released for this batch: its report count as released with DP noise is \
         {noisy}, outside the task's batch size limits [{min}, {max}]. The interval is closed and \
         its budget spent (the noisy count is the release); collect longer intervals so that \
         batches are well inside the limits"
    )]
    BatchWithheld {
        /// The noisy report count, as released.
        noisy: i64,
        /// Task minimum.
        min: u64,
        /// Task maximum.
        max: u64,
    },
    /// The release would spend more budget than is left.
    #[error("{0}")]
    BudgetExhausted(String),
    /// A task whose trustees draw its noise: the batch is claimed and
    /// summed, and the release waits for their contributions (answered
    /// 202, not as a problem).
    #[error("the release waits for its trustees' noise: {have} of {needed} contributions")]
    AwaitingNoise {
        /// The release's batch start.
        start: u64,
        /// Its duration.
        duration: u64,
        /// The trustees who have contributed, in order.
        trustees: Vec<u16>,
        /// Contributions stored.
        have: usize,
        /// Contributions needed.
        needed: usize,
    },
    /// A noise contribution the release does not take.
    #[error("{0}")]
    NoiseRefused(String),
    /// The server is too busy to take the upload now: the verifier's or
    /// the writer's queue is full. Answered 429 with `Retry-After`.
    #[error("{0}; the report was not stored")]
    Overloaded(#[from] Full),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A task, decoded and ready to serve.
#[derive(Debug)]
pub struct TaskState {
    /// The task id.
    pub id: TaskId,
    /// The decoded definition.
    pub definition: TaskDefinition,
    /// Its canonical bytes (served to clients, who hash them).
    pub definition_bytes: Vec<u8>,
    /// The task's scheme, aggregator side.
    pub aggregator: Arc<dyn DynAggregator>,
    /// The DP guarantee one release gives: relation, sensitivity, the noise
    /// to draw and what a release costs.
    pub guarantee: Guarantee,
    /// The CRS clients prove against (TFHE tasks with input proofs),
    /// served by `GET /tasks/{id}/crs`.
    pub crs: Option<Arc<Vec<u8>>>,
    token_hash: [u8; 32],
    /// Tasks whose trustees draw the noise: the SHA-256 of each trustee's
    /// token, trustee 1 first.
    trustee_token_hashes: Option<Vec<[u8; 32]>>,
    /// Unix seconds.
    pub created_at: i64,
    /// Seconds after which reports expire ([`crate::gc`]).
    pub report_expiry_age: u64,
    /// Serialises this process's releases of the task.
    release_lock: tokio::sync::Mutex<()>,
}

impl TaskState {
    /// Decodes a stored task off the async executor (a TFHE CRS takes a
    /// while to check).
    async fn load(record: TaskRecord) -> Result<Self, Error> {
        tokio::task::spawn_blocking(move || Self::from_record(&record))
            .await
            .map_err(|e| Error::Internal(format!("loading a task: {e}")))?
    }

    fn from_record(record: &TaskRecord) -> Result<Self, Error> {
        let definition = TaskDefinition::from_bytes(&record.definition).map_err(|e| {
            Error::Internal(format!("stored task {} is unreadable: {e}", record.task_id))
        })?;
        let aggregator = hetally_schemes::aggregator(&definition, record.crs.as_deref())
            .map_err(|e| Error::Internal(format!("stored task {}: {e}", record.task_id)))?;
        let guarantee = Guarantee::for_release(
            &definition.measurement,
            &definition.dp,
            definition.relation,
            definition.trustee_noise.as_ref(),
        )
        .map_err(|e| Error::Internal(format!("stored task {}: {e}", record.task_id)))?;
        Ok(TaskState {
            id: record.task_id,
            definition,
            definition_bytes: record.definition.clone(),
            aggregator,
            guarantee,
            crs: record.crs.clone().map(Arc::new),
            token_hash: record.collector_token_hash,
            trustee_token_hashes: record.trustee_token_hashes.clone(),
            created_at: record.created_at,
            report_expiry_age: record.report_expiry_age,
            release_lock: tokio::sync::Mutex::new(()),
        })
    }
}

/// What a new task is made from (the admin API's request).
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The collector's public key file (its encoding).
    pub public_key: Vec<u8>,
    /// Measurement type.
    pub measurement: Measurement,
    /// Fewest reports per release.
    pub min_batch_size: u64,
    /// Most reports per release (default [`DEFAULT_MAX_BATCH_SIZE`]).
    pub max_batch_size: Option<u64>,
    /// Seconds.
    pub time_precision: u64,
    /// DP mechanism.
    pub dp: DpMechanism,
    /// Total budget.
    pub budget: Option<Rational>,
    /// Reports must carry input proofs.
    pub input_proofs: bool,
    /// The neighbouring relation of the DP guarantee.
    pub relation: Relation,
    /// Seconds after which reports expire; the server's default if `None`.
    /// Not part of the definition (nor of the task id).
    pub report_expiry_age: Option<u64>,
    /// Noise drawn by the trustees of a threshold key.
    pub trustee_noise: Option<TrusteeNoise>,
}

/// The tokens of a new task, shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskTokens {
    /// The collector's.
    pub collector: String,
    /// A task with trustee noise: each trustee's, trustee 1 first.
    pub trustees: Option<Vec<String>>,
}

impl std::fmt::Debug for TaskTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskTokens")
            .field("collector", &"<redacted>")
            .field("trustees", &self.trustees.as_ref().map(Vec::len))
            .finish()
    }
}

/// Who is asking, among those allowed to read a task's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The operator (admin token): sees exact report counts of every task;
    /// it already sees the ciphertexts.
    Operator,
    /// The task's collector: sees exact report counts only where the
    /// task's relation publishes them (replace-one).
    Collector,
}

impl Reader {
    /// True if this reader may see the exact report counts of `task`.
    pub fn sees_exact_counts(self, task: &TaskState) -> bool {
        self == Reader::Operator || task.guarantee.relation.publishes_batch_size()
    }
}

/// Task status (the HTTP layer shows each reader what it may see).
#[derive(Debug, Clone)]
pub struct TaskStatus {
    /// Reports stored.
    pub reports: u64,
    /// Reports in no release yet.
    pub unreleased_reports: u64,
    /// Releases made (including pending).
    pub releases: u64,
    /// Budget spent.
    pub budget_spent: Rational,
}

/// How much the upload queues may hold before uploads are refused with
/// 429 ([`Error::Overloaded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQueues {
    /// Reports waiting for, or in, input proof verification.
    pub verifier: QueueLimit,
    /// Reports waiting for, or in, a group commit.
    pub writer: QueueLimit,
}

impl Default for UploadQueues {
    fn default() -> Self {
        UploadQueues {
            verifier: QueueLimit::VERIFIER,
            writer: QueueLimit::WRITER,
        }
    }
}

/// The service's state; see the module docs.
#[derive(Debug)]
pub struct Aggregator {
    store: Datastore,
    writer: ReportWriter,
    verifier: ReportVerifier,
    tasks: TaskCache<TaskId, TaskState>,
    admin_token_hash: [u8; 32],
    clock: SharedClock,
    noise_seed: Option<[u8; 32]>,
    default_report_expiry_age: u64,
}

impl Aggregator {
    /// Starts the aggregator (and its report writer) on a store, with the
    /// default [`UploadQueues`]. The writer stops when the aggregator is
    /// dropped and its queue has drained.
    pub fn new(
        store: Datastore,
        admin_token_hash: [u8; 32],
        clock: SharedClock,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        Self::with_queues(store, admin_token_hash, clock, UploadQueues::default())
    }

    /// [`Aggregator::new`] with the upload queues bounded by `queues`.
    pub fn with_queues(
        store: Datastore,
        admin_token_hash: [u8; 32],
        clock: SharedClock,
        queues: UploadQueues,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (writer, handle) = spawn_report_writer(store.clone(), queues.writer);
        let verifier = ReportVerifier::spawn(queues.verifier, store.clone());
        (
            Aggregator {
                store,
                writer,
                verifier,
                tasks: TaskCache::new(),
                admin_token_hash,
                clock,
                noise_seed: None,
                default_report_expiry_age: crate::gc::DEFAULT_REPORT_EXPIRY_AGE,
            },
            handle,
        )
    }

    /// Draws every release's noise from a ChaCha20 stream derived from
    /// `seed`, the task id and the batch start, instead of from the
    /// operating system: **for tests only**, which need the same noise on
    /// every run. Anyone who knows the seed can remove the noise. The
    /// server binary never calls this in a release build (see
    /// `main.rs`).
    pub fn with_insecure_noise_seed(mut self, seed: [u8; 32]) -> Self {
        self.noise_seed = Some(seed);
        self
    }

    /// The report expiry age of tasks created without one (the server's
    /// `--report-expiry-age-secs`).
    pub fn with_default_report_expiry_age(mut self, seconds: u64) -> Self {
        self.default_report_expiry_age = seconds;
        self
    }

    /// The server's clock now, Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now_i64()
    }

    /// The datastore.
    pub fn store(&self) -> &Datastore {
        &self.store
    }

    /// The clock every decision of this aggregator uses.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Checks the admin token.
    pub fn check_admin(&self, token: Option<&str>) -> Result<(), Error> {
        let token = token.ok_or(Error::MissingToken(
            "this endpoint needs the admin token: send `Authorization: Bearer <token from admin.token>`",
        ))?;
        if !token_matches(token, &self.admin_token_hash) {
            return Err(Error::WrongToken("the admin token is wrong"));
        }
        Ok(())
    }

    /// Checks a token that may read a task's progress: the admin token
    /// or the task's collector token.
    pub fn check_reader(&self, task: &TaskState, token: Option<&str>) -> Result<Reader, Error> {
        if token.is_some_and(|t| token_matches(t, &self.admin_token_hash)) {
            return Ok(Reader::Operator);
        }
        self.check_collector(task, token)?;
        Ok(Reader::Collector)
    }

    /// Checks a task's collector token.
    pub fn check_collector(&self, task: &TaskState, token: Option<&str>) -> Result<(), Error> {
        let token = token.ok_or(Error::MissingToken(
            "this endpoint needs the task's collector token: send `Authorization: Bearer <token>`",
        ))?;
        if !token_matches(token, &task.token_hash) {
            return Err(Error::WrongToken(
                "the collector token is wrong for this task",
            ));
        }
        Ok(())
    }

    /// Checks a token of one of a task's trustees and returns the
    /// trustee's index. Every hash is compared, in constant time each, so
    /// the time taken does not say which trustee a token is close to.
    pub fn check_trustee(&self, task: &TaskState, token: Option<&str>) -> Result<u16, Error> {
        let Some(hashes) = &task.trustee_token_hashes else {
            return Err(Error::NotFound(
                "this task's noise is drawn by the server: it takes no noise contributions".into(),
            ));
        };
        let token = token.ok_or(Error::MissingToken(
            "this endpoint needs a trustee token of the task: send `Authorization: Bearer <token>`",
        ))?;
        let mut found = None;
        for (i, hash) in hashes.iter().enumerate() {
            if token_matches(token, hash) {
                found = Some(i);
            }
        }
        match found {
            Some(i) => Ok(u16::try_from(i + 1).unwrap_or(u16::MAX)),
            None => Err(Error::WrongToken(
                "the token is not one of this task's trustee tokens",
            )),
        }
    }

    /// Creates a task; returns it and its tokens (shown once, stored
    /// hashed).
    pub async fn create_task(&self, new: NewTask) -> Result<(Arc<TaskState>, TaskTokens), Error> {
        // The layout is derived from the key and the task; a TFHE task with
        // input proofs also gets its CRS now: seconds of curve arithmetic,
        // so off the async executor.
        let params = hetally_schemes::TaskParams {
            measurement: new.measurement,
            min_batch_size: new.min_batch_size,
            max_batch_size: new.max_batch_size,
            time_precision: new.time_precision,
            dp: new.dp,
            budget: new.budget,
            input_proofs: new.input_proofs,
            relation: Some(new.relation),
            trustee_noise: new.trustee_noise,
        };
        let report_expiry_age = new
            .report_expiry_age
            .unwrap_or(self.default_report_expiry_age);
        if report_expiry_age < new.time_precision.max(1)
            || report_expiry_age > MAX_REPORT_EXPIRY_AGE
        {
            return Err(Error::InvalidTask(format!(
                "report_expiry_age {report_expiry_age} s must be at least the time precision \
                 ({} s) and at most {MAX_REPORT_EXPIRY_AGE} s (100 years)",
                new.time_precision
            )));
        }
        let public_key = new.public_key;
        let (definition, crs) = tokio::task::spawn_blocking(move || {
            hetally_schemes::define_task(
                public_key,
                params,
                DEFAULT_MAX_BATCH_SIZE,
                &mut rand::rngs::OsRng,
            )
        })
        .await
        .map_err(|e| Error::Internal(format!("defining the task: {e}")))?
        .map_err(|e| Error::InvalidTask(e.to_string()))?;
        let token = new_token();
        // A task with trustee noise: one token per trustee of the key.
        let trustee_tokens = match &definition.trustee_noise {
            None => None,
            Some(_) => {
                let key = hetally_schemes::paillier::PublicKey::<num_bigint::BigInt>::from_bytes(
                    &definition.public_key,
                )
                .map_err(|e| Error::InvalidTask(e.to_string()))?;
                let n = key.trustees().map_or(0, |(n, _)| n);
                Some((0..n).map(|_| new_token()).collect::<Vec<_>>())
            }
        };
        let record = TaskRecord {
            task_id: definition.id(),
            definition: definition.to_bytes(),
            collector_token_hash: hash_token(&token),
            budget_spent: Rational::zero(),
            created_at: self.clock.now_i64(),
            crs,
            report_expiry_age,
            trustee_token_hashes: trustee_tokens
                .as_ref()
                .map(|tokens| tokens.iter().map(|t| hash_token(t)).collect()),
        };
        match self.store.put_task(&record).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(Error::TaskExists(record.task_id)),
            Err(e) => return Err(e.into()),
        }
        let state = self
            .tasks
            .insert(record.task_id, Arc::new(TaskState::load(record).await?));
        tracing::info!(task_id = %state.id, measurement = %state.definition.measurement, "task created");
        Ok((
            state,
            TaskTokens {
                collector: token,
                trustees: trustee_tokens,
            },
        ))
    }

    /// Looks a task up (cached after the first load).
    pub async fn task(&self, id: &TaskId) -> Result<Arc<TaskState>, Error> {
        self.tasks
            .get_or_load(id, || async {
                match self.store.get_task(id).await? {
                    Some(record) => Ok::<_, Error>(Some(TaskState::load(record).await?)),
                    None => Ok(None),
                }
            })
            .await?
            .ok_or(Error::UnknownTask(*id))
    }

    /// Every task.
    pub async fn list_tasks(&self) -> Result<Vec<Arc<TaskState>>, Error> {
        let mut out = Vec::new();
        for record in self.store.list_tasks().await? {
            out.push(self.task(&record.task_id).await?);
        }
        Ok(out)
    }

    /// The collector's view of a task's progress.
    pub async fn status(&self, task: &TaskState) -> Result<TaskStatus, Error> {
        let (reports, unreleased_reports) = self.store.report_counts(&task.id).await?;
        let releases = self.store.list_releases(&task.id).await?;
        let record = self
            .store
            .get_task(&task.id)
            .await?
            .ok_or(Error::UnknownTask(task.id))?;
        Ok(TaskStatus {
            reports,
            unreleased_reports,
            releases: releases.len() as u64,
            budget_spent: record.budget_spent,
        })
    }

    /// Largest body accepted for an upload to this task
    /// ([`report::max_report_len`]): the envelope around a payload of up to
    /// the task's largest plus the smaller of that and 64 KiB. A report a
    /// little over the largest (a ciphertext too many) is read and gets the
    /// scheme's precise error (`wrongCiphertextCount`) rather than 413,
    /// while what is buffered before anything is checked stays within
    /// twice the largest valid report.
    pub fn max_upload_len(task: &TaskState) -> usize {
        report::max_report_len(task.aggregator.max_payload_len())
    }

    /// Validates and durably stores one uploaded report. Returns once the
    /// report is committed. Refuses it with [`Error::Overloaded`] when the
    /// verifier's or the writer's queue is full; on a task with input
    /// proofs, refuses a replay or a report of a released interval before
    /// verifying its proofs.
    pub async fn upload(&self, task: Arc<TaskState>, body: Vec<u8>) -> Result<ReportId, Error> {
        let now = self.clock.now();
        let cap = report::payload_cap(task.aggregator.max_payload_len());
        let report =
            Report::from_bytes(&body, cap).map_err(|e| Error::MalformedReport(e.into()))?;
        let precision = task.definition.time_precision;
        if report.time % precision != 0 {
            return Err(Error::MisalignedReportTime {
                time: report.time,
                precision,
            });
        }
        if report.time > now.saturating_add(TOLERABLE_CLOCK_SKEW) || report.time > i64::MAX as u64 {
            return Err(Error::ReportTooEarly {
                time: report.time,
                now,
            });
        }
        // Expired reports: the garbage collector deletes unreleased reports
        // before the same cutoff, so one it deleted is never stored again.
        let oldest = crate::gc::oldest_accepted(now, task.report_expiry_age, precision);
        if report.time < oldest {
            return Err(Error::ReportExpired {
                time: report.time,
                age: task.report_expiry_age,
                oldest,
            });
        }
        let (report, stored) = if task.aggregator.input_proofs() {
            // A place in the verifier's queue first (refusing is cheapest
            // when overloaded); the verifier looks replays up before it
            // verifies proofs, in batches across concurrent uploads.
            let ticket = self.verifier.admit(body.len())?;
            drop(body);
            let verdict = self
                .verifier
                .verify(task.clone(), report, ticket)
                .await
                .map_err(|_| Error::Internal("the report verifier has stopped".into()))?;
            match verdict {
                Verdict::Checked(report, stored) => (report, stored),
                Verdict::Refused(report, InsertOutcome::IntervalReleased) => {
                    return Err(Error::BatchCollected(report.id))
                }
                Verdict::Refused(report, _) => return Err(Error::ReportReplayed(report.id)),
            }
        } else {
            let checker = task.clone();
            tokio::task::spawn_blocking(move || {
                let ctx = ReportContext {
                    task_id: &checker.id,
                    report_id: &report.id,
                    time: report.time,
                };
                let stored = checker
                    .aggregator
                    .check_to_stored(&[(&report.payload, ctx)])
                    .pop()
                    .unwrap_or_else(|| Err(SchemeError::Corrupt("no verdict".into())));
                (report, stored)
            })
            .await
            .map_err(|e| Error::Internal(format!("report check failed: {e}")))?
        };
        let stored = stored.map_err(Error::InvalidReport)?;
        let bytes = stored.len();
        let outcome = self
            .writer
            .write(
                NewReport {
                    task_id: task.id,
                    report_id: report.id,
                    time: report.time,
                    payload: stored,
                },
                bytes,
            )
            .await
            .map_err(|e| match e {
                WriteError::Full(full) => Error::Overloaded(full),
                WriteError::Failed(message) => Error::Internal(message.to_string()),
            })?;
        match outcome {
            InsertOutcome::Stored => Ok(report.id),
            InsertOutcome::Duplicate => Err(Error::ReportReplayed(report.id)),
            InsertOutcome::IntervalReleased => Err(Error::BatchCollected(report.id)),
        }
    }
}
