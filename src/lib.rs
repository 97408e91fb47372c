//! `fanout`: an embeddable publish/subscribe fan-out engine for latency-sensitive
//! servers — game servers ticking state to thousands of players, trading gateways
//! fanning market data out to strategy threads, WebSocket chat and presence servers.
//!
//! A broadcast serialises its message **once**, into one immutable [`Bytes`] Push frame,
//! and hands that buffer by reference to every subscriber of the topic. Broadcasts read
//! an immutable snapshot of the topic → subscribers map through one atomic load: they
//! never lock, never allocate per subscriber and never wait for a writer. Every change
//! to the map goes to one writer thread over a bounded queue; it applies a batch of
//! changes and publishes one new snapshot per batch. No async runtime is needed.
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
//! - **Fault isolation.** A panicking callback is caught; every other subscriber still
//!   gets the frame; that client is unregistered and counted in [`Stats::panics`].
//!   Callbacks may call back into the engine without deadlock.
//! - **Lifecycle.** Dropping the last handle, or `shutdown()`, stops and joins the writer
//!   thread; later calls return [`Error::Closed`]; every channel's receiver ends.
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
//! # Costs
//!
//! - A broadcast: one atomic snapshot load, a hash-trie lookup of `log32(topics)` levels
//!   (skip the hash with a pre-resolved [`Topic`]), the serialiser once, then per
//!   subscriber one integer compare and one call or queue push (for a conflating
//!   channel: one mutex lock and one hash lookup, see [`ConflatingChannel#cost`]). Two
//!   relaxed counter updates per broadcast, none per delivery shared between sinks.
//! - A mutation: a round trip to the writer thread (the caller parks until its change is
//!   published). Cost grows with `log32(topics)`, the touched topic's subscriber count
//!   and the client's own topic count — never with the total number of clients or
//!   topics. Concurrent callers share batches and snapshot publications, and
//!   [`PubSub::apply`] sends many mutations in one round trip.
//!
//! # Trade-offs
//!
//! There are, however, downsides:
//!
//! - Mutations are synchronous round trips to one thread: many tiny mutations from one
//!   caller are bounded by that latency (tens of microseconds with a wake-up); many
//!   callers batch together.
//! - Subscribing to a topic with `s` subscribers copies its list (O(s)) unless that
//!   topic was already changed in the same batch.
//! - A snapshot held by a slow broadcast keeps removed sinks alive until it finishes, so a
//!   removed channel's receiver ends only then.
//! - The writer is an ordinary thread: on a machine whose cores are all busy
//!   broadcasting, it waits for a core like everyone else, and each mutation's round trip
//!   grows with that wait (measured on 2 cores with two publishers spinning: tens of
//!   milliseconds). Leave a core for it, or send mutations in bulk with
//!   [`PubSub::apply`].

#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]

mod broadcaster;
mod builder;
mod channel;
mod client;
mod conflating_channel;
mod engine;
mod error;
mod mutation;
pub mod policy;
mod pubsub;
mod sink;
mod stats;
mod sync;
mod topic;
pub mod transport;

/// The `bytes` crate, re-exported: frames are [`Bytes`], and a [`Serialiser`](transport::Serialiser)
/// writes into a [`BytesMut`] with [`BufMut`], without adding `bytes` to your dependencies.
pub use bytes::{self, BufMut, Bytes, BytesMut};

pub use broadcaster::Broadcaster;
pub use builder::Builder;
pub use channel::{Channel, DisconnectReason};
pub use client::ClientId;
pub use conflating_channel::ConflatingChannel;
pub use error::{Error, StartError, TopicError};
pub use mutation::Mutation;
pub use policy::{ChannelConfig, OverflowPolicy};
pub use pubsub::{PubSub, WeakPubSub};
pub use sink::conflating::Pending;
pub use stats::Stats;
pub use topic::{Topic, TopicRef, MAX_TOPIC_LEN};

/// The README's Rust code blocks, compiled and run as doc tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
