//! The helper's side: aggregation job initialisation and aggregate shares.
//!
//! An aggregation job is prepared in one round. Each report's helper input
//! share is decrypted and prepared against the leader's prepare share on
//! rayon (inside `spawn_blocking`); then one write transaction rejects
//! replayed reports and reports of collected intervals, adds the accepted
//! output shares to their time buckets and stores the response, so a
//! retried PUT of the same job is answered identically and a report is
//! counted at most once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use hetally_dap::janus_core::hpke::{self, HpkeApplicationInfo, Label};
use hetally_dap::messages::query_type::TimeInterval;
use hetally_dap::messages::{
    AggregateShare, AggregateShareReq, AggregationJobInitializeReq, AggregationJobResp, Extension,
    InputShareAad, PlaintextInputShare, PrepareError, PrepareInit, PrepareResp, PrepareStepResult,
    ReportId, Role,
};
use hetally_dap::prio::codec::{Decode, Encode};
use hetally_dap::prio::topology::ping_pong::PingPongMessage;
use hetally_dap::vdaf::{check_aggregation_parameter, helper_initialize, DapPrepare};
use hetally_dap::with_dap_vdaf;
use rayon::prelude::*;

use super::aggregation::{body_hash, checksum_add, merge_buckets, seal_share, sum_buckets};
use super::hpke_keys::HpkeKeySet;
use super::task::{DapTask, MAX_JOB_REPORTS};
use super::{DapError, DapState};
use crate::datastore::dap::AggregateShareRow;

/// Rejects duplicated extension types (DAP-09 section 4.5.1.3); hetally
/// defines no extensions, so unknown ones are otherwise ignored.
pub fn check_extensions(extensions: &[Extension]) -> Result<(), &'static str> {
    let mut seen = HashSet::new();
    for e in extensions {
        if !seen.insert(e.extension_type()) {
            return Err("duplicate report extension");
        }
    }
    Ok(())
}

/// One report's outcome of the CPU phase.
struct Prepared<O> {
    report_id: [u8; 16],
    time: u64,
    result: Result<(O, PingPongMessage), PrepareError>,
}

fn prepare_one<V: DapPrepare>(
    vdaf: &V,
    task: &DapTask,
    keys: &HpkeKeySet,
    init: &PrepareInit,
    now: u64,
) -> Result<(V::OutputShare, PingPongMessage), PrepareError> {
    let share = init.report_share();
    let metadata = share.metadata();
    if metadata.time().as_seconds_since_epoch()
        > now.saturating_add(task.params.tolerable_clock_skew)
    {
        return Err(PrepareError::ReportTooEarly);
    }
    // Too old: its replay record may have been garbage-collected
    // (`crate::gc`), so it could not be told from a replay.
    if metadata.time().as_seconds_since_epoch()
        < crate::gc::oldest_accepted(
            now,
            task.params.report_expiry_age,
            task.params.time_precision,
        )
    {
        return Err(PrepareError::ReportDropped);
    }
    let ct = share.encrypted_input_share();
    // Any of the task's configurations still in their grace period.
    let keypair = keys
        .get(ct.config_id(), now)
        .ok_or(PrepareError::HpkeUnknownConfigId)?;
    let aad = InputShareAad::new(
        task.task_id,
        metadata.clone(),
        share.public_share().to_vec(),
    )
    .get_encoded()
    .map_err(|_| PrepareError::InvalidMessage)?;
    let plaintext = hpke::open(
        keypair,
        &HpkeApplicationInfo::new(&Label::InputShare, &Role::Client, &Role::Helper),
        ct,
        &aad,
    )
    .map_err(|_| PrepareError::HpkeDecryptError)?;
    let input =
        PlaintextInputShare::get_decoded(&plaintext).map_err(|_| PrepareError::InvalidMessage)?;
    check_extensions(input.extensions()).map_err(|_| PrepareError::InvalidMessage)?;
    helper_initialize(
        vdaf,
        &task.verify_key,
        metadata.id(),
        share.public_share(),
        input.payload(),
        init.message(),
    )
}

