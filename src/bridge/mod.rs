//! Engines on several hosts sharing topics through a broker: Redis pub/sub (feature
//! `redis`) or NATS (feature `nats`).
//!
//! Attach a [`Bridge`] to a [`PubSub`] with a broker URL and a namespace, on every host:
//! each broadcast on any bridged engine then reaches the topic's subscribers on every
//! engine bridged to the same namespace. The URL picks the backend: `redis://host:6379/`
//! (one Redis server) or `nats://host:4222` (a NATS server; the servers of one cluster
//! comma-separated, `nats://a:4222,nats://b:4222`). Modelled on Phoenix.PubSub's Redis
//! adapter — every node publishing and subscribing on the broker, a node id in each
//! message so a node drops its own — and past it where that adapter is weak: a format
//! any language decodes, sequence numbers that count what was missed, a bounded queue so
//! the broker never stalls a broadcast, reconnection, and routing by interest (a node
//! receives only the topics and patterns its clients use: NATS always, Redis with
//! per-topic channels).
//!
//! ```no_run
//! use fanout::{bridge::Bridge, transport::RawPayload, PubSub};
//!
//! let chat = PubSub::<str>::new()?;
//! let bridge = Bridge::attach(&chat, "redis://127.0.0.1:6379/", "chat")?;
//! // or, feature `nats`: Bridge::attach(&chat, "nats://10.0.0.1:4222,nats://10.0.0.2:4222", "chat")?
//! chat.broadcast("room/rust", "hello, other hosts", &RawPayload)?;
//! println!("{:?}", bridge.stats());
//! bridge.shutdown(); // or drop it
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Choosing a backend
//!
//! | | Redis (`redis`) | NATS (`nats`) |
//! |---|---|---|
//! | brokers | one `redis-server` carries all traffic | a cluster of `nats-server`s shares it and survives losing one |
//! | a node receives | every frame (namespace layout), or the topics it serves by name (per-topic layout) | the topics and patterns its clients use, by name or by pattern |
//! | pattern subscribers | get remote frames under the namespace layout only | always: one NATS wildcard subscription per pattern |
//! | own frames | sent back by Redis, dropped by the node | never sent back (`no_echo`) |
//! | client | blocking `redis`, two threads, no async runtime | `async-nats` on the bridge's own thread and current-thread tokio runtime |
//! | minimum Rust | the crate's (1.75) | 1.89 (`async-nats`'s) |
//!
//! Measured figures for both (frames/s and latency against a raw client in the same
//! run) are in PERFORMANCE.md, "Across hosts".
//!
//! # What a broadcast does on a bridged engine
//!
//! It serialises the message once into a Push frame, delivers it to local subscribers
//! exactly as on a plain engine (`broadcast_from` skips its sender here), and hands the
//! same frame — a reference count, not a copy — to a bounded queue with `try_send`. It
//! never waits for the broker: a full queue drops the frame and counts it in
//! [`BridgeStats::dropped`], and records its topic in a fixed lock-free table
//! (`face::dropped_topics`) so that the publisher thread skips its sequence number and
//! receivers count the loss as a gap. Because other engines may have subscribers, the frame is
//! built **even when no local client is subscribed**: on a bridged engine the serialiser
//! runs exactly once per broadcast instead of "at most once". An unbridged engine pays
//! one flag load for all this (none without the features).
//!
//! One thread drains the queue and sends what has queued up as one batch: on Redis a
//! publisher thread, as a pipeline of `PUBLISH`es over its own connection; on NATS the
//! io thread that runs the client, woken by the broadcast (one thread hand-off between
//! a broadcast and the socket, not two). Frames from one publishing thread keep their
//! order on every node. Each goes out in an [envelope](crate::transport::envelope):
//! version, mode, this node's random 128-bit id, a sequence number per (node, topic),
//! the Push frame. Frames that were already queued together and go to the same channel
//! or subject share one *batch envelope* (each keeps its own sequence number), so the
//! broker and every receiver pay their per-message costs once per run of frames; a
//! frame alone in the queue goes at once in its own envelope (batching never makes a
//! frame wait). The backends share the numbering, the envelopes and the counting; they
//! differ only in the transport.
//!
//! # What a receiving node does
//!
//! Every message read from the broker is checked and delivered the same way on both
//! backends: it drops its own node's envelopes (no echo), counts a jump in an (origin,
//! topic) stream's sequence as [`gaps`](BridgeStats::gaps) (missed frames are never
//! replayed), skips a number it has seen as a [`duplicate`](BridgeStats::duplicates),
//! skips anything that is not an envelope for the channel or subject it came on as
//! [`bad_envelopes`](BridgeStats::bad_envelopes), and delivers the Push frame to local
//! subscribers without a serialiser. Client ids are per engine, so a remote
//! `broadcast_from` excludes nobody here.
//!
//! # Counts that add up
//!
//! Every frame a bridged engine broadcasts is numbered in its (origin, topic) stream,
//! sent or not: a full queue, the broker down, a pipeline that failed. So for each
//! origin and each receiver, frames published on the origin for topics the receiver
//! serves − frames received = [`gaps`](BridgeStats::gaps) counted by the receiver,
//! counted from the first frame of each stream it received and once a later frame of
//! the stream has arrived (measured with three processes and `kill -9` of Redis
//! mid-stream: `tests/presence_cluster.rs`). On the origin, every frame is
//! [`sent`](BridgeStats::sent), [`dropped`](BridgeStats::dropped) (certainly not sent)
//! or of [`unknown`](BridgeStats::unknown) fate (its batch failed after being written: a
//! stalled Redis may still run it).
//!
//! # Presence
//!
//! A bridge carries presence too (on by default, [`BridgeBuilder::presence`]): `list`
//! on any bridged engine shows every bridged engine's members, and their joins and
//! leaves reach this engine's subscribers once. The engine's own members are named by
//! the bridge's node id while it is attached and `NodeId(0)` otherwise; the attach and
//! the detach rename them with a leave and a join each, for this engine's subscribers
//! only. What is promised is in [`crate::presence`]; presence messages travel in mode-2 envelopes
//! ([`crate::transport::presence_sync`]) on a route every node of the namespace
//! reads whatever topics it serves — Redis: the namespace's channel (`NAMESPACE:c`
//! under per-topic channels); NATS: the control subject `NAMESPACE.%c`, which no
//! topic's subject can be — with heartbeats every second. Deltas and states longer than
//! the smaller of [`BridgeBuilder::max_message_len`] and the NATS server's
//! `max_payload` are split to fit (a state into parts a receiver applies once all are
//! in).
//!
//! # Backends
//!
//! ## Redis: channel layout
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
//! ## NATS: subjects, interest, clusters
//!
//! A topic's envelopes go to the subject `NAMESPACE.` followed by the topic's tokens
//! (split by the engine's [separator](crate::Builder::separator)) joined by `.`, each
//! token escaped to be one valid NATS token: the bytes `.`, `*`, `>`, `%`, space and
//! every other ASCII control or whitespace byte (`0x00`–`0x20`, `0x7F`) become `%` and
//! two upper-case hex digits, an empty token becomes `%` alone, everything else (UTF-8
//! included) stays. So with separator `.`, topic `room.42` is `chat.room.42`; with
//! separator `/`, `prices/EUR.USD` is `chat.prices.EUR%2EUSD` and `a b/c` is
//! `chat.a%20b.c`. Topics are mapped, never refused: different topics always get
//! different subjects. The namespace is written as is: one or more `.`-separated tokens
//! without whitespace, control bytes, `*`, `>` or `%` (else
//! [`BridgeError::InvalidConfig`]). A subject longer than 4,000 bytes (the server's
//! default line limit is 4 KiB) is not published: its frames are counted as dropped.
//!
//! A node subscribes to the subject of every topic with a local subscriber and, for
//! every wildcard pattern a local client uses, to the pattern's subject with its `*` and
//! `>` tokens kept: NATS matches tokens exactly as fanout's patterns do, so a client that
//! matches a topic only through a pattern gets its remote frames, and NATS routes each
//! frame only to the nodes (and servers of a cluster) that use it. Subscriptions follow
//! the engine's reports of the first and last local subscriber of each topic and
//! pattern. A frame whose topic matches two of a node's subscriptions (`a.b` by name and
//! `a.*`) is sent to it twice; the second copy is skipped (counted in `duplicates`), so
//! a client still gets it once. The connection sets `no_echo`: the server never sends a
//! node its own frames. With presence on, every node also subscribes to the namespace's
//! control subject, `NAMESPACE.%c` (no topic maps to it: a `%` in a topic's subject is a
//! token alone or followed by two upper-case hex digits), where presence messages go. A
//! non-Rust client reads every frame of a namespace by subscribing to `NAMESPACE.>` and
//! decoding the envelope (presence envelopes, mode 2, included).
//!
//! The client runs on one io thread the bridge starts, inside a current-thread tokio
//! runtime made for that thread: no runtime is visible to (or needed by) the program,
//! and broadcasts stay synchronous (they queue the frame and, if the io thread is
//! parked, wake it). The io thread drains the queue into the client; while the client
//! is not connected it hands nothing over (the frames are numbered, counted as dropped,
//! and show as gaps on receivers: never queued for later).
//! `async-nats` reconnects by itself, to any server of the cluster it was given or has
//! learnt of, waiting [`BridgeBuilder::backoff`] between attempts, and subscribes again.
//!
//! # Failures
//!
//! - **Broker down at attach**: `attach` succeeds (only a bad URL, a bad namespace, a
//!   second bridge or a closed engine fail it); the bridge connects in the background;
//!   broadcasts deliver locally and count their frames dropped until it is up.
//! - **Broker restarted, or (NATS) the server a node is connected to lost**: the
//!   connection notices (a failed publish, read or PING) and reconnects — on NATS to
//!   another server of the cluster — and subscribes again; frames in between are dropped
//!   on the origin and counted as gaps on receivers; nothing is retried, so nothing
//!   arrives twice.
//! - **A slow receiver**: a NATS server cuts a connection that does not read fast enough
//!   (its `max_pending`); the node reconnects and counts the frames it missed as gaps.
//!   A client-side queue overflow is counted in [`BridgeStats::slow_consumers`].
//! - **Bad input**: messages longer than [`BridgeBuilder::max_message_len`], not
//!   envelopes, for another topic than their channel's or subject's, or with a topic
//!   this engine refuses are counted and skipped; the tables of sequence numbers are
//!   bounded.
//! - **Detach** ([`Bridge::shutdown`] or drop): later broadcasts are not forwarded;
//!   what is queued is sent if the broker is up; every thread is joined. The Redis
//!   subscriber thread notices within one read timeout, or one connect timeout
//!   ([`BridgeBuilder::io_timeout`]) if it is connecting to an unreachable host.

