//! Commands to the writer thread, and the one-shot reply each caller waits on.

use std::time::Duration;

use crate::sink::{Sink, SinkState};
use crate::sync::{lock, Arc, Condvar, Mutex};
use crate::topic::Topic;
use crate::{ClientId, Error, Mutation};

/// How often a caller waiting for an answer (or for room in the queue) checks that the
/// writer is still running. Only a writer that stopped mid-call makes this matter.
pub(crate) const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// One mutation, queued to the writer on the bounded command queue.
pub(crate) enum Command<T> {
    /// Add a client with its sink; optionally subscribe it to one topic in the same step
    /// (a `Broadcaster` channel joins its one topic without a second round trip).
    Register {
        id: ClientId,
        sink: Arc<Sink<T>>,
        topic: Option<Topic>,
        reply: Reply<()>,
    },
    /// One subscribe, unsubscribe or unregister.
    One { change: Mutation, reply: Reply<()> },
    /// Many, answered together with one result each, in order.
    Many {
        changes: Vec<Mutation>,
        reply: Reply<Vec<Result<(), Error>>>,
    },
    /// Remove a client whose sink died (consumer gone, overflow, panic), but only if it is
    /// still registered with that very sink: the id may have been re-registered since.
    Prune { id: ClientId, sink: Arc<SinkState> },
    /// Close every sink, publish an empty snapshot and stop.
    Shutdown { reply: Reply<()> },
}

/// The writer's answer to one command, delivered after the snapshot that reflects the
/// command is published.
///
/// If the writer drops a command without answering (it stopped first), the waiting
/// caller gets [`Error::Closed`]: every caller gets a result.
pub(crate) struct Reply<R> {
    slot: Arc<ReplySlot<R>>,
    sent: bool,
}

/// Where the caller waits for its [`Reply`].
pub(crate) struct ReplyWaiter<R> {
    slot: Arc<ReplySlot<R>>,
}

struct ReplySlot<R> {
    /// `None` until the writer answers.
    result: Mutex<Option<Result<R, Error>>>,
    /// Signalled once, when `result` is filled.
    filled: Condvar,
}

/// A reply and the waiter for it.
pub(crate) fn reply_channel<R>() -> (Reply<R>, ReplyWaiter<R>) {
    let slot = Arc::new(ReplySlot {
        result: Mutex::new(None),
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

impl<R> Reply<R> {
    /// Answers the caller.
    pub(crate) fn send(mut self, result: Result<R, Error>) {
        self.fill(result);
    }

    fn fill(&mut self, result: Result<R, Error>) {
        self.sent = true;
        *lock(&self.slot.result) = Some(result);
        self.slot.filled.notify_one();
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        if !self.sent {
            self.fill(Err(Error::Closed));
        }
    }
}

impl<R> ReplyWaiter<R> {
    /// Blocks (parked, not spinning) until the writer answers, or until `writer_gone`
    /// says the writer has exited: a command that reached the queue just before the
    /// writer stopped is never answered, and its caller must not wait forever.
    pub(crate) fn wait(self, writer_gone: impl Fn() -> bool) -> Result<R, Error> {
        let mut result = lock(&self.slot.result);
        loop {
            if let Some(result) = result.take() {
                return result;
            }
            if writer_gone() {
                return Err(Error::Closed);
            }
            result = match self.slot.filled.wait_timeout(result, LIVENESS_CHECK) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}
