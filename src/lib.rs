//! `fanout`: an embeddable publish/subscribe fan-out engine for latency-sensitive
//! servers — game servers ticking state to thousands of players, trading gateways
//! fanning market data out to strategy threads, WebSocket chat and presence servers.
//!
//! A broadcast serialises its message **once**, into one immutable [`Bytes`] Push frame,
//! and hands that buffer by reference to every subscriber of the topic. Broadcasts read
//! an immutable snapshot of the topic → subscribers map through one atomic load: they
//! never lock, never allocate per subscriber and never wait for a writer. Every change
//! to the map is applied by one writer at a time — the calling thread itself when nobody
//! else is writing, so a `subscribe` costs its own work (about a microsecond), not a
//! thread hop; concurrent callers queue their changes on a bounded queue and the one
//! holding the writer role applies them together, publishing one new snapshot per
//! batch. No async runtime is needed.
//!
//! # Map of the crate
//!
//! `src/` is in layers; each folder is one, and every `use` points down (checked in CI by
//! `scripts/check_layers.py`, which reads this table):
//!
//! | layer | name | modules | what lives there |
//! |---|---|---|---|
//! | 1 | ground | `sync` | the only switch between `std` and `loom` types, the bounded queue, the async waker slot |
//! | 2 | vocabulary | `vocab` | client ids, topics, patterns, errors, overflow policies, statistics, mutations, the authorization hook |
//! | 3 | transport | `transport` | bytes on the wire: Push and Presence frames, the bridge envelope, serialisers |
//! | 4 | sinks | `sink` | what the engine holds per subscriber: a callback, a channel, a conflating or async channel |
//! | 5 | engine | `engine` | the snapshot, the combining writer, commands, delivery, the janitor |
//! | 6 | consumer ends | `consumer` | what a user holds: [`Channel`], [`ConflatingChannel`], `AsyncChannel`, their membership |
//! | 7 | faces | `face` | [`PubSub`], [`Broadcaster`], their [`Builder`], the broadcast tap |
//! | 8 | capabilities | `presence` `bridge` `observe` | presence tracking, the bridge across hosts, and the statistics as metrics; they know the engine only through the faces |
//!
//! Inside the crate a name is imported from the module that defines it
//! (`crate::vocab::client::ClientId`), never through the re-exports below, so an arrow
//! that points the wrong way shows in the `use` lines. Files that use `std::sync::Arc`
//! rather than `crate::sync::Arc` do so on purpose: the loom shim's `Arc` is for state
//! the loom models must see (the snapshot, sinks, the writer's queues); values that
//! only cross the public API or live outside the modelled protocol (topic names, hooks,
//! the bridge's threads) keep std's, which every caller can hand in.
//!
//! # Two faces, one engine
//!
//! - [`PubSub<M>`]: clients registered with a sink (a send callback, or a bounded
//!   [`Channel`] of frames), subscribed to topics by name; [`broadcast`](PubSub::broadcast)
//!   and [`broadcast_from`](PubSub::broadcast_from) (everyone but the sender). Modelled on
//!   lily's `pub_sub` and Phoenix.PubSub.
//! - [`Broadcaster<M>`]: [`subscribe`](Broadcaster::subscribe) returns a [`Channel<M>`]
//!   whose crossbeam receiver drops into a `crossbeam_channel::select!` loop;
//!   [`publish`](Broadcaster::publish) fans a typed message out; dropping the channel
//!   unsubscribes. Modelled on dream's `services/broadcaster`.
//!
//! Either face can also give a slow consumer a [`ConflatingChannel`]
//! ([`Broadcaster::subscribe_conflating`], [`PubSub::register_conflating`]): at most one
//! pending item per key, the newest replacing the pending one in place, so it always
//! catches up to the latest of every key.
//!
//! With the cargo feature `async`, either face can give a task an `AsyncChannel`
//! (`Broadcaster::subscribe_async`, `PubSub::register_async`): a channel sink whose
//! `recv()` can be awaited and which is a `futures_core::Stream`, on any executor, with
//! the same policies, counters and lifecycle as a [`Channel`]. Publishers stay
//! synchronous. The feature adds only `futures-core`; the engine never needs a runtime.
//!
//! With the cargo features `metrics` and `tracing` (off by default; each adds only its
//! facade crate), [`observe`] records an engine's and a bridge's statistics as
//! Prometheus-style metrics when asked, and the engine reports its state changes — a
//! bridge connection lost or back, a subscriber cut off, shutdown — as events. Neither
//! adds anything to the broadcast path.
//!
//! # Quick start
//!
//! ```
//! use fanout::{transport::{decode, RawPayload}, Broadcaster, PubSub};
//!
//! // Topic pub/sub: a chat room.
//! let chat = PubSub::<str>::new()?;
//! let (alice, bob) = (chat.generate_client_id(), chat.generate_client_id());
//! chat.register(alice, |frame| println!("to alice: {} bytes", frame.len()))?;
//! let bob_inbox = chat.register_channel(bob)?;
//! chat.subscribe(alice, "room/rust")?;
//! chat.subscribe(bob, "room/rust")?;
//! assert_eq!(chat.broadcast_from(alice, "room/rust", "hello", &RawPayload)?, 1);
//! let frame = bob_inbox.recv()?;
//! assert_eq!(decode(&frame)?.payload, b"hello");
//!
//! // Typed broadcaster: a price feed.
//! let feed = Broadcaster::<f64>::start()?;
//! let strategy = feed.subscribe()?;
//! feed.publish(1.0842)?;
//! assert_eq!(strategy.recv()?, 1.0842);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Wildcards, authorization, presence
//!
//! - [`PubSub::subscribe`] takes NATS-style patterns (`md.*.eurusd`, `md.>`; the
//!   separator is [`Builder::separator`], `.` by default); a client gets one frame per
//!   broadcast however many of its subscriptions match. An engine nobody subscribes to
//!   patterns on pays nothing for them.
//! - [`Builder::can_subscribe`] is asked before every subscription is applied; a denial
//!   is [`Error::Denied`] (see [`Denied`]).
//! - [`presence`]: `track` / `untrack` / `list` members of a topic with metadata; join and
//!   leave Presence frames go to the topic's subscribers.
//!
//! # Guarantees
//!
//! - **Visibility.** When `subscribe` returns, every broadcast that starts afterwards, on
//!   any thread, reaches the subscriber. When `unsubscribe`/`unregister` returns (or a
//!   dropped [`Channel`]'s removal is processed), no broadcast that starts afterwards
//!   reaches it; one already in flight may.
//! - **Order.** Frames from one publishing thread on one topic reach each subscriber in
//!   publish order. Nothing is promised across publishers.
//! - **Idempotent.** Subscribing twice is one subscription; unsubscribing from a topic
//!   one is not in is a no-op.
//! - **Ephemeral.** Frames carry no sequence number and are never stored or replayed.
//! - **Serialise once.** The serialiser runs at most once per broadcast, and not at all
//!   when nobody would receive the frame.
//! - **Slow consumers never stall a publisher** unless their owner chose
//!   [`OverflowPolicy::Block`], and then for at most its bound. Every dropped frame is
//!   counted on its channel and in [`Stats`]. See [`policy`] for choosing a policy.
//! - **Conflation.** A [`ConflatingChannel`] holds at most one pending item per key; once
//!   it drains, the last item received for every key is the last one published for it
//!   (unless its drop-newest fallback, taken only when `capacity` distinct keys are
//!   pending, dropped that one); received + conflated + dropped = published, per channel
//!   ([`ConflatingChannel::conflated`]) and in [`Stats::conflated`].
//! - **Async sinks** (feature `async`). An `AsyncChannel` keeps a [`Channel`]'s
//!   policies, counters and lifecycle; a task awaiting `recv()` is always woken, by the
//!   next item or by the channel's end; publishers never await (see
//!   `AsyncChannel`'s docs for how, and for the cost).
//! - **Fault isolation.** A panicking callback is caught; every other subscriber still
//!   gets the frame; that client is unregistered and counted in [`Stats::panics`].
//!   Callbacks may call back into the engine without deadlock.
//! - **Patterns.** `*` matches one token, `>` the rest; at most one frame per client per
//!   broadcast.
//! - **Authorization.** A `can_subscribe` hook, when set, is asked before any
//!   subscription (exact, pattern, batch); a denial changes nothing.
//! - **Presence.** A tracked client is in `list(topic)` from when `track` returns; join
//!   and leave events reach the topic's subscribers; a client that goes away by any path
//!   leaves.
//! - **Lifecycle.** Dropping the last handle, or `shutdown()`, closes every sink and stops
//!   and joins the engine's background thread; later calls return [`Error::Closed`]
//!   (every call but `stats()`); every channel's receiver ends.
//!
//! # Bad input
//!
//! Every fallible call returns a typed [`Error`]: unknown client, empty or over-long
//! topic ([`TopicError`]), duplicate registration (refused, not replaced), serialiser
//! failure (nothing delivered), a pre-encoded frame that does not match its topic, a
//! zero channel capacity, engine closed. The frame decoder ([`transport::decode`])
//! takes any bytes and returns a frame or a [`DecodeError`](transport::DecodeError).
//!
//! # Wire format
//!
//! `[version=1][kind=1 Push][topic length: u16 BE][topic: UTF-8][payload length: u32
//! BE][payload]`, documented byte by byte, with JavaScript and Python decoders, in
//! [`transport::frame`].
//!
//! # Across hosts
//!
//! With the cargo feature `redis` or `nats` (both off by default; the default build
//! pulls in neither a broker client nor an async runtime), `bridge::Bridge::attach`
//! joins engines on several hosts through Redis pub/sub or a NATS cluster — the URL's
//! scheme picks the backend: a broadcast on one reaches the topic's subscribers on all,
//! serialised once on its origin and never echoed back; order per publisher is kept on
//! every node; the broker being slow or down never blocks a broadcast; missed frames
//! are never replayed, and every loss is counted — for each origin and receiver,
//! frames published for topics the receiver serves − frames received = gaps counted by
//! the receiver, whatever the cause. Presence spans the bridged engines on both
//! backends (see [`presence`]). The envelope is documented byte by byte in
//! [`transport::envelope`]; the bridge module's docs compare the two backends.
//!
//! # Costs
//!
//! - A broadcast: one atomic snapshot load, a hash-trie lookup of `log32(topics)` levels
//!   (skip the hash with a pre-resolved [`Topic`]), the serialiser once, then per
//!   subscriber one integer compare and one call or queue push (for a conflating
//!   channel: one mutex lock and one hash lookup, see [`ConflatingChannel#cost`]). Two
//!   relaxed counter updates per broadcast, none per delivery shared between sinks.
//! - A mutation: applied by the caller itself when no other mutation is in progress
//!   (no thread hop: measured 0.9 µs p50 for a `subscribe` at 1k topics, 2.6 µs at
//!   100k, 5.0 µs at 1M, against 2.5–64 µs for the round trip to the dedicated writer
//!   thread it replaced, by size and machine load); otherwise queued and applied by the caller that holds the writer role,
//!   in a shared batch with one snapshot publication. Cost grows with `log32(topics)`,
//!   the touched topic's subscriber count and the client's own topic count — never with
//!   the total number of clients or topics. [`PubSub::apply`] and
//!   [`PubSub::register_many`] send many changes as one batch (1M callback clients
//!   registered in 0.2–0.3 s here).
//!
//! # Trade-offs
//!
//! There are, however, downsides:
//!
//! - Mutations are synchronous and serialised: one writer at a time. A caller that finds
//!   another writing waits for it (spinning briefly, then parked), and its wake-up costs
//!   microseconds; so two threads mutating flat out reach fewer mutations per second
//!   than one (PERFORMANCE.md, "Mutations"). A combiner serves at most 1024 queued
//!   changes before publishing, and at most one batch beyond its own change before it
//!   hands the rest to a background thread, so no caller's latency is unbounded.
//!   Why combining and not a writer thread: the thread's two wake-ups per call cost
//!   several times the work itself (2.5–64 µs p50 per `subscribe`, by size and machine
//!   load, against 0.9–5 µs now); and why not a
//!   plain lock around the registry: every caller would publish its own snapshot,
//!   while combining shares one publication among all queued changes.
//! - Subscribing to a topic with `s` subscribers copies its list (O(s)) unless that
//!   topic was already changed in the same batch.
//! - A snapshot held by a slow broadcast keeps removed sinks alive until it finishes, so a
//!   removed channel's receiver ends only then.
//! - Work nobody waits for — removing a sink found dead by a broadcast or dropped by its
//!   consumer — is done by a background thread, which on a machine whose cores are all
//!   busy waits for a core like everyone else; until then broadcasts skip the dead sink.