mod backend;
mod backoff;
mod batch;
mod framer;
mod inbound;
mod interest;
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_seam;
#[cfg(feature = "nats")]
mod nats;
mod outbound;
mod presence;
#[cfg(feature = "redis")]
mod redis;
mod sequences;
mod stats;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use stats::BridgeStats;

use crate::face::pubsub::PubSub;
use crate::face::remote_members::RemoteMembers;
use crate::face::tap::Tap;
use crate::presence::replica::Timing;
use crate::transport::envelope::NodeId;
use crate::vocab::error::Error;
use backend::{Backend, Feed};
use backoff::Backoff;
use framer::{Framer, Routes};
use inbound::Inbound;
use interest::InterestChange;
use outbound::{PresenceLink, Publisher};
use presence::{Deliver, Exchange};
use sequences::Tracker;
use stats::Counters;

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

/// A bridge between one [`PubSub`] engine and a namespace on a broker. Detaches (and
/// joins its threads) on [`shutdown`](Self::shutdown) or drop.
#[must_use = "dropping a Bridge detaches it"]
pub struct Bridge {
    node: NodeId,
    namespace: String,
    layout: ChannelLayout,
    /// Interest-routed backends: stops the engine's interest events.
    unwatch: Option<Box<dyn Fn() + Send + Sync>>,
    tap: Arc<Tap>,
    /// The tap's drop counts (all, untracked) when this bridge attached.
    dropped_before: (u64, u64),
    counters: Arc<Counters>,
    /// Dropped to stop every thread (they wake on the disconnect).
    stop: Option<crossbeam_channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    /// Presence across hosts: the exchange, and what stops the engine's presence
    /// watcher and empties its remote-members slot.
    presence: Option<(Arc<Exchange>, Unwatch)>,
}

