//! Durable storage of tasks, reports, aggregation jobs and releases.
//!
//! All SQL lives behind the typed methods of [`Datastore`]; the aggregator
//! never writes a query. SQLite is the embedded default, PostgreSQL serves
//! several replicas; one implementation ([`sql`]) runs on both, and the
//! datastore tests run against both. Every method that changes data runs in
//! one transaction and returns only after it has committed (SQLite runs in
//! WAL mode with `synchronous=FULL`, so a commit is on disk).
//!
//! The DAP tables ([`dap`]) live behind the same database, dialect handling
//! and lease implementation ([`crate::lease`]).
//!
//! Release claims take a *decision* closure that runs inside the
//! transaction with the facts it needs (task row, report count, overlapping
//! releases), so the batch rules and budget arithmetic stay in the
//! aggregator while the check and the write are atomic.

pub mod crypter;
#[cfg(feature = "dap")]
pub mod dap;
mod sql;

pub(crate) use sql::placeholders;

use std::path::PathBuf;

use hetally_protocol::dp::Rational;
use hetally_protocol::{ReportId, TaskId};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::lease::{Lease, LeasePolicy};

/// Errors from the datastore.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row exists that should not.
    #[error("{0}")]
    Conflict(String),
    /// Stored data is not what this build expects.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The data directory could not be prepared.
    #[error("{0}")]
    Io(String),
}

/// A stored task.
#[derive(Clone)]
pub struct TaskRecord {
    /// The task id.
    pub task_id: TaskId,
    /// Canonical definition bytes.
    pub definition: Vec<u8>,
    /// SHA-256 of the collector token.
    pub collector_token_hash: [u8; 32],
    /// Budget spent by releases so far.
    pub budget_spent: Rational,
    /// Unix seconds.
    pub created_at: i64,
    /// The CRS of a TFHE task with input proofs (its hash is in the
    /// definition).
    pub crs: Option<Vec<u8>>,
    /// Seconds after which a report is too old to be accepted, and after
    /// which the reports of an interval never released are deleted by the
    /// garbage collector ([`crate::gc`]). An operational setting, not part
    /// of the definition.
    pub report_expiry_age: u64,
    /// Tasks whose trustees draw the noise: the SHA-256 of each trustee's
    /// token, trustee 1 first.
    pub trustee_token_hashes: Option<Vec<[u8; 32]>>,
}

impl std::fmt::Debug for TaskRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRecord")
            .field("task_id", &self.task_id)
            .field("definition_bytes", &self.definition.len())
            .field("budget_spent", &self.budget_spent)
            .field("created_at", &self.created_at)
            .field("crs_bytes", &self.crs.as_ref().map(Vec::len))
            .field("report_expiry_age", &self.report_expiry_age)
            .field(
                "trustees",
                &self.trustee_token_hashes.as_ref().map(Vec::len),
            )
            .finish_non_exhaustive()
    }
}

/// A validated report on its way to disk.
#[derive(Debug, Clone)]
pub struct NewReport {
    /// The task.
    pub task_id: TaskId,
    /// The client's report id.
    pub report_id: ReportId,
    /// Rounded report time, Unix seconds.
    pub time: u64,
    /// Validated ciphertexts in the backend's stored form.
    pub payload: Vec<u8>,
}

/// What happened to one report of a batch insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Committed.
    Stored,
    /// A report with this id exists for the task.
    Duplicate,
    /// The report's time falls in a released (or claimed) batch.
    IntervalReleased,
}

/// Whether a release's aggregate is stored yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseState {
    /// Claimed; its aggregate is being computed (or its computation died and
    /// will be redone by the next request for the same interval).
    Pending,
    /// Stored.
    Done,
    /// Add/remove tasks only: the noisy report count drawn at claim time
    /// fell outside the task's batch size limits, so no values are
    /// released. The interval is closed and the budget spent.
    Withheld,
}

impl ReleaseState {
    /// The name in the audit log and the database.
    pub fn name(self) -> &'static str {
        match self {
            ReleaseState::Pending => "pending",
            ReleaseState::Done => "done",
            ReleaseState::Withheld => "withheld",
        }
    }
}

/// One release: a row of the audit log.
#[derive(Debug, Clone)]
pub struct ReleaseRecord {
    /// The task.
    pub task_id: TaskId,
    /// Batch interval start, Unix seconds.
    pub batch_start: u64,
    /// Batch interval length, seconds.
    pub batch_duration: u64,
    /// Reports in the batch, exactly (the operator's view; under add/remove
    /// it never leaves the server towards the collector).
    pub report_count: u64,
    /// Under add/remove: the report count as released, with noise.
    pub noisy_report_count: Option<i64>,
    /// Pending, done or withheld.
    pub state: ReleaseState,
    /// The aggregate file, once done.
    pub aggregate: Option<Vec<u8>>,
    /// DP mechanism, as text (`laplace:0.4`).
    pub mechanism: String,
    /// Budget this release spent.
    pub cost: Rational,
    /// Budget spent after this release.
    pub budget_spent_after: Rational,
    /// When the release was claimed, Unix seconds.
    pub requested_at: i64,
    /// When its aggregate was stored.
    pub released_at: Option<i64>,
}

