//! Batch verification of input proofs across concurrent uploads.
//!
//! Like the group-commit writer: every upload to a task with input proofs
//! hands its report to the verifier and waits for the outcome. The
//! verifier keeps one queue per task and verifies up to one batch per core
//! at a time, each on the blocking pool with
//! [`DynAggregator::check_to_stored`](hetally_protocol::DynAggregator::check_to_stored):
//! one random linear combination and one multi-exponentiation per batch,
//! bisected if it fails, so exactly the bad reports are rejected.
//!
//! * **Tasks are independent.** A batch holds reports of one task only, and
//!   when a core frees up the next batch comes from the task after the one
//!   served last (round robin over tasks with waiting reports), so a task
//!   whose reports are slow to verify (TFHE) delays another task's by at
//!   most one batch, never by its whole backlog.
//! * **Batches grow with the load.** A batch takes every waiting report of
//!   its task (up to [`MAX_BATCH`]); while the cores are busy, reports
//!   gather, and a task's second batch starts beside its first only once
//!   [`MIN_SIDE_BATCH`] reports wait, so under load the cost per report
//!   approaches the batched figure in BENCHMARKS.md, while a lone upload is
//!   a batch of one, verified at once.
//! * **Replays cost no verification.** Before a batch is verified, one
//!   indexed read finds its reports whose id is stored already or whose
//!   interval is released ([`Datastore::report_precheck`]); they are
//!   refused unverified. The writer's transaction stays the final check.
//! * **The queue is bounded** in reports and bytes by a [`Gate`]; a full
//!   queue refuses at once ([`Full`], answered 429) rather than wait.
//!
//! Records `hetally_verify_seconds` and `hetally_verify_batch_reports`
//! (one sample per batch), and the verifier's `hetally_queue_depth` and
//! `hetally_shed_total` through its gate.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use hetally_protocol::{Report, ReportContext, SchemeError, TaskId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::TaskState;
use crate::datastore::{Datastore, InsertOutcome};
use crate::metrics::names;
use crate::queue::{Full, Gate, QueueLimit, Ticket};

/// Most reports verified in one batch.
pub(crate) const MAX_BATCH: usize = 1024;

/// Fewest waiting reports of a task that start a batch beside one of the
/// same task already running. Fewer wait for the running batch to end and
/// join the next, larger one: batching is what makes verification cheap
/// (a batch of one costs about five times a report's share of a batch of
/// 256, BENCHMARKS.md), so under load a core is better spent on a batch
/// of 16 or more than on many batches of a few.
const MIN_SIDE_BATCH: usize = 16;

type Outcome = Result<Vec<u8>, SchemeError>;

/// What became of a report handed to the verifier.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Refused before verification: its id is stored already
    /// (`Duplicate`) or its interval released (`IntervalReleased`).
    Refused(Report, InsertOutcome),
    /// Verified: the stored form, or why the payload was rejected.
    Checked(Report, Outcome),
}

struct Job {
    task: Arc<TaskState>,
    report: Report,
    reply: oneshot::Sender<Verdict>,
    /// The job's place in the queue, given back once it is answered.
    _ticket: Ticket,
}

/// Handle to the verifier task.
#[derive(Debug, Clone)]
pub(crate) struct ReportVerifier {
    tx: mpsc::UnboundedSender<Job>,
    gate: Arc<Gate>,
}

/// Why a report could not be verified at all (not a verdict on it).
#[derive(Debug)]
pub(crate) struct VerifierStopped;

impl ReportVerifier {
    /// Starts the verifier with a queue bounded by `limit`, verifying up
    /// to one batch per core at a time, after looking up in `store` which
    /// of the batch's reports are replays; it runs until every handle is
    /// dropped.
    pub(crate) fn spawn(limit: QueueLimit, store: Datastore) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, store, cores));
        ReportVerifier {
            tx,
            gate: Gate::new("verifier", limit),
        }
    }

    /// Takes a place in the queue for a report of `bytes`, or says it is
    /// full.
    pub(crate) fn admit(&self, bytes: usize) -> Result<Ticket, Full> {
        self.gate.enter(bytes)
    }

    /// Checks that a report is no replay, then verifies its payload with
    /// others of its task queued at the same time. `ticket` is the
    /// report's place in the queue ([`Self::admit`]).
    pub(crate) async fn verify(
        &self,
        task: Arc<TaskState>,
        report: Report,
        ticket: Ticket,
    ) -> Result<Verdict, VerifierStopped> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Job {
                task,
                report,
                reply,
                _ticket: ticket,
            })
            .map_err(|_| VerifierStopped)?;
        wait.await.map_err(|_| VerifierStopped)
    }
}

