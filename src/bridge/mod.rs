//! Engines on several hosts sharing topics through Redis pub/sub (feature `redis`).
//!
//! Attach a [`Bridge`] to a [`PubSub`] with a Redis URL and a namespace, on every host:
//! each broadcast on any bridged engine then reaches the topic's subscribers on every
//! engine bridged to the same namespace. Modelled on Phoenix.PubSub's Redis adapter —
//! every node publishing and subscribing on Redis channels, a node id in each message
//! so a node drops its own — and past it where that adapter is weak: a format any
//! language decodes, sequence numbers that count what was missed, a bounded queue so
//! Redis never stalls a broadcast, reconnection, and (optionally) per-topic channels
//! so a node receives only the topics it serves.
//!
//! ```no_run
//! use fanout::{bridge::Bridge, transport::RawPayload, PubSub};
//!
//! let chat = PubSub::<str>::new()?;
//! let bridge = Bridge::attach(&chat, "redis://127.0.0.1:6379/", "chat")?;
//! chat.broadcast("room/rust", "hello, other hosts", &RawPayload)?;
//! println!("{:?}", bridge.stats());
//! bridge.shutdown(); // or drop it
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What a broadcast does on a bridged engine
//!
//! It serialises the message once into a Push frame, delivers it to local subscribers
//! exactly as on a plain engine (`broadcast_from` skips its sender here), and hands the
//! same frame — a reference count, not a copy — to a bounded queue with `try_send`. It
//! never waits for Redis: a full queue drops the frame and counts it in
//! [`BridgeStats::dropped`]. Because other engines may have subscribers, the frame is
//! built **even when no local client is subscribed**: on a bridged engine the serialiser
//! runs exactly once per broadcast instead of "at most once". An unbridged engine pays
//! one flag load for all this (none without the feature).
//!
//! One publisher thread drains the queue over one connection, sending what has queued
//! up as one pipeline of `PUBLISH`es: frames from one publishing thread keep their order
//! on every node. Each goes out in an [envelope](crate::transport::envelope): version,
//! mode, this node's random 128-bit id, a sequence number per (node, topic), the Push
//! frame.
//!
//! One subscriber thread per bridge reads with a read timeout, PINGs a quiet
//! connection, and on any error reconnects with capped exponential backoff and
//! subscribes again. It drops its own node's envelopes (no echo), counts a jump in an
//! (origin, topic) stream's sequence as [`gaps`](BridgeStats::gaps) (missed frames are
//! never replayed), skips a number it has seen as a
//! [`duplicate`](BridgeStats::duplicates), skips anything that is not an envelope for
//! the channel it came on as [`bad_envelopes`](BridgeStats::bad_envelopes), and
//! delivers the Push frame to local subscribers without a serialiser (one copy of it
//! out of the reply buffer the blocking `redis` API lends). Client ids are per engine,
//! so a remote `broadcast_from` excludes nobody here.
//!
//! # Channel layout
//!
//! [`ChannelLayout::Namespace`] (the default) is Phoenix's: one channel, named as the
//! namespace, that every node publishes and subscribes to. [`ChannelLayout::PerTopic`]
//! uses one channel per topic, `NAMESPACE:t:TOPIC`, that a node subscribes to when the
//! engine's first local subscriber of the topic joins and unsubscribes from when the
//! last leaves (the engine reports both, in order, to the bridge); the publisher thread
//! wakes the subscriber thread with an empty message on the node's own
//! `NAMESPACE:w:NODE` channel so the SUBSCRIBE goes out in about a round trip (2 ms
//! measured, polling included). Never `PSUBSCRIBE`: Redis matches every pattern against
//! every publish. Measured on one `redis-server` 7.0 here (PERFORMANCE.md, "Across
//! hosts"), raw clients, one publisher pipelining like the bridge:
//!
//! | nodes, each serving 1/n of 96 topics | one channel | per-topic channels |
//! |---|---|---|
//! | 2 | 528k frames/s | 808k frames/s (1.53×) |
//! | 4 | 281k frames/s | 756k frames/s (2.70×) |
//! | 8 | 201k frames/s | 664k frames/s (3.30×) |
//!
//! (1.5–2.3×, 0.9–3.1× and 2.7–4.5× over four runs on a shared machine), and per-topic
//! channels cost a SUBSCRIBE + UNSUBSCRIBE round trip of 15–28 µs per topic opened and
//! closed on a node, 24–42 B of Redis memory per (channel, node), a
//! resubscription of every served topic after each reconnect, and a window after a
//! topic's first local subscriber joins in which remote frames are not yet received.
//!
//! So: per-topic channels win in proportion to how disjoint the nodes' topic sets are
//! (each node receives only its share; Redis writes each frame once instead of once
//! per node). One channel wins when every node serves most topics anyway (a few chat
//! servers sharing rooms: the layouts cost the same per frame), when topics open and
//! close faster than a few thousand times a second per node, when a node must receive a
//! topic's frames from the instant a local client subscribes, and whenever clients use
//! **pattern subscriptions**: a node is subscribed to a topic's channel only while it
//! has an exact subscriber, so a client that matches a topic through a pattern alone
//! sees remote frames only under the namespace layout. That last point, and being
//! correct without tuning, make the namespace layout the default.
//!
//! Sequence numbers are per (origin, topic) under both layouts, so a node that skips
//! topics does not take them for losses; both tables (the publisher's numbers, a
//! receiver's last-seen) are bounded, see `sequences.rs`.
//!
//! # Failures
//!
//! - **Redis down at attach**: `attach` succeeds (only a bad URL, a bad namespace, a
//!   second bridge or a closed engine fail it); both threads retry in the background;
//!   broadcasts deliver locally and count their frames dropped until it is up.
//! - **Redis restarted**: both connections notice (a failed publish; a failed read or
//!   PING) and reconnect; frames in between are dropped on the origin and counted as
//!   gaps on receivers; nothing is retried, so nothing arrives twice.
//! - **Bad input**: messages longer than [`BridgeBuilder::max_message_len`], not
//!   envelopes, for another topic than their channel's, or with a topic this engine
//!   refuses are counted and skipped; the tables of sequence numbers are bounded.
//! - **Detach** ([`Bridge::shutdown`] or drop): later broadcasts are not forwarded;
//!   what is queued is sent if Redis is up; both threads are joined. The subscriber
//!   thread notices within one read timeout, or one connect timeout
//!   ([`BridgeBuilder::io_timeout`]) if it is connecting to an unreachable host.

