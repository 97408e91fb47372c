//! [`PubSub`]'s presence calls — [`track`](PubSub::track), [`untrack`](PubSub::untrack),
//! [`list`](PubSub::list). What presence promises is in [`crate::presence`].

use bytes::Bytes;

use crate::face::pubsub::PubSub;
#[cfg(any(feature = "redis", feature = "nats"))]
use crate::transport::presence::{encode_presence, PresenceEvent};
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::member::Member;
use crate::vocab::node::NodeId;
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

    /// The members of `topic` now, with their metadata: this engine's ordered by client
    /// id, then (with a bridge attached) every other bridged engine's, ordered by
    /// (node, client). Takes this engine's presence lock and the bridge's view lock
    /// one after the other, never the writer role: listing does not hold up `track`
    /// longer than copying this engine's members.
    ///
    /// Errors: [`Error::InvalidTopic`], [`Error::Closed`].
    pub fn list(&self, topic: impl TopicRef) -> Result<Vec<Member>, Error> {
        if self.engine.is_closed() {
            return Err(Error::Closed);
        }
        let key = topic.topic_key(self.engine.config().max_topic_len)?;
        let mut members = Vec::new();
        let mut local = Vec::new();
        let node = self.engine.for_each_member(key.name, |client, meta| {
            local.push((client, meta.clone()));
        });
        members.extend(
            local
                .into_iter()
                .map(|(client, meta)| Member { node, client, meta }),
        );
        #[cfg(any(feature = "redis", feature = "nats"))]
        if let Some(remote) = self.tap.remote_members.get() {
            remote.list(key.name, &mut members);
        }
        Ok(members)
    }

    /// Subscribes client `id` to `topic` and hands it, first, one Presence join frame per
    /// member of the topic now — this engine's and, with a bridge attached, every other
    /// bridged engine's — then every later join and leave: the member list and its
    /// changes in one ordered stream, nothing missed or doubled in between (Phoenix's
    /// `presence_state` then `presence_diff`). A client that builds its list from the
    /// frames it receives needs no separate snapshot.
    ///
    /// For a client not yet subscribed to `topic` (by name or pattern). It waits for a
    /// presence delivery in progress on another thread; called from inside one (a
    /// sink's callback) it refuses with [`Error::InPresenceDelivery`].
    ///
    /// Errors: those of [`subscribe`](Self::subscribe), and
    /// [`Error::InPresenceDelivery`].
    pub fn subscribe_with_members(&self, id: ClientId, topic: impl TopicRef) -> Result<(), Error> {
        let topic = topic.to_topic(self.engine.config().max_topic_len)?;
        let key = topic.topic_key(self.engine.config().max_topic_len)?;
        let subscribe = || self.subscribe(id, &topic);
        #[cfg(any(feature = "redis", feature = "nats"))]
        if let Some(remote) = self.tap.remote_members.get() {
            // The bridge's delivery turn first, then the engine's (module docs of
            // `engine::presence_snapshot`).
            let mut result = Err(Error::Closed);
            remote.in_turn(&mut || {
                let others = || {
                    let mut members = Vec::new();
                    remote.list(key.name, &mut members);
                    members
                        .iter()
                        .filter_map(|m| {
                            encode_presence(
                                key.name,
                                PresenceEvent::Join,
                                m.node,
                                m.client.as_u64(),
                                &m.meta,
                            )
                            .ok()
                        })
                        .collect()
                };
                result = self
                    .engine
                    .subscribe_with_snapshot(id, key, subscribe, others);
            });
            return result;
        }
        self.engine
            .subscribe_with_snapshot(id, key, subscribe, Vec::new)
    }

    /// The node id this engine's members carry in [`list`](Self::list) and in Presence
    /// frames: its bridge's node id while a bridge with presence is attached, else
    /// `NodeId(0)`. When it changes (a bridge with presence attaches or detaches), every
    /// subscriber of a topic with members is told a leave of each under the old id, then
    /// a join under the new one, in order with the other changes: a list kept from
    /// [`subscribe_with_members`](Self::subscribe_with_members) and the events stays
    /// exact.
    pub fn node_id(&self) -> NodeId {
        self.engine.presence_node()
    }

    /// How many members `topic` has now, on this engine and (with a bridge attached) on
    /// every other bridged engine: O(1), without copying the list.
    ///
    /// Errors: [`Error::InvalidTopic`], [`Error::Closed`].
    pub fn count_members(&self, topic: impl TopicRef) -> Result<usize, Error> {
        if self.engine.is_closed() {
            return Err(Error::Closed);
        }
        let key = topic.topic_key(self.engine.config().max_topic_len)?;
        #[allow(unused_mut)]
        let mut count = self.engine.count_members(key.name);
        #[cfg(any(feature = "redis", feature = "nats"))]
        if let Some(remote) = self.tap.remote_members.get() {
            count += remote.count(key.name);
        }
        Ok(count)
    }
}
