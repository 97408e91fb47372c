//! What a capability on top of a [`PubSub`] — a bridge to other hosts — sees of its
//! engine: the one documented way in, so that no capability reaches into `engine/`.
//!
//! - **Outgoing broadcasts**: [`PubSub::tap`] is the slot a forwarder attaches to; every
//!   broadcast then also hands its Push frame (and its `broadcast_from` sender) to the
//!   forwarder's bounded queue, without blocking (see [`Tap`]).
//! - **Incoming frames**: [`PubSub::deliver_remote`] delivers a frame that came from
//!   another engine to this engine's subscribers only; it is never forwarded again.
//! - **Which topics and patterns are served here**: [`PubSub::watch_topics`] returns
//!   the topics and wildcard patterns with local subscribers now (as `Opened` and
//!   `PatternOpened` events) and then reports each change as a [`TopicEvent`], in the
//!   order the writer applied them, none missed or doubled; [`PubSub::unwatch_topics`]
//!   stops it.
//!
//! - **Who is tracked here**: [`PubSub::watch_presence`] returns this engine's members
//!   now and then hands every presence change to the bridge, in the order they were
//!   made, none missed or doubled (renaming this engine's members to the bridge's node
//!   id, and back at [`PubSub::unwatch_presence`], with a leave and a join each for this
//!   engine's subscribers); the bridge puts its view of other engines' members
//!   in the tap's `remote_members` slot, which `list` and `count_members` read, and
//!   delivers their joins and leaves with [`PubSub::deliver_remote`].
//!
//! - **How topics split into tokens**: `PubSub::separator` (a NATS bridge maps each
//!   token to a subject token).
//!
//! Lifecycle and liveness come from the face's public calls: [`PubSub::downgrade`] for
//! a handle that does not keep the engine running, [`PubSub::is_closed`].

use std::sync::Arc;

use bytes::Bytes;

use crate::engine::delivering_presence::DeliveringPresence;
use crate::engine::presence_table::PresenceChange;
use crate::face::pubsub::PubSub;
use crate::face::tap::Tap;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::node::NodeId;
use crate::vocab::topic::TopicRef;
use crate::vocab::topic_event::TopicEvent;

impl<M: ?Sized> PubSub<M> {
    /// Delivers a frame that came from another engine to this engine's subscribers only
    /// (never forwarded again): the Redis bridge's receiving end.
    #[cfg(any(feature = "redis", feature = "nats"))]
    pub(crate) fn deliver_remote(&self, topic: &str, frame: &Bytes) -> Result<usize, Error> {
        let key = topic.topic_key(self.max_topic_len())?;
        self.engine.broadcast_ref(key, None, frame)
    }

    /// Delivers a Presence frame about another engine's member to this engine's
    /// subscribers of `topic`, marked as a presence delivery (a callback that calls
    /// `subscribe_with_members` from inside it is refused rather than left waiting).
    #[cfg(any(feature = "redis", feature = "nats"))]
    pub(crate) fn deliver_remote_presence(
        &self,
        topic: &str,
        frame: &Bytes,
    ) -> Result<usize, Error> {
        let _delivering = DeliveringPresence::enter();
        self.deliver_remote(topic, frame)
    }

    /// Starts sending topic and pattern events (first subscriber, last subscriber) to
    /// `events` and returns the topics and patterns with subscribers now: an
    /// interest-routed bridge (Redis per-topic channels, NATS) follows them.
    #[cfg(any(feature = "redis", feature = "nats"))]
    pub(crate) fn watch_topics(
        &self,
        events: crossbeam_channel::Sender<TopicEvent>,
    ) -> Result<Vec<TopicEvent>, Error> {
        self.engine.watch_topics(events)
    }

    /// Starts handing every presence change to `watcher`, names this engine's members
    /// `node` (in `list` and Presence frames), and returns the members now as (topic,
    /// client, meta). This engine's subscribers are told of the rename — a leave under
    /// `NodeId(0)` and a join under `node` per member — before it returns; the watcher
    /// is not (the returned members are its start).
    #[cfg(any(feature = "redis", feature = "nats"))]
    pub(crate) fn watch_presence(
        &self,
        watcher: crossbeam_channel::Sender<PresenceChange>,
        node: NodeId,
    ) -> Result<Vec<(Arc<str>, ClientId, Bytes)>, Error> {
        self.engine.watch_presence(watcher, node)
    }

    /// Stops the presence watcher; this engine's members are named `NodeId(0)` again,
    /// and its subscribers are told (a leave under the bridge's node id and a join
    /// under `NodeId(0)` per member) before it returns.
    #[cfg(any(feature = "redis", feature = "nats"))]
    pub(crate) fn unwatch_presence(&self) {
        self.engine.unwatch_presence();
    }

    /// Stops the topic events.
    #[cfg(any(feature = "redis", feature = "nats"))]
    pub(crate) fn unwatch_topics(&self) {
        self.engine.unwatch_topics();
    }

    /// The token separator of topics and patterns: a NATS bridge maps topic tokens to
    /// subject tokens.
    #[cfg(feature = "nats")]
    pub(crate) fn separator(&self) -> char {
        self.engine.config().separator
    }

    /// The slot a Redis bridge attaches to.
    #[cfg(any(feature = "redis", feature = "nats"))]
    pub(crate) fn tap(&self) -> &Arc<Tap> {
        &self.tap
    }
}
