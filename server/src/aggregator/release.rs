//! Releases: claiming a batch, summing it in parallel, adding encrypted DP
//! noise, storing the aggregate.
//!
//! 1. **Claim** (one transaction): the interval must be aligned, must not
//!    overlap another release, and its cost must fit the remaining budget.
//!    The batch size is checked against the task's limits as its relation
//!    allows:
//!    * replace-one (and tasks without a declared relation): the exact
//!      count must lie between `min_batch_size` and `max_batch_size`, or
//!      the claim is refused (the count is public under replace-one);
//!    * add/remove: the exact count never decides anything the collector
//!      sees. The report count plus one draw of the task's noise is the
//!      release's first value; if that noisy count lies outside the limits
//!      the release is recorded as *withheld* (no values are computed or
//!      released, the interval is closed, the budget is spent). Deciding on
//!      the noisy count is post-processing of a DP output, so it costs no
//!      privacy beyond the release's own (docs/dp.md).
//!
//!    The release row is written and the budget spent; from then on no
//!    report can enter the interval. A refused claim changes nothing.
//! 2. **Sum**: the partial sums of the batch's finished aggregation jobs
//!    are merged, and the payloads of its other reports stream out of the
//!    store in chunks and are summed with rayon on the blocking pool, never
//!    on the async executor.
//!    A task whose trustees draw its noise (docs/threshold.md) stores the
//!    encrypted, noise-free sum and answers [`Error::AwaitingNoise`] until
//!    its trustees' contributions are in; the sum is then multiplied by
//!    their encrypted shares instead of step 3, and the stored sum and
//!    shares are deleted with step 4.
//! 3. **Noise**: one value per measurement value from the exact sampler,
//!    encrypted under the collector's key and added; then dropped.
//! 4. **Store**: the aggregate file is written and the release marked done.
//!    Asking for the same interval again returns these bytes. If the process
//!    dies between 1 and 4, the next request for the interval redoes 2 to 4
//!    (nothing was released, so fresh noise is fine); the budget was spent at
//!    claim time, which can only err on the side of privacy.

use std::sync::Arc;

use ::metrics::counter;
use hetally_dp::{try_spend, Rational};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::contribution::NoiseContribution;
use hetally_protocol::roles::ErasedSum;
use hetally_protocol::{SchemeError, TaskId};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use zeroize::Zeroize;

use super::{Aggregator, Error, TaskState};
use crate::datastore::{BatchChunk, ClaimDecision, ClaimFacts, ReleaseRecord, ReleaseState};
use crate::metrics::{self, names};

/// Reports per chunk streamed from the store to the summing thread.
const CHUNK: usize = 4096;

/// The result of a release request.
#[derive(Debug)]
pub struct ReleaseOutcome {
    /// The stored aggregate file.
    pub aggregate: Vec<u8>,
    /// True if this request created the release; false if it returned an
    /// earlier one.
    pub created: bool,
    /// The audit-log row.
    pub record: ReleaseRecord,
}

/// Which stream of a release's noise a generator is for.
#[derive(Debug, Clone, Copy)]
enum NoiseStream {
    /// The report count's noise (add/remove), drawn at claim time.
    Count = 0,
    /// The values' noise and the encryption randomness, drawn when the
    /// aggregate is computed.
    Values = 1,
}

