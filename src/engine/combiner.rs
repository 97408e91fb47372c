//! The combining writer: every mutation is applied by whichever caller holds the writer
//! role, in batches, with no thread hop when nobody else is writing.
//!
//! Source: flat combining (Hendler, Incze, Shavit and Tzafrir, "Flat Combining and the
//! Synchronization-Parallelism Tradeoff", SPAA 2010), with the bounded command queue as
//! the publication list.
//!
//! # The protocol
//!
//! There is one writer at a time: the holder of the `writer` lock in [`Shared`]. A
//! caller with a mutation:
//!
//! 1. **Takes the role if it is free** and applies its own op first, then up to
//!    [`MAX_COMMANDS_PER_BATCH`](super::writer::MAX_COMMANDS_PER_BATCH) commands others queued, publishes one
//!    snapshot, releases the role and answers everyone. Uncontended, that is the whole
//!    call: no queue, no reply slot, no other thread.
//! 2. Otherwise **posts** its op on the bounded command queue (blocking while it is full:
//!    back-pressure on mutations, never on broadcasts), then tries the role again — the
//!    holder may have just left — and, if someone else still holds it, waits on its own
//!    reply (spinning briefly, then parked).
//!
//! Whoever releases the role looks at the queue again afterwards, because a caller may
//! have posted and failed to take the role just before the release:
//!
//! - a caller whose own op is still unanswered combines again;
//! - a caller whose op is answered serves **one** more batch itself (the waiters are
//!   parked; waking the background thread would cost them a second wake-up), and if
//!   even that leaves commands behind, hands the rest to the background
//!   [janitor](super::janitor). So one call serves at most
//!   `⌈queue capacity / MAX_COMMANDS_PER_BATCH⌉ + 1` batches: its latency is bounded however hard
//!   others keep posting.
//!
//! # Why nothing is stranded
//!
//! A poster `P` stores its command, then reads the lock; a releaser `R` stores the
//! unlock, then reads the queue. With a `SeqCst` fence between the store and the load on
//! each side (the store-buffering pattern), at least one of them sees the other's store:
//! either `P` finds the role free and takes it (or loses it to a third caller, who is
//! then the releaser with the same duty), or `R` finds `P`'s command and serves it or
//! hands it on. In every case somebody who will serve the command holds or takes the
//! role after it was posted. Waiters still wake every
//! [`LIVENESS_CHECK`] to look for themselves, as a bound
//! on the damage should this argument have a hole (the loom models have no timeouts, so
//! they would report it as a deadlock).
//!
//! # Memory orders
//!
//! The role lock orders writers among themselves (acquire on take, release on
//! release). Broadcasts synchronise with writers only through the snapshot cell (a
//! `SeqCst` swap). Replies are filled with Release and read with Acquire
//! ([`command`](super::command)).

use super::command::{reply_channel, Command, Op, Outcome, LIVENESS_CHECK};
use super::writer::Writer;
use super::Shared;
use crate::sync::queue::{SendTimeoutError, TrySendError};
use crate::sync::{fence, lock, thread, try_lock, MutexGuard, Ordering};
use crate::vocab::error::Error;

/// How many times `shutdown` settles replaced snapshots (yielding between tries) before
/// it leaves what broadcasts still hold to the engine's drop.
const SETTLE_AFTER_CLOSE_TRIES: usize = if cfg!(loom) { 2 } else { 1000 };

/// What one try at the writer role did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Another caller holds the role; it will look at the queue when it releases it.
    Busy,
    /// This caller ran one batch. `more`: commands were still queued after it released
    /// the role, so it owes them a server (see the module docs).
    Served { more: bool },
}

