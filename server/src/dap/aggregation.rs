//! What both aggregators do with output shares and aggregate shares: the
//! report-id checksum, per-bucket aggregates (merged into the stored ones,
//! summed over an interval), and the noised, sealed aggregate share sent to
//! the collector.

use std::collections::BTreeMap;

use hetally_dap::janus_core::hpke::{self, HpkeApplicationInfo, Label};
use hetally_dap::messages::query_type::TimeInterval;
use hetally_dap::messages::{
    AggregateShareAad, BatchSelector, Duration as DapDuration, Interval, Role, Time,
};
use hetally_dap::prio::codec::Encode;
use hetally_dap::vdaf::{aggregate, merge_encoded, zero_share, DapPrepare};
use sha2::{Digest, Sha256};

use super::task::DapTask;
use super::DapError;
use crate::datastore::dap::{BucketAggregate, DapTx};

/// A DAP interval.
pub(crate) fn interval(start: u64, duration: u64) -> Result<Interval, DapError> {
    Interval::new(
        Time::from_seconds_since_epoch(start),
        DapDuration::from_seconds(duration),
    )
    .map_err(|e| DapError::Internal(format!("interval: {e}")))
}

/// SHA-256 of a request body (the helper's idempotency key).
pub(crate) fn body_hash(body: &[u8]) -> Vec<u8> {
    Sha256::digest(body).to_vec()
}

/// XOR of SHA-256 of report ids (DAP-09's report id checksum).
pub fn checksum_add(acc: &mut [u8; 32], report_id: &[u8; 16]) {
    let h = Sha256::digest(report_id);
    for (a, b) in acc.iter_mut().zip(h.iter()) {
        *a ^= b;
    }
}

/// Combines two checksums.
pub fn checksum_merge(acc: &mut [u8; 32], other: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(other.iter()) {
        *a ^= b;
    }
}

/// Adds per-bucket output shares into the stored bucket aggregates.
pub(crate) async fn merge_buckets<V: DapPrepare>(
    tx: &mut DapTx,
    task: &DapTask,
    vdaf: &V,
    per_bucket: BTreeMap<u64, (Vec<V::OutputShare>, [u8; 32])>,
) -> Result<(), DapError> {
    for (bucket, (outs, checksum)) in per_bucket {
        let count = outs.len() as u64;
        let fresh = aggregate(vdaf, outs)
            .map_err(|e| DapError::Internal(e.to_string()))?
            .get_encoded()
            .map_err(|e| DapError::Internal(e.to_string()))?;
        let existing = tx
            .buckets(&task.task_id, bucket, bucket + 1)
            .await?
            .into_iter()
            .next();
        let merged = match existing {
            Some(mut b) => {
                b.share = merge_encoded(&task.vdaf, &b.share, &fresh)
                    .map_err(|e| DapError::Internal(format!("stored aggregate: {e}")))?;
                b.report_count += count;
                checksum_merge(&mut b.checksum, &checksum);
                b
            }
            None => BucketAggregate {
                bucket_start: bucket,
                share: fresh,
                report_count: count,
                checksum,
            },
        };
        tx.put_bucket(&task.task_id, &merged).await?;
    }
    Ok(())
}

/// Sums the buckets of an interval: (encoded share, count, checksum).
pub(crate) fn sum_buckets(
    task: &DapTask,
    buckets: &[BucketAggregate],
) -> Result<(Vec<u8>, u64, [u8; 32]), DapError> {
    let mut share = zero_share(&task.vdaf).map_err(|e| DapError::Internal(e.to_string()))?;
    let mut count = 0u64;
    let mut checksum = [0u8; 32];
    for b in buckets {
        share = merge_encoded(&task.vdaf, &share, &b.share)
            .map_err(|e| DapError::Internal(format!("stored aggregate: {e}")))?;
        count += b.report_count;
        checksum_merge(&mut checksum, &b.checksum);
    }
    Ok((share, count, checksum))
}

/// Noises (per the task's DP strategy) and encrypts an aggregate share to
/// the collector.
pub(crate) fn seal_share(
    task: &DapTask,
    sender: Role,
    share: &[u8],
    count: u64,
    aggregation_param: &[u8],
    batch_selector: BatchSelector<TimeInterval>,
) -> Result<Vec<u8>, DapError> {
    let noised = task
        .vdaf
        .noised_aggregate_share(&task.dp, share, count as usize)
        .map_err(|e| DapError::Internal(format!("DP noise: {e}")))?;
    let aad = AggregateShareAad::new(task.task_id, aggregation_param.to_vec(), batch_selector)
        .get_encoded()
        .map_err(|e| DapError::Internal(e.to_string()))?;
    let ct = hpke::seal(
        &task.collector_hpke_config,
        &HpkeApplicationInfo::new(&Label::AggregateShare, &sender, &Role::Collector),
        &noised,
        &aad,
    )
    .map_err(|e| DapError::Internal(format!("HPKE seal: {e}")))?;
    ct.get_encoded()
        .map_err(|e| DapError::Internal(e.to_string()))
}
