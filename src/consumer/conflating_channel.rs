//! [`ConflatingChannel`]: the consumer's end of a conflating sink.

use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use crate::consumer::disconnect_reason::DisconnectReason;
use crate::consumer::membership::Membership;
use crate::engine::{Engine, EngineLink};
use crate::sink::{conflating_sink, ConflatingSink, Pending, Sink, SinkCloser, SinkState};
use crate::sync::queue::{Receiver, RecvError, RecvTimeoutError, TryRecvError};
use crate::sync::Arc;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::stats::{ConflationCount, ConflationTotals};
use crate::vocab::topic::Topic;

/// A subscription that holds at most one pending item per key: a slow consumer always
/// catches up to the latest item of every key, and never loses a key entirely.
///
/// Made by [`Broadcaster::subscribe_conflating`](crate::Broadcaster::subscribe_conflating)
/// (the key is computed from each message by a function you give) or
/// [`PubSub::register_conflating`](crate::PubSub::register_conflating) (the key is the
/// Push frame's topic). Market-data servers call this *conflation*.
///
/// # Conflation
///
/// - A publish for a key that is already pending **replaces** the pending item where it
///   stands in the queue: the consumer gets the newer item in the older one's place, so
///   a busy key cannot push the others back. The replaced item is counted in
///   [`conflated`](Self::conflated).
/// - A publish for a new key queues it at the back.
/// - When `capacity` distinct keys are pending, a publish for yet another key is
///   **dropped** (drop-newest: the pending keys keep their places) and counted in
///   [`dropped`](Self::dropped).
///
/// Once the consumer has drained the channel, the last item it received for every key is
/// the last one published for that key (unless that one was dropped for want of room),
/// and, per channel, received + [`conflated`](Self::conflated) +
/// [`dropped`](Self::dropped) = published. Items of one key arrive in publish order;
/// different keys arrive in the order they became pending.
///
/// A publish that replaces counts as a delivery (the channel took the item: `publish`'s
/// return value, [`Stats::deliveries`](crate::Stats::deliveries)); the item it replaced
/// counts in [`conflated`](Self::conflated) (and [`Stats::conflated`](crate::Stats::conflated)).
/// A dropped one counts in neither, only in `dropped`.
///
/// # `select!`
///
/// [`receiver`](Self::receiver) is a plain `crossbeam_channel::Receiver`, so the channel
/// drops into a `select!` loop. What it yields is a [`Pending`] token per pending key;
/// [`Pending::take`] gives that key's latest item (a publish landing between the
/// receive and the `take` is the item you get). [`recv`](Self::recv) and the other
/// methods here do both steps.
///
/// ```
/// use crossbeam_channel::{after, select};
/// use std::time::Duration;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Quote { symbol: &'static str, bid: f64 }
///
/// let feed = fanout::Broadcaster::<Quote>::start()?;
/// let quotes = feed.subscribe_conflating(|q: &Quote| q.symbol, 500)?;
/// feed.publish(Quote { symbol: "EURUSD", bid: 1.0841 })?;
/// feed.publish(Quote { symbol: "GBPUSD", bid: 1.2710 })?;
/// feed.publish(Quote { symbol: "EURUSD", bid: 1.0842 })?; // replaces the first
///
/// let timeout = after(Duration::from_secs(1));
/// select! {
///     recv(quotes.receiver()) -> pending => {
///         assert_eq!(pending?.take(), Quote { symbol: "EURUSD", bid: 1.0842 });
///     }
///     recv(timeout) -> _ => panic!("no quote within a second"),
/// }
/// assert_eq!(quotes.recv()?.symbol, "GBPUSD");
/// assert_eq!((quotes.conflated(), quotes.dropped()), (1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Why a separate type
///
/// Conflation is not an [`OverflowPolicy`](crate::OverflowPolicy): it needs a key, and it
/// changes what the queue holds — a token per key, resolved to the latest item when
/// opened, where a [`Channel`](crate::Channel)'s receiver yields the items themselves. A
/// crossbeam queue cannot replace an item in place, so a receiver of items could only
/// conflate with a relay thread per channel.
///
/// # Cost
///
/// A publish to a conflating channel costs the key function and the key's hash, a clone
/// of the item, the channel's lock (one compare-and-swap and one swap; no poisoning) and
/// one lookup in its index of keys, plus a queue push when the key was not pending; a
/// receive costs a queue pop and the lock. Keys stay in the channel's table once taken,
/// so a key that comes back needs no insert; past `capacity` distinct keys the one idle
/// longest makes room (an index removal and an insert). The channel holds at most
/// `capacity` keys and items plus a token queue of `capacity` 24-byte slots allocated up
/// front. `PubSub` clients keep the topic bytes as the key: a slice of the frame that
/// first brought the topic, so a resident topic keeps that frame alive, pending or not (at
/// most 2 × `capacity` frames per channel, the latest items included).
///
/// Measured (`PERFORMANCE.md`, "Conflation"): for a consumer that has fallen behind, a
/// publish that replaces costs about what `DropOldest` pays with room, and a third of
/// what it pays on a full queue; for one that keeps up, a publish for a key that is not
/// pending costs about 1.8× the instructions and 2.5× the time of a `DropOldest` push
/// into a queue with room (the hash, the lock, the lookup of the key's slot and the
/// token's reference count, on top of the same queue push).
///
/// # Lifecycle
///
/// As for a [`Channel`](crate::Channel): dropping it unsubscribes; after an unsubscribe
/// or a shutdown its receiver yields what is pending, then reports disconnection;
/// [`disconnect_reason`](Self::disconnect_reason) says why. A key function (or a key's
/// `Hash`/`Eq`) that panics is caught like a panicking callback: the channel is closed
/// with [`DisconnectReason::Panicked`].
pub struct ConflatingChannel<M> {
    /// Its place in the engine. First, so it is dropped first: the sink is closed (and
    /// its removal asked for) before the receiver goes.
    membership: Membership<M>,
    /// Closes the sink's inline open flag on drop (before `membership` closes the shared
    /// state), so that publishers skip the sink without looking at the shared state.
    closer: SinkCloser<M>,
    /// The token queue's consumer end.
    receiver: Receiver<Pending<M>>,
    /// Replacement counter, shared with the sink's table.
    conflated: Arc<ConflationCount>,
}

