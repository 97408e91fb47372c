//! Presence: who is in a topic, with their metadata, and join/leave events — the minimal
//! Phoenix.Presence.
//!
//! [`PubSub::track`] puts a registered client in a topic's member list with metadata
//! (a display name, a device, a status: any bytes); [`PubSub::list`] returns the members;
//! [`PubSub::untrack`] takes one out. Every change goes to the topic's subscribers as a
//! [Presence frame](crate::transport::presence) — kind 2, beside the Push frames of
//! broadcasts — so a client keeps its own member list from the events.
//!
//! # Guarantees
//!
//! - From when `track` returns, `list` shows the member with its metadata; from when
//!   `untrack` returns, it does not.
//! - A client that goes away by any path — `unregister`, a dropped channel, the
//!   disconnect policy, a panicking callback — leaves every topic it was tracked in, and
//!   each leave event goes out. Shutdown empties every list (there is nobody left to
//!   tell).
//! - Events for the changes of one engine are broadcast in the order the changes were
//!   applied. Tracking again with the same metadata is no change and sends nothing; with
//!   new metadata it sends a join carrying it.
//! - Tracking is independent of subscribing: a member need not subscribe to its topic,
//!   and the events go to whoever subscribes (by name or by pattern).
//!
//! Events are delivered after the change is applied and before the call that made it
//! returns, by the thread that applied it — unless another thread is delivering presence
//! events at that moment; then that thread delivers this one too, and a subscriber may
//! get the join shortly after `track` returned. Presence is per engine: the Redis bridge (feature
//! `redis`) carries Push frames only, so each host lists its own members. Presence
//! frames are self-describing (kind byte, topic, member), so a bridge can carry them
//! later without a format change.
//!
//! ```
//! use fanout::transport::{decode_any, Frame, PresenceEvent};
//! use fanout::{Bytes, PubSub};
//!
//! let chat = PubSub::<str>::new()?;
//! let (alice, watcher) = (chat.generate_client_id(), chat.generate_client_id());
//! chat.register(alice, |_| {})?;
//! let events = chat.register_channel(watcher)?;
//! chat.subscribe(watcher, "room.rust")?;
//!
//! chat.track(alice, "room.rust", Bytes::from_static(b"Alice"))?;
//! assert_eq!(chat.list("room.rust")?[0].meta, "Alice");
//! let frame = events.recv()?;
//! let Frame::Presence(join) = decode_any(&frame)? else { panic!("not a presence frame") };
//! assert_eq!((join.event, join.client, join.meta), (PresenceEvent::Join, alice.as_u64(), &b"Alice"[..]));
//!
//! chat.unregister(alice)?; // leaves every topic
//! assert!(chat.list("room.rust")?.is_empty());
//! let frame = events.recv()?;
//! let Frame::Presence(leave) = decode_any(&frame)? else { panic!("not a presence frame") };
//! assert_eq!(leave.event, PresenceEvent::Leave);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod member;

use bytes::Bytes;

pub use member::Member;

use crate::face::pubsub::PubSub;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
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
