//! Report expiry and the garbage collector (issue 17), after janus's
//! `garbage_collector.rs`: per task, leased, in bounded transactions,
//! idempotent.
//!
//! **Expiry.** Every task (HE and DAP) has a report expiry age, 7 days by
//! default. At upload a report whose time is before [`oldest_accepted`] is
//! refused (HE: `reportExpired`; DAP: `reportRejected`, and the helper
//! drops it in preparation).
//!
//! **Collection.** One run ([`Collector::run_once`]) deletes, task by task:
//!
//! * HE: the reports, aggregation jobs and partial sums of released
//!   batches (done or withheld), and of intervals before the expiry cutoff
//!   that no release covers; a release still being computed is left alone;
//! * DAP leader: the reports and shares, finished aggregation jobs and
//!   buckets of intervals a finished collection job covers, and of expired
//!   intervals no collection job holds (never the reports of a running
//!   aggregation job);
//! * DAP helper: the replay records and buckets of intervals handed out as
//!   aggregate shares and of expired intervals, and stored aggregation-job
//!   answers older than the cutoff.
//!
//! It keeps for ever what the operator and the collector rely on: tasks,
//! releases (the audit log, with their aggregates), budgets, DAP collection
//! jobs and aggregate shares. Replay protection still holds for what was
//! deleted: a replayed report of a released interval is refused because its
//! interval is released (HE `batchCollected`, DAP `reportRejected`), one of
//! an expired interval because it is expired; both checks come before the
//! report-id check, and the collector deletes nothing the upload check
//! would still accept (its cutoff is the upload check's, a minute late).
//!
//! **Safety.** A run holds a one-row lease (`gc_lease`, through
//! [`crate::lease`]), so one replica at a time runs it, once per interval
//! over all replicas. Every deletion is one short transaction of at most
//! about `chunk` rows that leaves a consistent state (an HE job goes with
//! its reports, so a partial sum never outlives them), so a crash loses
//! nothing that should be kept, and running twice, or two runs at once
//! after a lease ran out, deletes nothing more. The collector's cutoff
//! lags the upload check's by [`GC_CLOCK_MARGIN_SECS`], so replicas whose
//! clocks differ by up to a minute still agree.

use std::time::Duration;

use hetally_protocol::TaskDefinition;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::datastore::{Datastore, StoreError};
use crate::lease::LeasePolicy;

/// Default report expiry age, seconds (7 days).
pub const DEFAULT_REPORT_EXPIRY_AGE: u64 = 7 * 24 * 3600;

/// Default seconds between garbage-collector runs.
pub const DEFAULT_GC_INTERVAL_SECS: u64 = 300;

/// Default rows per garbage-collection transaction.
pub const DEFAULT_GC_CHUNK: u64 = 1_000;

/// Seconds the collector's cutoff lags behind the upload check's: replicas
/// whose clocks differ by up to this much never accept a report another
/// replica's collector has deleted as expired.
pub const GC_CLOCK_MARGIN_SECS: u64 = 60;

/// The cutoff below which the collector deletes unreleased reports at
/// `now`: [`oldest_accepted`] at `now - GC_CLOCK_MARGIN_SECS`, never later
/// than what any replica's upload check still accepts.
pub fn collection_cutoff(now: u64, expiry_age: u64, precision: u64) -> u64 {
    oldest_accepted(
        now.saturating_sub(GC_CLOCK_MARGIN_SECS),
        expiry_age,
        precision,
    )
}

/// The oldest report time accepted at `now` by a task whose reports
/// expire after `expiry_age` seconds and whose times are multiples of
/// `precision`: `now - expiry_age`, rounded down to the precision (a report
/// made exactly `expiry_age` ago carries that rounded time). The garbage
/// collector deletes unreleased reports before the same cutoff, so that a
/// deleted report could never be accepted again.
pub fn oldest_accepted(now: u64, expiry_age: u64, precision: u64) -> u64 {
    let t = now.saturating_sub(expiry_age);
    t - t % precision.max(1)
}

