//! [`Broadcaster`]: a typed broadcaster with channels, modelled on dream's
//! `services/broadcaster`.

use std::fmt;
use std::hash::Hash;

#[cfg(feature = "async")]
use crate::consumer::async_channel::AsyncChannel;
use crate::consumer::channel::Channel;
use crate::consumer::conflating_channel::ConflatingChannel;
use crate::engine::{Change, Engine};
use crate::face::builder::Builder;
use crate::sync::Arc;
use crate::vocab::error::Error;
use crate::vocab::error::StartError;
use crate::vocab::policy::ChannelConfig;
use crate::vocab::stats::{ConflationTotals, Stats};
use crate::vocab::topic::Topic;

/// The name of the one internal topic every channel of a broadcaster joins.
const ALL: &str = "*";

/// Publishes typed messages to every subscribed [`Channel`].
///
/// Each channel receives its own clone of each message: use `Arc<T>` or `Bytes` for
/// messages that are expensive to clone (then a clone is one atomic increment). The
/// handle is `Clone + Send + Sync`; the engine stops when the last handle is dropped or
/// on [`shutdown`](Self::shutdown), and every channel's receiver then ends.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use fanout::{Broadcaster, ChannelConfig, OverflowPolicy};
///
/// #[derive(Debug)]
/// struct Quote { symbol: &'static str, bid: f64 }
///
/// let feed = Broadcaster::<Arc<Quote>>::start()?;
/// let strategy = feed.subscribe()?;
/// let latest_only = feed.subscribe_with(ChannelConfig::new(1, OverflowPolicy::DropOldest))?;
///
/// for bid in [1.0841, 1.0842, 1.0843] {
///     assert_eq!(feed.publish(Arc::new(Quote { symbol: "EURUSD", bid }))?, 2);
/// }
/// assert_eq!(strategy.try_iter().count(), 3);
/// assert_eq!(latest_only.recv()?.bid, 1.0843);
/// assert_eq!(latest_only.dropped(), 2);
///
/// drop(strategy); // unsubscribes
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Broadcaster<M> {
    engine: Arc<Engine<M>>,
    /// The one topic every channel joins, resolved once.
    all: Topic,
    /// The replacement counts of its conflating channels, for [`Stats::conflated`].
    conflation: Arc<ConflationTotals>,
}

impl<M> Clone for Broadcaster<M> {
    fn clone(&self) -> Self {
        Self {
            engine: Arc::clone(&self.engine),
            all: self.all.clone(),
            conflation: Arc::clone(&self.conflation),
        }
    }
}

impl<M: Clone + Send + 'static> fmt::Debug for Broadcaster<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<M: Clone + Send + 'static> Builder<Broadcaster<M>> {
    /// Starts the engine (and its background thread).
    pub fn build(self) -> Result<Broadcaster<M>, StartError> {
        let all = Topic::new(ALL, self.config.max_topic_len)
            .map_err(|_| StartError::InvalidConfig("max topic length must be at least 1"))?;
        Ok(Broadcaster {
            engine: Arc::new(Engine::start(self.config, None)?),
            all,
            conflation: Arc::new(ConflationTotals::new()),
        })
    }
}