mod backoff;
mod publisher;
mod sequences;
mod stats;
mod subscriber;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use stats::BridgeStats;

use crate::face::pubsub::PubSub;
use crate::face::tap::Tap;
use crate::transport::envelope::NodeId;
use publisher::Publisher;
use stats::Counters;
use subscriber::Subscriber;

/// Longest namespace accepted, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 256;

/// Which Redis channels a bridge publishes and subscribes to. See the module docs'
/// "Channel layout" for the measurements behind the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ChannelLayout {
    /// One channel, named as the namespace, for every topic (Phoenix's layout): every
    /// node receives every frame. The default: no SUBSCRIBE traffic when topics open
    /// and close, a node receives a topic's frames from the moment a local client
    /// subscribes, and pattern subscriptions see remote frames.
    #[default]
    Namespace,
    /// One channel per topic, `NAMESPACE:t:TOPIC`, that a node subscribes to while the
    /// topic has local subscribers: a node receives only the topics it serves. Costs a
    /// SUBSCRIBE round trip per topic opened or closed on a node (a frame published in
    /// between is not received there), and only exact subscriptions count: a node whose
    /// clients only match a topic with a pattern is not subscribed to its channel.
    PerTopic,
}

/// A bridge between one [`PubSub`] engine and a Redis namespace. Detaches (and joins
/// its two threads) on [`shutdown`](Self::shutdown) or drop.
#[must_use = "dropping a Bridge detaches it"]
pub struct Bridge {
    node: NodeId,
    namespace: String,
    layout: ChannelLayout,
    /// Per-topic layout: stops the engine's topic events.
    unwatch: Option<Box<dyn Fn() + Send + Sync>>,
    tap: Arc<Tap>,
    /// The tap's drop count when this bridge attached.
    dropped_before: u64,
    counters: Arc<Counters>,
    /// Dropped to stop both threads (they wake on the disconnect).
    stop: Option<crossbeam_channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Bridge {
    /// Attaches a bridge with default settings: `url` like `redis://host:6379/`,
    /// engines with the same `namespace` share topics.
    ///
    /// Errors: see [`BridgeBuilder::attach`].
    pub fn attach<M: ?Sized + 'static>(
        pubsub: &PubSub<M>,
        url: &str,
        namespace: &str,
    ) -> Result<Self, BridgeError> {
        Self::builder(url, namespace).attach(pubsub)
    }

