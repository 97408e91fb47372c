//! A bridge's counters and the [`BridgeStats`] view of them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A point-in-time view of a bridge, from [`Bridge::stats`](super::Bridge::stats).
/// Counters are totals since the bridge was attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Both connections (publisher and subscriber) are up and subscribed now.
    pub connected: bool,
    /// Redis channels the subscriber connection is subscribed to now: 1 (the
    /// namespace's) or, under [`ChannelLayout::PerTopic`](super::ChannelLayout::PerTopic),
    /// one per topic with local subscribers; 0 while disconnected.
    pub channels: usize,
    /// Envelopes published to Redis (acknowledged by the server).
    pub sent: u64,
    /// Envelopes from other engines accepted and handed to this engine's subscribers of
    /// their topic, if it has any (a count of envelopes, not of local deliveries).
    pub received: u64,
    /// Broadcast frames not sent: the outgoing queue was full, Redis was down, or a
    /// publish failed. They are not retried.
    pub dropped: u64,
    /// Frames from other engines this one missed: the sum of every jump in the sequence
    /// numbers of an (origin, topic) stream (a Redis restart, a dropped subscriber
    /// connection, an origin that could not send). A stream's first frame counts none.
    pub gaps: u64,
    /// Messages on the channel that are not envelopes (foreign publishers, truncated,
    /// unknown version, oversized, a topic this engine refuses): counted and skipped.
    pub bad_envelopes: u64,
    /// Envelopes whose sequence number was not above the last one seen on their
    /// (origin, topic) stream: skipped, so nothing is delivered twice (one publisher connection per
    /// origin never produces them; a foreign replay would).
    pub duplicates: u64,
    /// Connections re-established after one was lost, over both connections.
    pub reconnects: u64,
    /// Broadcast frames in the outgoing queue now, waiting for the publisher thread.
    pub queued: usize,
}

/// The live counters, shared by the bridge's threads and its handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) publisher_up: AtomicBool,
    pub(crate) subscriber_up: AtomicBool,
    pub(crate) channels: AtomicUsize,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Dropped by the publisher (Redis down, publish failed); queue-full drops are
    /// counted by the tap.
    pub(crate) dropped: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) bad_envelopes: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter. Relaxed throughout: each is a statistic read on its own.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn view(&self, queue_dropped: u64, queued: usize) -> BridgeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            connected: self.publisher_up.load(Ordering::Relaxed)
                && self.subscriber_up.load(Ordering::Relaxed),
            channels: self.channels.load(Ordering::Relaxed),
            sent: get(&self.sent),
            received: get(&self.received),
            dropped: get(&self.dropped) + queue_dropped,
            gaps: get(&self.gaps),
            bad_envelopes: get(&self.bad_envelopes),
            duplicates: get(&self.duplicates),
            reconnects: get(&self.reconnects),
            queued,
        }
    }
}
