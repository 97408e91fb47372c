//! The channel flavour: a bounded crossbeam queue with an overflow policy.
//!
//! The consumer side is the public [`Channel`](crate::Channel); this is the publisher
//! side, which lives in the snapshot and is shared by every broadcast.

use super::{Delivery, SinkState, Status};
use crate::policy::{ChannelConfig, OverflowPolicy};
use crate::sync::queue::{self, Receiver, SendTimeoutError, Sender, TrySendError};

/// How many times drop-oldest tries to make room before it gives up and drops the new
/// frame instead. Each failed try means another publisher filled the slot just freed;
/// bounding the loop keeps a publisher from spinning under that contention.
const DROP_OLDEST_ATTEMPTS: usize = 4;

/// The sending half of a channel sink.
pub(crate) struct ChannelSink<T> {
    /// Where frames go.
    tx: Sender<T>,
    /// A second handle on the queue's receiving end, held only under
    /// [`OverflowPolicy::DropOldest`] to pop the oldest frame when the queue is full.
    oldest: Option<Receiver<T>>,
    /// What to do on a full queue.
    policy: OverflowPolicy,
}

impl<T: Clone> ChannelSink<T> {
    /// A sink and the receiver its consumer reads from.
    pub(crate) fn new(config: ChannelConfig) -> (Self, Receiver<T>) {
        let (tx, rx) = queue::bounded(config.capacity);
        let oldest = match config.policy {
            OverflowPolicy::DropOldest => Some(rx.clone()),
            _ => None,
        };
        let sink = Self {
            tx,
            oldest,
            policy: config.policy,
        };
        (sink, rx)
    }

    #[inline]
    pub(crate) fn send(&self, item: &T, state: &SinkState) -> Delivery {
        match self.tx.try_send(item.clone()) {
            Ok(()) => Delivery::Delivered,
            Err(TrySendError::Full(item)) => self.overflow(item, state),
            Err(TrySendError::Disconnected(_)) => consumer_gone(state),
        }
    }

    /// The queue is full: apply the policy.
    #[cold]
    fn overflow(&self, item: T, state: &SinkState) -> Delivery {
        match self.policy {
            OverflowPolicy::DropNewest => dropped(state, 1, false),
            OverflowPolicy::DropOldest => self.replace_oldest(item, state),
            OverflowPolicy::Disconnect => {
                if state.close(Status::Overflow) {
                    state.count_dropped(1);
                    Delivery::Closed { dropped: 1 }
                } else {
                    Delivery::Skipped
                }
            }
            OverflowPolicy::Block(timeout) => match self.tx.send_timeout(item, timeout) {
                Ok(()) => Delivery::Delivered,
                Err(SendTimeoutError::Timeout(_)) => dropped(state, 1, false),
                Err(SendTimeoutError::Disconnected(_)) => consumer_gone(state),
            },
        }
    }

    /// Drop-oldest: pop the head of the queue (counting it) and queue `item` instead.
    fn replace_oldest(&self, mut item: T, state: &SinkState) -> Delivery {
        let Some(oldest) = &self.oldest else {
            unreachable!("a drop-oldest sink always holds a receiver");
        };
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
                        dropped(state, frames, true)
                    };
                }
                Err(TrySendError::Full(back)) => item = back,
                Err(TrySendError::Disconnected(_)) => return consumer_gone(state),
            }
        }
        // Other publishers kept refilling the slot: drop the new frame too.
        dropped(state, frames + 1, false)
    }
}

fn dropped(state: &SinkState, frames: u64, delivered: bool) -> Delivery {
    state.count_dropped(frames);
    Delivery::Dropped { frames, delivered }
}

fn consumer_gone(state: &SinkState) -> Delivery {
    if state.close(Status::ConsumerGone) {
        Delivery::Closed { dropped: 0 }
    } else {
        Delivery::Skipped
    }
}
