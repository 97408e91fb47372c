//! Engine-wide statistics.

mod per_thread;

use crate::sync::{lock, Arc, AtomicU64, Mutex, Ordering};
use per_thread::PerThread;

/// A point-in-time view of an engine, from [`PubSub::stats`](crate::PubSub::stats) or
/// [`Broadcaster::stats`](crate::Broadcaster::stats).
///
/// The sizes (`clients`, `topics`, `subscriptions`) are exact as of the latest published
/// snapshot; the counters are totals since the engine started, each updated once per
/// broadcast (never per delivery), so they may lag a broadcast still in flight.
/// `conflated` is the exception: each conflating channel counts its own replacements,
/// and `stats()` sums them.
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
    /// Frames lost to overflow policies, over all sinks (the sum of
    /// [`dropped_by_policy`](Self::dropped_by_policy)).
    pub dropped: u64,
    /// [`dropped`](Self::dropped), by the policy that dropped each frame.
    pub dropped_by_policy: DroppedByPolicy,
    /// Items a [conflating channel](crate::ConflatingChannel) replaced with a newer one
    /// for the same key, over all such channels. Not part of `dropped`: for every
    /// conflating channel, received + conflated + dropped = published.
    pub conflated: u64,
    /// Subscribers removed by the disconnect policy.
    pub disconnects: u64,
    /// Send callbacks that panicked (each one removed its client).
    pub panics: u64,
    /// Subscriptions the `can_subscribe` hook refused.
    pub denied: u64,
    /// Tracked presence members, as (client, topic) pairs, on this engine (a `Broadcaster`
    /// has none).
    pub members: usize,
}

/// Frames dropped, by the policy that dropped them: each is counted once, where the
/// frame was lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedByPolicy {
    /// [`OverflowPolicy::DropNewest`](crate::OverflowPolicy::DropNewest): the new frame.
    pub drop_newest: u64,
    /// [`OverflowPolicy::DropOldest`](crate::OverflowPolicy::DropOldest): the oldest
    /// queued frame (or, when other publishers kept refilling the queue, the new one).
    pub drop_oldest: u64,
    /// [`OverflowPolicy::Disconnect`](crate::OverflowPolicy::Disconnect): the frame that
    /// found the queue full, before the subscriber was removed.
    pub disconnect: u64,
    /// [`OverflowPolicy::Block`](crate::OverflowPolicy::Block): a frame still refused
    /// when the bound ran out.
    pub block: u64,
    /// A [conflating channel](crate::ConflatingChannel) with `capacity` other keys
    /// pending (its drop-newest fallback). Replacements are not drops: see
    /// [`Stats::conflated`].
    pub conflating: u64,
}

/// Which policy dropped a frame: the index of its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropCause {
    DropNewest = 0,
    DropOldest = 1,
    Disconnect = 2,
    Block = 3,
    Conflating = 4,
}

/// How many [`DropCause`]s there are.
const DROP_CAUSES: usize = 5;

impl Tally {
    /// Counts `frames` dropped by `cause`'s policy.
    pub(crate) fn drop(&mut self, cause: DropCause, frames: u64) {
        self.dropped += frames;
        self.dropped_by[cause as usize] += frames;
    }
}

/// What one broadcast did, added to the engine's counters in one go.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    /// Subscribers walked past that did not receive the frame (the sender, closed sinks,
    /// frames a policy dropped, a panicking callback). Deliveries are the rest.
    pub(crate) missed: usize,
    pub(crate) dropped: u64,
    /// `dropped` by [`DropCause`]; read only when `dropped` is not zero.
    pub(crate) dropped_by: [u64; DROP_CAUSES],
    pub(crate) disconnects: u64,
    pub(crate) panics: u64,
}

/// The running totals behind [`Stats`].
#[derive(Default)]
pub(crate) struct EngineCounters {
    /// `broadcasts` and `deliveries`, added to by every broadcast: per thread, so that
    /// adding takes no atomic read-modify-write (see [`per_thread`]).
    every_broadcast: PerThread,
    /// By [`DropCause`].
    dropped: [AtomicU64; DROP_CAUSES],
    disconnects: AtomicU64,
    panics: AtomicU64,
    denied: AtomicU64,
}