/// Garbage-collector settings.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// Time between runs over all replicas; `None` disables the collector.
    pub interval: Option<Duration>,
    /// Most rows per transaction.
    pub chunk: u64,
    /// The run's lease (one replica at a time) and its backoff after a
    /// failed run.
    pub lease: LeasePolicy,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval: Some(Duration::from_secs(DEFAULT_GC_INTERVAL_SECS)),
            chunk: DEFAULT_GC_CHUNK,
            lease: LeasePolicy {
                lease_secs: 600,
                backoff_base_secs: 10,
                backoff_cap_secs: 600,
                max_attempts: None,
            },
        }
    }
}

/// Errors of a garbage-collector run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GcError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The DAP tables failed.
    #[cfg(feature = "dap")]
    #[error("DAP tables: {0}")]
    Dap(String),
    /// A stored task could not be read; the others were collected.
    #[error("task {task}: {detail}")]
    Task {
        /// The task.
        task: String,
        /// What was wrong.
        detail: String,
    },
}

/// What one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcReport {
    /// HE reports.
    pub reports: u64,
    /// HE aggregation jobs (with their partial sums).
    pub jobs: u64,
    /// DAP reports (the leader's with their shares, the helper's replay
    /// records).
    pub dap_reports: u64,
    /// DAP aggregation jobs.
    pub dap_jobs: u64,
    /// DAP buckets.
    pub dap_buckets: u64,
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcOutcome {
    /// The run happened and deleted this.
    Done(GcReport),
    /// Another replica holds the lease, or the next run is not due yet.
    SkippedLease,
}

fn count(kind: &'static str, n: u64) {
    if n > 0 {
        ::metrics::counter!(crate::metrics::names::GC_DELETED, "kind" => kind).increment(n);
    }
}

fn outcome(name: &'static str) {
    ::metrics::counter!(crate::metrics::names::GC_RUNS, "outcome" => name).increment(1);
}

/// What the garbage collector collects: the HE tables, and the DAP tables
/// when the server has them.
#[derive(Debug, Clone)]
pub struct Collector {
    store: Datastore,
    #[cfg(feature = "dap")]
    dap: Option<crate::datastore::dap::DapStore>,
}

impl Collector {
    /// A collector of the HE tables of `store`.
    pub fn new(store: Datastore) -> Self {
        Collector {
            store,
            #[cfg(feature = "dap")]
            dap: None,
        }
    }

    /// Also collects the DAP tables (of the same database).
    #[cfg(feature = "dap")]
    pub fn with_dap(mut self, dap: crate::datastore::dap::DapStore) -> Self {
        self.dap = Some(dap);
        self
    }

    /// One garbage-collector run at `now`, if this process gets the lease
    /// and a run is due; see the module docs. The next run is due
    /// `interval` after `now` (after the lease policy's backoff if this one
    /// failed).
    pub async fn run_once(&self, now: u64, config: &GcConfig) -> Result<GcOutcome, GcError> {
        run(self, now, config).await
    }
}

async fn run(collector: &Collector, now: u64, config: &GcConfig) -> Result<GcOutcome, GcError> {
    let store = &collector.store;
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    let Some(lease) = store.acquire_gc_lease(now_i, &config.lease).await? else {
        outcome("skipped_lease");
        return Ok(GcOutcome::SkippedLease);
    };
    let mut report = GcReport::default();
    let result = collect(collector, now, config.chunk, &mut report).await;
    let interval = config.interval.unwrap_or_default().as_secs();
    let next = now_i.saturating_add(i64::try_from(interval).unwrap_or(i64::MAX));
    // False if the lease ran out and another replica took it: that run
    // deletes what is left, harmlessly.
    let given_back = store
        .finish_gc_lease(&lease, result.is_ok(), now_i, next, &config.lease)
        .await;
    match result.and(given_back.map(|_| ()).map_err(GcError::from)) {
        Ok(()) => {
            outcome("done");
            Ok(GcOutcome::Done(report))
        }
        Err(e) => {
            outcome("failed");
            tracing::warn!(error = %e, deleted = ?report, "garbage collection failed; it will be retried");
            Err(e)
        }
    }
}