/// Stops one of the engine's event feeds to the bridge.
type Unwatch = Box<dyn Fn() + Send + Sync>;

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
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(250),
            read_timeout: Duration::from_millis(100),
            ping_interval: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            max_message_len: 16 << 20,
            layout: ChannelLayout::Namespace,
            presence: Some((Timing::default(), Duration::from_secs(1))),
        }
    }

    /// This engine's node id, carried in every envelope it publishes, and (with
    /// presence) the name of the engine's own members while the bridge is attached
    /// ([`PubSub::node_id`]). New at each attach: see `random_node_id`.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Redis channel layout (what was configured; NATS ignores it).
    pub fn layout(&self) -> ChannelLayout {
        self.layout
    }

    /// Counters and connection state.
    pub fn stats(&self) -> BridgeStats {
        let untracked = self.tap.refused().map_or(0, |r| r.untracked());
        self.counters.view(
            self.tap.dropped() - self.dropped_before.0,
            untracked - self.dropped_before.1,
            self.tap.queued(),
        )
    }

    /// Detaches from the engine and joins every thread. Broadcasts that start afterwards
    /// are not forwarded; frames already queued are sent if the broker is up.
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
        if let Some((exchange, unwatch)) = self.presence.take() {
            // The others were told (a goodbye); here, their members leave the list.
            unlink_presence(&exchange, &unwatch);
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
    presence: Option<(Timing, Duration)>,
}