    /// A builder for a bridge with custom settings.
    pub fn builder(url: &str, namespace: &str) -> BridgeBuilder {
        BridgeBuilder {
            url: url.to_owned(),
            namespace: namespace.to_owned(),
            queue_capacity: 8192,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            read_timeout: Duration::from_millis(100),
            ping_interval: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            max_message_len: 16 << 20,
            layout: ChannelLayout::Namespace,
        }
    }

    /// This engine's node id, carried in every envelope it publishes.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The channel layout.
    pub fn layout(&self) -> ChannelLayout {
        self.layout
    }

    /// Counters and connection state.
    pub fn stats(&self) -> BridgeStats {
        self.counters
            .view(self.tap.dropped() - self.dropped_before, self.tap.queued())
    }

    /// Detaches from the engine and joins both threads. Broadcasts that start afterwards
    /// are not forwarded; frames already queued are sent if Redis is up.
    pub fn shutdown(mut self) {
        self.detach();
    }

    fn detach(&mut self) {
        if self.stop.is_none() {
            return;
        }
        self.tap.stop();
        if let Some(unwatch) = self.unwatch.take() {
            unwatch();
        }
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.tap.release();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.detach();
    }
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("node", &self.node)
            .field("namespace", &self.namespace)
            .field("layout", &self.layout)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Settings for a [`Bridge`]: [`Bridge::builder`], then [`attach`](Self::attach).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `attach` is called"]
pub struct BridgeBuilder {
    url: String,
    namespace: String,
    queue_capacity: usize,
    backoff_min: Duration,
    backoff_max: Duration,
    read_timeout: Duration,
    ping_interval: Duration,
    io_timeout: Duration,
    max_message_len: usize,
    layout: ChannelLayout,
}

impl BridgeBuilder {
    /// Which Redis channels to use (default [`ChannelLayout::Namespace`]). Every
    /// engine bridged to one namespace must use the same layout.
    pub fn layout(mut self, layout: ChannelLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Frames the outgoing queue holds while the publisher is busy (default 8192);
    /// broadcasts beyond it are dropped and counted. The queue is made by an engine's
    /// first bridge and kept: a later bridge on the same engine keeps its capacity.
    pub fn queue_capacity(mut self, frames: usize) -> Self {
        self.queue_capacity = frames;
        self
    }

    /// First and largest delay between reconnection attempts (default 100 ms and 5 s);
    /// the delay doubles after each failed attempt.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// How long the subscriber thread blocks in one read (default 100 ms): the bound on
    /// how long a detach waits for it.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Silence on the subscriber connection after which it sends a PING (default 1 s).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Connect timeout, and the publisher's read and write timeout (default 1 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Longest message accepted from Redis (default 16 MiB); longer ones are counted as
    /// bad envelopes and skipped.
    pub fn max_message_len(mut self, bytes: usize) -> Self {
        self.max_message_len = bytes;
        self
    }

    /// Attaches the bridge to `pubsub` and starts its two threads. Succeeds whether or
    /// not Redis is reachable now (the threads retry).
    ///
    /// Errors: [`BridgeError::InvalidUrl`], [`BridgeError::InvalidConfig`] (an empty or
    /// over-long namespace, a zero capacity, timeout or backoff),
    /// [`BridgeError::AlreadyBridged`], [`BridgeError::Closed`], [`BridgeError::Spawn`].
    pub fn attach<M: ?Sized + 'static>(self, pubsub: &PubSub<M>) -> Result<Bridge, BridgeError> {
        let node = random_node_id();
        let settings = Arc::new(self.settings(node)?);
        if pubsub.is_closed() {
            return Err(BridgeError::Closed);
        }
        let tap = Arc::clone(pubsub.tap());
        let dropped_before = tap.dropped();
        let Some(queue) = tap.attach(self.queue_capacity) else {
            return Err(BridgeError::AlreadyBridged);
        };
        let counters = Arc::new(Counters::default());
        let (stop_tx, stop) = crossbeam_channel::bounded(0);
        let mut bridge = Bridge {
            node,
            namespace: self.namespace,
            layout: self.layout,
            unwatch: None,
            tap,
            dropped_before,
            counters: Arc::clone(&counters),
            stop: Some(stop_tx),
            threads: Vec::with_capacity(2),
        };
        // Per-topic layout: the engine's topic events go to the publisher thread (which
        // can wake the subscriber thread) and on to the subscriber thread.
        let (events, topics) = match self.layout {
            ChannelLayout::Namespace => (None, None),
            ChannelLayout::PerTopic => {
                let (events_tx, events) = crossbeam_channel::unbounded();
                let now = pubsub
                    .watch_topics(events_tx)
                    .map_err(|_| BridgeError::Closed)?;
                let weak = pubsub.downgrade();
                bridge.unwatch = Some(Box::new(move || {
                    if let Some(pubsub) = weak.upgrade() {
                        pubsub.unwatch_topics();
                    }
                }));
                let (to_subscriber, passed_on) = crossbeam_channel::unbounded();
                (Some((events, to_subscriber)), Some((now, passed_on)))
            }
        };
        let publisher = Publisher {
            settings: Arc::clone(&settings),
            node,
            queue,
            stop: stop.clone(),
            counters: Arc::clone(&counters),
            events,
        };
        let subscriber = Subscriber {
            settings,
            node,
            engine: pubsub.downgrade(),
            stop,
            counters,
            topics,
        };
        // On a spawn failure `bridge` drops: detached, the spawned thread joined.
        let spawned = std::thread::Builder::new()
            .name("fanout-bridge-pub".to_owned())
            .spawn(move || publisher.run())
            .map_err(BridgeError::Spawn)?;
        bridge.threads.push(spawned);
        let spawned = std::thread::Builder::new()
            .name("fanout-bridge-sub".to_owned())
            .spawn(move || subscriber.run())
            .map_err(BridgeError::Spawn)?;
        bridge.threads.push(spawned);
        Ok(bridge)
    }

