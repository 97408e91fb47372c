//! Presence: who is in a topic, with their metadata, and join/leave events — the minimal
//! Phoenix.Presence.
//!
//! [`PubSub::track`](crate::PubSub::track) puts a registered client in a topic's member list with metadata
//! (a display name, a device, a status: any bytes); [`PubSub::list`](crate::PubSub::list) returns the members;
//! [`PubSub::untrack`](crate::PubSub::untrack) takes one out. Every change goes to the topic's subscribers as a
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

pub use crate::vocab::member::Member;
