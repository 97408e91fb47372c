//! What a capability on top of a [`PubSub`] — a bridge to other hosts — sees of its
//! engine: the one documented way in, so that no capability reaches into `engine/`.
//!
//! - **Outgoing broadcasts**: [`PubSub::tap`] is the slot a forwarder attaches to; every
//!   broadcast then also hands its Push frame (and its `broadcast_from` sender) to the
//!   forwarder's bounded queue, without blocking (see [`Tap`]).
//! - **Incoming frames**: [`PubSub::deliver_remote`] delivers a frame that came from
//!   another engine to this engine's subscribers only; it is never forwarded again.
//! - **Which topics are served here**: [`PubSub::watch_topics`] returns the topics with
//!   local subscribers now and then reports each change as a [`TopicEvent`], in the
//!   order the writer applied them, none missed or doubled; [`PubSub::unwatch_topics`]
//!   stops it.
//!
//! Lifecycle and liveness come from the face's public calls: [`PubSub::downgrade`] for
//! a handle that does not keep the engine running, [`PubSub::is_closed`].

use std::sync::Arc;

use bytes::Bytes;

use crate::face::pubsub::PubSub;
use crate::face::tap::Tap;
use crate::vocab::error::Error;
use crate::vocab::topic::TopicRef;
use crate::vocab::topic_event::TopicEvent;

impl<M: ?Sized> PubSub<M> {
    /// Delivers a frame that came from another engine to this engine's subscribers only
    /// (never forwarded again): the Redis bridge's receiving end.
    #[cfg(feature = "redis")]
    pub(crate) fn deliver_remote(&self, topic: &str, frame: &Bytes) -> Result<usize, Error> {
        let key = topic.topic_key(self.max_topic_len())?;
        self.engine.broadcast_ref(key, None, frame)
    }

    /// Starts sending topic events (first subscriber, last subscriber) to `events` and
    /// returns the topics with subscribers now: a per-topic Redis bridge follows them.
    #[cfg(feature = "redis")]
    pub(crate) fn watch_topics(
        &self,
        events: crossbeam_channel::Sender<TopicEvent>,
    ) -> Result<Vec<Arc<str>>, Error> {
        self.engine.watch_topics(events)
    }

    /// Stops the topic events.
    #[cfg(feature = "redis")]
    pub(crate) fn unwatch_topics(&self) {
        self.engine.unwatch_topics();
    }

    /// The slot a Redis bridge attaches to.
    #[cfg(feature = "redis")]
    pub(crate) fn tap(&self) -> &Arc<Tap> {
        &self.tap
    }
}
