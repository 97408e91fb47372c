//! [`Recipient`]: one entry of a topic's subscriber list in the snapshot, shared by the
//! exact-topic map and the pattern index.
//!
//! # Why a queue's sender is kept here
//!
//! A delivery to a queue sink used to reach crossbeam's channel through the sink: the
//! list entry gave the sink's address, the sink's line gave the channel's. When the
//! subscribers' sinks and queues are scattered in memory (as they are once clients come
//! and go between other allocations), that is two cache misses in a row before the
//! queue's own, and the processor cannot start on the queue until the sink arrives.
//! Holding a clone of the queue's sender in the entry makes the queue's address come
//! from the list, which is read front to back; the sink's line is still read (its open
//! flag), but only to decide a branch that is predicted, so its miss overlaps the
//! queue's instead of preceding it. `floor_callgrind e2e_ratios` and the scoreboard's
//! channel rows measure the effect (benches/NOTES-2026-12.md, "2026-12-07: channel
//! fan-out"): at 4,096 subscribers on one thread, 4.6× raw crossbeam's time became
//! 2.0–2.3×. The cost is 16 bytes per subscription.

use crate::sink::Sink;
use crate::sync::queue::Sender;
use crate::sync::Arc;
use crate::vocab::client::ClientId;

/// One subscription as broadcasts see it — who receives the frame, and where: 32 bytes.
pub(crate) struct Recipient<T> {
    /// Compared against `broadcast_from`'s sender: one integer compare.
    pub(crate) id: ClientId,
    /// A plain queue sink's or an async channel's sender (a clone of the sink's own), so
    /// that a delivery finds the queue without a dependent load through the sink; `None`
    /// for a callback or a conflating channel. Declared before `sink` so that it is
    /// dropped first: the sink's own sender stays the last one, dropped with the sink, as
    /// before (an async sink closes its waker slot after that).
    pub(crate) queue: Option<Sender<T>>,
    /// Shared with every other topic the client is in, and with the writer's registry.
    pub(crate) sink: Arc<Sink<T>>,
}

impl<T> Recipient<T> {
    /// The entry for client `id`, whose sink is `sink`.
    pub(crate) fn new(id: ClientId, sink: Arc<Sink<T>>) -> Self {
        Self {
            id,
            queue: sink.queue_sender(),
            sink,
        }
    }
}

impl<T> Clone for Recipient<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            queue: self.queue.clone(),
            sink: Arc::clone(&self.sink),
        }
    }
}