impl ReleaseRecord {
    /// End of the batch interval (exclusive).
    pub fn batch_end(&self) -> u64 {
        self.batch_start.saturating_add(self.batch_duration)
    }
}

/// What a release claim's decision closure sees, inside the transaction.
#[derive(Debug)]
pub struct ClaimFacts {
    /// The task row.
    pub task: TaskRecord,
    /// Reports stored in the requested interval.
    pub report_count: u64,
    /// A release of exactly the requested interval, if any.
    pub same_interval: Option<ReleaseRecord>,
    /// Other releases overlapping the requested interval.
    pub overlapping: Vec<ReleaseRecord>,
}

/// What the decision closure wants done.
#[derive(Debug)]
pub enum ClaimDecision {
    /// Return the existing release of the same interval.
    UseExisting,
    /// Record a new release (pending, or withheld) and spend budget.
    Claim {
        /// Under add/remove: the report count with noise, released.
        noisy_report_count: Option<i64>,
        /// True to record the release as withheld: nothing is computed.
        withheld: bool,
        /// Mechanism text for the audit log.
        mechanism: String,
        /// Budget spent by this release.
        cost: Rational,
        /// Budget spent after it.
        budget_spent_after: Rational,
    },
}

/// Which database to open.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// `DATA_DIR/hetally.db`, created if needed.
    Sqlite {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A PostgreSQL database (`postgres://user@host/db`).
    Postgres {
        /// Connection URL.
        url: String,
        /// Pool size.
        max_connections: u32,
    },
}

/// A slice of a batch as read for a release.
#[derive(Debug)]
pub enum BatchChunk {
    /// Partial sums of finished aggregation jobs: (report count, sum).
    Partials(Vec<(u64, Vec<u8>)>),
    /// Stored payloads of reports in no finished job.
    Payloads(Vec<Vec<u8>>),
}

/// What [`Datastore::read_batch`] read.
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchRead {
    /// Finished jobs merged.
    pub jobs: u64,
    /// Reports covered by them.
    pub reports_in_jobs: u64,
    /// Reports read one by one.
    pub loose_reports: u64,
}

/// An aggregation job leased to this replica.
#[derive(Debug, Clone)]
pub struct JobLease {
    /// The job.
    pub job_id: i64,
    /// The lease: its token must still be on the job when it is finished.
    pub lease: Lease,
    /// Its task.
    pub task_id: TaskId,
    /// The time bucket all its reports share.
    pub bucket_start: u64,
    /// Reports in it.
    pub report_count: u64,
}

/// What a garbage-collection step deleted ([`Datastore::gc_task_chunk`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcDeleted {
    /// Reports.
    pub reports: u64,
    /// Aggregation jobs (with their partial sums).
    pub jobs: u64,
}

/// Connections of one database pool at a moment ([`Datastore::pool_use`]).
#[derive(Debug, Clone, Copy)]
pub struct PoolUse {
    /// `writer` and `reader` on SQLite, `shared` on PostgreSQL.
    pub name: &'static str,
    /// Connections lent out.
    pub in_use: u32,
    /// Connections open and idle.
    pub idle: u32,
}

/// Report times (Unix seconds) of the oldest reports in no aggregation job
/// ([`Datastore::oldest_unassigned_report_times`]); `None` when there are
/// none.
#[derive(Debug, Clone, Copy, Default)]
pub struct OldestUnassigned {
    /// HE reports.
    pub he: Option<i64>,
    /// Reports of DAP tasks this server leads.
    pub dap: Option<i64>,
}

/// A trustee's noise contribution on its way to disk.
#[derive(Debug, Clone, Copy)]
pub struct NewContribution<'a> {
    /// The task.
    pub task_id: &'a TaskId,
    /// The release's batch start.
    pub batch_start: u64,
    /// The trustee, 1-based.
    pub trustee: u16,
    /// The uploaded file, checked.
    pub bytes: &'a [u8],
    /// Unix seconds.
    pub now: i64,
}

/// What became of a noise contribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContributionOutcome {
    /// Stored; the release now has this many.
    Stored(usize),
    /// This trustee already sent exactly this file.
    AlreadyStored,
    /// This trustee already sent a different file for this release.
    Conflict,
    /// The release already has all the contributions it takes (or is
    /// finished), and none from this trustee.
    Full,
    /// No release of this task starts there, or it is not waiting for
    /// noise.
    NoRelease,
}

/// Handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Datastore {
    store: sql::SqlStore,
}

impl Datastore {
    /// Opens the database, creating it if needed, and applies migrations.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        Ok(Datastore {
            store: sql::SqlStore::open(config).await?,
        })
    }

    /// Whether this is PostgreSQL, and the writer and reader pools, for
    /// the DAP tables ([`dap`]).
    #[cfg(feature = "dap")]
    pub(crate) fn pools(&self) -> (bool, sqlx::AnyPool, sqlx::AnyPool) {
        self.store.pools()
    }

    /// A short description for logs ("sqlite:/path/hetally.db").
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// The connections of each pool now (for metrics; no query is made).
    pub fn pool_use(&self) -> Vec<PoolUse> {
        self.store.pool_use()
    }

    /// The oldest report times of reports in no aggregation job yet, HE
    /// and DAP (for the aggregation-lag metric; served by the partial
    /// indexes on unassigned reports).
    pub async fn oldest_unassigned_report_times(&self) -> Result<OldestUnassigned, StoreError> {
        self.store.oldest_unassigned_report_times().await
    }

    /// Stores a new task. Fails with [`StoreError::Conflict`] if it exists.
    pub async fn put_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        self.store.put_task(task).await
    }

    /// Looks a task up.
    pub async fn get_task(&self, task_id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.store.get_task(task_id).await
    }

    /// Every task, oldest first.
    pub async fn list_tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.store.list_tasks().await
    }

    /// Inserts reports in one transaction; one outcome per report, in order.
    pub async fn insert_reports(
        &self,
        reports: &[NewReport],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        self.store.insert_reports(reports).await
    }

    /// What storing each of `reports` (id and time) in `task_id` would
    /// answer, as far as indexed reads can tell: `Duplicate` if the id is
    /// stored already, `IntervalReleased` if the time falls in a released
    /// (or claimed) interval, `None` if it could be stored now; one per
    /// report, in order. The verifier asks this before verifying input
    /// proofs, so a replay costs a lookup rather than a verification;
    /// [`Datastore::insert_reports`] stays the final check (a concurrent
    /// upload of the same id may still win).
    pub async fn report_precheck(
        &self,
        task_id: &TaskId,
        reports: &[(ReportId, u64)],
    ) -> Result<Vec<Option<InsertOutcome>>, StoreError> {
        self.store.report_precheck(task_id, reports).await
    }

    /// Number of reports a task has stored, and the number not yet in any
    /// release.
    pub async fn report_counts(&self, task_id: &TaskId) -> Result<(u64, u64), StoreError> {
        self.store.report_counts(task_id).await
    }

    /// Claims the batch `[start, start + duration)` in one transaction:
    /// gathers the [`ClaimFacts`], asks `decide`, and records a pending
    /// release if it says so. Returns the release row (new or existing), or
    /// the decision's own error, with nothing changed.
    pub async fn claim_release<E, F>(
        &self,
        task_id: &TaskId,
        start: u64,
        duration: u64,
        now: i64,
        decide: F,
    ) -> Result<Result<ReleaseRecord, E>, StoreError>
    where
        F: FnOnce(&ClaimFacts) -> Result<ClaimDecision, E> + Send,
        E: Send,
    {
        self.store
            .claim_release(task_id, start, duration, now, decide)
            .await
    }

    /// Reads a claimed batch for its release, `chunk` payloads at a time,
    /// into `sink`: first the partial sums of its finished aggregation jobs,
    /// then the payloads of every other report in it, all from one
    /// snapshot so that each report is counted exactly once. Stops early,
    /// without error, if the receiver is dropped.
    pub async fn read_batch(
        &self,
        task_id: &TaskId,
        start: u64,
        duration: u64,
        chunk: usize,
        sink: mpsc::Sender<BatchChunk>,
    ) -> Result<BatchRead, StoreError> {
        self.store
            .read_batch(task_id, start, duration, chunk, sink)
            .await
    }

    /// Stores a pending release's aggregate and marks it done. Returns the
    /// release as stored: if another request finished it first, its
    /// aggregate wins and is returned.
    pub async fn finish_release(
        &self,
        task_id: &TaskId,
        start: u64,
        aggregate: &[u8],
        now: i64,
    ) -> Result<ReleaseRecord, StoreError> {
        self.store
            .finish_release(task_id, start, aggregate, now)
            .await
    }

    /// Stores the encrypted, noise-free sum of a claimed release whose
    /// trustees draw the noise; keeps an earlier one if there is one, and
    /// returns the sum stored.
    pub async fn put_release_sum(
        &self,
        task_id: &TaskId,
        start: u64,
        sum: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, StoreError> {
        self.store.put_release_sum(task_id, start, sum, now).await
    }

    /// The stored sum of a release waiting for noise, if there is one.
    pub async fn release_sum(
        &self,
        task_id: &TaskId,
        start: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.release_sum(task_id, start).await
    }

    /// Records a trustee's noise contribution to a pending release, in one
    /// transaction; see [`ContributionOutcome`]. `needed` is how many the
    /// release takes.
    pub async fn add_noise_contribution(
        &self,
        contribution: &NewContribution<'_>,
        needed: usize,
    ) -> Result<ContributionOutcome, StoreError> {
        self.store
            .add_noise_contribution(contribution, needed)
            .await
    }

    /// The stored contributions of a pending release: trustee and file.
    pub async fn noise_contributions(
        &self,
        task_id: &TaskId,
        start: u64,
    ) -> Result<Vec<(u16, Vec<u8>)>, StoreError> {
        self.store.noise_contributions(task_id, start).await
    }

    /// The audit log of a task's noise contributions: batch start, trustee
    /// and time received, in that order.
    pub async fn list_noise_contributions(
        &self,
        task_id: &TaskId,
    ) -> Result<Vec<(u64, u16, i64)>, StoreError> {
        self.store.list_noise_contributions(task_id).await
    }

    /// The task's releases, oldest batch first (the audit log).
    pub async fn list_releases(&self, task_id: &TaskId) -> Result<Vec<ReleaseRecord>, StoreError> {
        self.store.list_releases(task_id).await
    }

    /// Groups up to `scan` reports that are in no job into new pending jobs
    /// of at most `max_job_reports` reports from one task and time bucket.
    /// Returns the number of jobs made.
    pub async fn create_jobs(
        &self,
        max_job_reports: u64,
        scan: u64,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.store.create_jobs(max_job_reports, scan, now).await
    }

    /// Leases one job that is not done, whose lease is free or expired and
    /// whose backoff has passed, to `owner` ([`crate::lease::acquire`]).
    pub async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        policy: &LeasePolicy,
    ) -> Result<Option<JobLease>, StoreError> {
        self.store.claim_job(owner, now, policy).await
    }

    /// The stored payloads of a job's reports.
    pub async fn job_payloads(&self, job_id: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.store.job_payloads(job_id).await
    }

    /// Stores a job's partial sum and marks it done, if this process still
    /// holds `lease`; returns false (and changes nothing) otherwise, so a
    /// job whose lease was taken over is counted once.
    pub async fn complete_job(
        &self,
        job_id: i64,
        lease: &Lease,
        partial: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        self.store.complete_job(job_id, lease, partial, now).await
    }

    /// Gives a job that failed back, its next attempt delayed by the
    /// policy's backoff; false if the lease was taken over meanwhile.
    pub async fn fail_job(
        &self,
        job_id: i64,
        lease: &Lease,
        now: i64,
        policy: &LeasePolicy,
    ) -> Result<bool, StoreError> {
        self.store.fail_job(job_id, lease, now, policy).await
    }

    /// Jobs pending, running and done, over every task.
    pub async fn job_counts(&self) -> Result<(u64, u64, u64), StoreError> {
        self.store.job_counts().await
    }

    /// Garbage collection, one bounded transaction: deletes up to about
    /// `chunk` reports of the task (whole aggregation jobs with their
    /// reports and partial sums, then reports in no job) whose time falls
    /// in a release that is done or withheld, or before `cutoff` (the
    /// oldest report time still accepted) in no release at all. Releases
    /// being computed are left alone; releases themselves are never
    /// deleted. Returns what it deleted: call it again until it deletes
    /// nothing. Idempotent, and safe beside uploads, jobs and releases.
    pub async fn gc_task_chunk(
        &self,
        task_id: &TaskId,
        cutoff: u64,
        chunk: u64,
    ) -> Result<GcDeleted, StoreError> {
        self.store.gc_task_chunk(task_id, cutoff, chunk).await
    }

    /// Leases the garbage collector's run, if no replica holds it and the
    /// next run is due ([`crate::lease::acquire`] on a one-row table).
    pub async fn acquire_gc_lease(
        &self,
        now: i64,
        policy: &LeasePolicy,
    ) -> Result<Option<Lease>, StoreError> {
        self.store.acquire_gc_lease(now, policy).await
    }

    /// Gives the garbage collector's run back: due again at `next_run` if
    /// it `succeeded`, after the policy's backoff if not. False if the
    /// lease had been taken over meanwhile.
    pub async fn finish_gc_lease(
        &self,
        lease: &Lease,
        succeeded: bool,
        now: i64,
        next_run: i64,
        policy: &LeasePolicy,
    ) -> Result<bool, StoreError> {
        self.store
            .finish_gc_lease(lease, succeeded, now, next_run, policy)
            .await
    }
}
