//! A bridge's counters and the [`BridgeStats`] view of them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A point-in-time view of a bridge, from [`Bridge::stats`](super::Bridge::stats).
/// Counters are totals since the bridge was attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Both connections (publisher and subscriber) are up and subscribed now.
    pub connected: bool,
    /// Channels or subjects the node is subscribed to now. Redis: 1 (the namespace's)
    /// or, under [`ChannelLayout::PerTopic`](super::ChannelLayout::PerTopic), one per
    /// topic with local subscribers; 0 while disconnected. NATS: one per topic and per
    /// pattern with local subscribers (kept across reconnections). The presence route
    /// (Redis `NAMESPACE:c` under per-topic channels, the NATS control subject) is not
    /// counted.
    pub channels: usize,
    /// Envelopes published: acknowledged by Redis; on NATS (no acknowledgment in core
    /// NATS), handed to the connected client.
    pub sent: u64,
    /// Envelopes from other engines accepted and handed to this engine's subscribers of
    /// their topic, if it has any (a count of envelopes, not of local deliveries).
    pub received: u64,
    /// Broadcast frames that certainly reached no other engine: the outgoing queue was
    /// full, the broker was down, it refused them before anything was written, or (NATS)
    /// the topic's subject is too long. Not retried. Each was numbered all the same, so
    /// every receiver that serves its topic counts it in its `gaps` (except the
    /// `untracked` ones).
    pub dropped: u64,
    /// Broadcast frames whose fate is unknown: their batch failed after it was written
    /// (a timeout while the broker was stalled, a connection cut mid-pipeline), so the
    /// broker may yet have delivered them — a stalled Redis runs a pipeline when it
    /// resumes. Not retried. Receivers count those that did not arrive in `gaps`.
    pub unknown: u64,
    /// Of `dropped`, frames refused by the full queue whose topic could not be recorded
    /// (more than a few thousand distinct topics refused between two batches): the only
    /// losses no receiver sees as a gap.
    pub untracked: u64,
    /// Frames from other engines this one missed: the sum of every jump in the sequence
    /// numbers of an (origin, topic) stream, whatever the cause (the origin's full queue,
    /// the broker down or stalled, this node's connection lost, a server that cut this
    /// node for reading too slowly). For each origin and each topic this node receives,
    /// from the first frame of the stream it got: frames the origin published − frames
    /// received here = gaps counted here, once a later frame of the stream has arrived
    /// (a loss shows when the next frame does). A stream's first frame counts none.
    pub gaps: u64,
    /// Messages on the channel that are not envelopes (foreign publishers, truncated,
    /// unknown version, oversized, a topic this engine refuses): counted and skipped.
    pub bad_envelopes: u64,
    /// Envelopes whose sequence number was not above the last one seen on their
    /// (origin, topic) stream: skipped, so nothing is delivered twice (one publisher
    /// connection per origin never produces them; a foreign replay would, and so does a
    /// NATS frame that matches two of the node's subscriptions, `a.b` and `a.*`).
    pub duplicates: u64,
    /// Connections re-established after one was lost, over both connections (Redis)
    /// or of the one connection (NATS).
    pub reconnects: u64,
    /// NATS: times the client found a subscription's queue full and dropped messages
    /// (the io thread fell behind its socket); the frames lost are counted in `gaps`.
    /// A server that cuts a slow reader off shows as a lost connection instead
    /// (`reconnects`, and the frames it did not send as `gaps`). Always 0 on Redis.
    pub slow_consumers: u64,
    /// Broadcast frames in the outgoing queue now, waiting for the thread that drains
    /// it (Redis: the publisher thread; NATS: the io thread).
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
    /// Not sent by the publisher thread (broker down or refused); queue-full drops are
    /// counted by the tap.
    pub(crate) dropped: AtomicU64,
    /// In a batch whose publish failed after writing.
    pub(crate) unknown: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) bad_envelopes: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter. Relaxed throughout: each is a statistic read on its own.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The view, with the tap's queue-full drops (all, and those it could not record)
    /// since the bridge attached, and the frames in its queue now.
    pub(crate) fn view(&self, queue_dropped: u64, untracked: u64, queued: usize) -> BridgeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            connected: self.publisher_up.load(Ordering::Relaxed)
                && self.subscriber_up.load(Ordering::Relaxed),
            channels: self.channels.load(Ordering::Relaxed),
            sent: get(&self.sent),
            received: get(&self.received),
            dropped: get(&self.dropped) + queue_dropped,
            unknown: get(&self.unknown),
            untracked,
            gaps: get(&self.gaps),
            bad_envelopes: get(&self.bad_envelopes),
            duplicates: get(&self.duplicates),
            reconnects: get(&self.reconnects),
            slow_consumers: get(&self.slow_consumers),
            queued,
        }
    }
}