#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]

#[cfg(any(feature = "redis", feature = "nats"))]
pub mod bridge;
mod consumer;
mod engine;
mod face;
pub mod observe;
pub mod presence;
mod sink;
mod sync;
pub mod transport;
mod vocab;

pub use vocab::policy;

/// The `bytes` crate, re-exported: frames are [`Bytes`], and a [`Serialiser`](transport::Serialiser)
/// writes into a [`BytesMut`] with [`BufMut`], without adding `bytes` to your dependencies.
pub use bytes::{self, BufMut, Bytes, BytesMut};

#[cfg(feature = "async")]
pub use consumer::async_channel::{AsyncChannel, AsyncRecv};
pub use consumer::channel::Channel;
pub use consumer::conflating_channel::ConflatingChannel;
pub use consumer::disconnect_reason::DisconnectReason;
pub use face::broadcaster::Broadcaster;
pub use face::builder::Builder;
pub use face::pubsub::{PubSub, WeakPubSub};
pub use presence::Member;
pub use sink::conflating_sink::Pending;
pub use vocab::authorization::Denied;
pub use vocab::client::ClientId;
pub use vocab::error::{Error, PatternError, StartError, TopicError};
pub use vocab::mutation::Mutation;
pub use vocab::policy::{ChannelConfig, OverflowPolicy};
pub use vocab::stats::Stats;
pub use vocab::topic::{Topic, TopicRef, MAX_TOPIC_LEN};

/// The README's Rust code blocks, compiled and run as doc tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