/// `PUT /tasks/{id}/aggregation_jobs/{job}`: returns the encoded
/// `AggregationJobResp`.
pub async fn aggregation_job_init(
    state: &DapState,
    task: Arc<DapTask>,
    job_id: [u8; 16],
    body: Vec<u8>,
) -> Result<Vec<u8>, DapError> {
    let request_hash = body_hash(&body);
    // A retried PUT gets the stored answer.
    {
        let mut tx = state.store.begin().await?;
        if let Some((hash, response)) = tx.helper_job(&task.task_id, &job_id).await? {
            tx.commit().await?;
            if hash == request_hash {
                return Ok(response);
            }
            return Err(DapError::Conflict(
                "aggregation job exists with a different request".into(),
            ));
        }
        tx.commit().await?;
    }
    let request = AggregationJobInitializeReq::<TimeInterval>::get_decoded(&body)
        .map_err(|e| DapError::InvalidMessage(format!("aggregation job request: {e}")))?;
    check_aggregation_parameter(request.aggregation_parameter())
        .map_err(|e| DapError::InvalidMessage(format!("aggregation parameter: {e}")))?;
    let inits = request.prepare_inits();
    if inits.len() > MAX_JOB_REPORTS {
        return Err(DapError::InvalidMessage(format!(
            "{} reports in one job; at most {MAX_JOB_REPORTS}",
            inits.len()
        )));
    }
    let mut ids = HashSet::with_capacity(inits.len());
    if !inits
        .iter()
        .all(|i| ids.insert(*i.report_share().metadata().id()))
    {
        return Err(DapError::InvalidMessage(
            "a report id appears twice in the job".into(),
        ));
    }
    with_dap_vdaf!(&task.vdaf, |v| {
        init_typed(state, &task, v.clone(), job_id, request_hash, request).await
    })
}