    fn settings(&self, node: NodeId) -> Result<Settings, BridgeError> {
        if self.namespace.is_empty()
            || self.namespace.len() > MAX_NAMESPACE_LEN
            || self.namespace.contains(':')
        {
            return Err(BridgeError::InvalidConfig(
                "namespace must be 1 to 256 bytes without ':'",
            ));
        }
        if self.queue_capacity == 0 {
            return Err(BridgeError::InvalidConfig(
                "queue capacity must be at least 1",
            ));
        }
        let zero = Duration::ZERO;
        if [
            self.backoff_min,
            self.read_timeout,
            self.io_timeout,
            self.ping_interval,
        ]
        .contains(&zero)
            || self.backoff_max < self.backoff_min
        {
            return Err(BridgeError::InvalidConfig(
                "timeouts and backoff must be non-zero, backoff min <= max",
            ));
        }
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| BridgeError::InvalidUrl(e.to_string()))?;
        Ok(Settings {
            client,
            namespace: self.namespace.clone(),
            layout: self.layout,
            wake: format!("{}:w:{node}", self.namespace),
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            read_timeout: self.read_timeout,
            ping_interval: self.ping_interval,
            io_timeout: self.io_timeout,
            max_message_len: self.max_message_len,
        })
    }
}

/// What both threads share: where Redis is and how to talk to it.
pub(crate) struct Settings {
    client: redis::Client,
    namespace: String,
    layout: ChannelLayout,
    /// Per-topic layout: this node's wake channel, `NAMESPACE:w:NODE`.
    pub(crate) wake: String,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    /// The subscriber connection's read timeout.
    pub(crate) read_timeout: Duration,
    pub(crate) ping_interval: Duration,
    /// Connect timeout; the publisher's read and write timeout.
    pub(crate) io_timeout: Duration,
    pub(crate) max_message_len: usize,
}