impl BridgeBuilder {
    /// Presence across hosts (on by default, over Redis and NATS):
    /// `list` on this engine shows every bridged engine's members, and their joins and leaves reach this engine's subscribers.
    /// The bridge sends a heartbeat every `heartbeat` (default 1 s) and takes an engine
    /// not heard from for `down_after` (default 30 s, as Phoenix.Tracker) as down: its
    /// members leave everywhere, and join again if it comes back. Silent for
    /// `drop_after` (default 10 min), its state is dropped. `down_after` should be
    /// several heartbeats; every engine of a namespace should use the same settings.
    pub fn presence(
        mut self,
        heartbeat: Duration,
        down_after: Duration,
        drop_after: Duration,
    ) -> Self {
        self.presence = Some((
            Timing {
                down_after,
                drop_after,
                request_every: heartbeat,
            },
            heartbeat,
        ));
        self
    }

    /// No presence across hosts: `list` shows this engine's members only, and no
    /// presence messages are sent or read.
    pub fn without_presence(mut self) -> Self {
        self.presence = None;
        self
    }
    /// Which Redis channels to use (default [`ChannelLayout::Namespace`]). Every
    /// engine bridged to one namespace must use the same layout. NATS ignores it: it
    /// always subscribes per topic and pattern.
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

    /// First and largest delay between reconnection attempts (default 50 ms and 250 ms);
    /// the delay doubles after each failed attempt. The largest delay bounds both how
    /// long after the broker comes back a connection is re-established (one attempt
    /// per 250 ms finds it within 250 ms plus a connect) and how often a down broker is
    /// tried (4 times a second per connection, at most).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// Redis: how long the subscriber thread blocks in one read (default 100 ms): the
    /// bound on how long a detach waits for it. NATS ignores it.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Silence on the subscriber connection after which it sends a PING (default 1 s);
    /// on NATS, the client's PING interval.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Connect timeout, and the publisher's read and write timeout (default 1 s); on
    /// NATS, the connect timeout and the longest the io thread waits for room in the
    /// client's queue before it drops the rest of a batch.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Longest message accepted from the broker (default 16 MiB); longer ones are
    /// counted as bad envelopes and skipped. Presence messages this bridge sends are
    /// split to fit it (and a NATS server's `max_payload`, if smaller): every engine of a
    /// namespace should use the same value.
    pub fn max_message_len(mut self, bytes: usize) -> Self {
        self.max_message_len = bytes;
        self
    }

