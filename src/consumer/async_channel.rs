//! [`AsyncChannel`]: the consumer's end of an async channel sink (feature `async`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::consumer::disconnect_reason::DisconnectReason;
use crate::consumer::membership::Membership;
use crate::engine::Engine;
use crate::sink::{AsyncChannelSink, Sink, SinkCloser, SinkState};
use crate::sync::queue::{Receiver, RecvError, TryRecvError};
use crate::sync::waker_slot::{Parker, WakerSlot};
use crate::sync::Arc;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::policy::ChannelConfig;
use crate::vocab::topic::Topic;

/// A subscription whose frames arrive on a bounded queue that a task can `await`.
///
/// Made by [`Broadcaster::subscribe_async`](crate::Broadcaster::subscribe_async) (items
/// are the published messages) or [`PubSub::register_async`](crate::PubSub::register_async)
/// (items are `Bytes` Push frames). It is a [`Channel`](crate::Channel) in every respect
/// but how the consumer waits: the same bounded queue, the same
/// [`OverflowPolicy`](crate::OverflowPolicy) semantics, the same counters and disconnect
/// reasons, the same unsubscribe on drop. Publishers stay synchronous and never await;
/// the consumer awaits [`recv`](Self::recv) or uses the channel as a
/// [`Stream`](futures_core::Stream).
///
/// It needs no particular runtime: a publisher that queues an item for a parked consumer
/// calls its [`Waker`](std::task::Waker), which every executor (tokio, async-std, smol, a
/// hand-written `block_on`) provides.
///
/// # Waiting
///
/// - [`recv`](Self::recv) resolves to the next item, or to `Err(RecvError)` once the
///   channel is disconnected **and** drained. It is cancel-safe: dropping the future
///   (a losing `tokio::select!` branch, a timeout) never loses an item; the next `recv`
///   gets it.
/// - A task parked in `recv().await` is always woken by the next item, and by the channel
///   being disconnected (unsubscribed, overflowed under
///   [`Disconnect`](crate::OverflowPolicy::Disconnect), engine shut down).
/// - Several tasks may await one channel (it is `Sync`; share it in an `Arc`): each item
///   goes to one of them, and all parked tasks are woken when an item arrives, to race
///   for it.
///
/// # Dropping
///
/// Dropping an `AsyncChannel` unsubscribes it, exactly like dropping a `Channel`:
/// publishers skip it at once and its slot leaves the engine's snapshot promptly.
///
/// # Losses
///
/// When the queue is full the channel's policy applies; [`dropped`](Self::dropped) counts
/// every frame it lost (so does [`Stats::dropped`](crate::Stats::dropped));
/// [`disconnect_reason`](Self::disconnect_reason) says whether and why it was cut off.
/// Under [`Block`](crate::OverflowPolicy::Block) the *publisher's thread* blocks for up
/// to the bound, as for a crossbeam channel; it never awaits. So a task that publishes
/// to a `Block` channel whose consumer runs on the same executor thread (a
/// current-thread runtime) stalls that thread for the whole bound, and the frame is
/// dropped: publish from another thread, or pick another policy.
///
/// # Cost
///
/// A delivery costs what a [`Channel`](crate::Channel) delivery costs plus one relaxed
/// load (is anyone parked?), and a broadcast that reaches any async sink one `SeqCst`
/// fence in all; waking a parked consumer adds a lock and the executor's wake-up. A
/// consumer that keeps up never parks and never locks. Measured (PERFORMANCE.md, async
/// sinks): publish and drain 1.04 / 1.15 / 1.17× a channel sink's time at 1 / 16 / 256
/// subscribers; the publisher's side 1.09 / 1.09 / 1.27× at 1 / 256 / 4096. In memory, an async client
/// holds two allocations more than a channel client, 128 bytes requested: the
/// publisher side (boxed so that other sinks stay small) and the waker slot.
///
/// # Examples
///
/// With tokio:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let prices = fanout::Broadcaster::<u64>::start()?;
/// let channel = prices.subscribe_async()?;
///
/// let publisher = std::thread::spawn(move || {
///     for price in 1..=3 {
///         prices.publish(price).unwrap();
///     }
///     // `prices` is dropped here: the engine shuts down and the channel ends.
/// });
///
/// let mut received = Vec::new();
/// while let Ok(price) = channel.recv().await {
///     received.push(price);
/// }
/// assert_eq!(received, [1, 2, 3]);
/// publisher.join().unwrap();
/// # Ok(())
/// # }
/// ```
///
/// As a `Stream`, beside a timeout in `tokio::select!`:
///
/// ```
/// use std::time::Duration;
/// use futures_core::Stream;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let feed = fanout::Broadcaster::<&'static str>::start()?;
/// let mut updates = feed.subscribe_async()?;
/// feed.publish("hello")?;
///
/// // `Stream::poll_next`, by hand (a `StreamExt::next` from futures or tokio-stream
/// // does this for you).
/// let next = std::future::poll_fn(|cx: &mut Context<'_>| Pin::new(&mut updates).poll_next(cx));
/// tokio::select! {
///     update = next => assert_eq!(update, Some("hello")),
///     _ = tokio::time::sleep(Duration::from_secs(5)) => panic!("no update"),
/// }
/// # Ok(())
/// # }
/// ```
pub struct AsyncChannel<M> {
    /// Its place in the engine. First, so it is dropped first: the sink is closed (and
    /// its removal asked for) before the receiver goes.
    membership: Membership<M>,
    /// The queue's consumer end.
    receiver: Receiver<M>,
    /// Where a parked consumer leaves its waker, shared with the sink.
    slot: Arc<WakerSlot>,
    /// Closes the sink's inline open flag when this is dropped, as a `Channel` does:
    /// publishers then skip the sink without reading the shared state (a cache miss per
    /// delivery at 4,096 subscribers).
    closer: SinkCloser<M>,
}

