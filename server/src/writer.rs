//! Group commit for uploads.
//!
//! Every upload hands its validated report to one writer task and waits for
//! the outcome. The writer takes whatever reports are queued (up to a
//! batch limit), stores them in one transaction, commits (an fsync), and
//! only then answers each waiting request. Durability per report, at the cost
//! of one fsync per batch rather than per report.
//!
//! [`GroupWriter`] is generic over what it stores and how: the homomorphic
//! backends' uploads ([`ReportWriter`]) and the DAP leader's
//! (`crate::dap`) each run one.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::datastore::{Datastore, InsertOutcome, NewReport};

/// Most items committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Capacity of the queue in front of the writer; uploads beyond it wait.
const QUEUE: usize = 8192;

type Reply<O> = oneshot::Sender<Result<O, Arc<str>>>;

/// Handle to a writer task that commits items of type `T` in batches and
/// answers each with its outcome `O`.
pub(crate) struct GroupWriter<T, O> {
    tx: mpsc::Sender<(T, Reply<O>)>,
}

impl<T, O> std::fmt::Debug for GroupWriter<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter")
            .field("queued", &(QUEUE - self.tx.capacity()))
            .finish()
    }
}

impl<T, O> Clone for GroupWriter<T, O> {
    fn clone(&self) -> Self {
        GroupWriter {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static, O: Send + 'static> GroupWriter<T, O> {
    /// Starts the writer. `commit` stores a batch in one transaction and
    /// returns one outcome per item, in order, once it has committed. The
    /// writer runs until every handle is dropped and its queue is drained,
    /// so in-flight uploads finish on shutdown.
    pub(crate) fn spawn<F, Fut>(commit: F) -> (Self, JoinHandle<()>)
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, String>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(run(commit, rx));
        (GroupWriter { tx }, handle)
    }

    /// Queues an item and waits until its transaction has committed.
    pub(crate) async fn write(&self, item: T) -> Result<O, Arc<str>> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((item, reply))
            .await
            .map_err(|_| Arc::<str>::from("the report writer has stopped"))?;
        wait.await
            .map_err(|_| Arc::<str>::from("the report writer stopped before committing"))?
    }
}

/// The homomorphic backends' upload writer.
pub(crate) type ReportWriter = GroupWriter<NewReport, InsertOutcome>;

/// Starts the homomorphic backends' upload writer on `store`.
pub(crate) fn spawn_report_writer(store: Datastore) -> (ReportWriter, JoinHandle<()>) {
    GroupWriter::spawn(move |reports: Vec<NewReport>| {
        let store = store.clone();
        async move {
            store
                .insert_reports(&reports)
                .await
                .map_err(|e| e.to_string())
        }
    })
}

async fn run<T, O, F, Fut>(mut commit: F, mut rx: mpsc::Receiver<(T, Reply<O>)>)
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, String>>,
{
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((item, reply)) = rx.recv().await {
        let mut items = Vec::with_capacity(MAX_BATCH);
        items.push(item);
        replies.push(reply);
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((item, reply)) => {
                    items.push(item);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let n = items.len();
        match commit(items).await {
            Ok(outcomes) if outcomes.len() == n => {
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                tracing::error!(
                    items = n,
                    outcomes = outcomes.len(),
                    "a batch commit answered the wrong number of outcomes"
                );
                let message: Arc<str> = Arc::from("storing the report failed: internal error");
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(message.clone()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, items = n, "committing a batch of reports failed");
                let message: Arc<str> = Arc::from(format!("storing the report failed: {e}"));
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
    tracing::debug!("report writer drained and stopped");
}