    /// Attaches the bridge to `pubsub` and starts its threads. Succeeds whether or not
    /// the broker is reachable now (the threads retry).
    ///
    /// Errors: [`BridgeError::InvalidUrl`], [`BridgeError::InvalidConfig`] (an empty or
    /// over-long namespace, a zero capacity, timeout or backoff),
    /// [`BridgeError::AlreadyBridged`], [`BridgeError::Closed`], [`BridgeError::Spawn`].
    pub fn attach<M: ?Sized + 'static>(self, pubsub: &PubSub<M>) -> Result<Bridge, BridgeError> {
        self.check()?;
        let node = random_node_id();
        let scheme = self.url.split_once("://").map_or("", |(scheme, _)| scheme);
        match scheme {
            #[cfg(feature = "redis")]
            "redis" | "rediss" | "unix" | "redis+unix" => {
                let backend = redis::RedisBackend::new(
                    &self.url,
                    &self.namespace,
                    node,
                    self.layout,
                    (self.backoff_min, self.backoff_max),
                    self.read_timeout,
                    self.ping_interval,
                    self.io_timeout,
                )?;
                self.attach_with(pubsub, node, backend)
            }
            #[cfg(feature = "nats")]
            "nats" => {
                let backend = nats::NatsBackend::new(
                    &self.url,
                    &self.namespace,
                    pubsub.separator(),
                    node,
                    (self.backoff_min, self.backoff_max),
                    self.ping_interval,
                    self.io_timeout,
                )?;
                self.attach_with(pubsub, node, backend)
            }
            _ => Err(BridgeError::InvalidUrl(format!(
                "{:?}: not a URL of a backend this build has (features `redis`, `nats`)",
                self.url
            ))),
        }
    }

    /// The settings every backend checks.
    fn check(&self) -> Result<(), BridgeError> {
        if self.namespace.is_empty() || self.namespace.len() > MAX_NAMESPACE_LEN {
            return Err(BridgeError::InvalidConfig(
                "namespace must be 1 to 256 bytes",
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
        Ok(())
    }

    /// Attaches to the engine's tap and interest events, starts the backend's receiving
    /// side and the publisher thread.
    fn attach_with<M: ?Sized + 'static, B: Backend>(
        self,
        pubsub: &PubSub<M>,
        node: NodeId,
        backend: B,
    ) -> Result<Bridge, BridgeError> {
        if pubsub.is_closed() {
            return Err(BridgeError::Closed);
        }
        let tap = Arc::clone(pubsub.tap());
        let before = tap.dropped();
        let drains = backend.drains_queue();
        let Some(queue) = tap.attach(self.queue_capacity, drains) else {
            return Err(BridgeError::AlreadyBridged);
        };
        let dropped_before = (before, tap.refused().map_or(0, |r| r.untracked()));
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
            threads: Vec::with_capacity(3),
            presence: None,
        };
        let presence_link = match self.presence {
            None => None,
            Some((timing, heartbeat)) => {
                let (link, unwatch) = link_presence(pubsub, node, timing, heartbeat)?;
                bridge.presence = Some((Arc::clone(&link.exchange), unwatch));
                Some(link)
            }
        };
        // Interest-routed: the engine's interest events go to the publisher thread,
        // which hands them to the backend.
        let (events, interest) = if backend.routes_by_interest() {
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
            let now = now
                .into_iter()
                .filter_map(|event| match InterestChange::from(event) {
                    InterestChange::Subscribe(interest) => Some(interest),
                    InterestChange::Unsubscribe(_) => None,
                });
            (Some(events), now.collect())
        } else {
            (None, Vec::new())
        };
        let inbound = Inbound {
            node,
            engine: pubsub.downgrade(),
            counters: Arc::clone(&counters),
            max_message_len: self.max_message_len,
            streams: Tracker::default(),
            presence: presence_link
                .as_ref()
                .map(|link| Arc::clone(&link.exchange)),
        };
        // A backend that routes by interest puts each topic on its own channel or
        // subject; the others put every topic on one (what may share a batch envelope).
        let routes = if backend.routes_by_interest() {
            Routes::PerTopic
        } else {
            Routes::OneChannel
        };
        // On a failure below `bridge` drops: detached, the spawned threads joined.
        let (feed, queue) = if drains {
            let feed = Feed {
                tap: Arc::clone(&bridge.tap),
                queue,
                framer: Framer::new(node, Arc::clone(&bridge.tap), routes, self.max_message_len),
            };
            (Some(feed), crossbeam_channel::never())
        } else {
            (None, queue)
        };
        let (outlet, threads) = backend.start(inbound, interest, stop.clone(), feed)?;
        bridge.threads.extend(threads);
        let publisher = Publisher {
            outlet,
            framer: Framer::new(node, Arc::clone(&bridge.tap), routes, self.max_message_len),
            queue,
            manages_connection: !drains,
            stop,
            counters,
            events,
            backoff: Backoff::new(self.backoff_min, self.backoff_max),
            presence: presence_link,
            max_message_len: self.max_message_len,
        };
        let spawned = std::thread::Builder::new()
            .name("fanout-bridge-pub".to_owned())
            .spawn(move || publisher.run())
            .map_err(BridgeError::Spawn)?;
        bridge.threads.push(spawned);
        Ok(bridge)
    }
}

