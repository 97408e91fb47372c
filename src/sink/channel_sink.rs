//! The channel flavour: a bounded crossbeam queue with an overflow policy.
//!
//! The consumer side is the public [`Channel`](crate::Channel); this is the publisher
//! side, which lives in the snapshot and is shared by every broadcast.
//!
//! # What a delivery touches
//!
//! A delivery pushes through the copy of `tx` the subscriber list keeps
//! (`engine/recipient.rs`, [`ChannelSink::send_via`]), so the queue's address comes from
//! the list, and reads of the subscriber's [`Sink`] only its inline open flag, which
//! decides a predicted branch: the sink's cache miss, when there is one, overlaps the
//! queue's instead of preceding it (benches/NOTES-2026-12.md, "2026-12-07: channel
//! fan-out"). This struct, the overflow policy and the shared
//! [`SinkState`](super::SinkState) (a separate allocation, the consumer's view) are read
//! only when the queue refuses the item, in the cold [`ChannelSink::refused`]. At 4,096
//! subscribers each of those reads was a cache miss per delivery (`floor_callgrind
//! e2e_pubsub` under `callgrind --cache-sim=yes`, benches/NOTES-2026-12.md, "Workload
//! 2").

use std::time::Duration;

use super::{Delivery, Sink, Status};
use crate::sync::queue::{self, Receiver, SendTimeoutError, Sender, TrySendError};
use crate::sync::Arc;
use crate::vocab::policy::{ChannelConfig, OverflowPolicy};
use crate::vocab::stats::DropCause;

/// How many times drop-oldest tries to make room before it gives up and drops the new
/// frame instead. Each failed try means another publisher filled the slot just freed;
/// bounding the loop keeps a publisher from spinning under that contention.
const DROP_OLDEST_ATTEMPTS: usize = 4;

/// The sending half of a channel sink. Lives in the sink's boxed parts: a delivery
/// through the subscriber list's sender reads it only when the queue refuses an item.
pub(crate) struct ChannelSink<T> {
    /// Where frames go.
    tx: Sender<T>,
    /// What to do on a full queue.
    overflow: Overflow<T>,
}

/// An [`OverflowPolicy`] with what applying it needs. Drop-oldest's receiver lives in
/// its variant rather than in a field of its own beside the policy: that keeps
/// [`ChannelSink`] at 40 bytes (it is boxed now, so this saves a channel client a word,
/// no longer every sink).
enum Overflow<T> {
    DropNewest,
    /// A second handle on the queue's receiving end, to pop the oldest frame.
    DropOldest(Receiver<T>),
    Disconnect,
    Block(Duration),
}

impl<T: Clone> ChannelSink<T> {
    /// A sink and the receiver its consumer reads from.
    pub(crate) fn new(config: ChannelConfig) -> (Self, Receiver<T>) {
        let (tx, rx) = queue::bounded(config.capacity);
        let overflow = match config.policy {
            OverflowPolicy::DropNewest => Overflow::DropNewest,
            OverflowPolicy::DropOldest => Overflow::DropOldest(rx.clone()),
            OverflowPolicy::Disconnect => Overflow::Disconnect,
            OverflowPolicy::Block(timeout) => Overflow::Block(timeout),
        };
        (Self { tx, overflow }, rx)
    }

    /// Hands `item` to the queue. `sink` is the [`Sink`] this is the flavour of: only the
    /// cold [`refused`](Self::refused) reads its state (or closes it), so the inline path
    /// loads nothing of it.
    #[inline]
    pub(crate) fn send(&self, item: &T, sink: &Sink<T>) -> Delivery {
        match self.tx.try_send(item.clone()) {
            Ok(()) => Delivery::Delivered,
            Err(refused) => self.refused(refused, sink),
        }
    }

    /// Hands `item` to the queue through `tx`, the copy of its sender that the
    /// subscriber list keeps, so that nothing of the sink but its open flag is read on
    /// the way in. `sink` is the plain queue sink `tx` belongs to; its parts are read
    /// only if the queue refuses the item.
    #[inline]
    pub(crate) fn send_via(tx: &Sender<T>, item: &T, sink: &Sink<T>) -> Delivery {
        match tx.try_send(item.clone()) {
            Ok(()) => Delivery::Delivered,
            Err(refused) => match sink.queue() {
                Some(queue) => queue.refused(refused, sink),
                // Only a plain queue's sender is ever kept in a subscriber list.
                None => Delivery::Skipped,
            },
        }
    }

