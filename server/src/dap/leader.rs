//! The leader's background driver: aggregation jobs and collection jobs.
//!
//! Every tick it (1) groups stored reports into aggregation jobs of at most
//! `job_size` reports, (2) runs the pending jobs, two at a time, each with
//! leader preparation on rayon inside `spawn_blocking`, one
//! `PUT aggregation_jobs` to the helper
//! (retried with the same job id, which the helper answers idempotently),
//! the helper's `finish` messages turned into output shares, and the
//! accepted shares added to their time buckets in the same transaction that
//! marks the job done; (3) finishes collection jobs whose interval has no
//! report left to aggregate: sums its buckets, checks the minimum batch
//! size, asks the helper for its aggregate share, and stores both encrypted
//! shares. A crash anywhere loses nothing: a job whose lease expires is run
//! again, and nothing is counted before its transaction commits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hetally_crypto::dap::messages::problem_type::DapProblemType;
use hetally_crypto::dap::messages::query_type::TimeInterval;
use hetally_crypto::dap::messages::{
    AggregateShare, AggregateShareReq, AggregationJobId, AggregationJobInitializeReq,
    AggregationJobResp, BatchSelector, Duration as DapDuration, HpkeCiphertext, Interval,
    PartialBatchSelector, PrepareInit, PrepareStepResult, ReportIdChecksum, ReportMetadata,
    ReportShare, Role, Time,
};
use hetally_crypto::dap::prio::codec::{Decode, Encode};
use hetally_crypto::dap::vdaf::{leader_finish, leader_initialize, DapPrepare, LeaderState};
use hetally_crypto::with_dap_vdaf;
use rand::RngCore;
use rayon::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::helper::{checksum_add, merge_buckets, seal_share, sum_buckets};
use super::store::{CollectionJobRow, LeasedJob, StoredReport};
use super::task::DapTask;
use super::{now, DapError, DapState};

/// Seconds a job is leased before another run may take it over.
const LEASE_SECS: u64 = 120;

/// Aggregation jobs the driver runs at once.
const JOBS_IN_FLIGHT: usize = 2;

/// Pause between ticks when there is nothing to do.
const IDLE: Duration = Duration::from_millis(200);

/// A DAP interval.
pub(crate) fn interval(start: u64, duration: u64) -> Result<Interval, DapError> {
    Interval::new(
        Time::from_seconds_since_epoch(start),
        DapDuration::from_seconds(duration),
    )
    .map_err(|e| DapError::Internal(format!("interval: {e}")))
}

/// The error a failed collection job reports when polled.
pub(crate) fn stored_failure(job: &CollectionJobRow) -> DapError {
    match job.error.as_deref() {
        Some(e) if e.starts_with("invalidBatchSize:") => {
            let count = e
                .trim_start_matches("invalidBatchSize:")
                .parse()
                .unwrap_or(0);
            DapError::InvalidBatchSize {
                count,
                min: job.report_count.unwrap_or(0),
            }
        }
        Some(e) if e.starts_with(HELPER_REFUSED) => {
            // "helper:<problem type URI> <detail>"
            let rest = &e[HELPER_REFUSED.len()..];
            let (uri, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            match uri.parse::<DapProblemType>() {
                Ok(kind) => DapError::HelperRefused {
                    kind,
                    detail: detail.to_string(),
                },
                Err(_) => DapError::BatchInvalid(e.to_string()),
            }
        }
        Some(e) => DapError::BatchInvalid(e.to_string()),
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
                    _ = tokio::time::sleep(IDLE) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    })
}

/// One round of work; true if it did something.
async fn tick(state: &DapState) -> Result<bool, DapError> {
    let mut busy = create_jobs(state).await?;
    loop {
        // Up to JOBS_IN_FLIGHT jobs at once, so that the leader prepares
        // one while the helper works on another.
        let mut jobs = Vec::with_capacity(JOBS_IN_FLIGHT);
        while jobs.len() < JOBS_IN_FLIGHT {
            match lease(state).await? {
                Some(job) => jobs.push(job),
                None => break,
            }
        }
        if jobs.is_empty() {
            break;
        }
        busy = true;
        let runs = jobs.iter().map(|job| async move {
            let task = state.task(&job.task_id).await?;
            run_job(state, &task, job).await
        });
        let mut failed = false;
        for (job, result) in jobs.iter().zip(futures::future::join_all(runs).await) {
            if let Err(e) = result {
                tracing::warn!(task_id = %job.task_id, error = %e, "aggregation job failed; it will be retried");
                failed = true;
            }
        }
        if failed {
            break;
        }
    }
    busy |= drive_collections(state).await?;
    Ok(busy)
}

