//! [`Channel`]: the consumer's end of a channel sink.

use std::fmt;
use std::time::Duration;

use crate::consumer::disconnect_reason::DisconnectReason;
use crate::consumer::membership::Membership;
use crate::engine::{Engine, EngineLink};
use crate::sink::{ChannelSink, Sink, SinkCloser, SinkState};
use crate::sync::queue::{Iter, Receiver, RecvError, RecvTimeoutError, TryIter, TryRecvError};
use crate::sync::Arc;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::policy::ChannelConfig;
use crate::vocab::topic::Topic;

/// A subscription whose frames arrive on a bounded queue.
///
/// Made by [`Broadcaster::subscribe`](crate::Broadcaster::subscribe) (items are the
/// published messages) or [`PubSub::register_channel`](crate::PubSub::register_channel)
/// (items are `Bytes` Push frames). [`receiver`](Self::receiver) is a plain
/// `crossbeam_channel::Receiver`, so a channel drops straight into a
/// `crossbeam_channel::select!` loop beside sockets' channels and timers.
///
/// # Dropping
///
/// Dropping a `Channel` unsubscribes it: it stops receiving at once (publishers skip it)
/// and its slot leaves the engine's snapshot promptly, whether or not anything is
/// published afterwards. Nothing leaks when a consumer goes away.
///
/// # Losses
///
/// When the queue is full the channel's [`OverflowPolicy`](crate::OverflowPolicy)
/// applies. [`dropped`](Self::dropped) counts every frame it lost;
/// [`disconnect_reason`](Self::disconnect_reason) says whether and why it was cut off.
/// After a disconnect the receiver yields what is still queued, then reports
/// disconnection.
///
/// # Examples
///
/// ```
/// use crossbeam_channel::{after, select};
/// use std::time::Duration;
///
/// let prices = fanout::Broadcaster::<u64>::start()?;
/// let channel = prices.subscribe()?;
/// prices.publish(42)?;
///
/// let timeout = after(Duration::from_secs(1));
/// select! {
///     recv(channel.receiver()) -> price => assert_eq!(price, Ok(42)),
///     recv(timeout) -> _ => panic!("no price within a second"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Channel<M> {
    /// Its place in the engine. First, so it is dropped first: the sink is closed (and
    /// its removal asked for) before the receiver goes.
    membership: Membership<M>,
    /// Closes the sink's inline open flag on drop (before `membership` closes the shared
    /// state), so that publishers skip the sink at once even when the queue stays
    /// connected — under drop-oldest the sink holds a receiver of its own, and a caller
    /// may have cloned [`receiver`](Self::receiver).
    closer: SinkCloser<M>,
    /// The queue's consumer end.
    receiver: Receiver<M>,
}

impl<M: Clone + Send + 'static> Channel<M> {
    /// Registers `id` in `engine` with a new channel sink of `config` (subscribed to
    /// `topic`, if given) and returns the consumer's end.
    pub(crate) fn register(
        engine: &Engine<M>,
        id: ClientId,
        config: ChannelConfig,
        topic: Option<Topic>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let (sink, receiver) = ChannelSink::new(config);
        let state = Arc::new(SinkState::new());
        let sink = Arc::new(Sink::channel(id, sink, Arc::clone(&state)));
        let closer = SinkCloser::new(&sink);
        engine.register_shared(id, sink, topic)?;
        Ok(Self {
            membership: Membership::new(state, id, engine.link().clone()),
            closer,
            receiver,
        })
    }
}

impl<M> Channel<M> {
    /// The crossbeam receiver, for `select!` and everything else crossbeam offers.
    pub fn receiver(&self) -> &Receiver<M> {
        &self.receiver
    }

    /// Blocks until a frame arrives; `Err` once disconnected and drained.
    pub fn recv(&self) -> Result<M, RecvError> {
        self.receiver.recv()
    }

    /// A queued frame if there is one.
    pub fn try_recv(&self) -> Result<M, TryRecvError> {
        self.receiver.try_recv()
    }

    /// Blocks for at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<M, RecvTimeoutError> {
        self.receiver.recv_timeout(timeout)
    }

    /// Blocking iterator; ends once disconnected and drained.
    pub fn iter(&self) -> Iter<'_, M> {
        self.receiver.iter()
    }

    /// Iterator over what is queued now.
    pub fn try_iter(&self) -> TryIter<'_, M> {
        self.receiver.try_iter()
    }

    /// Frames queued and not yet received.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// This subscriber's client id.
    pub fn id(&self) -> ClientId {
        self.membership.id()
    }

    /// Frames this channel's overflow policy dropped so far.
    pub fn dropped(&self) -> u64 {
        self.membership.dropped()
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

impl<M> Drop for Channel<M> {
    fn drop(&mut self) {
        // The inline flag first: a publisher that sees it closed skips without looking at
        // the shared state. Then the fields: `membership` closes the shared state and asks
        // for the prune, and the receiver goes last.
        self.closer.close();
    }
}

impl<'a, M> IntoIterator for &'a Channel<M> {
    type Item = M;
    type IntoIter = Iter<'a, M>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<M> fmt::Debug for Channel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id())
            .field("queued", &self.len())
            .field("dropped", &self.dropped())
            .field("disconnect_reason", &self.disconnect_reason())
            .finish()
    }
}