impl Settings {
    /// The channel `topic`'s envelopes go to.
    pub(crate) fn channel_for(&self, topic: &str) -> Vec<u8> {
        match self.layout {
            ChannelLayout::Namespace => self.namespace.as_bytes().to_vec(),
            ChannelLayout::PerTopic => {
                let mut channel = Vec::with_capacity(self.namespace.len() + 3 + topic.len());
                channel.extend_from_slice(self.namespace.as_bytes());
                channel.extend_from_slice(b":t:");
                channel.extend_from_slice(topic.as_bytes());
                channel
            }
        }
    }

    /// Whether `channel` is where `topic`'s envelopes go.
    pub(crate) fn is_channel_of(&self, channel: &str, topic: &str) -> bool {
        match self.layout {
            ChannelLayout::Namespace => channel == self.namespace,
            ChannelLayout::PerTopic => {
                channel
                    .strip_prefix(self.namespace.as_str())
                    .and_then(|rest| rest.strip_prefix(":t:"))
                    == Some(topic)
            }
        }
    }

    /// A new connection for the publisher (read timeout `io_timeout`).
    pub(crate) fn connect(&self) -> redis::RedisResult<redis::Connection> {
        self.connect_with_read_timeout(self.io_timeout)
    }

    /// A new connection whose reads time out after `read_timeout`.
    pub(crate) fn connect_with_read_timeout(
        &self,
        read_timeout: Duration,
    ) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(self.io_timeout)?;
        con.set_read_timeout(Some(read_timeout))?;
        con.set_write_timeout(Some(self.io_timeout))?;
        Ok(con)
    }
}

/// 128 bits no other engine is likely to draw: two hashes keyed by `ahash`'s random
/// per-process seed over the time, the process id and a counter.
fn random_node_id() -> NodeId {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let draw = DRAWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = (now, std::process::id(), draw);
    let high = ahash::RandomState::new().hash_one(seed);
    let low = ahash::RandomState::new().hash_one(seed);
    NodeId((u128::from(high) << 64) | u128::from(low))
}

/// Why a bridge could not be attached.
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The URL is not a Redis URL (the `redis` crate's reason).
    InvalidUrl(String),
    /// A setting is out of range.
    InvalidConfig(&'static str),
    /// The engine has a bridge attached already (one per engine).
    AlreadyBridged,
    /// The engine is shut down.
    Closed,
    /// A bridge thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::InvalidUrl(why) => write!(f, "invalid Redis URL: {why}"),
            BridgeError::InvalidConfig(why) => write!(f, "invalid bridge setting: {why}"),
            BridgeError::AlreadyBridged => f.write_str("the engine already has a bridge"),
            BridgeError::Closed => f.write_str("the engine is shut down"),
            BridgeError::Spawn(e) => write!(f, "could not start a bridge thread: {e}"),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}
