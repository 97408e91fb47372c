//! What a caller asks of the writer, and the one-shot reply it waits on when another
//! caller applies its request for it.

use std::time::Duration;

use crate::sink::{Sink, SinkState};
use crate::sync::{lock, Arc, AtomicU8, Condvar, Mutex, Ordering};
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::subscription::Subscription;
use crate::vocab::topic::Topic;

/// How long a caller waiting for its answer sleeps before it looks again for itself
/// (and takes the writer role if it is free). The protocol in [`combiner`](super::combiner)
/// never needs it — every posted request is drained by whoever releases the role — it
/// only bounds the damage if that protocol had a hole.
pub(crate) const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// How many times a waiting caller checks its reply before it parks. A combiner usually
/// answers within a few microseconds; spinning longer only steals the core it runs on
/// (two cores: see the crate docs' trade-offs).
/// Under loom it is zero: a spin is only a repeated check, and each would multiply the
/// interleavings to explore.
#[cfg(not(loom))]
const SPINS_BEFORE_PARKING: u32 = 64;
#[cfg(loom)]
const SPINS_BEFORE_PARKING: u32 = 0;

/// One subscribe, unsubscribe or unregister, as the writer applies it: the face has
/// validated the topic and parsed any pattern (once; the writer does not parse again).
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Subscribe a registered client (no-op if it already is).
    Subscribe(ClientId, Subscription),
    /// Unsubscribe a registered client (no-op if it is not subscribed).
    Unsubscribe(ClientId, Subscription),
    /// Unregister a client, leaving every topic.
    Unregister(ClientId),
}

/// One request to the writer.
pub(crate) enum Op<T> {
    /// Add a client with its sink; optionally subscribe it to one topic in the same step
    /// (a `Broadcaster` channel joins its one topic in one call).
    Register {
        id: ClientId,
        sink: Arc<Sink<T>>,
        topic: Option<Topic>,
    },
    /// Add many clients, each with its sink; one result each, in order.
    RegisterMany(Vec<(ClientId, Arc<Sink<T>>)>),
    /// One subscribe, unsubscribe or unregister.
    One(Change),
    /// Many, with one result each, in order.
    Many(Vec<Change>),
    /// Remove a client whose sink died (consumer gone, overflow, panic), but only if it
    /// is still registered with that very sink: the id may have been re-registered since.
    /// Nobody waits for it.
    Prune { id: ClientId, sink: PruneTarget<T> },
    /// Track a registered client in a topic's presence list with metadata.
    Track {
        id: ClientId,
        topic: Topic,
        meta: bytes::Bytes,
    },
    /// Untrack it (a no-op if not tracked).
    Untrack { id: ClientId, topic: Topic },
}

/// Which sink a prune is for: named by the state a channel's consumer shares with it
/// (a dropped `Channel` has no other handle on it), or by the sink itself (a broadcast
/// that found it dead). Either keeps what it names alive, so its address cannot be
/// reused by a newer sink while the prune waits.
pub(crate) enum PruneTarget<T> {
    Consumer(Arc<SinkState>),
    Sink(Arc<Sink<T>>),
}

/// What applying an [`Op`] gives its caller.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The result of a single change.
    One(Result<(), Error>),
    /// One result per change of a batch, in order.
    Many(Vec<Result<(), Error>>),
    /// Nothing to report (a prune).
    Nothing,
}

impl Outcome {
    /// The single result of a one-change op.
    pub(crate) fn one(self) -> Result<(), Error> {
        match self {
            Outcome::One(result) => result,
            _ => unreachable!("a one-change op has one result"),
        }
    }

    /// The results of a batch op.
    pub(crate) fn many(self) -> Vec<Result<(), Error>> {
        match self {
            Outcome::Many(results) => results,
            _ => unreachable!("a batch op has one result per change"),
        }
    }
}

/// An op on the command queue, with the reply its caller waits on (none for prunes).
pub(crate) struct Command<T> {
    pub(crate) op: Op<T>,
    pub(crate) reply: Option<Reply>,
}

/// The answer owed to one waiting caller, delivered after the snapshot that reflects its
/// op is published.
///
/// Dropping it unanswered (the engine closed first, or the batch panicked) answers
/// [`Error::Closed`]: every caller gets a result.
pub(crate) struct Reply {
    slot: Arc<ReplySlot>,
    sent: bool,
}

/// Where the caller waits for its [`Reply`].
pub(crate) struct ReplyWaiter {
    slot: Arc<ReplySlot>,
}

/// `ReplySlot::state` values.
const EMPTY: u8 = 0;
const FILLED: u8 = 1;

struct ReplySlot {
    /// `FILLED` once `result` holds the answer: lets the waiter's spin check one atomic
    /// instead of taking the lock.
    state: AtomicU8,
    /// The answer, and whether the waiter is parked (so the answerer knows whether a
    /// wake-up is needed: a notify with nobody waiting is a wasted system call).
    inner: Mutex<SlotInner>,
    /// Signalled once, when the answer arrives for a parked waiter.
    filled: Condvar,
}

struct SlotInner {
    result: Option<Result<Outcome, Error>>,
    parked: bool,
}

/// A reply and the waiter for it.
pub(crate) fn reply_channel() -> (Reply, ReplyWaiter) {
    let slot = Arc::new(ReplySlot {
        state: AtomicU8::new(EMPTY),
        inner: Mutex::new(SlotInner {
            result: None,
            parked: false,
        }),
        filled: Condvar::new(),
    });
    (
        Reply {
            slot: Arc::clone(&slot),
            sent: false,
        },
        ReplyWaiter { slot },
    )
}

impl Reply {
    /// Answers the caller.
    pub(crate) fn send(mut self, result: Result<Outcome, Error>) {
        self.fill(result);
    }

    fn fill(&mut self, result: Result<Outcome, Error>) {
        self.sent = true;
        let mut inner = lock(&self.slot.inner);
        inner.result = Some(result);
        // Release pairs with the Acquire in `ReplyWaiter::try_take`; stored under the lock
        // so a waiter that saw EMPTY and then parks is sure to be notified below.
        self.slot.state.store(FILLED, Ordering::Release);
        if inner.parked {
            self.slot.filled.notify_one();
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.sent {
            self.fill(Err(Error::Closed));
        }
    }
}

impl ReplyWaiter {
    /// The answer, if it has arrived.
    pub(crate) fn try_take(&self) -> Option<Result<Outcome, Error>> {
        if self.slot.state.load(Ordering::Acquire) != FILLED {
            return None;
        }
        lock(&self.slot.inner).result.take()
    }

    /// Waits for the answer: spins briefly, then parks for at most [`LIVENESS_CHECK`].
    /// `None` if it has not arrived by then (the caller then looks again for itself).
    pub(crate) fn wait(&self) -> Option<Result<Outcome, Error>> {
        for _ in 0..SPINS_BEFORE_PARKING {
            if let Some(result) = self.try_take() {
                return Some(result);
            }
            std::hint::spin_loop();
        }
        let mut inner = lock(&self.slot.inner);
        if inner.result.is_none() {
            inner.parked = true;
            inner = match self.slot.filled.wait_timeout(inner, LIVENESS_CHECK) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            inner.parked = false;
        }
        inner.result.take()
    }
}