    /// The queue refused the item: full (apply the policy) or its consumer is gone.
    #[cold]
    #[inline(never)]
    fn refused(&self, refused: TrySendError<T>, sink: &Sink<T>) -> Delivery {
        match refused {
            TrySendError::Full(item) => self.overflow(item, sink),
            TrySendError::Disconnected(_) => consumer_gone(sink),
        }
    }

    /// The queue is full: apply the policy.
    #[cold]
    fn overflow(&self, item: T, sink: &Sink<T>) -> Delivery {
        match &self.overflow {
            Overflow::DropNewest => dropped(sink, 1, false),
            Overflow::DropOldest(oldest) => self.replace_oldest(oldest, item, sink),
            Overflow::Disconnect => {
                if sink.close(Status::Overflow) {
                    sink.count_dropped(1);
                    Delivery::Closed { dropped: 1 }
                } else {
                    Delivery::Skipped
                }
            }
            Overflow::Block(timeout) => match self.tx.send_timeout(item, *timeout) {
                Ok(()) => Delivery::Delivered,
                Err(SendTimeoutError::Timeout(_)) => dropped(sink, 1, false),
                Err(SendTimeoutError::Disconnected(_)) => consumer_gone(sink),
            },
        }
    }

    /// Drop-oldest: pop the head of the queue (counting it) and queue `item` instead.
    fn replace_oldest(&self, oldest: &Receiver<T>, mut item: T, sink: &Sink<T>) -> Delivery {
        let mut frames = 0;
        for _ in 0..DROP_OLDEST_ATTEMPTS {
            // The consumer may empty the queue between our `try_send` and this pop: then
            // nothing is dropped and the retry below succeeds.
            if oldest.try_recv().is_ok() {
                frames += 1;
            }
            match self.tx.try_send(item) {
                Ok(()) => {
                    return if frames == 0 {
                        Delivery::Delivered
                    } else {
                        dropped(sink, frames, true)
                    };
                }
                Err(TrySendError::Full(back)) => item = back,
                Err(TrySendError::Disconnected(_)) => return consumer_gone(sink),
            }
        }
        // Other publishers kept refilling the slot: drop the new frame too.
        dropped(sink, frames + 1, false)
    }
}

impl<T> ChannelSink<T> {
    /// The queue's sending end.
    pub(crate) fn sender(&self) -> &Sender<T> {
        &self.tx
    }

    /// The policy that drops this queue's frames.
    pub(crate) fn drop_cause(&self) -> DropCause {
        match self.overflow {
            Overflow::DropNewest => DropCause::DropNewest,
            Overflow::DropOldest(_) => DropCause::DropOldest,
            Overflow::Disconnect => DropCause::Disconnect,
            Overflow::Block(_) => DropCause::Block,
        }
    }
}

/// Every receiver is gone: close the sink (once) so the writer prunes it.
fn consumer_gone<T>(sink: &Sink<T>) -> Delivery {
    if sink.close(Status::ConsumerGone) {
        Delivery::Closed { dropped: 0 }
    } else {
        Delivery::Skipped
    }
}

fn dropped<T>(sink: &Sink<T>, frames: u64, delivered: bool) -> Delivery {
    sink.count_dropped(frames);
    Delivery::Dropped { frames, delivered }
}

/// How a consumer's [`Channel`](crate::Channel) closes its sink's inline open flag when
/// it is dropped, without keeping the sink alive: the sink owns the queue's sending side,
/// whose drop is what ends the consumer's receiver once the engine lets go of the sink.
pub(crate) struct SinkCloser<T> {
    #[cfg(not(loom))]
    sink: std::sync::Weak<Sink<T>>,
    /// Loom's `Arc` has no `Weak`: under `--cfg loom` a delivery checks the shared state
    /// as well (see [`Sink::deliver`]), so the consumer's close of that suffices.
    #[cfg(loom)]
    sink: std::marker::PhantomData<fn(T)>,
}

impl<T> SinkCloser<T> {
    pub(crate) fn new(sink: &Arc<Sink<T>>) -> Self {
        #[cfg(not(loom))]
        let sink = Arc::downgrade(sink);
        #[cfg(loom)]
        let sink = {
            let _ = sink;
            std::marker::PhantomData
        };
        Self { sink }
    }

    /// Closes the sink's inline flag if the sink still exists (if it does not, no
    /// snapshot holds it and no broadcast can reach it).
    pub(crate) fn close(&self) {
        #[cfg(not(loom))]
        if let Some(sink) = self.sink.upgrade() {
            sink.close_inline();
        }
    }
}
