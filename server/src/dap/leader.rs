//! The leader's background driver: aggregation jobs and collection jobs.
//!
//! Every tick it (1) groups stored reports into aggregation jobs of at most
//! `job_size` reports, (2) runs pending jobs, a few at a time, each leased
//! ([`crate::lease`]): leader preparation on rayon inside
//! `spawn_blocking`, one `PUT aggregation_jobs` to the helper (the same job
//! id and bytes if it is retried, which the helper answers idempotently),
//! the helper's `finish` messages turned into output shares, and the
//! accepted shares added to their time buckets in the transaction that
//! marks the job done, if the lease is still held (a job whose lease was
//! taken over is counted once, by its new holder); (3) finishes collection
//! jobs whose interval has no report left to aggregate, each leased too:
//! sums its buckets, checks the minimum batch size, asks the helper for its
//! aggregate share, and stores both encrypted shares.
//!
//! The helper's answers are read with a cap worked out from the job
//! ([`aggregation_answer_limit`], [`aggregate_share_answer_limit`]):
//! `Content-Length` is checked first and a longer body is dropped as it
//! arrives, failing the job, so a hostile helper cannot make the leader
//! buffer more than the job needs.
//!
//! A job that fails (the helper is down, say) is given back with its next
//! attempt delayed exponentially, and the driver moves on to the next one:
//! one failing job never holds up the others, and a peer that is down sees
//! retries at growing intervals. A collection job that keeps failing is
//! given up after [`DriverConfig::collection`]'s attempts, and its
//! collector's poll says why. A crash anywhere loses nothing: a lease
//! expires and the job runs again, and nothing is counted before its
//! transaction commits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hetally_dap::messages::problem_type::DapProblemType;
use hetally_dap::messages::query_type::TimeInterval;
use hetally_dap::messages::{
    AggregateShare, AggregateShareReq, AggregationJobId, AggregationJobInitializeReq,
    AggregationJobResp, BatchSelector, HpkeCiphertext, PartialBatchSelector, PrepareInit,
    PrepareStepResult, ReportIdChecksum, ReportMetadata, ReportShare, Role, Time,
};
use hetally_dap::prio::codec::{Decode, Encode};
use hetally_dap::vdaf::{leader_finish, leader_initialize, DapPrepare, LeaderState};
use hetally_dap::with_dap_vdaf;
use metrics::counter;
use rand::RngCore;
use rayon::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::aggregation::{checksum_add, interval, merge_buckets, seal_share, sum_buckets};
use super::task::DapTask;
use super::{DapError, DapState};
use crate::datastore::dap::{
    CollectionFailure, CollectionJobRow, CollectionState, LeasedCollection, LeasedJob, StoredReport,
};
use crate::lease::LeasePolicy;
use crate::metrics::names;

/// Room in the helper's aggregation-job answer for each report beside its
/// prepare message: the report id, the result's tag, the ping-pong
/// message's framing, with margin.
const ANSWER_PER_REPORT_OVERHEAD: usize = 64;

/// Room in any answer from the helper beyond what its content needs: the
/// message's own framing, the HPKE encapsulated key and tag of an
/// aggregate share, or a problem document.
const ANSWER_SLACK: usize = 16 << 10;

/// The most the leader reads of the helper's answer to an aggregation job
/// whose leader prepare messages have these encoded sizes. Prio3 is one
/// round: the helper answers each report with its prepare message (the
/// joint randomness seed, or a rejection), never larger than the leader's
/// own prepare share, so a larger answer is refused before it is buffered.
pub fn aggregation_answer_limit(leader_messages: impl IntoIterator<Item = usize>) -> usize {
    leader_messages.into_iter().fold(ANSWER_SLACK, |cap, len| {
        cap.saturating_add(len.saturating_add(ANSWER_PER_REPORT_OVERHEAD))
    })
}

/// The most the leader reads of the helper's aggregate share, given the
/// size of the leader's own (unencrypted) aggregate share of the same
/// batch: the helper's is as large, sealed with HPKE.
pub fn aggregate_share_answer_limit(leader_share_len: usize) -> usize {
    leader_share_len.saturating_add(ANSWER_SLACK)
}

