//! [`MetricsReporter`]: an engine's and a bridge's statistics, recorded through the
//! `metrics` facade as absolute values when someone asks (see the [module docs](super)
//! for the names).
//!
//! Why read, not count: the engine already keeps every number, with no shared atomic
//! per delivery (`broadcasts` and `deliveries` per thread, the rare ones per
//! broadcast). Recording each delivery through the facade would put a recorder call —
//! a hash look-up, or at best an atomic add on a shared counter — on the hottest path.
//! Reading `stats()` when a scrape comes costs the scrape, not the broadcasts.

use metrics::{counter, describe_counter, describe_gauge, gauge, Label, SharedString};

#[cfg(feature = "redis")]
use crate::bridge::BridgeStats;
use crate::vocab::stats::Stats;

/// Records [`Stats`] (and, with feature `redis`, `BridgeStats`) into the installed
/// `metrics` recorder, as absolute values, with the labels it was given.
///
/// It holds no engine: hand it the stats to record. Cheap to clone; one per engine.
#[derive(Debug, Clone, Default)]
pub struct MetricsReporter {
    /// Added to every series (set by the user: an engine's name, a shard).
    labels: Vec<Label>,
}

impl MetricsReporter {
    /// A reporter that adds no labels of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key="value"` to every series this reporter records (e.g. `engine="chat"`,
    /// to tell two engines in one process apart).
    pub fn label(mut self, key: impl Into<SharedString>, value: impl Into<SharedString>) -> Self {
        self.labels.push(Label::new(key, value));
        self
    }

    /// Registers every metric's help text and unit with the installed recorder (the
    /// `# HELP` lines of a Prometheus scrape). Call it once the recorder is installed;
    /// calling it again is harmless.
    pub fn describe(&self) {
        for (name, help) in COUNTERS {
            describe_counter!(*name, *help);
        }
        for (name, help) in GAUGES {
            describe_gauge!(*name, *help);
        }
        #[cfg(feature = "redis")]
        {
            for (name, help) in BRIDGE_COUNTERS {
                describe_counter!(*name, *help);
            }
            for (name, help) in BRIDGE_GAUGES {
                describe_gauge!(*name, *help);
            }
        }
    }

    /// Records an engine's statistics (from `PubSub::stats` or `Broadcaster::stats`).
    pub fn record(&self, stats: &Stats) {
        let by = &stats.dropped_by_policy;
        self.counter("fanout_broadcasts_total", stats.broadcasts);
        self.counter("fanout_deliveries_total", stats.deliveries);
        for (policy, frames) in [
            ("drop_newest", by.drop_newest),
            ("drop_oldest", by.drop_oldest),
            ("disconnect", by.disconnect),
            ("block", by.block),
            ("conflating", by.conflating),
        ] {
            counter!("fanout_dropped_total", self.with("policy", policy)).absolute(frames);
        }
        self.counter("fanout_conflated_total", stats.conflated);
        for (reason, count) in [("overflow", stats.disconnects), ("panic", stats.panics)] {
            counter!("fanout_disconnects_total", self.with("reason", reason)).absolute(count);
        }
        self.counter("fanout_panics_total", stats.panics);
        self.counter("fanout_denied_total", stats.denied);
        self.gauge("fanout_clients", stats.clients);
        self.gauge("fanout_topics", stats.topics);
        for (kind, count) in [("topic", stats.subscriptions), ("pattern", stats.patterns)] {
            gauge!("fanout_subscriptions", self.with("kind", kind)).set(count as f64);
        }
        self.gauge("fanout_presence_members", stats.members);
    }

    /// Records a bridge's statistics (from `Bridge::stats`).
    #[cfg(feature = "redis")]
    pub fn record_bridge(&self, stats: &BridgeStats) {
        self.gauge("fanout_bridge_connected", usize::from(stats.connected));
        self.gauge("fanout_bridge_channels", stats.channels);
        self.gauge("fanout_bridge_queue_depth", stats.queued);
        self.counter("fanout_bridge_sent_total", stats.sent);
        self.counter("fanout_bridge_received_total", stats.received);
        self.counter("fanout_bridge_dropped_total", stats.dropped);
        self.counter("fanout_bridge_gaps_total", stats.gaps);
        self.counter("fanout_bridge_bad_input_total", stats.bad_envelopes);
        self.counter("fanout_bridge_duplicates_total", stats.duplicates);
        self.counter("fanout_bridge_reconnects_total", stats.reconnects);
    }

    fn counter(&self, name: &'static str, value: u64) {
        counter!(name, self.labels.iter()).absolute(value);
    }

    fn gauge(&self, name: &'static str, value: usize) {
        gauge!(name, self.labels.iter()).set(value as f64);
    }

    /// This reporter's labels and one more.
    fn with(&self, key: &'static str, value: &'static str) -> Vec<Label> {
        let mut labels = self.labels.clone();
        labels.push(Label::new(key, value));
        labels
    }
}

/// The engine's counters: name, help.
const COUNTERS: &[(&str, &str)] = &[
    (
        "fanout_broadcasts_total",
        "Broadcasts that found at least one subscriber.",
    ),
    (
        "fanout_deliveries_total",
        "Frames handed to sinks (a callback called, or a frame queued).",
    ),
    (
        "fanout_dropped_total",
        "Frames lost to overflow policies, by policy.",
    ),
    (
        "fanout_conflated_total",
        "Items conflating channels replaced with a newer one for the same key.",
    ),
    (
        "fanout_disconnects_total",
        "Subscribers the engine removed, by reason (overflow under the disconnect policy, panic).",
    ),
    (
        "fanout_panics_total",
        "Send callbacks (or clones, or conflation keys) that panicked.",
    ),
    (
        "fanout_denied_total",
        "Subscriptions the can_subscribe hook refused.",
    ),
];

/// The engine's gauges: name, help.
const GAUGES: &[(&str, &str)] = &[
    ("fanout_clients", "Registered clients (or open channels)."),
    ("fanout_topics", "Topics with at least one subscriber."),
    (
        "fanout_subscriptions",
        "Subscriptions, by kind (topic by name, or pattern).",
    ),
    (
        "fanout_presence_members",
        "Tracked presence members, as (client, topic) pairs.",
    ),
];

/// The bridge's counters: name, help.
#[cfg(feature = "redis")]
const BRIDGE_COUNTERS: &[(&str, &str)] = &[
    (
        "fanout_bridge_sent_total",
        "Envelopes published to the broker.",
    ),
    (
        "fanout_bridge_received_total",
        "Envelopes from other engines accepted.",
    ),
    (
        "fanout_bridge_dropped_total",
        "Broadcast frames not sent (queue full, broker down, publish failed).",
    ),
    (
        "fanout_bridge_gaps_total",
        "Frames from other engines this one missed (sequence jumps).",
    ),
    (
        "fanout_bridge_bad_input_total",
        "Messages that were not envelopes for their channel: counted and skipped.",
    ),
    (
        "fanout_bridge_duplicates_total",
        "Envelopes seen before on their stream: skipped.",
    ),
    (
        "fanout_bridge_reconnects_total",
        "Broker connections re-established after one was lost.",
    ),
];

/// The bridge's gauges: name, help.
#[cfg(feature = "redis")]
const BRIDGE_GAUGES: &[(&str, &str)] = &[
    (
        "fanout_bridge_connected",
        "1 when every bridge connection is up, else 0.",
    ),
    (
        "fanout_bridge_channels",
        "Broker channels the bridge is subscribed to.",
    ),
    (
        "fanout_bridge_queue_depth",
        "Broadcast frames waiting for the bridge's publisher thread.",
    ),
];
