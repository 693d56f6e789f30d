//! Group commit for uploads.
//!
//! Every upload hands its validated report to one writer task and waits for
//! the outcome. The writer takes whatever reports are queued (up to a
//! batch limit), inserts them in one transaction, commits (an fsync), and
//! only then answers each waiting request. Durability per report, at the cost
//! of one fsync per batch rather than per report.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::datastore::{Datastore, InsertOutcome, NewReport};

/// Most reports committed in one transaction.
pub(crate) const MAX_BATCH: usize = 1024;

/// Capacity of the queue in front of the writer; uploads beyond it wait.
const QUEUE: usize = 8192;

type Reply = oneshot::Sender<Result<InsertOutcome, Arc<str>>>;

/// Handle to the writer task.
#[derive(Debug, Clone)]
pub(crate) struct ReportWriter {
    tx: mpsc::Sender<(NewReport, Reply)>,
}

impl ReportWriter {
    /// Starts the writer. It runs until every handle is dropped and its
    /// queue is drained, so in-flight uploads finish on shutdown.
    pub(crate) fn spawn(store: Datastore) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(run(store, rx));
        (ReportWriter { tx }, handle)
    }

    /// Queues a report and waits until its transaction has committed.
    pub(crate) async fn write(&self, report: NewReport) -> Result<InsertOutcome, Arc<str>> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((report, reply))
            .await
            .map_err(|_| Arc::<str>::from("the report writer has stopped"))?;
        wait.await
            .map_err(|_| Arc::<str>::from("the report writer stopped before committing"))?
    }
}

async fn run(store: Datastore, mut rx: mpsc::Receiver<(NewReport, Reply)>) {
    let mut reports = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((report, reply)) = rx.recv().await {
        reports.push(report);
        replies.push(reply);
        while reports.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((report, reply)) => {
                    reports.push(report);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        match store.insert_reports(&reports).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, reports = reports.len(), "committing a batch of reports failed");
                let message: Arc<str> = Arc::from(format!("storing the report failed: {e}"));
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
        reports.clear();
    }
    tracing::debug!("report writer drained and stopped");
}