impl<M: Clone + Send + 'static> ConflatingChannel<M> {
    /// Registers client `id` of `engine` (subscribed to `topic`, if given) with a new
    /// conflating sink keyed by `key`, tracks its count in `totals`, and returns the
    /// consumer's end. What both faces' conflating subscribe calls do.
    pub(crate) fn register<K, F>(
        engine: &Engine<M>,
        totals: &ConflationTotals,
        id: ClientId,
        topic: Option<Topic>,
        capacity: usize,
        key: F,
    ) -> Result<Self, Error>
    where
        K: Hash + Eq + Clone + Send + 'static,
        F: Fn(&M) -> K + Send + Sync + 'static,
    {
        conflating_sink::validate_capacity(capacity)?;
        let (sink, receiver, conflated) = ConflatingSink::new(capacity, key);
        let state = Arc::new(SinkState::new());
        let sink = Arc::new(Sink::conflating(id, sink, Arc::clone(&state)));
        let closer = SinkCloser::new(&sink);
        engine.register_shared(id, sink, topic)?;
        totals.track(Arc::clone(&conflated));
        Ok(Self {
            membership: Membership::new(state, id, engine.link().clone()),
            closer,
            receiver,
            conflated,
        })
    }
}

impl<M> ConflatingChannel<M> {
    /// The crossbeam receiver of [`Pending`] tokens, for `select!`; open each with
    /// [`Pending::take`].
    pub fn receiver(&self) -> &Receiver<Pending<M>> {
        &self.receiver
    }

    /// Blocks until a key is pending and returns its latest item; `Err` once
    /// disconnected and drained.
    pub fn recv(&self) -> Result<M, RecvError> {
        self.receiver.recv().map(Pending::take)
    }

    /// The latest item of the oldest pending key, if any key is pending.
    pub fn try_recv(&self) -> Result<M, TryRecvError> {
        self.receiver.try_recv().map(Pending::take)
    }

    /// Blocks for at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<M, RecvTimeoutError> {
        self.receiver.recv_timeout(timeout).map(Pending::take)
    }

    /// Blocking iterator; ends once disconnected and drained.
    pub fn iter(&self) -> impl Iterator<Item = M> + '_ {
        self.receiver.iter().map(Pending::take)
    }

    /// Iterator over what is pending now.
    pub fn try_iter(&self) -> impl Iterator<Item = M> + '_ {
        self.receiver.try_iter().map(Pending::take)
    }

    /// Keys pending and not yet received.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// Whether no key is pending.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// This subscriber's client id.
    pub fn id(&self) -> ClientId {
        self.membership.id()
    }

    /// Items dropped because `capacity` other keys were pending.
    pub fn dropped(&self) -> u64 {
        self.membership.dropped()
    }

    /// Items replaced, before the consumer took them, by a newer item for the same key.
    pub fn conflated(&self) -> u64 {
        self.conflated.get()
    }

    /// Whether publishers still deliver here.
    pub fn is_connected(&self) -> bool {
        self.membership.is_connected()
    }

    /// Why the channel stopped receiving, or `None` while it is connected.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.membership.disconnect_reason()
    }

    /// Whether this channel belongs to the engine `link` points at.
    pub(crate) fn is_from(&self, link: &EngineLink<M>) -> bool {
        self.membership.is_from(link)
    }
}

impl<M> Drop for ConflatingChannel<M> {
    fn drop(&mut self) {
        // The inline flag first, as a `Channel` does; then `membership` closes the shared
        // state and asks for the prune, and the receiver goes last.
        self.closer.close();
    }
}

impl<M> fmt::Debug for ConflatingChannel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConflatingChannel")
            .field("id", &self.id())
            .field("pending", &self.len())
            .field("conflated", &self.conflated())
            .field("dropped", &self.dropped())
            .field("disconnect_reason", &self.disconnect_reason())
            .finish()
    }
}