impl EngineCounters {
    /// Adds one broadcast's tally. Relaxed throughout: these are statistics and order
    /// nothing. The rare counters are only touched when non-zero.
    #[inline]
    pub(crate) fn record(&self, delivered: usize, tally: &Tally) {
        self.every_broadcast.add(delivered as u64);
        if tally.dropped != 0 {
            self.record_drops(&tally.dropped_by);
        }
        if tally.disconnects != 0 {
            self.disconnects
                .fetch_add(tally.disconnects, Ordering::Relaxed);
        }
        if tally.panics != 0 {
            self.panics.fetch_add(tally.panics, Ordering::Relaxed);
        }
    }

    /// Out of line: most broadcasts drop nothing.
    #[cold]
    #[inline(never)]
    fn record_drops(&self, dropped: &[u64; DROP_CAUSES]) {
        for (counter, &frames) in self.dropped.iter().zip(dropped) {
            if frames != 0 {
                counter.fetch_add(frames, Ordering::Relaxed);
            }
        }
    }

    /// Counts one subscription the authorization hook refused.
    pub(crate) fn record_denial(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fill(&self, stats: &mut Stats) {
        (stats.broadcasts, stats.deliveries) = self.every_broadcast.totals();
        let dropped = |cause: DropCause| self.dropped[cause as usize].load(Ordering::Relaxed);
        stats.dropped_by_policy = DroppedByPolicy {
            drop_newest: dropped(DropCause::DropNewest),
            drop_oldest: dropped(DropCause::DropOldest),
            disconnect: dropped(DropCause::Disconnect),
            block: dropped(DropCause::Block),
            conflating: dropped(DropCause::Conflating),
        };
        let by = &stats.dropped_by_policy;
        stats.dropped = by.drop_newest + by.drop_oldest + by.disconnect + by.block + by.conflating;
        stats.disconnects = self.disconnects.load(Ordering::Relaxed);
        stats.panics = self.panics.load(Ordering::Relaxed);
        stats.denied = self.denied.load(Ordering::Relaxed);
    }
}

/// How many items a conflating channel replaced, shared by its sink, its consumer and
/// the engine-wide [`ConflationTotals`].
pub(crate) struct ConflationCount(AtomicU64);

impl ConflationCount {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Items replaced by a newer one for the same key so far.
    pub(crate) fn get(&self) -> u64 {
        // Relaxed: a statistic; the table lock orders everything that matters.
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The conflation counts of every conflating channel one engine made, summed on demand:
/// a replacement costs its channel one relaxed increment and touches nothing shared by
/// other channels.
///
/// A channel's count is kept live here while anything else holds it (its sink, its
/// consumer, a pending token); once only this registry does, the count is final and is
/// folded into `retired`. Folding happens on every [`total`](Self::total) and whenever
/// the list has doubled since the last fold, so the list stays within twice the live
/// channels.
pub(crate) struct ConflationTotals {
    inner: Mutex<Registry>,
}

struct Registry {
    /// Replacements by channels that are gone.
    retired: u64,
    /// Counts of channels that may still replace.
    live: Vec<Arc<ConflationCount>>,
    /// `live.len()` after the last fold.
    folded_at: usize,
}

impl Registry {
    fn fold(&mut self) {
        let mut retired = 0;
        self.live.retain(|count| {
            let alive = Arc::strong_count(count) > 1;
            if !alive {
                retired += count.get();
            }
            alive
        });
        self.retired += retired;
        self.folded_at = self.live.len();
    }
}

impl ConflationTotals {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Registry {
                retired: 0,
                live: Vec::new(),
                folded_at: 0,
            }),
        }
    }

    /// Starts summing a new channel's count.
    pub(crate) fn track(&self, count: Arc<ConflationCount>) {
        let mut registry = lock(&self.inner);
        if registry.live.len() >= 2 * registry.folded_at.max(8) {
            registry.fold();
        }
        registry.live.push(count);
    }

    /// Replacements so far over every channel tracked.
    pub(crate) fn total(&self) -> u64 {
        let mut registry = lock(&self.inner);
        registry.fold();
        registry.retired + registry.live.iter().map(|count| count.get()).sum::<u64>()
    }
}