/// The leader's driver settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Most reports per aggregation job (fewer for large VDAFs, so that a
    /// job's request stays well under the helper's body limit).
    pub job_size: u64,
    /// Aggregation jobs run at once, so that the leader prepares one while
    /// the helper works on another.
    pub jobs_in_flight: usize,
    /// Leases and backoff of aggregation jobs (never given up: their
    /// reports are retried until the helper answers).
    pub aggregation: LeasePolicy,
    /// Leases, backoff and attempts of collection jobs.
    pub collection: LeasePolicy,
    /// Seconds before a collection job whose interval still has reports to
    /// aggregate is looked at again.
    pub not_ready_wait_secs: u64,
    /// Pause between ticks that found nothing to do.
    pub idle: Duration,
    /// Timeout of a request to the helper, seconds.
    pub peer_timeout_secs: u64,
    /// A PEM file of CA certificates trusted, besides the system's, for
    /// HTTPS to helpers (`--helper-ca-file`).
    pub helper_ca_file: Option<std::path::PathBuf>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            job_size: 1000,
            jobs_in_flight: 2,
            aggregation: LeasePolicy {
                // Longer than a request to the helper may take.
                lease_secs: 300,
                backoff_base_secs: 1,
                backoff_cap_secs: 300,
                max_attempts: None,
            },
            collection: LeasePolicy {
                lease_secs: 300,
                backoff_base_secs: 1,
                backoff_cap_secs: 300,
                // 1 + 2 + ... + 256, then 300 s apart: about 80 minutes.
                max_attempts: Some(24),
            },
            not_ready_wait_secs: 1,
            idle: Duration::from_millis(200),
            peer_timeout_secs: 120,
            helper_ca_file: None,
        }
    }
}

/// The error a failed collection job reports when polled.
pub(crate) fn failure_error(failure: Option<&CollectionFailure>) -> DapError {
    match failure {
        Some(CollectionFailure::InvalidBatchSize { count, min }) => DapError::InvalidBatchSize {
            count: *count,
            min: *min,
        },
        Some(CollectionFailure::HelperRefused { kind, detail }) => DapError::HelperRefused {
            kind: *kind,
            detail: detail.clone(),
        },
        Some(CollectionFailure::GaveUp { attempts, detail }) => DapError::Peer(format!(
            "the collection could not be finished after {attempts} attempts (last: {detail}); \
             create a new collection job for the interval to try again"
        )),
        Some(CollectionFailure::Other(detail)) => DapError::BatchInvalid(detail.clone()),
        None => DapError::Internal("collection job failed".into()),
    }
}

/// Starts the driver; it stops when `stop` turns true.
pub fn spawn(state: Arc<DapState>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            let busy = match tick(&state).await {
                Ok(busy) => busy,
                Err(e) => {
                    tracing::warn!(error = %e, "DAP job driver tick failed");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    _ = tokio::time::sleep(state.driver.idle) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    })
}

/// One round of work; true if some job moved forward (so the next round
/// should come at once).
pub async fn tick(state: &DapState) -> Result<bool, DapError> {
    let mut busy = create_jobs(state).await?;
    loop {
        let mut jobs = Vec::with_capacity(state.driver.jobs_in_flight);
        while jobs.len() < state.driver.jobs_in_flight {
            match lease(state).await? {
                Some(job) => jobs.push(job),
                None => break,
            }
        }
        if jobs.is_empty() {
            break;
        }
        let runs = jobs.iter().map(|job| async move {
            let task = state.task(&job.task_id).await?;
            run_job(state, &task, job).await
        });
        for (job, result) in jobs.iter().zip(futures::future::join_all(runs).await) {
            match result {
                Ok(finished) => busy |= finished,
                Err(e) => {
                    job_outcome("failed");
                    tracing::warn!(task_id = %job.task_id, attempts = job.lease.attempts, error = %e, "aggregation job failed; it will be retried after a backoff");
                    let mut tx = state.store().begin().await?;
                    tx.back_off_job(job, state.clock.now(), &state.driver.aggregation)
                        .await?;
                    tx.commit().await?;
                }
            }
        }
    }
    busy |= drive_collections(state).await?;
    Ok(busy)
}

