//! Commands to the writer thread, and the one-shot reply each caller waits on.

use std::time::Duration;

use crate::sink::{Sink, SinkState};
use crate::sync::{lock, Arc, Condvar, Mutex};
use crate::topic::Topic;
use crate::{ClientId, Error};

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
        reply: Reply,
    },
    /// Add a registered client to a topic (no-op if it is there already).
    Subscribe {
        id: ClientId,
        topic: Topic,
        reply: Reply,
    },
    /// Remove a registered client from a topic (no-op if it is not there).
    Unsubscribe {
        id: ClientId,
        topic: Topic,
        reply: Reply,
    },
    /// Remove a client from every topic and forget it.
    Unregister { id: ClientId, reply: Reply },
    /// Remove a client whose sink died (consumer gone, overflow, panic), but only if it is
    /// still registered with that very sink: the id may have been re-registered since.
    Prune { id: ClientId, sink: Arc<SinkState> },
    /// Close every sink, publish an empty snapshot and stop.
    Shutdown { reply: Reply },
}

/// The writer's answer to one command, delivered after the snapshot that reflects the
/// command is published.
///
/// If the writer drops a command without answering (it stopped first), the waiting
/// caller gets [`Error::Closed`]: every caller gets a result.
pub(crate) struct Reply {
    slot: Arc<ReplySlot>,
    sent: bool,
}

/// Where the caller waits for its [`Reply`].
pub(crate) struct ReplyWaiter {
    slot: Arc<ReplySlot>,
}

struct ReplySlot {
    /// `None` until the writer answers.
    result: Mutex<Option<Result<(), Error>>>,
    /// Signalled once, when `result` is filled.
    filled: Condvar,
}

/// A reply and the waiter for it.
pub(crate) fn reply_channel() -> (Reply, ReplyWaiter) {
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

impl Reply {
    /// Answers the caller.
    pub(crate) fn send(mut self, result: Result<(), Error>) {
        self.fill(result);
    }

    fn fill(&mut self, result: Result<(), Error>) {
        self.sent = true;
        *lock(&self.slot.result) = Some(result);
        self.slot.filled.notify_one();
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
    /// Blocks (parked, not spinning) until the writer answers, or until `writer_gone`
    /// says the writer has exited: a command that reached the queue just before the
    /// writer stopped is never answered, and its caller must not wait forever.
    pub(crate) fn wait(self, writer_gone: impl Fn() -> bool) -> Result<(), Error> {
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
