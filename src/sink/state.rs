//! A sink's open/closed status, and the state a queue-backed sink shares with its
//! consumer and with the writer.

use crate::sync::{AtomicU64, AtomicU8, Ordering};

/// Why a sink is no longer open. Stored as a `u8` in [`SinkStatus`]: open is 1 and every
/// reason to be closed has the top bit set, so that a sink's gate — a callback's status,
/// or a channel's open flag, 0 when open — tells an open callback by its sign (see
/// [`SinkStatus::gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Status {
    /// Receiving frames.
    Open = 1,
    /// Removed by `unsubscribe`/`unregister`.
    Unsubscribed = 0x81,
    /// Removed by the disconnect policy when its queue was full.
    Overflow = 0x82,
    /// The engine shut down.
    Shutdown = 0x83,
    /// Its consumer went away (the `Channel` or its receiver was dropped).
    ConsumerGone = 0x84,
    /// Its callback panicked.
    Panicked = 0x85,
}

impl Status {
    fn from_u8(raw: u8) -> Self {
        match raw {
            1 => Status::Open,
            0x81 => Status::Unsubscribed,
            0x82 => Status::Overflow,
            0x83 => Status::Shutdown,
            0x84 => Status::ConsumerGone,
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
    /// A channel's gate, open: 0, the one gate value that is neither a callback's
    /// [`Status`] nor negative.
    pub(crate) const CHANNEL_OPEN: i8 = 0;
    /// A channel's gate, closed (why is in its shared state): negative, as every closed
    /// [`Status`] is.
    pub(crate) const CHANNEL_CLOSED: u8 = 0xff;

    pub(crate) fn new() -> Self {
        Self {
            status: AtomicU8::new(Status::Open as u8),
        }
    }

    /// An open channel's gate.
    pub(crate) fn channel_open() -> Self {
        Self {
            status: AtomicU8::new(Self::CHANNEL_OPEN as u8),
        }
    }

    /// The byte, as a sink's gate: positive for an open callback ([`Status::Open`]),
    /// [`CHANNEL_OPEN`](Self::CHANNEL_OPEN) (0) for an open channel, negative for a
    /// closed sink of either kind. An open callback is `gate > 0`, which the compiler
    /// predicts taken and lays on the walk's straight path (tested as `gate == 0`, the
    /// callback's call was the block it moved aside). Acquire: free on x86, and it pairs
    /// with a callback's close (a publisher that sees it closed also sees why); a
    /// publisher that misses a concurrent close makes one more delivery, as a broadcast
    /// already in flight may.
    #[inline(always)]
    pub(crate) fn gate(&self) -> i8 {
        self.status.load(Ordering::Acquire) as i8
    }

    /// Closes a channel's gate (never called on a callback's: only its status closes
    /// it, through [`close`](Self::close)).
    pub(crate) fn close_channel(&self) {
        // Relaxed: nothing is read on the strength of this flag (a closed sink is just
        // skipped; why it closed is read from the state, with its own ordering). A close
        // that happens-before a broadcast is seen by it (coherence); one that races it
        // may be missed, and that broadcast, in flight, delivers once more.
        self.status.store(Self::CHANNEL_CLOSED, Ordering::Relaxed);
    }

    /// Whether broadcasts should still deliver here.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        // Acquire pairs with the Release in `close`: a publisher that sees the sink closed
        // also sees why. A publisher that still sees `Open` after a concurrent close makes
        // one more delivery attempt, which is a broadcast "already in flight".
        self.status.load(Ordering::Acquire) == Status::Open as u8
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
