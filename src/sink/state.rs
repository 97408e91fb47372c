//! A sink's open/closed status, and the state a queue-backed sink shares with its
//! consumer and with the writer.

use crate::sync::{AtomicU64, AtomicU8, Ordering};

/// Why a sink is no longer open. Stored as a `u8` in [`SinkStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Status {
    /// Receiving frames.
    Open = 0,
    /// Removed by `unsubscribe`/`unregister`.
    Unsubscribed = 1,
    /// Removed by the disconnect policy when its queue was full.
    Overflow = 2,
    /// The engine shut down.
    Shutdown = 3,
    /// Its consumer went away (the `Channel` or its receiver was dropped).
    ConsumerGone = 4,
    /// Its callback panicked.
    Panicked = 5,
}

impl Status {
    fn from_u8(raw: u8) -> Self {
        match raw {
            0 => Status::Open,
            1 => Status::Unsubscribed,
            2 => Status::Overflow,
            3 => Status::Shutdown,
            4 => Status::ConsumerGone,
            _ => Status::Panicked,
        }
    }
}

/// The open/closed status of one sink: one byte, a [`Status`] that leaves `Open` exactly
/// once. A callback sink keeps it inline (nobody outside the engine observes it); a
/// queue-backed sink's is part of the [`SinkState`] it shares with its consumer.
pub(crate) struct SinkStatus {
    status: AtomicU8,
}

impl SinkStatus {
    pub(crate) fn new() -> Self {
        Self {
            status: AtomicU8::new(Status::Open as u8),
        }
    }

    /// Whether broadcasts should still deliver here.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        // Acquire pairs with the Release in `close`: a publisher that sees the sink closed
        // also sees why. A publisher that still sees `Open` after a concurrent close makes
        // one more delivery attempt, which is a broadcast "already in flight".
        self.status.load(Ordering::Acquire) == Status::Open as u8
    }

    /// [`is_open`](Self::is_open) for a delivery that reads nothing else on the strength
    /// of the answer (a callback's): a publisher that misses a concurrent close calls
    /// once more, as a broadcast already in flight may.
    #[inline]
    pub(crate) fn is_open_relaxed(&self) -> bool {
        self.status.load(Ordering::Relaxed) == Status::Open as u8
    }

    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    /// Closes the sink with `reason` if it is still open. Returns whether this call closed
    /// it, so exactly one party acts on the transition (counts it, asks for the prune).
    pub(crate) fn close(&self, reason: Status) -> bool {
        debug_assert_ne!(reason, Status::Open);
        self.status
            .compare_exchange(
                Status::Open as u8,
                reason as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// What a queue-backed sink shares with its consumer: its status and loss counter. (A
/// callback never drops a frame, so it has no counter: see [`SinkStatus`].)
pub(crate) struct SinkState {
    /// Open, or why not.
    status: SinkStatus,
    /// Frames this sink's policy dropped.
    dropped: AtomicU64,
}

impl SinkState {
    pub(crate) fn new() -> Self {
        Self {
            status: SinkStatus::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// The status alone, as [`Sink::state`](super::Sink::state) gives it for every flavour.
    #[inline]
    pub(crate) fn status_cell(&self) -> &SinkStatus {
        &self.status
    }

    /// Whether broadcasts should still deliver here (see [`SinkStatus::is_open`]).
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.status.is_open()
    }

    pub(crate) fn status(&self) -> Status {
        self.status.status()
    }

    /// Closes the sink with `reason` if it is still open (see [`SinkStatus::close`]).
    pub(crate) fn close(&self, reason: Status) -> bool {
        self.status.close(reason)
    }

    /// Counts `frames` dropped by this sink's policy.
    pub(crate) fn count_dropped(&self, frames: u64) {
        // Relaxed: a statistic; nothing is ordered by it.
        self.dropped.fetch_add(frames, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