/// Deletes, chunk by chunk, everything the module docs list. Errors with
/// one task are remembered and the other tasks still collected.
async fn collect(
    collector: &Collector,
    now: u64,
    chunk: u64,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let store = &collector.store;
    let mut first_error = None;
    for task in store.list_tasks().await? {
        let precision = match TaskDefinition::from_bytes(&task.definition) {
            Ok(def) => def.time_precision,
            Err(e) => {
                first_error.get_or_insert(GcError::Task {
                    task: task.task_id.to_string(),
                    detail: format!("unreadable definition: {e}"),
                });
                continue;
            }
        };
        let cutoff = collection_cutoff(now, task.report_expiry_age, precision);
        loop {
            let deleted = store.gc_task_chunk(&task.task_id, cutoff, chunk).await?;
            count("reports", deleted.reports);
            count("jobs", deleted.jobs);
            report.reports += deleted.reports;
            report.jobs += deleted.jobs;
            if deleted.reports == 0 && deleted.jobs == 0 {
                break;
            }
        }
    }
    #[cfg(feature = "dap")]
    if let Some(dap) = &collector.dap {
        if let Err(e) = collect_dap(dap, now, chunk, report).await {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(feature = "dap")]
async fn collect_dap(
    dap: &crate::datastore::dap::DapStore,
    now: u64,
    chunk: u64,
    report: &mut GcReport,
) -> Result<(), GcError> {
    use crate::dap::task::DapParameters;

    let mut first_error = None;
    let tasks = dap
        .gc_tasks()
        .await
        .map_err(|e| GcError::Dap(e.to_string()))?;
    for task in tasks {
        let params: DapParameters = match serde_json::from_str(&task.parameters) {
            Ok(p) => p,
            Err(e) => {
                first_error.get_or_insert(GcError::Task {
                    task: task.task_id.to_string(),
                    detail: format!("unreadable parameters: {e}"),
                });
                continue;
            }
        };
        let cutoff = collection_cutoff(now, params.report_expiry_age, params.time_precision);
        loop {
            let deleted = dap
                .gc_task_chunk(&task, cutoff, chunk)
                .await
                .map_err(|e| GcError::Dap(e.to_string()))?;
            count("dap_reports", deleted.reports);
            count("dap_jobs", deleted.jobs);
            count("dap_buckets", deleted.buckets);
            report.dap_reports += deleted.reports;
            report.dap_jobs += deleted.jobs;
            report.dap_buckets += deleted.buckets;
            if deleted.is_empty() {
                break;
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs the garbage collector in the background until `stop` turns true:
/// every replica asks for the lease once a minute (or once an interval, if
/// shorter), and whoever gets it when a run is due runs it. Returns `None`
/// if the collector is disabled.
pub fn spawn(
    collector: Collector,
    clock: SharedClock,
    config: GcConfig,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let interval = config.interval.filter(|d| !d.is_zero())?;
    let poll = interval.min(Duration::from_secs(60));
    Some(tokio::spawn(async move {
        loop {
            match run(&collector, clock.now(), &config).await {
                Ok(GcOutcome::Done(report)) if report != GcReport::default() => {
                    tracing::info!(deleted = ?report, "garbage collection done");
                }
                Ok(_) => {}
                // Logged by run_once; retried after the backoff.
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_rounded_down_to_the_precision() {
        // now - age = 1000 - 100 = 900; precision 60: 900 -> 900 - 900 % 60 = 900.
        assert_eq!(oldest_accepted(1000, 100, 60), 900);
        assert_eq!(oldest_accepted(1030, 100, 60), 900);
        assert_eq!(oldest_accepted(1020, 100, 60), 900);
        assert_eq!(oldest_accepted(1080, 100, 60), 960);
        // Never below zero; precision 0 is treated as 1.
        assert_eq!(oldest_accepted(10, 100, 60), 0);
        assert_eq!(oldest_accepted(1000, 100, 0), 900);
        // The collector's cutoff lags by the clock margin.
        assert_eq!(collection_cutoff(1080, 100, 60), 900);
        assert_eq!(collection_cutoff(1140, 100, 60), 960);
    }
}
