//! Engine-wide statistics.

use crate::sync::{AtomicU64, Ordering};

/// A point-in-time view of an engine, from [`PubSub::stats`](crate::PubSub::stats) or
/// [`Broadcaster::stats`](crate::Broadcaster::stats).
///
/// The sizes (`clients`, `topics`, `subscriptions`) are exact as of the latest published
/// snapshot; the counters are totals since the engine started, each updated once per
/// broadcast (never per delivery), so they may lag a broadcast still in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Registered clients (for a `Broadcaster`: open channels).
    pub clients: usize,
    /// Topics with at least one subscriber.
    pub topics: usize,
    /// Client–topic pairs subscribed by name.
    pub subscriptions: usize,
    /// Client–pattern pairs (wildcard subscriptions).
    pub patterns: usize,
    /// Broadcasts that found at least one subscriber.
    pub broadcasts: u64,
    /// Frames handed to sinks (a callback called, or a frame queued on a channel).
    pub deliveries: u64,
    /// Frames lost to overflow policies, over all sinks.
    pub dropped: u64,
    /// Subscribers removed by the disconnect policy.
    pub disconnects: u64,
    /// Send callbacks that panicked (each one removed its client).
    pub panics: u64,
    /// Subscriptions the `can_subscribe` hook refused.
    pub denied: u64,
}

/// What one broadcast did, added to the engine's counters in one go.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    /// Subscribers walked past that did not receive the frame (the sender, closed sinks,
    /// frames a policy dropped, a panicking callback). Deliveries are the rest.
    pub(crate) missed: usize,
    pub(crate) dropped: u64,
    pub(crate) disconnects: u64,
    pub(crate) panics: u64,
}

/// The running totals behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    broadcasts: AtomicU64,
    deliveries: AtomicU64,
    dropped: AtomicU64,
    disconnects: AtomicU64,
    panics: AtomicU64,
    denied: AtomicU64,
}

impl Counters {
    /// Adds one broadcast's tally. Relaxed throughout: these are statistics and order
    /// nothing. The rare counters are only touched when non-zero.
    #[inline]
    pub(crate) fn record(&self, delivered: usize, tally: &Tally) {
        self.broadcasts.fetch_add(1, Ordering::Relaxed);
        self.deliveries
            .fetch_add(delivered as u64, Ordering::Relaxed);
        if tally.dropped != 0 {
            self.dropped.fetch_add(tally.dropped, Ordering::Relaxed);
        }
        if tally.disconnects != 0 {
            self.disconnects
                .fetch_add(tally.disconnects, Ordering::Relaxed);
        }
        if tally.panics != 0 {
            self.panics.fetch_add(tally.panics, Ordering::Relaxed);
        }
    }

    /// Counts one subscription the authorization hook refused.
    pub(crate) fn record_denial(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fill(&self, stats: &mut Stats) {
        stats.broadcasts = self.broadcasts.load(Ordering::Relaxed);
        stats.deliveries = self.deliveries.load(Ordering::Relaxed);
        stats.dropped = self.dropped.load(Ordering::Relaxed);
        stats.disconnects = self.disconnects.load(Ordering::Relaxed);
        stats.panics = self.panics.load(Ordering::Relaxed);
        stats.denied = self.denied.load(Ordering::Relaxed);
    }
}
