//! [`PubSub`]'s presence calls — [`track`](PubSub::track), [`untrack`](PubSub::untrack),
//! [`list`](PubSub::list). What presence promises is in [`crate::presence`].

use bytes::Bytes;

use crate::face::pubsub::PubSub;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::member::Member;
use crate::vocab::topic::TopicRef;

impl<M: ?Sized> PubSub<M> {
    /// Tracks client `id` in `topic`'s member list with `meta`, and tells the topic's
    /// subscribers (a join). Tracking again replaces the metadata (a join with the new
    /// metadata; none if it is unchanged). See the [module docs](crate::presence).
    ///
    /// Errors: [`Error::UnknownClient`], [`Error::InvalidTopic`], [`Error::Closed`].
    pub fn track(&self, id: ClientId, topic: impl TopicRef, meta: Bytes) -> Result<(), Error> {
        let topic = topic.to_topic(self.engine.config().max_topic_len)?;
        self.engine.track(id, topic, meta)
    }

    /// Takes client `id` out of `topic`'s member list and tells the topic's subscribers
    /// (a leave). A no-op if it is not tracked there.
    ///
    /// Errors: [`Error::UnknownClient`], [`Error::InvalidTopic`], [`Error::Closed`].
    pub fn untrack(&self, id: ClientId, topic: impl TopicRef) -> Result<(), Error> {
        let topic = topic.to_topic(self.engine.config().max_topic_len)?;
        self.engine.untrack(id, topic)
    }

    /// The members of `topic` now, ordered by client id, with their metadata.
    ///
    /// Errors: [`Error::InvalidTopic`], [`Error::Closed`].
    pub fn list(&self, topic: impl TopicRef) -> Result<Vec<Member>, Error> {
        if self.engine.is_closed() {
            return Err(Error::Closed);
        }
        let key = topic.topic_key(self.engine.config().max_topic_len)?;
        let mut members = Vec::new();
        self.engine.for_each_member(key.name, |client, meta| {
            members.push(Member {
                client,
                meta: meta.clone(),
            });
        });
        Ok(members)
    }
}
