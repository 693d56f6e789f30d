//! The aggregation job driver: every replica sums stored reports in the
//! background, so a release mostly merges partial sums.
//!
//! Each pass groups reports that are in no job into jobs (one task, one time
//! bucket, at most `job_size` reports), then leases jobs one at a time
//! ([`crate::lease`]), sums their payloads with rayon on the blocking pool,
//! and stores the partial sum. A replica that dies mid-job loses nothing:
//! its lease expires and another replica redoes the job; a late completion
//! by a replica whose lease was taken over is discarded. A job that fails
//! is given back with its next attempt delayed exponentially. Releases
//! count each report exactly once whatever state its job is in (see
//! `Datastore::read_batch`).

use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use rand::RngCore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Aggregator, Error};
use crate::datastore::JobLease;
use crate::lease::LeasePolicy;
use crate::metrics::names;

/// Job driver settings.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Most reports per job.
    pub job_size: u64,
    /// Leases and backoff of aggregation jobs.
    pub lease: LeasePolicy,
    /// Pause between passes that found nothing to do.
    pub idle: Duration,
    /// Tests only: how long to keep each job's lease after summing it,
    /// before storing the result, so that a test can kill the replica while
    /// it holds one (`HETALLY_INSECURE_TEST_JOB_HOLD_MS`, honoured by debug
    /// builds only). `None` in production.
    pub insecure_test_hold: Option<Duration>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            job_size: 5_000,
            lease: LeasePolicy {
                lease_secs: 60,
                backoff_base_secs: 1,
                backoff_cap_secs: 300,
                max_attempts: None,
            },
            idle: Duration::from_millis(500),
            insecure_test_hold: None,
        }
    }
}

/// A name for this replica in job leases: host name, process id and a
/// random suffix.
pub fn replica_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::rngs::OsRng.next_u32()
    )
}

/// Starts the driver; it stops when `stop` becomes true.
pub fn spawn(
    aggregator: Arc<Aggregator>,
    config: JobConfig,
    owner: String,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(owner = %owner, job_size = config.job_size, lease_secs = config.lease.lease_secs, "aggregation job driver started");
        while !*stop.borrow() {
            let worked = match pass(&aggregator, &config, &owner, &stop).await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::warn!(error = %e, "aggregation pass failed; retrying");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = tokio::time::sleep(config.idle) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        tracing::info!("aggregation job driver stopped");
    })
}

/// One pass: make jobs, then run jobs until none is left. Returns whether
/// it did anything.
async fn pass(
    aggregator: &Aggregator,
    config: &JobConfig,
    owner: &str,
    stop: &watch::Receiver<bool>,
) -> Result<bool, Error> {
    let store = aggregator.store();
    let clock = aggregator.clock();
    let made = store
        .create_jobs(config.job_size, config.job_size * 20, clock.now_i64())
        .await?;
    let mut ran = 0u64;
    while !*stop.borrow() {
        let Some(lease) = store
            .claim_job(owner, clock.now_i64(), &config.lease)
            .await?
        else {
            break;
        };
        if let Err(e) = run_job(aggregator, &lease, config.insecure_test_hold).await {
            job_outcome("failed");
            tracing::warn!(job_id = lease.job_id, attempts = lease.lease.attempts, error = %e, "aggregation job failed; it will be retried after a backoff");
            store
                .fail_job(lease.job_id, &lease.lease, clock.now_i64(), &config.lease)
                .await?;
        }
        ran += 1;
    }
    if made > 0 || ran > 0 {
        tracing::debug!(jobs_made = made, jobs_run = ran, "aggregation pass");
    }
    Ok(made > 0 || ran > 0)
}

/// Sums one leased job and stores its partial sum, if the lease is still
/// held when it is done (after `hold`, in tests).
pub(crate) async fn run_job(
    aggregator: &Aggregator,
    lease: &JobLease,
    hold: Option<Duration>,
) -> Result<(), Error> {
    let task = aggregator.task(&lease.task_id).await?;
    let payloads = aggregator.store().job_payloads(lease.job_id).await?;
    if payloads.len() as u64 != lease.report_count {
        return Err(Error::Internal(format!(
            "job {} should hold {} reports but {} were read",
            lease.job_id,
            lease.report_count,
            payloads.len()
        )));
    }
    let scheme = task.aggregator.clone();
    let partial = tokio::task::spawn_blocking(move || {
        let sum = scheme.sum_stored(payloads)?;
        scheme.encode_sum(&sum)
    })
    .await
    .map_err(|e| Error::Internal(format!("job summing failed: {e}")))?
    .map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(hold) = hold {
        tracing::warn!(
            job_id = lease.job_id,
            hold_ms = hold.as_millis() as u64,
            "holding the job's lease before storing it (HETALLY_INSECURE_TEST_JOB_HOLD_MS)"
        );
        tokio::time::sleep(hold).await;
    }
    let stored = aggregator
        .store()
        .complete_job(
            lease.job_id,
            &lease.lease,
            &partial,
            aggregator.clock().now_i64(),
        )
        .await?;
    if stored {
        job_outcome("done");
    } else {
        job_outcome("lease_lost");
        tracing::warn!(
            job_id = lease.job_id,
            "lost the lease on a job before finishing it; its result was discarded"
        );
    }
    Ok(())
}

/// Counts a finished HE aggregation job ([`names::AGGREGATION_JOBS`]).
fn job_outcome(outcome: &'static str) {
    counter!(names::AGGREGATION_JOBS, "api" => "he", "outcome" => outcome).increment(1);
}