async fn create_jobs(state: &DapState) -> Result<bool, DapError> {
    let mut tx = state.store.begin().await?;
    let tasks = tx.tasks_with_unassigned_reports().await?;
    let mut made = false;
    for task_id in tasks {
        let task = state.task(&task_id).await?;
        // Large VDAFs get smaller jobs, so requests stay well under the
        // helper's body limit.
        let per_report = match task.spec {
            hetally_crypto::dap::vdaf::VdafSpec::Histogram { length, .. } => length as u64,
            hetally_crypto::dap::vdaf::VdafSpec::SumVec { length, bits, .. } => {
                (length * bits) as u64
            }
            _ => 1,
        };
        let size = (state.job_size).min((4_000_000 / per_report.max(1)).max(1));
        loop {
            let mut job_id = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut job_id);
            let n = tx.create_job(&task_id, &job_id, size, now()).await?;
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
    let mut tx = state.store.begin().await?;
    let job = tx.lease_job(now(), LEASE_SECS).await?;
    tx.commit().await?;
    Ok(job)
}

async fn run_job(state: &DapState, task: &Arc<DapTask>, job: &LeasedJob) -> Result<(), DapError> {
    let reports = state.store.job_reports(&task.task_id, &job.job_id).await?;
    with_dap_vdaf!(&task.vdaf, |v| {
        run_job_typed(state, task, Arc::new(v.clone()), job, reports).await
    })
}

async fn run_job_typed<V: DapPrepare>(
    state: &DapState,
    task: &Arc<DapTask>,
    vdaf: Arc<V>,
    job: &LeasedJob,
    reports: Vec<StoredReport>,
) -> Result<(), DapError> {
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

    let mut per_bucket: BTreeMap<u64, (Vec<V::OutputShare>, [u8; 32])> = BTreeMap::new();
    if !inits.is_empty() {
        let request = AggregationJobInitializeReq::<TimeInterval>::new(
            Vec::new(),
            PartialBatchSelector::new_time_interval(),
            inits.iter().map(|(_, _, p)| p.clone()).collect(),
        )
        .get_encoded()
        .map_err(|e| DapError::Internal(e.to_string()))?;
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
    let mut tx = state.store.begin().await?;
    tx.lock_task(&task.task_id).await?;
    merge_buckets(&mut tx, task, &*vdaf, per_bucket).await?;
    tx.finish_job(&task.task_id, &job.job_id).await?;
    tx.commit().await?;
    Ok(())
}

/// Sends a DAP request to the helper with the task's token and returns the
/// body of a 2xx answer of media type `accept`.
async fn send(
    _state: &DapState,
    task: &DapTask,
    builder: reqwest::RequestBuilder,
    content_type: &'static str,
    body: Vec<u8>,
    accept: &'static str,
) -> Result<Vec<u8>, DapError> {
    let token = task
        .peer_auth_token
        .as_deref()
        .ok_or_else(|| DapError::Internal("leader task without a helper token".into()))?;
    let resp = builder
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
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| DapError::Peer(format!("reading the answer: {e}")))?;
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
    Ok(bytes.to_vec())
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

/// Prefix of a collection job's stored error that the helper gave.
const HELPER_REFUSED: &str = "helper:";

async fn drive_collections(state: &DapState) -> Result<bool, DapError> {
    let mut busy = false;
    for job in state.store.started_collection_jobs().await? {
        let task = state.task(&job.task_id).await?;
        let end = job.batch_start + job.batch_duration;
        if state
            .store
            .unaggregated_reports(&job.task_id, job.batch_start, end)
            .await?
            > 0
        {
            continue;
        }
        busy = true;
        if let Err(e) = finish_collection(state, &task, job.clone()).await {
            tracing::warn!(task_id = %job.task_id, error = %e, "collection job not finished yet");
        }
    }
    Ok(busy)
}

async fn finish_collection(
    state: &DapState,
    task: &Arc<DapTask>,
    mut job: CollectionJobRow,
) -> Result<(), DapError> {
    let end = job.batch_start + job.batch_duration;
    let buckets = state
        .store
        .buckets(&task.task_id, job.batch_start, end)
        .await?;
    let (share, count, checksum) = sum_buckets(task, &buckets)?;
    if count < task.params.min_batch_size {
        job.state = "failed".into();
        job.error = Some(format!("invalidBatchSize:{count}"));
        job.report_count = Some(task.params.min_batch_size);
        conclude(state, task, &job).await?;
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
    )
    .await
    {
        Ok(body) => body,
        // The helper's definitive answer (batchMismatch, invalidBatchSize,
        // batchOverlap, ...) fails the job with it, so the collector's
        // poll reports it instead of waiting forever; failures without a
        // DAP problem document (5xx, network) are retried next tick.
        Err(DapError::HelperRefused { kind, detail }) => {
            tracing::warn!(task_id = %task.task_id, problem = kind.type_uri(), %detail, "the helper refused the aggregate share request; the collection job fails");
            job.state = "failed".into();
            job.error = Some(format!("{HELPER_REFUSED}{} {detail}", kind.type_uri()));
            return conclude(state, task, &job).await;
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
    job.state = "finished".into();
    job.report_count = Some(count);
    job.leader_share = Some(leader);
    job.helper_share = Some(
        helper
            .encrypted_aggregate_share()
            .get_encoded()
            .map_err(|e| DapError::Internal(e.to_string()))?,
    );
    conclude(state, task, &job).await?;
    tracing::info!(task_id = %task.task_id, count, "collection job finished");
    Ok(())
}

/// Stores a collection job's outcome (finished or failed), if the job is
/// still in 'start' (a DELETE may have come meanwhile).
async fn conclude(
    state: &DapState,
    task: &DapTask,
    job: &CollectionJobRow,
) -> Result<(), DapError> {
    let mut tx = state.store.begin().await?;
    tx.lock_task(&task.task_id).await?;
    if let Some(current) = tx
        .collection_job(&task.task_id, &job.collection_job_id)
        .await?
    {
        if current.state == "start" {
            tx.update_collection_job(job).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
