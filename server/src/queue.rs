//! Bounded admission to the upload queues: load shedding.
//!
//! The report verifier and the group-commit writers take work through
//! unbounded channels, but nothing enters them without a [`Ticket`] from
//! the queue's [`Gate`]. A gate counts what it has admitted and not yet
//! finished (waiting *and* in progress), both in items and in bytes, and
//! refuses an item that would take either over its [`QueueLimit`]; the
//! upload is then answered `429 Too Many Requests` with `Retry-After`
//! ([`Full`]) instead of waiting in an ever longer queue. A ticket is given
//! back when it is dropped, that is once its item has been answered.
//!
//! An item larger than the byte limit on its own is still admitted into an
//! empty queue, so that a limit set below the largest valid report slows
//! such reports down but never refuses them for ever.
//!
//! Each gate records `hetally_queue_depth{queue}` (items admitted) and
//! `hetally_shed_total{queue}` (items refused).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::metrics::names;

/// Seconds a client is asked to wait after a refusal: long enough for a
/// full queue to drain a batch or two, short enough not to idle a server
/// whose burst has passed.
pub const RETRY_AFTER_SECS: u64 = 1;

/// How much one queue may hold: it is full when either limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimit {
    /// Most items (reports) admitted at once, waiting or in progress.
    pub items: usize,
    /// Most bytes of those items' bodies admitted at once.
    pub bytes: usize,
}

impl QueueLimit {
    /// The report verifier's default: 4,096 reports or 256 MiB of
    /// proof-carrying payloads, whichever is reached first.
    pub const VERIFIER: QueueLimit = QueueLimit {
        items: 4096,
        bytes: 256 << 20,
    };

    /// The group-commit writers' default: 8,192 reports or 256 MiB of
    /// stored payloads, whichever is reached first.
    pub const WRITER: QueueLimit = QueueLimit {
        items: 8192,
        bytes: 256 << 20,
    };
}

/// The queue is full: answer 429 and ask the client to come back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server's {queue} queue is full: retry in {retry_after} s")]
pub struct Full {
    /// Which queue (the `queue` label of the metrics).
    pub queue: &'static str,
    /// Seconds to wait, for `Retry-After`.
    pub retry_after: u64,
}

/// Counts what one queue has admitted; see the module docs.
#[derive(Debug)]
pub(crate) struct Gate {
    name: &'static str,
    limit: QueueLimit,
    items: AtomicUsize,
    bytes: AtomicUsize,
}

/// One admitted item's place in a queue, given back on drop.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    bytes: usize,
}

impl Gate {
    /// A gate for the queue `name` (the metrics' `queue` label).
    pub(crate) fn new(name: &'static str, limit: QueueLimit) -> Arc<Self> {
        Arc::new(Gate {
            name,
            limit: QueueLimit {
                items: limit.items.max(1),
                bytes: limit.bytes,
            },
            items: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        })
    }

    /// The queue's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Items admitted and not yet finished.
    pub(crate) fn depth(&self) -> usize {
        self.items.load(Ordering::Acquire)
    }

    /// Admits an item of `bytes`, or says the queue is full.
    pub(crate) fn enter(self: &Arc<Self>, bytes: usize) -> Result<Ticket, Full> {
        // Take an item slot first: it serialises the "empty queue" rule
        // for oversized items against concurrent entries.
        let before = self
            .items
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit.items).then_some(n + 1)
            });
        let Ok(before) = before else {
            return Err(self.shed());
        };
        let fits = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                let after = b.saturating_add(bytes);
                (after <= self.limit.bytes || (before == 0 && b == 0)).then_some(after)
            })
            .is_ok();
        if !fits {
            self.items.fetch_sub(1, Ordering::AcqRel);
            return Err(self.shed());
        }
        ::metrics::gauge!(names::QUEUE_DEPTH, "queue" => self.name).set((before + 1) as f64);
        Ok(Ticket {
            gate: self.clone(),
            bytes,
        })
    }

    fn shed(&self) -> Full {
        ::metrics::counter!(names::SHED, "queue" => self.name).increment(1);
        Full {
            queue: self.name,
            retry_after: RETRY_AFTER_SECS,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        let after = self.gate.items.fetch_sub(1, Ordering::AcqRel) - 1;
        ::metrics::gauge!(names::QUEUE_DEPTH, "queue" => self.gate.name).set(after as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_by_items_or_bytes_and_tickets_give_room_back() {
        let gate = Gate::new(
            "test",
            QueueLimit {
                items: 2,
                bytes: 100,
            },
        );
        let a = gate.enter(40).unwrap();
        let b = gate.enter(40).unwrap();
        assert_eq!(gate.depth(), 2);
        // Items: the third is refused however small.
        let full = gate.enter(1).unwrap_err();
        assert_eq!(full.queue, "test");
        assert_eq!(full.retry_after, RETRY_AFTER_SECS);
        drop(a);
        // Bytes: 40 + 61 > 100.
        assert!(gate.enter(61).is_err());
        let c = gate.enter(60).unwrap();
        drop((b, c));
        assert_eq!(gate.depth(), 0);
        assert_eq!(gate.bytes.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_oversized_item_enters_only_an_empty_queue() {
        let gate = Gate::new(
            "test",
            QueueLimit {
                items: 4,
                bytes: 10,
            },
        );
        let big = gate.enter(1000).unwrap();
        assert!(gate.enter(1).is_err(), "nothing fits beside it");
        drop(big);
        let small = gate.enter(5).unwrap();
        assert!(gate.enter(1000).is_err(), "the queue is not empty");
        drop(small);
    }
}
