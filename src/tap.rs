//! A tap on a [`PubSub`](crate::PubSub)'s broadcasts: every frame it broadcasts is also
//! handed, without blocking, to a bounded queue that a forwarder drains (the Redis
//! bridge's publisher thread).
//!
//! The broadcast path pays one load of [`Tap::is_on`] when nothing is attached; with a
//! forwarder attached, one `arc_swap` load and one `try_send` of the frame (an atomic
//! increment of its reference count, no copy). A full queue drops the frame and counts
//! it: a broadcast never waits for the forwarder.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use crossbeam_channel::{Sender, TrySendError};

use crate::client::ClientId;

/// One broadcast, as the forwarder receives it.
pub(crate) struct Tapped {
    /// The `broadcast_from` sender, if any.
    pub(crate) from: Option<ClientId>,
    /// The Push frame the broadcast delivered locally.
    pub(crate) frame: Bytes,
}

/// Where a tap sends frames: the forwarder's queue and what it could not take.
pub(crate) struct Outlet {
    /// The forwarder's bounded queue.
    pub(crate) queue: Sender<Tapped>,
    /// Frames dropped because the queue was full.
    pub(crate) dropped: AtomicU64,
}

/// The slot every handle of one engine shares.
#[derive(Default)]
pub(crate) struct Tap {
    /// Whether an outlet is attached: the one load an untapped broadcast pays.
    on: AtomicBool,
    /// The attached outlet.
    outlet: ArcSwapOption<Outlet>,
}

impl Tap {
    /// Whether a forwarder is attached.
    #[inline(always)]
    pub(crate) fn is_on(&self) -> bool {
        // Acquire pairs with the Release store in `attach`: a broadcast that sees the
        // flag also sees the outlet stored before it (arc_swap's own load is ordered
        // too; the flag only has to not run ahead of it).
        self.on.load(Ordering::Acquire)
    }

    /// Hands a broadcast frame to the forwarder, or counts it dropped.
    pub(crate) fn send(&self, from: Option<ClientId>, frame: Bytes) {
        let outlet = self.outlet.load();
        let Some(outlet) = outlet.as_ref() else {
            return; // detached meanwhile
        };
        match outlet.queue.try_send(Tapped { from, frame }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                // Relaxed: a statistic, read on its own.
                outlet.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Attaches `outlet`; `false` (nothing changed) if one is attached already.
    pub(crate) fn attach(&self, outlet: Arc<Outlet>) -> bool {
        let previous = self
            .outlet
            .compare_and_swap(&None::<Arc<Outlet>>, Some(outlet));
        if previous.is_some() {
            return false;
        }
        // Release pairs with the Acquire load in `is_on`.
        self.on.store(true, Ordering::Release);
        true
    }

    /// Detaches the outlet: broadcasts that start afterwards are not forwarded.
    pub(crate) fn detach(&self) {
        self.on.store(false, Ordering::Release);
        self.outlet.store(None);
    }
}