impl<M: Clone + Send + 'static> Broadcaster<M> {
    /// Starts a broadcaster with default settings.
    pub fn start() -> Result<Self, StartError> {
        Self::builder().build()
    }

    /// A builder for a broadcaster with custom settings.
    pub fn builder() -> Builder<Self> {
        Builder::new()
    }

    /// A new channel with the default capacity and overflow policy. When this returns,
    /// every `publish` that starts afterwards reaches it.
    ///
    /// Errors: [`Error::Closed`].
    pub fn subscribe(&self) -> Result<Channel<M>, Error> {
        self.subscribe_with(self.engine.config().default_channel)
    }

    /// A new channel with an explicit capacity and overflow policy.
    ///
    /// Errors: [`Error::InvalidConfig`] for a capacity of zero, [`Error::Closed`].
    pub fn subscribe_with(&self, config: ChannelConfig) -> Result<Channel<M>, Error> {
        let id = self.engine.generate_client_id();
        Channel::register(&self.engine, id, config, Some(self.all.clone()))
    }

    /// A new [`AsyncChannel`] — a channel a task can `await` — with the default capacity
    /// and overflow policy (feature `async`). When this returns, every `publish` that
    /// starts afterwards reaches it; dropping it unsubscribes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let feed = fanout::Broadcaster::<u64>::start()?;
    /// let channel = feed.subscribe_async()?;
    /// feed.publish(42)?;
    /// assert_eq!(channel.recv().await?, 42);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Errors: [`Error::Closed`].
    #[cfg(feature = "async")]
    pub fn subscribe_async(&self) -> Result<AsyncChannel<M>, Error> {
        self.subscribe_async_with(self.engine.config().default_channel)
    }

    /// A new [`AsyncChannel`] with an explicit capacity and overflow policy.
    ///
    /// ```
    /// use fanout::{ChannelConfig, OverflowPolicy};
    ///
    /// let feed = fanout::Broadcaster::<u64>::start()?;
    /// let latest = feed.subscribe_async_with(ChannelConfig::new(1, OverflowPolicy::DropOldest))?;
    /// feed.publish(1)?;
    /// feed.publish(2)?;
    /// assert_eq!((latest.try_recv(), latest.dropped()), (Ok(2), 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Errors: [`Error::InvalidConfig`] for a capacity of zero, [`Error::Closed`].
    #[cfg(feature = "async")]
    pub fn subscribe_async_with(&self, config: ChannelConfig) -> Result<AsyncChannel<M>, Error> {
        let id = self.engine.generate_client_id();
        AsyncChannel::register(&self.engine, id, Some(self.all.clone()), config)
    }

    /// A new [conflating channel](ConflatingChannel): at most one pending message per
    /// key, where `key` maps a message to its key (a quote's symbol, an entity's id); a
    /// newer message for a pending key replaces it in place. When `capacity` distinct
    /// keys are pending, a message for yet another key is dropped and counted. When this
    /// returns, every `publish` that starts afterwards reaches it.
    ///
    /// `key` runs on the publisher's thread for every message, outside any lock; keep it
    /// cheap. A panic in it (or in the key's `Hash`/`Eq`) closes this channel only.
    ///
    /// ```
    /// let feed = fanout::Broadcaster::<(u32, f64)>::start()?;
    /// let latest = feed.subscribe_conflating(|&(id, _)| id, 64)?;
    /// for (id, x) in [(1, 0.1), (2, 0.2), (1, 0.3)] {
    ///     feed.publish((id, x))?;
    /// }
    /// assert_eq!(latest.try_iter().collect::<Vec<_>>(), [(1, 0.3), (2, 0.2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Errors: [`Error::InvalidConfig`] for a capacity of zero (or above `u32::MAX`),
    /// [`Error::Closed`].
    pub fn subscribe_conflating<K, F>(
        &self,
        key: F,
        capacity: usize,
    ) -> Result<ConflatingChannel<M>, Error>
    where
        K: Hash + Eq + Clone + Send + 'static,
        F: Fn(&M) -> K + Send + Sync + 'static,
    {
        let id = self.engine.generate_client_id();
        let all = Some(self.all.clone());
        ConflatingChannel::register(&self.engine, &self.conflation, id, all, capacity, key)
    }

    /// Sends `message` to every channel (a clone each). Returns how many channels took
    /// it; frames an overflow policy dropped do not count.
    ///
    /// Errors: [`Error::Closed`].
    #[inline]
    pub fn publish(&self, message: M) -> Result<usize, Error> {
        self.engine.broadcast_ref(self.all.key(), None, &message)
    }

    /// Unsubscribes `channel`: when this returns, no later `publish` reaches it, and its
    /// receiver ends once drained. Dropping the channel does the same.
    ///
    /// Errors: [`Error::UnknownClient`] if the channel is already unsubscribed or belongs
    /// to another broadcaster; [`Error::Closed`].
    pub fn unsubscribe(&self, channel: &Channel<M>) -> Result<(), Error> {
        if !channel.is_from(self.engine.link()) {
            return Err(Error::UnknownClient(channel.id()));
        }
        self.engine.mutate(Change::Unregister(channel.id()))
    }

    /// [`unsubscribe`](Self::unsubscribe) for a conflating channel: when this returns,
    /// no later `publish` reaches it, and its receiver ends once drained.
    ///
    /// Errors: as for `unsubscribe`.
    pub fn unsubscribe_conflating(&self, channel: &ConflatingChannel<M>) -> Result<(), Error> {
        if !channel.is_from(self.engine.link()) {
            return Err(Error::UnknownClient(channel.id()));
        }
        self.engine.mutate(Change::Unregister(channel.id()))
    }

    /// [`unsubscribe`](Self::unsubscribe) for an async channel: when this returns, no
    /// later `publish` reaches it, and its `recv` resolves to `Err` once drained
    /// (waking a task parked in it).
    ///
    /// ```
    /// let feed = fanout::Broadcaster::<u64>::start()?;
    /// let channel = feed.subscribe_async()?;
    /// feed.unsubscribe_async(&channel)?;
    /// assert_eq!(feed.publish(1)?, 0);
    /// assert_eq!(channel.disconnect_reason(), Some(fanout::DisconnectReason::Unsubscribed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Errors: as for `unsubscribe`.
    #[cfg(feature = "async")]
    pub fn unsubscribe_async(&self, channel: &AsyncChannel<M>) -> Result<(), Error> {
        if !channel.is_from(self.engine.link()) {
            return Err(Error::UnknownClient(channel.id()));
        }
        self.engine.mutate(Change::Unregister(channel.id()))
    }

    /// How many channels are subscribed now.
    pub fn subscriber_count(&self) -> usize {
        self.engine.subscriber_count(self.all.key())
    }

    /// Sizes and counters of this broadcaster.
    pub fn stats(&self) -> Stats {
        let mut stats = self.engine.stats();
        stats.conflated = self.conflation.total();
        stats
    }

    /// Closes the engine and joins its background thread; every channel's receiver ends with
    /// [`DisconnectReason::Shutdown`](crate::DisconnectReason::Shutdown), and later calls
    /// return [`Error::Closed`]. Idempotent.
    pub fn shutdown(&self) {
        self.engine.shutdown();
    }

    /// Whether the broadcaster has been shut down.
    pub fn is_closed(&self) -> bool {
        self.engine.is_closed()
    }
}