async fn create_jobs(state: &DapState) -> Result<bool, DapError> {
    let mut tx = state.store().begin().await?;
    let tasks = tx.tasks_with_unassigned_reports().await?;
    let mut made = false;
    for task_id in tasks {
        let task = state.task(&task_id).await?;
        let size = task.limits.job_reports(state.driver.job_size);
        loop {
            let mut job_id = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut job_id);
            let n = tx
                .create_job(&task_id, &job_id, size, state.clock.now())
                .await?;
            if n == 0 {
                break;
            }
            made = true;
            if n < size {
                break;
            }
        }
    }
    tx.commit().await?;
    Ok(made)
}

async fn lease(state: &DapState) -> Result<Option<LeasedJob>, DapError> {
    let mut tx = state.store().begin().await?;
    let job = tx
        .lease_job(state.clock.now(), &state.driver.aggregation)
        .await?;
    tx.commit().await?;
    Ok(job)
}

/// Runs one leased aggregation job; true if this run counted it (false if
/// its lease was taken over and the work was discarded).
async fn run_job(state: &DapState, task: &Arc<DapTask>, job: &LeasedJob) -> Result<bool, DapError> {
    let reports = state
        .store()
        .job_reports(&task.task_id, &job.job_id)
        .await?;
    with_dap_vdaf!(&task.vdaf, |v| {
        run_job_typed(state, task, Arc::new(v.clone()), job, reports).await
    })
}

/// Output shares per time bucket, with the buckets' report-id checksums.
pub type BucketShares<O> = BTreeMap<u64, (Vec<O>, [u8; 32])>;

async fn run_job_typed<V: DapPrepare>(
    state: &DapState,
    task: &Arc<DapTask>,
    vdaf: Arc<V>,
    job: &LeasedJob,
    reports: Vec<StoredReport>,
) -> Result<bool, DapError> {
    let t = task.clone();
    let v = vdaf.clone();
    // Leader preparation, off the executor.
    type Init<V> = (StoredReport, LeaderState<V>, PrepareInit);
    let inits: Vec<Init<V>> = tokio::task::spawn_blocking(move || {
        reports
            .into_par_iter()
            .filter_map(|r| {
                let id = r.report_id.into();
                match leader_initialize(&*v, &t.verify_key, &id, &r.public_share, &r.leader_input_share) {
                    Ok((state, message)) => {
                        let ct = HpkeCiphertext::get_decoded(&r.helper_encrypted).ok()?;
                        let share = ReportShare::new(
                            ReportMetadata::new(id, Time::from_seconds_since_epoch(r.time)),
                            r.public_share.clone(),
                            ct,
                        );
                        Some((r, state, PrepareInit::new(share, message)))
                    }
                    Err(e) => {
                        tracing::info!(report_id = %id, error = ?e, "leader preparation rejected a report");
                        None
                    }
                }
            })
            .collect()
    })
    .await
    .map_err(|e| DapError::Internal(format!("preparation thread: {e}")))?;

    let mut per_bucket: BucketShares<V::OutputShare> = BTreeMap::new();
    if !inits.is_empty() {
        let request = AggregationJobInitializeReq::<TimeInterval>::new(
            Vec::new(),
            PartialBatchSelector::new_time_interval(),
            inits.iter().map(|(_, _, p)| p.clone()).collect(),
        )
        .get_encoded()
        .map_err(|e| DapError::Internal(e.to_string()))?;
        let answer_limit = aggregation_answer_limit(inits.iter().map(|(_, _, p)| {
            p.message()
                .get_encoded()
                .map_or(ANSWER_PER_REPORT_OVERHEAD, |m| m.len())
        }));
        let url = task
            .peer_url
            .join(&format!(
                "tasks/{}/aggregation_jobs/{}",
                task.task_id,
                AggregationJobId::from(job.job_id)
            ))
            .map_err(|e| DapError::Internal(e.to_string()))?;
        let body = send(
            state,
            task,
            state.http.put(url),
            AggregationJobInitializeReq::<TimeInterval>::MEDIA_TYPE,
            request,
            AggregationJobResp::MEDIA_TYPE,
            answer_limit,
        )
        .await?;
        let resp = AggregationJobResp::get_decoded(&body)
            .map_err(|e| DapError::Peer(format!("aggregation job response: {e}")))?;
        if resp.prepare_resps().len() != inits.len()
            || resp
                .prepare_resps()
                .iter()
                .zip(&inits)
                .any(|(r, (s, _, _))| r.report_id().as_ref() != &s.report_id)
        {
            return Err(DapError::Peer(
                "the helper's answer does not list the job's reports in order".into(),
            ));
        }
        let answers: Vec<PrepareStepResult> = resp
            .prepare_resps()
            .iter()
            .map(|r| r.result().clone())
            .collect();
        let v = vdaf.clone();
        let finished: Vec<(u64, [u8; 16], V::OutputShare)> =
            tokio::task::spawn_blocking(move || {
                inits
                    .into_par_iter()
                    .zip(answers.into_par_iter())
                    .filter_map(|((r, st, _), answer)| match answer {
                        PrepareStepResult::Continue { message } => {
                            match leader_finish(&*v, st, &message) {
                                Ok(out) => Some((r.time, r.report_id, out)),
                                Err(e) => {
                                    tracing::info!(error = ?e, "leader could not finish a report");
                                    None
                                }
                            }
                        }
                        PrepareStepResult::Reject(e) => {
                            tracing::info!(error = ?e, "the helper rejected a report");
                            None
                        }
                        PrepareStepResult::Finished => None,
                    })
                    .collect()
            })
            .await
            .map_err(|e| DapError::Internal(format!("preparation thread: {e}")))?;
        for (time, id, out) in finished {
            let entry = per_bucket
                .entry(task.bucket_of(time))
                .or_insert_with(|| (Vec::new(), [0u8; 32]));
            entry.0.push(out);
            checksum_add(&mut entry.1, &id);
        }
    }
    commit_job(state, task, &*vdaf, job, per_bucket).await
}