async fn init_typed<V: DapPrepare>(
    state: &DapState,
    task: &Arc<DapTask>,
    vdaf: V,
    job_id: [u8; 16],
    request_hash: Vec<u8>,
    request: AggregationJobInitializeReq<TimeInterval>,
) -> Result<Vec<u8>, DapError>
where
    V::OutputShare: Send,
{
    let t = task.clone();
    let vdaf = Arc::new(vdaf);
    let v = vdaf.clone();
    let now = state.clock.now();
    let keys = state
        .hpke_keys_for(
            &task.task_id,
            request
                .prepare_inits()
                .iter()
                .map(|i| *i.report_share().encrypted_input_share().config_id()),
            now,
        )
        .await?;
    let prepared: Vec<Prepared<V::OutputShare>> = tokio::task::spawn_blocking(move || {
        request
            .prepare_inits()
            .par_iter()
            .map(|init| Prepared {
                report_id: *init.report_share().metadata().id().as_ref(),
                time: init
                    .report_share()
                    .metadata()
                    .time()
                    .as_seconds_since_epoch(),
                result: prepare_one(&*v, &t, &keys, init, now),
            })
            .collect()
    })
    .await
    .map_err(|e| DapError::Internal(format!("preparation thread: {e}")))?;

    let task_id = task.task_id;
    let mut tx = state.store.begin().await?;
    tx.lock_task(&task_id).await?;
    // Another request for the same job may have committed meanwhile.
    if let Some((hash, response)) = tx.helper_job(&task_id, &job_id).await? {
        tx.commit().await?;
        return if hash == request_hash {
            Ok(response)
        } else {
            Err(DapError::Conflict(
                "aggregation job exists with a different request".into(),
            ))
        };
    }
    let collected = tx.helper_collected_intervals(&task_id).await?;
    let mut resps = Vec::with_capacity(prepared.len());
    let mut per_bucket: BTreeMap<u64, (Vec<V::OutputShare>, [u8; 32])> = BTreeMap::new();
    let mut accepted = 0u64;
    for p in prepared {
        let result = match p.result {
            Err(e) => Err(e),
            Ok(_)
                if collected
                    .iter()
                    .any(|&(s, d)| s <= p.time && p.time < s + d) =>
            {
                Err(PrepareError::BatchCollected)
            }
            Ok(ok) => {
                if tx
                    .insert_helper_report(&task_id, &p.report_id, p.time)
                    .await?
                {
                    Ok(ok)
                } else {
                    Err(PrepareError::ReportReplayed)
                }
            }
        };
        let id = ReportId::from(p.report_id);
        match result {
            Ok((out, message)) => {
                accepted += 1;
                let entry = per_bucket
                    .entry(task.bucket_of(p.time))
                    .or_insert_with(|| (Vec::new(), [0u8; 32]));
                entry.0.push(out);
                checksum_add(&mut entry.1, &p.report_id);
                resps.push(PrepareResp::new(
                    id,
                    PrepareStepResult::Continue { message },
                ));
            }
            Err(e) => {
                tracing::debug!(task_id = %task_id, report_id = %id, error = ?e, "report rejected in preparation");
                resps.push(PrepareResp::new(id, PrepareStepResult::Reject(e)));
            }
        }
    }
    merge_buckets(&mut tx, task, &*vdaf, per_bucket).await?;
    let response = AggregationJobResp::new(resps)
        .get_encoded()
        .map_err(|e| DapError::Internal(format!("encoding: {e}")))?;
    tx.put_helper_job(&task_id, &job_id, accepted, &request_hash, &response, now)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// `POST /tasks/{id}/aggregate_shares`: returns the encoded
/// `AggregateShare`.
pub async fn aggregate_share(
    state: &DapState,
    task: Arc<DapTask>,
    request: AggregateShareReq<TimeInterval>,
) -> Result<Vec<u8>, DapError> {
    check_aggregation_parameter(request.aggregation_parameter())
        .map_err(|e| DapError::InvalidMessage(format!("aggregation parameter: {e}")))?;
    let interval = request.batch_selector().batch_interval();
    let start = interval.start().as_seconds_since_epoch();
    let duration = interval.duration().as_seconds();
    task.check_interval(start, duration)?;
    let end = start + duration;
    let task_id = task.task_id;
    let want_checksum: [u8; 32] = request
        .checksum()
        .as_ref()
        .try_into()
        .map_err(|_| DapError::InvalidMessage("checksum length".into()))?;
    let mut tx = state.store.begin().await?;
    tx.lock_task(&task_id).await?;
    let respond = |encrypted: Vec<u8>| -> Result<Vec<u8>, DapError> {
        let ct = Decode::get_decoded(&encrypted)
            .map_err(|e| DapError::Internal(format!("stored share: {e}")))?;
        AggregateShare::new(ct)
            .get_encoded()
            .map_err(|e| DapError::Internal(e.to_string()))
    };
    if let Some(done) = tx.aggregate_share(&task_id, start, duration).await? {
        tx.commit().await?;
        if done.report_count != request.report_count() || done.checksum != want_checksum {
            return Err(DapError::BatchMismatch(
                "the interval was collected with other reports".into(),
            ));
        }
        return respond(done.encrypted_share);
    }
    for (s, d) in tx.helper_collected_intervals(&task_id).await? {
        if s < end && start < s + d {
            return Err(DapError::BatchOverlap(format!("[{s}, {})", s + d)));
        }
    }
    let buckets = tx.buckets(&task_id, start, end).await?;
    let (share, count, checksum) = sum_buckets(&task, &buckets)?;
    if count != request.report_count() || checksum != want_checksum {
        return Err(DapError::BatchMismatch(format!(
            "the helper aggregated {count} reports in this interval, the leader {}",
            request.report_count()
        )));
    }
    if count < task.params.min_batch_size {
        return Err(DapError::InvalidBatchSize {
            count,
            min: task.params.min_batch_size,
        });
    }
    let t = task.clone();
    let selector = request.batch_selector().clone();
    let param = request.aggregation_parameter().to_vec();
    let p = param.clone();
    let encrypted = tokio::task::spawn_blocking(move || {
        seal_share(&t, Role::Helper, &share, count, &p, selector)
    })
    .await
    .map_err(|e| DapError::Internal(format!("worker thread: {e}")))??;
    let row = AggregateShareRow {
        report_count: count,
        checksum,
        encrypted_share: encrypted.clone(),
    };
    tx.put_aggregate_share(&task_id, start, duration, &param, &row, state.clock.now())
        .await?;
    tx.commit().await?;
    respond(encrypted)
}