/// Reports (`J`: a [`Job`], or a plain number in the tests) waiting, per
/// task, and the order in which tasks are served.
struct Waiting<J> {
    by_task: HashMap<TaskId, VecDeque<J>>,
    /// Tasks with waiting reports, next to serve first.
    turn: VecDeque<TaskId>,
    /// Batches running, per task.
    running: HashMap<TaskId, usize>,
}

impl<J> Default for Waiting<J> {
    fn default() -> Self {
        Waiting {
            by_task: HashMap::new(),
            turn: VecDeque::new(),
            running: HashMap::new(),
        }
    }
}

impl<J> Waiting<J> {
    fn push(&mut self, id: TaskId, job: J) {
        let queue = self.by_task.entry(id).or_default();
        if queue.is_empty() {
            self.turn.push_back(id);
        }
        queue.push_back(job);
    }

    /// The waiting reports, up to [`MAX_BATCH`], of the first task in
    /// line that has no batch running, or at least [`MIN_SIDE_BATCH`]
    /// reports waiting; the task goes to the back of the line if it has
    /// more. Counts the batch as running until [`Waiting::finished`].
    fn next_batch(&mut self) -> Option<(TaskId, Vec<J>)> {
        let pos = self.turn.iter().position(|id| {
            !self.running.contains_key(id)
                || self.by_task.get(id).map_or(0, VecDeque::len) >= MIN_SIDE_BATCH
        })?;
        let id = self.turn.remove(pos)?;
        let queue = self.by_task.get_mut(&id)?;
        let n = queue.len().min(MAX_BATCH);
        let batch: Vec<J> = queue.drain(..n).collect();
        if queue.is_empty() {
            self.by_task.remove(&id);
        } else {
            self.turn.push_back(id);
        }
        *self.running.entry(id).or_default() += 1;
        Some((id, batch))
    }

    /// A batch of `id` has ended.
    fn finished(&mut self, id: &TaskId) {
        if let Some(n) = self.running.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(id);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.turn.is_empty()
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Job>, store: Datastore, cores: usize) {
    let mut waiting = Waiting::<Job>::default();
    let mut running = JoinSet::new();
    // The task of each running batch, by the batch's tokio task.
    let mut batch_tasks = HashMap::new();
    let mut open = true;
    loop {
        while running.len() < cores {
            let Some((id, batch)) = waiting.next_batch() else {
                break;
            };
            let handle = running.spawn(check_batch(store.clone(), batch));
            batch_tasks.insert(handle.id(), id);
        }
        if !open && waiting.is_empty() && running.is_empty() {
            break;
        }
        tokio::select! {
            job = rx.recv(), if open => match job {
                Some(job) => {
                    waiting.push(job.task.id, job);
                    // Take everything already queued, so that batches are
                    // formed from all of it.
                    while let Ok(job) = rx.try_recv() {
                        waiting.push(job.task.id, job);
                    }
                }
                None => open = false,
            },
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let batch = match done {
                    Ok((batch, ())) => batch,
                    Err(e) => {
                        tracing::error!(error = %e, "checking a batch of reports failed");
                        e.id()
                    }
                };
                if let Some(id) = batch_tasks.remove(&batch) {
                    waiting.finished(&id);
                }
            }
        }
    }
    tracing::debug!("report verifier stopped");
}

/// Refuses the replays of one task's batch (one indexed read for all of
/// them), then verifies the rest on the blocking pool.
async fn check_batch(store: Datastore, jobs: Vec<Job>) {
    let task_id = jobs[0].task.id;
    let keys: Vec<_> = jobs.iter().map(|j| (j.report.id, j.report.time)).collect();
    let jobs = match store.report_precheck(&task_id, &keys).await {
        Ok(outcomes) => {
            let mut fresh = Vec::with_capacity(jobs.len());
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                match outcome {
                    Some(refused) => {
                        let _ = job.reply.send(Verdict::Refused(job.report, refused));
                    }
                    None => fresh.push(job),
                }
            }
            fresh
        }
        Err(e) => {
            // Verify them all: the writer's check still refuses replays.
            tracing::warn!(error = %e, "looking up replays before verification failed");
            jobs
        }
    };
    if jobs.is_empty() {
        return;
    }
    if let Err(e) = tokio::task::spawn_blocking(move || verify_batch(jobs)).await {
        // The batch's reply channels were dropped with the panicking
        // closure, so its uploads answer with an internal error.
        tracing::error!(error = %e, "verifying a batch of reports failed");
    }
}