impl<M> Drop for AsyncChannel<M> {
    fn drop(&mut self) {
        // The inline flag first; then the fields: `membership` closes the shared state
        // and asks for the prune, and the receiver goes after it.
        self.closer.close();
    }
}

impl<M: Clone + Send + 'static> AsyncChannel<M> {
    /// Registers client `id` of `engine` (subscribed to `topic`, if given) with a new
    /// async channel sink and returns the consumer's end. What both faces' async
    /// subscribe calls do.
    pub(crate) fn register(
        engine: &Engine<M>,
        id: ClientId,
        topic: Option<Topic>,
        config: ChannelConfig,
    ) -> Result<Self, Error> {
        config.validate()?;
        let (sink, receiver, slot) = AsyncChannelSink::new(config);
        let state = Arc::new(SinkState::new());
        let sink = Arc::new(Sink::async_channel(id, sink, Arc::clone(&state)));
        let closer = SinkCloser::new(&sink);
        engine.register_shared(id, sink, topic)?;
        Ok(Self {
            membership: Membership::new(state, id, engine.link().clone()),
            receiver,
            slot,
            closer,
        })
    }
}

impl<M> AsyncChannel<M> {
    /// Waits for the next item: `Ok(item)`, or `Err(RecvError)` once the channel is
    /// disconnected and drained. Cancel-safe: dropping the future before it resolves
    /// loses nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let feed = fanout::Broadcaster::<u32>::start()?;
    /// let channel = feed.subscribe_async()?;
    /// feed.publish(7)?;
    /// assert_eq!(channel.recv().await?, 7);
    /// feed.unsubscribe_async(&channel)?;
    /// assert!(channel.recv().await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv(&self) -> AsyncRecv<'_, M> {
        AsyncRecv {
            channel: self,
            parker: Parker::Keyed(0),
        }
    }

    /// Polls for the next item, registering `cx`'s waker if there is none yet: what
    /// [`recv`](Self::recv)'s future does, for hand-written futures and streams.
    ///
    /// `Ready(Ok(item))`, `Ready(Err(RecvError))` once disconnected and drained, or
    /// `Pending` — and then the task is woken when an item arrives or the channel is
    /// disconnected.
    ///
    /// ```
    /// use std::task::Poll;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let feed = fanout::Broadcaster::<u32>::start()?;
    /// let channel = feed.subscribe_async()?;
    /// let first = std::future::poll_fn(|cx| match channel.poll_recv(cx) {
    ///     Poll::Pending => Poll::Ready(None), // nothing yet: do something else
    ///     Poll::Ready(item) => Poll::Ready(Some(item)),
    /// })
    /// .await;
    /// assert!(first.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<M, RecvError>> {
        self.poll_recv_as(cx, &mut Parker::Anonymous)
    }

    /// [`poll_recv`](Self::poll_recv) for `parker`: a `recv` future's own entry in the
    /// waker slot, or an anonymous one.
    fn poll_recv_as(
        &self,
        cx: &mut Context<'_>,
        parker: &mut Parker,
    ) -> Poll<Result<M, RecvError>> {
        // Step 1 of the protocol (`sync::waker_slot`): a consumer that keeps up never
        // touches the slot.
        if let Some(ready) = self.ready() {
            return Poll::Ready(ready);
        }
        // Steps 2–3: park the waker and announce it, fenced.
        self.slot.register(cx.waker(), parker);
        // Step 4: look again. An item pushed after the first look whose publisher missed
        // the announcement is visible here; without this look it would sit in the queue
        // while we sleep.
        match self.ready() {
            Some(ready) => Poll::Ready(ready),
            None => Poll::Pending,
        }
    }

    /// The next item if there is one, `Some(Err)` if disconnected and drained, `None` if
    /// the queue is merely empty.
    fn ready(&self) -> Option<Result<M, RecvError>> {
        match self.receiver.try_recv() {
            Ok(item) => Some(Ok(item)),
            Err(TryRecvError::Disconnected) => Some(Err(RecvError)),
            Err(TryRecvError::Empty) => None,
        }
    }

    /// A queued item if there is one, without waiting.
    ///
    /// ```
    /// use crossbeam_channel::TryRecvError;
    ///
    /// let feed = fanout::Broadcaster::<u32>::start()?;
    /// let channel = feed.subscribe_async()?;
    /// assert_eq!(channel.try_recv(), Err(TryRecvError::Empty));
    /// feed.publish(1)?;
    /// assert_eq!(channel.try_recv(), Ok(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&self) -> Result<M, TryRecvError> {
        self.receiver.try_recv()
    }

    /// Items queued and not yet received.
    ///
    /// ```
    /// let feed = fanout::Broadcaster::<u32>::start()?;
    /// let channel = feed.subscribe_async()?;
    /// feed.publish(1)?;
    /// feed.publish(2)?;
    /// assert_eq!(channel.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// Whether nothing is queued.
    ///
    /// ```
    /// let feed = fanout::Broadcaster::<u32>::start()?;
    /// let channel = feed.subscribe_async()?;
    /// assert!(channel.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// This subscriber's client id.
    ///
    /// ```
    /// let pubsub = fanout::PubSub::<str>::new()?;
    /// let id = pubsub.generate_client_id();
    /// let frames = pubsub.register_async(id)?;
    /// assert_eq!(frames.id(), id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> ClientId {
        self.membership.id()
    }

    /// Items this channel's overflow policy dropped so far.
    ///
    /// ```
    /// use fanout::{ChannelConfig, OverflowPolicy};
    ///
    /// let feed = fanout::Broadcaster::<u32>::start()?;
    /// let channel = feed.subscribe_async_with(ChannelConfig::new(1, OverflowPolicy::DropNewest))?;
    /// feed.publish(1)?;
    /// feed.publish(2)?; // the queue is full: dropped
    /// assert_eq!((channel.try_recv(), channel.dropped()), (Ok(1), 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dropped(&self) -> u64 {
        self.membership.dropped()
    }

    /// Whether publishers still deliver here.
    ///
    /// ```
    /// let feed = fanout::Broadcaster::<u32>::start()?;
    /// let channel = feed.subscribe_async()?;
    /// assert!(channel.is_connected());
    /// feed.shutdown();
    /// assert!(!channel.is_connected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_connected(&self) -> bool {
        self.membership.is_connected()
    }

    /// Why the channel stopped receiving, or `None` while it is connected.
    ///
    /// ```
    /// use fanout::{ChannelConfig, DisconnectReason, OverflowPolicy};
    ///
    /// let feed = fanout::Broadcaster::<u32>::start()?;
    /// let channel = feed.subscribe_async_with(ChannelConfig::new(1, OverflowPolicy::Disconnect))?;
    /// feed.publish(1)?;
    /// feed.publish(2)?; // the queue is full: disconnected
    /// assert_eq!(channel.disconnect_reason(), Some(DisconnectReason::Overflow));
    /// assert_eq!(channel.try_recv(), Ok(1)); // what was queued is still received
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.membership.disconnect_reason()
    }

    /// Whether this channel belongs to the engine `link` points at.
    pub(crate) fn is_from(&self, link: &crate::engine::EngineLink<M>) -> bool {
        self.membership.is_from(link)
    }
}

