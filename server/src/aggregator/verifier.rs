//! Batch verification of input proofs across concurrent uploads.
//!
//! Like the group-commit writer: every upload to a task with input proofs
//! hands its report to one verifier task and waits for the outcome. The
//! verifier takes whatever reports are queued (up to a batch limit), groups
//! them by task, and checks each group with
//! [`DynAggregator::check_to_stored`](hetally_protocol::DynAggregator::check_to_stored)
//! on the blocking pool: one random linear combination and one
//! multi-exponentiation per group, bisected if it fails, so exactly the bad
//! reports are rejected. While one batch is verified the next one queues,
//! so under load the cost per report approaches the batched figure in
//! BENCHMARKS.md; a lone upload is a batch of one.

use std::collections::HashMap;
use std::sync::Arc;

use hetally_protocol::{Report, ReportContext, SchemeError};
use tokio::sync::{mpsc, oneshot};

use super::TaskState;

/// Most reports verified in one batch.
const MAX_BATCH: usize = 512;

/// Capacity of the queue in front of the verifier; uploads beyond it wait.
const QUEUE: usize = 4096;

type Outcome = Result<Vec<u8>, SchemeError>;

struct Job {
    task: Arc<TaskState>,
    report: Report,
    reply: oneshot::Sender<(Report, Outcome)>,
}

/// Handle to the verifier task.
#[derive(Debug, Clone)]
pub(crate) struct ReportVerifier {
    tx: mpsc::Sender<Job>,
}

/// Why a report could not be verified at all (not a verdict on it).
#[derive(Debug)]
pub(crate) struct VerifierStopped;

impl ReportVerifier {
    /// Starts the verifier; it runs until every handle is dropped.
    pub(crate) fn spawn() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx));
        ReportVerifier { tx }
    }

    /// Verifies a report's payload with others queued at the same time;
    /// returns the stored form, or why the payload was rejected.
    pub(crate) async fn verify(
        &self,
        task: Arc<TaskState>,
        report: Report,
    ) -> Result<(Report, Outcome), VerifierStopped> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Job {
                task,
                report,
                reply,
            })
            .await
            .map_err(|_| VerifierStopped)?;
        wait.await.map_err(|_| VerifierStopped)
    }
}

async fn run(mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        let mut jobs = vec![job];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let verified = tokio::task::spawn_blocking(move || verify_all(jobs)).await;
        if let Err(e) = verified {
            // The jobs' reply channels were dropped with the panicking
            // closure, so their uploads answer with an internal error.
            tracing::error!(error = %e, "verifying a batch of reports failed");
        }
    }
    tracing::debug!("report verifier stopped");
}

fn verify_all(jobs: Vec<Job>) {
    let mut by_task: HashMap<_, Vec<Job>> = HashMap::new();
    for job in jobs {
        by_task.entry(job.task.id).or_default().push(job);
    }
    for (_, group) in by_task {
        let task = group[0].task.clone();
        let items: Vec<(&[u8], ReportContext<'_>)> = group
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
        for (job, outcome) in group.into_iter().zip(outcomes) {
            // The upload may have gone away (client disconnected): fine.
            let _ = job.reply.send((job.report, outcome));
        }
    }
}