/// Adds a job's output shares to their buckets and marks it done, in one
/// transaction, if this process still holds the job's lease. Returns false,
/// having changed nothing, if the lease was taken over: the job's new
/// holder counts it.
pub async fn commit_job<V: DapPrepare>(
    state: &DapState,
    task: &DapTask,
    vdaf: &V,
    job: &LeasedJob,
    per_bucket: BucketShares<V::OutputShare>,
) -> Result<bool, DapError> {
    let mut tx = state.store().begin().await?;
    tx.lock_task(&task.task_id).await?;
    if !tx.finish_job(job).await? {
        drop(tx);
        job_outcome("lease_lost");
        tracing::warn!(task_id = %task.task_id, "lost the lease on an aggregation job before finishing it; its result was discarded");
        return Ok(false);
    }
    merge_buckets(&mut tx, task, vdaf, per_bucket).await?;
    tx.commit().await?;
    job_outcome("done");
    Ok(true)
}

/// Counts a finished DAP aggregation job ([`names::AGGREGATION_JOBS`]).
fn job_outcome(outcome: &'static str) {
    counter!(names::AGGREGATION_JOBS, "api" => "dap", "outcome" => outcome).increment(1);
}

/// Sends a DAP request to the helper with the task's token and returns the
/// body of a 2xx answer of media type `accept`. At most `max` bytes are
/// read: a larger `Content-Length` is refused before any of the body is,
/// and a body that grows past `max` is dropped as soon as it does, so a
/// hostile or broken helper cannot make the leader buffer more than the
/// job can need. Either fails the job with [`DapError::Peer`] (it backs
/// off and is retried).
async fn send(
    _state: &DapState,
    task: &DapTask,
    builder: reqwest::RequestBuilder,
    content_type: &'static str,
    body: Vec<u8>,
    accept: &'static str,
    max: usize,
) -> Result<Vec<u8>, DapError> {
    let token = task
        .peer_auth_token
        .as_deref()
        .ok_or_else(|| DapError::Internal("leader task without a helper token".into()))?;
    let mut resp = builder
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .map_err(|e| DapError::Peer(format!("request failed: {e}")))?;
    let status = resp.status();
    let media = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Some(n) = resp.content_length().filter(|&n| n > max as u64) {
        return Err(DapError::Peer(format!(
            "the helper announced an answer of {n} bytes; at most {max} are read for this \
             request (HTTP {status})"
        )));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| DapError::Peer(format!("reading the answer: {e}")))?
    {
        if bytes.len() + chunk.len() > max {
            return Err(DapError::Peer(format!(
                "the helper's answer is larger than the {max} bytes read for this request \
                 (HTTP {status}); it was dropped unread"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        if status.is_client_error() {
            if let Some(refusal) = helper_refusal(&bytes) {
                return Err(refusal);
            }
        }
        return Err(DapError::Peer(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        )));
    }
    if media != accept {
        return Err(DapError::Peer(format!(
            "answer of media type {media:?}, expected {accept}"
        )));
    }
    Ok(bytes)
}

/// A DAP problem document from the helper, as [`DapError::HelperRefused`].
fn helper_refusal(body: &[u8]) -> Option<DapError> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let kind: DapProblemType = doc.get("type")?.as_str()?.parse().ok()?;
    let detail = doc
        .get("detail")
        .and_then(|d| d.as_str())
        .map(|d| d.chars().take(500).collect())
        .unwrap_or_else(|| kind.description().to_string());
    Some(DapError::HelperRefused { kind, detail })
}

/// Finishes every collection job that can be finished now, one leased job
/// at a time; true if one was concluded.
async fn drive_collections(state: &DapState) -> Result<bool, DapError> {
    let policy = &state.driver.collection;
    let mut busy = false;
    loop {
        let leased = {
            let mut tx = state.store().begin().await?;
            let leased = tx.lease_collection(state.clock.now(), policy).await?;
            tx.commit().await?;
            leased
        };
        let Some(leased) = leased else {
            break;
        };
        // One job's failure (its task unreadable, a query on its batch
        // failing) backs that job off and never stops the others.
        match drive_collection(state, &leased).await {
            Ok(progress) => busy |= progress,
            Err(e) => {
                let job = &leased.job;
                tracing::warn!(task_id = %job.task_id, attempts = leased.lease.attempts, error = %e, "collection job could not be driven; it will be retried after a backoff");
                let mut tx = state.store().begin().await?;
                tx.back_off_collection(&leased, state.clock.now(), policy, None)
                    .await?;
                tx.commit().await?;
            }
        }
    }
    Ok(busy)
}

/// Drives one leased collection job: waits (backing off) while its batch
/// has unaggregated reports, else finishes it, giving up once its
/// attempts are spent. True if the job concluded.
async fn drive_collection(state: &DapState, leased: &LeasedCollection) -> Result<bool, DapError> {
    let policy = &state.driver.collection;
    let job = &leased.job;
    let task = state.task(&job.task_id).await?;
    let end = job.batch_start + job.batch_duration;
    if state
        .store()
        .unaggregated_reports(&job.task_id, job.batch_start, end)
        .await?
        > 0
    {
        let mut tx = state.store().begin().await?;
        tx.back_off_collection(
            leased,
            state.clock.now(),
            policy,
            Some(state.driver.not_ready_wait_secs),
        )
        .await?;
        tx.commit().await?;
        return Ok(false);
    }
    match finish_collection(state, &task, leased).await {
        Ok(()) => Ok(true),
        Err(e) if policy.exhausted(leased.lease.attempts) => {
            tracing::warn!(task_id = %job.task_id, attempts = leased.lease.attempts, error = %e, "collection job given up");
            let mut failed = job.clone();
            failed.state = CollectionState::Failed;
            failed.failure = Some(CollectionFailure::GaveUp {
                attempts: leased.lease.attempts,
                detail: e.to_string(),
            });
            conclude(state, &task, leased, &failed).await?;
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(task_id = %job.task_id, attempts = leased.lease.attempts, error = %e, "collection job not finished; it will be retried after a backoff");
            let mut tx = state.store().begin().await?;
            tx.back_off_collection(leased, state.clock.now(), policy, None)
                .await?;
            tx.commit().await?;
            Ok(false)
        }
    }
}

async fn finish_collection(
    state: &DapState,
    task: &Arc<DapTask>,
    leased: &LeasedCollection,
) -> Result<(), DapError> {
    let mut job = leased.job.clone();
    let end = job.batch_start + job.batch_duration;
    let buckets = state
        .store()
        .buckets(&task.task_id, job.batch_start, end)
        .await?;
    let (share, count, checksum) = sum_buckets(task, &buckets)?;
    if count < task.params.min_batch_size {
        job.state = CollectionState::Failed;
        job.failure = Some(CollectionFailure::InvalidBatchSize {
            count,
            min: task.params.min_batch_size,
        });
        conclude(state, task, leased, &job).await?;
        tracing::info!(task_id = %task.task_id, count, "collection refused: batch below the minimum size");
        return Ok(());
    }
    let selector = BatchSelector::<TimeInterval>::new_time_interval(interval(
        job.batch_start,
        job.batch_duration,
    )?);
    let request = AggregateShareReq::<TimeInterval>::new(
        selector.clone(),
        job.aggregation_param.clone(),
        count,
        ReportIdChecksum::from(checksum),
    )
    .get_encoded()
    .map_err(|e| DapError::Internal(e.to_string()))?;
    let url = task
        .peer_url
        .join(&format!("tasks/{}/aggregate_shares", task.task_id))
        .map_err(|e| DapError::Internal(e.to_string()))?;
    let body = match send(
        state,
        task,
        state.http.post(url),
        AggregateShareReq::<TimeInterval>::MEDIA_TYPE,
        request,
        AggregateShare::MEDIA_TYPE,
        aggregate_share_answer_limit(share.len()),
    )
    .await
    {
        Ok(body) => body,
        // The helper's definitive answer (batchMismatch, invalidBatchSize,
        // batchOverlap, ...) fails the job with it, so the collector's
        // poll reports it instead of waiting forever; failures without a
        // DAP problem document (5xx, network) are retried after a backoff.
        Err(DapError::HelperRefused { kind, detail }) => {
            tracing::warn!(task_id = %task.task_id, problem = kind.type_uri(), %detail, "the helper refused the aggregate share request; the collection job fails");
            job.state = CollectionState::Failed;
            job.failure = Some(CollectionFailure::HelperRefused { kind, detail });
            return conclude(state, task, leased, &job).await;
        }
        Err(e) => return Err(e),
    };
    let helper = AggregateShare::get_decoded(&body)
        .map_err(|e| DapError::Peer(format!("aggregate share: {e}")))?;
    let t = task.clone();
    let param = job.aggregation_param.clone();
    let leader = tokio::task::spawn_blocking(move || {
        seal_share(&t, Role::Leader, &share, count, &param, selector)
    })
    .await
    .map_err(|e| DapError::Internal(format!("worker thread: {e}")))??;
    job.state = CollectionState::Finished;
    job.report_count = Some(count);
    job.leader_share = Some(leader);
    job.helper_share = Some(
        helper
            .encrypted_aggregate_share()
            .get_encoded()
            .map_err(|e| DapError::Internal(e.to_string()))?,
    );
    conclude(state, task, leased, &job).await?;
    counter!(names::DAP_COLLECTIONS, "task_id" => task.task_id.to_string()).increment(1);
    tracing::info!(task_id = %task.task_id, count, "collection job finished");
    Ok(())
}

/// Stores a collection job's outcome (finished or failed), if this process
/// still holds its lease and the job is still in `start` (a DELETE may have
/// come meanwhile).
async fn conclude(
    state: &DapState,
    task: &DapTask,
    leased: &LeasedCollection,
    job: &CollectionJobRow,
) -> Result<(), DapError> {
    let mut tx = state.store().begin().await?;
    tx.lock_task(&task.task_id).await?;
    if !tx.holds_collection(leased).await? {
        tracing::warn!(task_id = %task.task_id, "lost the lease on a collection job before concluding it; its result was discarded");
        return Ok(());
    }
    if let Some(current) = tx
        .collection_job(&task.task_id, &job.collection_job_id)
        .await?
    {
        if current.state == CollectionState::Start {
            tx.update_collection_job(job).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