/// Links the engine's presence to a new exchange for `node`: the engine hands every
/// change to the returned link (for the publisher thread) and lists other engines'
/// members from the exchange; the returned closure undoes both.
fn link_presence<M: ?Sized + 'static>(
    pubsub: &PubSub<M>,
    node: NodeId,
    timing: Timing,
    heartbeat: Duration,
) -> Result<(PresenceLink, Unwatch), BridgeError> {
    let (changes_tx, changes) = crossbeam_channel::unbounded();
    let (kick, kicks) = crossbeam_channel::bounded(1);
    let members = pubsub
        .watch_presence(changes_tx, node)
        .map_err(|_| BridgeError::Closed)?;
    let weak = pubsub.downgrade();
    let deliver: Deliver = Box::new(move |topic, frame| {
        weak.upgrade().is_some_and(|engine| {
            !matches!(
                engine.deliver_remote_presence(topic, frame),
                Err(Error::Closed)
            )
        })
    });
    let exchange = Arc::new(Exchange::new(
        node, timing, heartbeat, members, kick, deliver,
    ));
    let view: Arc<dyn RemoteMembers> = Arc::clone(&exchange) as _;
    pubsub.tap().remote_members.set(Some(view));
    let weak = pubsub.downgrade();
    let unwatch: Unwatch = Box::new(move || {
        if let Some(engine) = weak.upgrade() {
            engine.unwatch_presence();
            engine.tap().remote_members.set(None);
        }
    });
    Ok((
        PresenceLink {
            exchange,
            changes,
            kicks,
        },
        unwatch,
    ))
}

/// Undoes [`link_presence`] once the bridge's threads are gone: the other engines'
/// members leave this engine's list, with the events, while the engine still lists them
/// through the exchange; then the engine stops watching and forgets the exchange. In the
/// other order a `subscribe_with_members` in between copied a list without them and then
/// got their leaves (found by the loom model of a detach, `loom-tests/tests/presence.rs`).
fn unlink_presence(exchange: &Exchange, unwatch: &Unwatch) {
    exchange.forget_all();
    unwatch();
}

/// 128 bits no other engine is likely to draw: two hashes keyed by `ahash`'s random
/// per-process seed over the time, the process id and a counter.
///
/// Drawn at each attach rather than once per engine, because the other engines must not
/// take a re-attached engine for its earlier incarnation: they ignore a node that said
/// goodbye (for the drop period, so a late message cannot bring it back), a new
/// bridge's presence version and sequence numbers start again from the beginning
/// (taken as old or duplicate under the old id), and a restarted process has a new id
/// anyway. The engine's members are renamed to it at attach, with events (see
/// `PresenceTable::rename`).
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
    /// The URL is not one of a backend this build has, or its backend refuses it.
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
            BridgeError::InvalidUrl(why) => write!(f, "invalid broker URL: {why}"),
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
