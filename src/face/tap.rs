//! A tap on a [`PubSub`](crate::PubSub)'s broadcasts: every frame it broadcasts is also
//! handed, without blocking, to a bounded queue that a forwarder drains (the Redis
//! bridge's publisher thread, the NATS bridge's io thread).
//!
//! The broadcast path pays one load of [`Tap::is_on`] when nothing is attached; with a
//! forwarder attached, one more load (the queue, made once per engine) and one
//! `try_send` of the frame (an atomic increment of its reference count, no copy). A full
//! queue drops the frame and counts it: a broadcast never waits for the forwarder.
//!
//! A refused frame is also recorded per topic ([`DroppedTopics`]), so the forwarder can
//! number it as if sent and receivers count its loss as a gap.
//!
//! The queue is made by the first forwarder attached and kept for the engine's life, so
//! the broadcast path reads it without `arc_swap`'s protocol (measured: 58 of the tap's
//! 181 instructions per broadcast); a later forwarder inherits its capacity.
//!
//! A forwarder that is an async task rather than a thread (the NATS bridge drains the
//! queue on its io thread's runtime, so a frame reaches the socket without a second
//! thread hand-off) attaches with `wakes`: each broadcast then also follows the
//! `WakerSlot` protocol (`sync/waker_slot.rs`) after its push (one `SeqCst` fence, one relaxed load while the
//! task is busy; a wake when it is parked). A thread forwarder (Redis) pays neither:
//! it blocks on the queue itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};

use crate::face::dropped_topics::DroppedTopics;
use crate::face::remote_members::RemoteSlot;
#[cfg(feature = "nats")]
use crate::sync::waker_slot::{Parker, WakerSlot};
use crate::vocab::client::ClientId;

/// One broadcast, as the forwarder receives it.
pub(crate) struct Tapped {
    /// The `broadcast_from` sender, if any.
    pub(crate) from: Option<ClientId>,
    /// The Push frame the broadcast delivered locally.
    pub(crate) frame: Bytes,
}

/// The queue between broadcasts and the forwarder.
struct Queue {
    sender: Sender<Tapped>,
    receiver: Receiver<Tapped>,
    /// The frames it refused, per topic.
    refused: DroppedTopics,
    /// Where an async forwarder parks its waker.
    #[cfg(feature = "nats")]
    slot: WakerSlot,
}

/// The slot every handle of one engine shares.
#[derive(Default)]
pub(crate) struct Tap {
    /// Whether broadcasts are forwarded: the one load an untapped broadcast pays.
    on: AtomicBool,
    /// Whether a forwarder holds the tap (from `attach` until `release`).
    held: AtomicBool,
    /// Made by the first `attach`.
    queue: OnceLock<Queue>,
    /// Frames dropped because the queue was full, since the engine started.
    dropped: AtomicU64,
    /// Other engines' members, while a bridge with presence is attached.
    pub(crate) remote_members: RemoteSlot,
    /// Whether the attached forwarder is an async task to wake (set before `on`).
    #[cfg(feature = "nats")]
    wakes: AtomicBool,
}

impl Tap {
    /// Whether a forwarder is attached.
    #[inline(always)]
    pub(crate) fn is_on(&self) -> bool {
        // Acquire pairs with the Release store in `attach`: a broadcast that sees the
        // flag sees the queue made before it.
        self.on.load(Ordering::Acquire)
    }

    /// Hands a broadcast frame of the topic whose hash is `topic_hash` to the forwarder,
    /// or counts it dropped (and records its topic for the forwarder's numbering).
    #[inline]
    pub(crate) fn send(&self, from: Option<ClientId>, frame: Bytes, topic_hash: u64) {
        let Some(queue) = self.queue.get() else {
            return;
        };
        let pushed = queue.sender.try_send(Tapped { from, frame }).is_ok();
        if !pushed {
            queue.refused.record(topic_hash);
            // Relaxed: a statistic, read on its own.
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // Relaxed: stored before the Release store of `on` this broadcast acquired.
        #[cfg(feature = "nats")]
        if pushed && self.wakes.load(Ordering::Relaxed) {
            // Pairs with the fence in `WakerSlot::register`: the push above is seen by
            // the forwarder's second look, or its parked waker is seen here.
            std::sync::atomic::fence(Ordering::SeqCst);
            queue.slot.wake_if_waiting();
        }
    }

    /// An async forwarder with nothing to take: parks `waker` until the next push. The
    /// caller must look at the queue again after this returns, before it sleeps (see
    /// [`WakerSlot`]).
    #[cfg(feature = "nats")]
    pub(crate) fn park(&self, waker: &std::task::Waker) {
        if let Some(queue) = self.queue.get() {
            queue.slot.register(waker, &mut Parker::Anonymous);
        }
    }

    /// The frames the full queue refused, per topic (`None` before the first attach).
    pub(crate) fn refused(&self) -> Option<&DroppedTopics> {
        self.queue.get().map(|queue| &queue.refused)
    }

    /// Attaches a forwarder and returns the queue's receiving end (made now with
    /// `capacity` if this is the engine's first forwarder); `None` if one is attached.
    /// `wakes`: the forwarder is an async task that `park`s (feature `nats`).
    pub(crate) fn attach(&self, capacity: usize, wakes: bool) -> Option<Receiver<Tapped>> {
        if self
            .held
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = crossbeam_channel::bounded(capacity);
            Queue {
                sender,
                receiver,
                refused: DroppedTopics::default(),
                #[cfg(feature = "nats")]
                slot: WakerSlot::new(),
            }
        });
        #[cfg(feature = "nats")]
        self.wakes.store(wakes, Ordering::Relaxed);
        #[cfg(not(feature = "nats"))]
        let _ = wakes;
        // Release pairs with the Acquire load in `is_on` (and publishes `wakes`).
        self.on.store(true, Ordering::Release);
        Some(queue.receiver.clone())
    }

    /// Stops forwarding: broadcasts that start afterwards are not queued.
    pub(crate) fn stop(&self) {
        self.on.store(false, Ordering::Release);
    }

    /// Lets another forwarder attach; call once this one has stopped draining.
    pub(crate) fn release(&self) {
        self.stop();
        self.held.store(false, Ordering::Release);
    }

    /// Frames in the queue now, waiting for the forwarder.
    pub(crate) fn queued(&self) -> usize {
        self.queue.get().map_or(0, |queue| queue.receiver.len())
    }

    /// Frames dropped on a full queue since the engine started.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