/// Verifies one task's batch and answers each report.
fn verify_batch(jobs: Vec<Job>) {
    let started = Instant::now();
    let task = jobs[0].task.clone();
    let items: Vec<(&[u8], ReportContext<'_>)> = jobs
        .iter()
        .map(|j| {
            (
                j.report.payload.as_slice(),
                ReportContext {
                    task_id: &task.id,
                    report_id: &j.report.id,
                    time: j.report.time,
                },
            )
        })
        .collect();
    let outcomes = task.aggregator.check_to_stored(&items);
    drop(items);
    let seconds = started.elapsed().as_secs_f64();
    ::metrics::histogram!(names::VERIFY_SECONDS).record(seconds);
    ::metrics::histogram!(names::VERIFY_BATCH_REPORTS).record(jobs.len() as f64);
    tracing::trace!(task_id = %task.id, reports = jobs.len(), seconds, "verified a batch");
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        // The upload may have gone away (client disconnected): fine.
        let _ = job.reply.send(Verdict::Checked(job.report, outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(n: u8) -> TaskId {
        TaskId([n; 32])
    }

    /// Pushes `count` numbered reports of task `n`, from `from` on.
    fn push(w: &mut Waiting<u32>, n: u8, from: u32, count: u32) {
        for i in from..from + count {
            w.push(task(n), i);
        }
    }

    #[test]
    fn tasks_are_served_in_turn_and_a_batch_takes_all_that_wait() {
        let mut w = Waiting::default();
        push(&mut w, 1, 0, 5);
        push(&mut w, 2, 100, 3);
        push(&mut w, 3, 200, 1);
        // One batch per task, in the order the tasks first had reports,
        // each holding every report of its task.
        assert_eq!(w.next_batch(), Some((task(1), vec![0, 1, 2, 3, 4])));
        assert_eq!(w.next_batch(), Some((task(2), vec![100, 101, 102])));
        // Task 1 gets more while its batch runs: too few for a side batch,
        // so task 3 goes first although task 1 queued again.
        push(&mut w, 1, 5, 2);
        assert_eq!(w.next_batch(), Some((task(3), vec![200])));
        assert_eq!(w.next_batch(), None, "task 1's two wait for its batch");
        w.finished(&task(1));
        assert_eq!(w.next_batch(), Some((task(1), vec![5, 6])));
        assert!(w.is_empty());
    }

    #[test]
    fn a_busy_task_gets_a_side_batch_only_once_enough_wait() {
        let mut w = Waiting::default();
        push(&mut w, 1, 0, 1);
        assert_eq!(w.next_batch(), Some((task(1), vec![0])));
        push(&mut w, 1, 1, MIN_SIDE_BATCH as u32 - 1);
        assert_eq!(w.next_batch(), None);
        push(&mut w, 1, MIN_SIDE_BATCH as u32, 1);
        let (id, batch) = w.next_batch().unwrap();
        assert_eq!((id, batch.len()), (task(1), MIN_SIDE_BATCH));
        // Both batches end; nothing is left running.
        w.finished(&task(1));
        w.finished(&task(1));
        assert!(w.running.is_empty() && w.is_empty());
    }

    #[test]
    fn a_task_with_a_long_backlog_does_not_starve_the_others() {
        let mut w = Waiting::default();
        // Task 1 has three batches' worth waiting; task 2 queues one report
        // after it. Task 2 is served right after task 1's first batch.
        push(&mut w, 1, 0, 3 * MAX_BATCH as u32);
        push(&mut w, 2, 10_000, 1);
        let (id, first) = w.next_batch().unwrap();
        assert_eq!((id, first.len()), (task(1), MAX_BATCH));
        assert_eq!(first[0], 0);
        // Task 1 is still busy, but has far more than a side batch waiting:
        // it may use the other core, yet only after task 2's turn.
        assert_eq!(w.next_batch(), Some((task(2), vec![10_000])));
        let (id, second) = w.next_batch().unwrap();
        assert_eq!((id, second[0]), (task(1), MAX_BATCH as u32));
        w.finished(&task(2));
        w.finished(&task(1));
        w.finished(&task(1));
        let (_, third) = w.next_batch().unwrap();
        assert_eq!(third.len(), MAX_BATCH);
        assert!(w.is_empty());
    }
}
