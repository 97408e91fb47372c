//! Operating `fanout`: its numbers as metrics (feature `metrics`) and its state changes
//! as events (feature `tracing`), through the ecosystem's facades.
//!
//! Both features are off by default and add only the facade crate (`metrics`,
//! `tracing`); the application picks the exporter and the subscriber. A library that
//! emits nothing costs nothing, and neither feature touches the broadcast path: the
//! metrics are read from the counters [`Stats`](crate::Stats) already keeps, when
//! someone asks for them, and no event is emitted by a broadcast.
//!
//! # Metrics
//!
//! A `MetricsReporter` (feature `metrics`) reads an engine's [`Stats`](crate::Stats)
//! (and a bridge's `BridgeStats`, with feature `redis`) and records them as absolute
//! values — counters with `Counter::absolute`, gauges with `Gauge::set` — into whatever
//! recorder is installed. Call it where the numbers are wanted: in the handler of the
//! exporter's scrape (the chat server does, see `examples/chat_server/src/operating.rs`),
//! or from a timer of your own. Between two calls nothing is recorded; the engine's own
//! counters are exact and are what a call reads.
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! use fanout::{observe::MetricsReporter, PubSub};
//!
//! let chat = PubSub::<str>::new()?;
//! let reporter = MetricsReporter::new().label("engine", "chat");
//! reporter.describe(); // HELP lines, once the recorder is installed
//! // In the scrape handler, before rendering:
//! reporter.record(&chat.stats());
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Names and labels follow the Prometheus conventions (`snake_case`, a `fanout_`
//! prefix, `_total` on counters). Every series also carries the labels given to
//! `MetricsReporter::label` (an engine's name, a shard, a host): one reporter per
//! engine, each with its own labels.
//!
//! | metric | type | labels | from |
//! |---|---|---|---|
//! | `fanout_broadcasts_total` | counter | | [`Stats::broadcasts`](crate::Stats::broadcasts): broadcasts that found a subscriber |
//! | `fanout_deliveries_total` | counter | | [`Stats::deliveries`](crate::Stats::deliveries): frames handed to sinks |
//! | `fanout_dropped_total` | counter | `policy`: `drop_newest`, `drop_oldest`, `disconnect`, `block`, `conflating` | [`Stats::dropped_by_policy`](crate::Stats::dropped_by_policy): frames slow consumers lost |
//! | `fanout_conflated_total` | counter | | [`Stats::conflated`](crate::Stats::conflated): items a conflating channel replaced |
//! | `fanout_disconnects_total` | counter | `reason`: `overflow`, `panic` | [`Stats::disconnects`](crate::Stats::disconnects) (the disconnect policy), [`Stats::panics`](crate::Stats::panics) (a panicking sink is removed) |
//! | `fanout_panics_total` | counter | | [`Stats::panics`](crate::Stats::panics): callbacks (or clones, or conflation keys) that panicked |
//! | `fanout_denied_total` | counter | | [`Stats::denied`](crate::Stats::denied): subscriptions `can_subscribe` refused |
//! | `fanout_clients` | gauge | | [`Stats::clients`](crate::Stats::clients) |
//! | `fanout_topics` | gauge | | [`Stats::topics`](crate::Stats::topics): topics with a subscriber |
//! | `fanout_subscriptions` | gauge | `kind`: `topic`, `pattern` | [`Stats::subscriptions`](crate::Stats::subscriptions), [`Stats::patterns`](crate::Stats::patterns) |
//! | `fanout_presence_members` | gauge | | [`Stats::members`](crate::Stats::members): tracked (client, topic) pairs |
//! | `fanout_bridge_connected` | gauge | | `BridgeStats::connected`: 1 when both connections are up, else 0 |
//! | `fanout_bridge_channels` | gauge | | `BridgeStats::channels`: broker channels subscribed |
//! | `fanout_bridge_queue_depth` | gauge | | `BridgeStats::queued`: frames waiting for the publisher thread |
//! | `fanout_bridge_sent_total` | counter | | `BridgeStats::sent` |
//! | `fanout_bridge_received_total` | counter | | `BridgeStats::received` |
//! | `fanout_bridge_dropped_total` | counter | | `BridgeStats::dropped`: frames not sent (queue full, broker down) |
//! | `fanout_bridge_gaps_total` | counter | | `BridgeStats::gaps`: frames from other engines this one missed |
//! | `fanout_bridge_bad_input_total` | counter | | `BridgeStats::bad_envelopes`: messages that were not envelopes for their channel |
//! | `fanout_bridge_duplicates_total` | counter | | `BridgeStats::duplicates` |
//! | `fanout_bridge_reconnects_total` | counter | | `BridgeStats::reconnects` |
//!
//! `fanout_disconnects_total{reason="panic"}` and `fanout_panics_total` count the same
//! events (each panic removes its subscriber); the first is there so that one query
//! sums every subscriber the engine cut off. The three questions an operator asks:
//!
//! ```text
//! # Is the bridge connected?
//! fanout_bridge_connected == 0
//! # How many frames did slow consumers lose in the last minute?
//! sum by (policy) (increase(fanout_dropped_total[1m]))
//! # Which node went down, and when? Prometheus's own `up` per scraped node; and on
//! # every other node, the `engine taken as down` event (target fanout::presence).
//! up{job="chat"} == 0
//! ```
//!
//! A Prometheus scrape of the chat server's `GET /metrics`:
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: chat
//!     scrape_interval: 15s
//!     metrics_path: /metrics
//!     static_configs:
//!       - targets: ["127.0.0.1:8080"]
//! ```
//!
//! # Events
//!
//! With feature `tracing`, `fanout` emits an event for each state change below, never
//! one per message. Targets are `fanout::engine`, `fanout::bridge` and
//! `fanout::presence`, so a filter such as `fanout::bridge=info` picks them.
//!
//! | target | level | message | fields | when |
//! |---|---|---|---|---|
//! | `fanout::bridge` | info | `bridge connected` | `backend`, `connection` | a bridge connection came up for the first time |
//! | `fanout::bridge` | warn | `bridge connection lost` | `backend`, `connection`, `error` | a connection that was up failed; frames are dropped and counted until it is back |
//! | `fanout::bridge` | info | `bridge reconnected` | `backend`, `connection` | it is back |
//! | `fanout::presence` | warn | `engine taken as down: its members left` | `engine`, `members` | another engine went silent for the down period |
//! | `fanout::presence` | info | `engine back` | `engine` | an engine taken as down is heard from again |
//! | `fanout::engine` | warn | `subscriber disconnected: its queue was full` | `client`, `reason="overflow"` | the disconnect policy removed a subscriber |
//! | `fanout::engine` | warn | `subscriber removed: its callback panicked` | `client`, `reason="panic"` | a panicking callback (clone, conflation key) removed its client |
//! | `fanout::engine` | info | `engine shut down` | `broadcasts`, `deliveries`, `dropped` | `shutdown()` or the last handle dropped |
//!
//! `backend` is `redis` (or `nats`); `connection` is which of the bridge's connections
//! (`publisher`, `subscriber`). A subscriber cut off during a broadcast is reported by
//! the engine's writer once it has removed the client, after the writer role is
//! released: the broadcast that found it full or panicking emits nothing itself, and
//! no `tracing` subscriber (user code, which may lock or allocate) runs under the role.
//!
//! # Cost
//!
//! Nothing in either feature runs per delivery, takes a lock on the broadcast path or
//! allocates on it. Measured with callgrind (`scripts/callgrind_floor.sh`, instructions
//! per callback delivery between 256 and 4,096 subscribers): 20.0 with both features
//! and no recorder or subscriber installed, as without them (PERFORMANCE.md). The loom
//! models run with both features on (`FEATURES=metrics,tracing loom-tests/run.sh`).
//! `MetricsReporter::record` costs one [`stats`](crate::PubSub::stats) call — which
//! sums the per-thread broadcast counters and takes the presence table's lock for a
//! moment — and a dozen recorder look-ups, per call.

#[cfg(feature = "metrics")]
mod reporter;

#[cfg(feature = "metrics")]
pub use reporter::MetricsReporter;