/// Decides a claim inside its transaction; see the module docs. Nothing in
/// an error returned here depends on the exact report count of an
/// add/remove task.
fn decide(
    task: &TaskState,
    facts: &ClaimFacts,
    count_rng: &mut ChaCha20Rng,
) -> Result<ClaimDecision, Error> {
    if facts.same_interval.is_some() {
        return Ok(ClaimDecision::UseExisting);
    }
    if let Some(other) = facts.overlapping.first() {
        return Err(Error::BatchOverlap {
            start: other.batch_start,
            duration: other.batch_duration,
        });
    }
    let def = &task.definition;
    let publishes_count = task.guarantee.relation.publishes_batch_size();
    if publishes_count {
        if facts.report_count < def.min_batch_size {
            return Err(Error::BatchTooSmall {
                count: facts.report_count,
                min: def.min_batch_size,
            });
        }
        if facts.report_count > def.max_batch_size {
            return Err(Error::BatchTooLarge {
                count: facts.report_count,
                max: def.max_batch_size,
            });
        }
    }
    let cost = task.guarantee.release_cost().unwrap_or_else(Rational::zero);
    let budget_spent_after = match &def.budget {
        Some(total) => try_spend(total, &facts.task.budget_spent, &cost)
            .map_err(|e| Error::BudgetExhausted(e.to_string()))?,
        None => facts.task.budget_spent.add(&cost),
    };
    let (noisy_report_count, withheld) = if publishes_count {
        (None, false)
    } else {
        let noise = task
            .guarantee
            .noise
            .sample(1, count_rng)
            .map_err(|e| Error::Internal(format!("sampling noise failed: {e}")))?;
        let noisy = i128::from(facts.report_count) + noise.first().copied().unwrap_or(0);
        // Saturating is post-processing of the noisy count: still DP.
        let noisy = i64::try_from(noisy).unwrap_or(if noisy < 0 { i64::MIN } else { i64::MAX });
        let inside = i128::from(noisy) >= i128::from(def.min_batch_size)
            && i128::from(noisy) <= i128::from(def.max_batch_size);
        (Some(noisy), !inside)
    };
    Ok(ClaimDecision::Claim {
        noisy_report_count,
        withheld,
        mechanism: def.dp.to_string(),
        cost,
        budget_spent_after,
    })
}

impl Aggregator {
    /// Releases the batch `[start, start + duration)` of a task, or returns
    /// the earlier release of exactly that interval; see the module docs.
    pub async fn release(
        &self,
        task: Arc<TaskState>,
        start: u64,
        duration: u64,
    ) -> Result<ReleaseOutcome, Error> {
        let now = self.clock.now_i64();
        let precision = task.definition.time_precision;
        if duration == 0
            || !start.is_multiple_of(precision)
            || !duration.is_multiple_of(precision)
            || start
                .checked_add(duration)
                .is_none_or(|end| end > i64::MAX as u64)
        {
            return Err(Error::MisalignedInterval {
                start,
                duration,
                precision,
            });
        }
        let _guard = task.release_lock.lock().await;
        let mut count_rng = self.noise_rng(&task.id, start, NoiseStream::Count);
        // Whether the (last) decision claimed a new release, for metrics.
        let mut claimed = false;
        let record = self
            .store
            .claim_release(&task.id, start, duration, now, |facts| {
                let decision = decide(&task, facts, &mut count_rng);
                claimed = matches!(decision, Ok(ClaimDecision::Claim { .. }));
                decision
            })
            .await??;
        if claimed {
            metrics::set_budget_spent(&task.id, record.budget_spent_after.to_f64());
            if record.state == ReleaseState::Withheld {
                counter!(names::RELEASES, "task_id" => task.id.to_string(), "outcome" => "withheld")
                    .increment(1);
            }
        }
        if record.state == ReleaseState::Withheld {
            let def = &task.definition;
            return Err(Error::BatchWithheld {
                noisy: record.noisy_report_count.ok_or_else(|| {
                    Error::Internal("a withheld release has no noisy report count".into())
                })?,
                min: def.min_batch_size,
                max: def.max_batch_size,
            });
        }
        if record.state == ReleaseState::Done {
            let aggregate = record
                .aggregate
                .clone()
                .ok_or_else(|| Error::Internal("a done release has no aggregate".into()))?;
            return Ok(ReleaseOutcome {
                aggregate,
                created: false,
                record,
            });
        }
        let started = std::time::Instant::now();
        let aggregate = match task.definition.trustee_noise {
            Some(trustees) => {
                self.with_trustee_noise(&task, &record, usize::from(trustees.contributors), now)
                    .await?
            }
            None => self.compute(&task, &record).await?,
        };
        let stored = self
            .store
            .finish_release(&task.id, start, &aggregate, now)
            .await?;
        counter!(names::RELEASES, "task_id" => task.id.to_string(), "outcome" => "released")
            .increment(1);
        tracing::info!(
            task_id = %task.id,
            start,
            duration,
            reports = record.report_count,
            mechanism = %record.mechanism,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch released"
        );
        let aggregate = stored
            .aggregate
            .clone()
            .ok_or_else(|| Error::Internal("finished release has no aggregate".into()))?;
        Ok(ReleaseOutcome {
            aggregate,
            created: true,
            record: stored,
        })
    }

