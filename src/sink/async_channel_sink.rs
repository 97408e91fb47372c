//! The async channel flavour: a [channel sink](super::ChannelSink) plus a waker slot.
//!
//! The consumer side is the public [`AsyncChannel`](crate::AsyncChannel); this is the
//! publisher side, which lives in the snapshot and is shared by every broadcast.
//!
//! Everything a publisher does to the queue — the push, every overflow policy, the
//! counters, closing the sink when its consumer is gone — is the channel flavour's own
//! code, called unchanged, so the two flavours cannot drift apart. What this flavour
//! adds comes once per broadcast, not per push: a broadcast that reaches any async sink
//! ends with one `SeqCst` fence and then a look at each async sink's waker slot
//! ([`WakerSlot::wake_if_waiting`]), which wakes the consumer if it is parked in
//! `recv().await` (see [`waker_slot`](crate::sync::waker_slot) for the protocol). Publishers never await: under
//! [`OverflowPolicy::Block`](crate::OverflowPolicy::Block) they block their own thread,
//! exactly as for a crossbeam channel.
//!
//! When the sink is dropped (it left the last snapshot after an unsubscribe, an overflow
//! disconnect, a shutdown, or its consumer going away), its queue's sender goes first and
//! then the waker slot is closed, so a parked consumer wakes and finds the queue
//! disconnected.

use super::{ChannelSink, Delivery, Sink};
use crate::sync::queue::Receiver;
use crate::sync::waker_slot::WakerSlot;
use crate::sync::Arc;
use crate::vocab::policy::ChannelConfig;
use crate::vocab::stats::DropCause;

/// The sending half of an async channel sink.
///
/// Boxed inside the sink enum (see `ChannelKind` in [`super`]): inline, its waker handle
/// would make every sink — callback sinks included — a word larger.
pub(crate) struct AsyncChannelSink<T> {
    /// The queue and its policy. Declared first so it is dropped first: the consumer
    /// must find the queue disconnected when `wake_on_drop` wakes it.
    queue: ChannelSink<T>,
    /// The consumer's parked waker, shared with its `AsyncChannel`.
    wake_on_drop: WakeOnDrop,
}

/// Closes the waker slot when dropped, after the queue's sender (the field before it).
struct WakeOnDrop(Arc<WakerSlot>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl<T: Clone> AsyncChannelSink<T> {
    /// A sink, the receiver its consumer reads from, and the waker slot they share.
    pub(crate) fn new(config: ChannelConfig) -> (Self, Receiver<T>, Arc<WakerSlot>) {
        let (queue, receiver) = ChannelSink::new(config);
        let slot = Arc::new(WakerSlot::new());
        let sink = Self {
            queue,
            wake_on_drop: WakeOnDrop(Arc::clone(&slot)),
        };
        (sink, receiver, slot)
    }

    /// `sink` is the [`Sink`] this is the flavour of (the queue's cold paths read or close
    /// its state through it).
    ///
    /// Only the push: the look for a parked consumer is the broadcast's, which ends —
    /// once every subscriber is served — with one `SeqCst` fence and a
    /// [`wake_if_parked`](Self::wake_if_parked) on each (`engine/delivery.rs`). One
    /// fence per broadcast instead of one per async delivery: the fence was most of an
    /// async delivery's extra cost (21.5 → 18.7 ns at 256 subscribers,
    /// `floor_callgrind` `as_fanout`).
    #[inline]
    pub(crate) fn send(&self, item: &T, sink: &Sink<T>) -> Delivery {
        self.queue.send(item, sink)
    }
}

impl<T> AsyncChannelSink<T> {
    /// Its queue: a broadcast pushes through the subscriber list's copy of the queue's
    /// sender, as to a plain queue, and reaches this only when the queue refuses.
    pub(crate) fn queue(&self) -> &ChannelSink<T> {
        &self.queue
    }

    /// The policy that drops this queue's frames.
    pub(crate) fn drop_cause(&self) -> DropCause {
        self.queue.drop_cause()
    }

    /// Wakes the consumer if it is parked; after the broadcast's fence.
    #[inline]
    pub(crate) fn wake_if_parked(&self) {
        self.wake_on_drop.0.wake_if_waiting();
    }
}
