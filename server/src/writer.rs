//! Group commit for uploads.
//!
//! Every upload hands its validated report to one writer task and waits for
//! the outcome. The writer takes whatever reports are queued (up to a
//! batch limit), stores them in one transaction, commits (an fsync), and
//! only then answers each waiting request. Durability per report, at the cost
//! of one fsync per batch rather than per report.
//!
//! The queue is bounded in items and bytes by a [`Gate`]
//! (`crate::queue`): an upload that finds it full is refused at once
//! ([`WriteError::Full`], answered 429 with `Retry-After`) rather than wait
//! behind an ever longer queue.
//!
//! [`GroupWriter`] is generic over what it stores and how: the homomorphic
//! backends' uploads ([`ReportWriter`], queue `writer`) and the DAP
//! leader's (`crate::dap`, queue `dap_writer`) each run one.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::datastore::{Datastore, InsertOutcome, NewReport};
use crate::queue::{Full, Gate, QueueLimit, Ticket};

/// Most items committed in one transaction.
const MAX_BATCH: usize = 1024;

type Reply<O> = oneshot::Sender<Result<O, Arc<str>>>;

/// Why an item was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteError {
    /// The queue is full: try again later.
    #[error(transparent)]
    Full(#[from] Full),
    /// The writer stopped, or the commit failed.
    #[error("{0}")]
    Failed(Arc<str>),
}

/// Handle to a writer task that commits items of type `T` in batches and
/// answers each with its outcome `O`.
pub(crate) struct GroupWriter<T, O> {
    tx: mpsc::UnboundedSender<(T, Reply<O>, Ticket)>,
    gate: Arc<Gate>,
}

impl<T, O> std::fmt::Debug for GroupWriter<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter")
            .field("queue", &self.gate.name())
            .field("queued", &self.gate.depth())
            .finish()
    }
}

impl<T, O> Clone for GroupWriter<T, O> {
    fn clone(&self) -> Self {
        GroupWriter {
            tx: self.tx.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<T: Send + 'static, O: Send + 'static> GroupWriter<T, O> {
    /// Starts the writer of the queue `name` (the metrics' `queue` label),
    /// bounded by `limit`. `commit` stores a batch in one transaction and
    /// returns one outcome per item, in order, once it has committed. The
    /// writer runs until every handle is dropped and its queue is drained,
    /// so in-flight uploads finish on shutdown.
    pub(crate) fn spawn<F, Fut>(
        name: &'static str,
        limit: QueueLimit,
        commit: F,
    ) -> (Self, JoinHandle<()>)
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, String>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(run(commit, rx));
        let gate = Gate::new(name, limit);
        (GroupWriter { tx, gate }, handle)
    }

    /// The same writer with its queue bounded by `limit` instead; call it
    /// before the first [`GroupWriter::write`].
    pub(crate) fn with_limit(mut self, limit: QueueLimit) -> Self {
        self.gate = Gate::new(self.gate.name(), limit);
        self
    }

    /// Queues an item of `bytes` and waits until its transaction has
    /// committed; refuses at once if the queue is full.
    pub(crate) async fn write(&self, item: T, bytes: usize) -> Result<O, WriteError> {
        let ticket = self.gate.enter(bytes)?;
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((item, reply, ticket))
            .map_err(|_| WriteError::Failed(Arc::from("the report writer has stopped")))?;
        wait.await
            .map_err(|_| {
                WriteError::Failed(Arc::from("the report writer stopped before committing"))
            })?
            .map_err(WriteError::Failed)
    }
}

/// The homomorphic backends' upload writer.
pub(crate) type ReportWriter = GroupWriter<NewReport, InsertOutcome>;

/// Starts the homomorphic backends' upload writer on `store`, its queue
/// bounded by `limit`.
pub(crate) fn spawn_report_writer(
    store: Datastore,
    limit: QueueLimit,
) -> (ReportWriter, JoinHandle<()>) {
    GroupWriter::spawn("writer", limit, move |reports: Vec<NewReport>| {
        let store = store.clone();
        async move {
            store
                .insert_reports(&reports)
                .await
                .map_err(|e| e.to_string())
        }
    })
}

async fn run<T, O, F, Fut>(mut commit: F, mut rx: mpsc::UnboundedReceiver<(T, Reply<O>, Ticket)>)
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, String>>,
{
    let mut replies = Vec::with_capacity(MAX_BATCH);
    // Given back (dropped) once the batch is answered.
    let mut tickets = Vec::with_capacity(MAX_BATCH);
    while let Some((item, reply, ticket)) = rx.recv().await {
        let mut items = Vec::with_capacity(MAX_BATCH);
        items.push(item);
        replies.push(reply);
        tickets.push(ticket);
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((item, reply, ticket)) => {
                    items.push(item);
                    replies.push(reply);
                    tickets.push(ticket);
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
        tickets.clear();
    }
    tracing::debug!("report writer drained and stopped");
}