    /// The aggregate of a release whose trustees draw the noise, or
    /// [`Error::AwaitingNoise`]. The noise-free sum is computed once and
    /// stored (the first stored sum wins, so every later request and every
    /// replica finishes from the same one); once `needed` trustees have
    /// contributed, their encrypted shares are multiplied in. The server
    /// draws no noise and sees none.
    async fn with_trustee_noise(
        &self,
        task: &Arc<TaskState>,
        record: &ReleaseRecord,
        needed: usize,
        now: i64,
    ) -> Result<Vec<u8>, Error> {
        let start = record.batch_start;
        let sum = match self.store.release_sum(&task.id, start).await? {
            Some(sum) => sum,
            None => {
                let sum = self.sum_batch(task, record).await?;
                let bytes = task
                    .aggregator
                    .encode_sum(&sum)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                self.store
                    .put_release_sum(&task.id, start, &bytes, now)
                    .await?
            }
        };
        let contributions = self.store.noise_contributions(&task.id, start).await?;
        if contributions.len() < needed {
            return Err(Error::AwaitingNoise {
                start,
                duration: record.batch_duration,
                trustees: contributions.iter().map(|(t, _)| *t).collect(),
                have: contributions.len(),
                needed,
            });
        }
        let task2 = task.clone();
        let reports = record.report_count;
        let ciphertexts = tokio::task::spawn_blocking(move || {
            let scheme = &task2.aggregator;
            let mut acc = scheme.decode_sum(sum)?;
            for (_, file) in &contributions {
                // Checked when it was uploaded (check_noise_contribution).
                let c = NoiseContribution::from_bytes(file)?;
                scheme.merge(&mut acc, &scheme.decode_sum(c.ciphertexts.concat())?)?;
            }
            let zeros = vec![0; task2.definition.measurement.len()];
            scheme.release(&acc, reports, &zeros, &mut rand::rngs::OsRng)
        })
        .await
        .map_err(|e| Error::Internal(format!("adding the trustees' noise failed: {e}")))?
        .map_err(|e| Error::Internal(e.to_string()))?;
        self.aggregate_file(task, record, ciphertexts)
    }