impl<T> Shared<T> {
    /// Applies `op`, by this caller or by whoever holds the writer role, and returns once
    /// the snapshot with its change is published.
    pub(crate) fn call(&self, op: Op<T>) -> Result<Outcome, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        // 1. The fast path: the role is free; apply our op ourselves, no queue.
        if let Some(writer) = try_lock(&self.writer) {
            let (own, more) = self.combine(writer, Some(op));
            if more {
                self.serve_leftovers();
            }
            return own.unwrap_or(Err(Error::Closed));
        }
        // 2. Post, and wait for whoever serves it (perhaps ourselves).
        let (reply, waiter) = reply_channel();
        self.post(Command {
            op,
            reply: Some(reply),
        })?;
        loop {
            let attempt = self.try_combine();
            if let Some(result) = waiter.try_take() {
                if attempt == (Attempt::Served { more: true }) {
                    self.serve_leftovers();
                }
                return result;
            }
            if attempt == (Attempt::Served { more: true }) {
                // Our op may be in what is left; serve on.
                continue;
            }
            // Busy: the holder will serve our command or hand it on. Served with
            // nothing left: an earlier combiner took our command and is answering it.
            if let Some(result) = waiter.wait() {
                return result;
            }
            // Not answered within the liveness check: look for ourselves again.
        }
    }

    /// Queues a command nobody waits for (a prune) and makes sure somebody serves it:
    /// the background janitor, so that the poster — a broadcast, a dropped channel — never
    /// takes the writer role. Returns it back if the queue is full.
    pub(crate) fn post_unanswered(&self, command: Command<T>) -> Result<(), Command<T>> {
        match self.inbox_sender.try_send(command) {
            Ok(()) => {
                self.wake_janitor();
                Ok(())
            }
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => Err(back),
        }
    }

    /// Queues `command`, waiting while the queue is full (and serving a batch to make
    /// room if the role is free). `Err(Closed)` if the engine closes meanwhile.
    fn post(&self, mut command: Command<T>) -> Result<(), Error> {
        loop {
            match self.inbox_sender.try_send(command) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => command = back,
                // Both ends live in `Shared`: the queue cannot disconnect.
                Err(TrySendError::Disconnected(_)) => return Err(Error::Closed),
            }
            if self.is_closed() {
                // A batch we served above may have left commands behind: they are ours
                // to see answered (a closed writer answers `Closed` at once).
                self.hand_off();
                return Err(Error::Closed);
            }
            // Full. Make room ourselves if we can (the batch's leftovers are ours to
            // serve: we combine again right after posting), else wait for room.
            if self.try_combine() == Attempt::Busy {
                match self.inbox_sender.send_timeout(command, LIVENESS_CHECK) {
                    Ok(()) => break,
                    Err(SendTimeoutError::Timeout(back)) => command = back,
                    Err(SendTimeoutError::Disconnected(_)) => return Err(Error::Closed),
                }
            }
        }
        // SeqCst: the poster's half of the store-buffering pair (module docs): the
        // command is stored before we read the role lock in `try_combine`.
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Takes the role if it is free and runs one batch of queued commands.
    fn try_combine(&self) -> Attempt {
        match try_lock(&self.writer) {
            Some(writer) => {
                let (_, more) = self.combine(writer, None);
                Attempt::Served { more }
            }
            None => Attempt::Busy,
        }
    }

    /// Runs one batch as the role holder, releases the role, then answers and disposes of
    /// what the batch retired. Returns the own op's result and whether commands are still
    /// queued.
    fn combine(
        &self,
        writer: MutexGuard<'_, Writer<T>>,
        own: Option<Op<T>>,
    ) -> (Option<Result<Outcome, Error>>, bool) {
        let (own, more, _) = self.combine_settling_with(writer, own);
        (own, more)
    }

    /// [`combine`](Self::combine), also returning whether replaced snapshots still wait
    /// for broadcasts.
    fn combine_settling_with(
        &self,
        mut writer: MutexGuard<'_, Writer<T>>,
        own: Option<Op<T>>,
    ) -> (Option<Result<Outcome, Error>>, bool, bool) {
        let batch = writer.run_batch(self, own, &self.inbox);
        let more = self.release(writer);
        if batch.presence_changed {
            // The changes are queued in order under the role; they go out now, with the
            // role released (delivering runs callbacks), and before the callers are
            // answered: a `track` returns once its join has been handed to the topic's
            // subscribers (unless another thread holds the delivery turn; then that
            // thread hands it on, right after its current change).
            self.deliver_presence();
        }
        batch.aftermath.finish();
        if batch.retired_pending {
            self.wake_janitor_to_settle();
        }
        (batch.own, more, batch.retired_pending)
    }

    /// Releases the writer role and returns whether commands are still queued: the
    /// releaser's half of the protocol, in one place for every way the role is held.
    pub(crate) fn release(&self, writer: MutexGuard<'_, Writer<T>>) -> bool {
        drop(writer);
        // SeqCst: the releaser's half of the store-buffering pair (module docs): the
        // unlock is stored before we read the queue.
        fence(Ordering::SeqCst);
        !self.inbox.is_empty()
    }

    /// Called by a caller whose own op is answered but who released the role with
    /// commands still queued: serve one more batch, then hand what is left to the
    /// janitor, so this caller's own latency stays bounded.
    fn serve_leftovers(&self) {
        if self.try_combine() == (Attempt::Served { more: true }) {
            self.hand_off();
        }
    }

    /// Makes sure somebody serves the queued commands without this caller waiting for
    /// them: the janitor, or — once the engine is closed and the janitor may be gone —
    /// this caller (a closed writer only answers `Closed`, which is quick).
    pub(crate) fn hand_off(&self) {
        if !self.is_closed() {
            self.wake_janitor();
            return;
        }
        self.serve_until_empty();
    }

    /// Takes the role, waiting for it, and serves batches until the queue is empty.
    pub(crate) fn serve_until_empty(&self) {
        loop {
            let (_, more) = self.combine(lock(&self.writer), None);
            if !more {
                return;
            }
        }
    }

    /// Closes the registry under the role and answers every queued command `Closed`.
    pub(crate) fn close_registry(&self) {
        let mut writer = lock(&self.writer);
        let mut aftermath = super::writer::Aftermath::default();
        let pending = writer.close(
            self,
            &self.inbox,
            crate::sink::Status::Shutdown,
            &mut aftermath,
        );
        let more = self.release(writer);
        aftermath.finish();
        if more {
            self.serve_until_empty();
        }
        if pending {
            self.wake_janitor_to_settle();
        }
    }

    /// After the janitor has stopped: frees the snapshots broadcasts in flight at the
    /// close still held (and with them the sinks of the closed registry), giving those
    /// broadcasts a bounded time to end. What is still held then is freed when the
    /// engine is dropped.
    pub(crate) fn settle_after_close(&self) {
        for _ in 0..SETTLE_AFTER_CLOSE_TRIES {
            let (_, _, pending) = self.combine_settling_with(lock(&self.writer), None);
            if !pending {
                return;
            }
            thread::yield_now();
        }
    }
}