/// The future [`AsyncChannel::recv`] returns: the next item, or `Err(RecvError)` once the
/// channel is disconnected and drained.
///
/// Cancel-safe: it holds no item while pending, so dropping it loses nothing.
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let feed = fanout::Broadcaster::<u32>::start()?;
/// let channel = feed.subscribe_async()?;
/// // Nothing yet: the timeout drops the pending future...
/// let waited = tokio::time::timeout(Duration::from_millis(1), channel.recv()).await;
/// assert!(waited.is_err());
/// // ...which took nothing with it.
/// feed.publish(3)?;
/// assert_eq!(channel.recv().await?, 3);
/// # Ok(())
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct AsyncRecv<'a, M> {
    /// The channel it receives from.
    channel: &'a AsyncChannel<M>,
    /// Its own entry in the channel's waker slot, once it has parked: replaced when it
    /// is polled again, withdrawn when it is dropped, so a cancelled future leaves no
    /// waker behind.
    parker: Parker,
}

impl<M> Future for AsyncRecv<'_, M> {
    type Output = Result<M, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `AsyncRecv` is `Unpin` (a reference and a key): no pinning to uphold.
        let this = self.get_mut();
        this.channel.poll_recv_as(cx, &mut this.parker)
    }
}

impl<M> Drop for AsyncRecv<'_, M> {
    fn drop(&mut self) {
        match self.parker {
            Parker::Keyed(key) if key != 0 => self.channel.slot.withdraw(key),
            _ => {}
        }
    }
}

impl<M> fmt::Debug for AsyncRecv<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRecv")
            .field("channel", &self.channel.id())
            .finish()
    }
}

/// The items, in order; ends once the channel is disconnected and drained.
impl<M> futures_core::Stream for AsyncChannel<M> {
    type Item = M;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<M>> {
        self.poll_recv(cx).map(Result::ok)
    }
}

impl<M> fmt::Debug for AsyncChannel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncChannel")
            .field("id", &self.id())
            .field("queued", &self.len())
            .field("dropped", &self.dropped())
            .field("disconnect_reason", &self.disconnect_reason())
            .finish()
    }
}