    /// Sums the batch: merges finished jobs' partial sums and sums the other
    /// reports, checking that exactly the claimed reports were summed.
    async fn sum_batch(
        &self,
        task: &Arc<TaskState>,
        record: &ReleaseRecord,
    ) -> Result<ErasedSum, Error> {
        let (tx, mut rx) = mpsc::channel::<BatchChunk>(2);
        let scheme = task.aggregator.clone();
        // Partial sums are decoded once and merged in memory; stored
        // payloads are decoded and summed in parallel, chunk by chunk.
        let summer = tokio::task::spawn_blocking(move || {
            let mut acc = scheme.zero();
            let mut reports = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                match chunk {
                    BatchChunk::Partials(partials) => {
                        for (report_count, data) in partials {
                            scheme.merge(&mut acc, &scheme.decode_sum(data)?)?;
                            reports += report_count;
                        }
                    }
                    BatchChunk::Payloads(payloads) => {
                        reports += payloads.len() as u64;
                        scheme.merge(&mut acc, &scheme.sum_stored(payloads)?)?;
                    }
                }
            }
            Ok::<_, SchemeError>((acc, reports))
        });
        let read = self
            .store
            .read_batch(
                &task.id,
                record.batch_start,
                record.batch_duration,
                CHUNK,
                tx,
            )
            .await?;
        let (sum, summed) = summer
            .await
            .map_err(|e| Error::Internal(format!("summing failed: {e}")))?
            .map_err(|e| Error::Internal(e.to_string()))?;
        if summed != record.report_count {
            return Err(Error::Internal(format!(
                "the batch was claimed with {} reports but {summed} were summed",
                record.report_count
            )));
        }
        tracing::debug!(
            jobs = read.jobs,
            reports_in_jobs = read.reports_in_jobs,
            loose = read.loose_reports,
            "batch read"
        );
        Ok(sum)
    }

    /// Sums the batch ([`Aggregator::sum_batch`]), adds encrypted noise, and
    /// encodes the aggregate file.
    async fn compute(
        &self,
        task: &Arc<TaskState>,
        record: &ReleaseRecord,
    ) -> Result<Vec<u8>, Error> {
        let sum = self.sum_batch(task, record).await?;

        let task2 = task.clone();
        let reports = record.report_count;
        let mut rng = self.noise_rng(&task.id, record.batch_start, NoiseStream::Values);
        let ciphertexts = tokio::task::spawn_blocking(move || {
            let def = &task2.definition;
            let mut values = task2
                .guarantee
                .noise
                .sample(def.measurement.len(), &mut rng)
                .map_err(|e| Error::Internal(format!("sampling noise failed: {e}")))?;
            let released = task2
                .aggregator
                .release(&sum, reports, &values, &mut rng)
                .map_err(|e| Error::Internal(e.to_string()));
            // The server forgets the noise it drew.
            values.zeroize();
            released
        })
        .await
        .map_err(|e| Error::Internal(format!("adding noise failed: {e}")))??;
        self.aggregate_file(task, record, ciphertexts)
    }

    /// The aggregate file of a release with these ciphertexts.
    fn aggregate_file(
        &self,
        task: &TaskState,
        record: &ReleaseRecord,
        ciphertexts: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, Error> {
        let def = &task.definition;
        let report_count = if task.guarantee.relation.publishes_batch_size() {
            ReportCount::Exact(record.report_count)
        } else {
            ReportCount::Noisy(record.noisy_report_count.ok_or_else(|| {
                Error::Internal("an add-remove release has no noisy report count".into())
            })?)
        };
        Ok(AggregateFile {
            task_id: task.id.0,
            scheme: task.aggregator.scheme(),
            key_fingerprint: task.aggregator.key_fingerprint(),
            measurement: def.measurement,
            encoding: task.aggregator.encoding(),
            batch_start: record.batch_start,
            batch_duration: record.batch_duration,
            relation: def.relation,
            report_count,
            dp: def.dp.clone(),
            ciphertexts,
            trustee_noise: def.trustee_noise,
        }
        .to_bytes())
    }

    /// A generator for one stream of a release's noise: from the operating
    /// system, or, for tests that set a seed
    /// ([`Aggregator::with_insecure_noise_seed`]), derived from the seed,
    /// the task and the batch.
    fn noise_rng(&self, task_id: &TaskId, batch_start: u64, stream: NoiseStream) -> ChaCha20Rng {
        match &self.noise_seed {
            None => ChaCha20Rng::from_entropy(),
            Some(seed) => {
                let mut h = Sha256::new();
                h.update(b"hetally insecure test noise v1");
                h.update(seed);
                h.update(task_id.0);
                h.update(batch_start.to_be_bytes());
                h.update([stream as u8]);
                ChaCha20Rng::from_seed(h.finalize().into())
            }
        }
    }
}
