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
//! get the join shortly after `track` returned.
//!
//! # Across hosts
//!
//! With a bridge (`fanout::bridge`) attached (feature `redis` or `nats`; on by default,
//! see `BridgeBuilder::presence`), presence spans every engine bridged to the namespace:
//!
//! - **One list everywhere.** [`PubSub::list`](crate::PubSub::list) on any engine returns
//!   the members of every bridged engine; [`count_members`](crate::PubSub::count_members)
//!   counts them in O(1). A member is named by its engine's node id and its client
//!   ([`Member::node`], [`Member::client`]; the same pair in Presence frames), so client
//!   ids that repeat across engines do not collide.
//! - **Renamed with events.** An engine's own members are named `NodeId(0)` while it has
//!   no bridge and the bridge's node id (new at each attach) while one is attached. When
//!   a bridge attaches or detaches, every subscriber of a topic on this engine is told,
//!   for each of the engine's members there, a leave under the old name then a join
//!   under the new one, in order with every other change: a list kept from
//!   [`subscribe_with_members`](crate::PubSub::subscribe_with_members) (or from empty)
//!   and the events stays exactly `list`, across any number of attaches and detaches.
//!   Other engines never see the `NodeId(0)` name. This costs two events per member
//!   at each attach and detach (none at an attach before anyone is tracked).
//! - **Each change once.** A subscriber of the topic on any engine gets one join per
//!   member joining anywhere (tracking again with new metadata: one join carrying it)
//!   and one leave per member leaving — never one per engine.
//! - **Liveness.** Heartbeats run on the bridge (1 s by default). An engine not heard
//!   from for the down period (30 s by default, as Phoenix.Tracker) is taken as down:
//!   its members leave everywhere, with the events sent; if it comes back they join
//!   again; silent past the drop period (10 min) its state is dropped. A detach,
//!   shutdown or drop of a bridge sends a goodbye: its members leave the other engines
//!   at once (a few ms measured), and the other engines' members leave this one's list,
//!   with the events.
//! - **Late joiners and gaps.** An engine that attaches asks every engine for its
//!   state; one that sees a gap in an engine's numbered changes (a Redis restart, a
//!   dropped connection, a NATS server lost) asks for that engine's state; both
//!   converge within a heartbeat or two. A state too long for one broker message (the
//!   bridge's `max_message_len`, a NATS server's `max_payload`) travels in parts, applied
//!   only once all are in. Push frames stay ephemeral: only members are exchanged.
//!
//! How: each engine owns its members and alone changes them; the bridge sends its
//! changes as numbered deltas and its whole state on request, in presence envelopes
//! (`transport::presence_sync`, mode 2 of the bridge envelope), and keeps a replica of
//! every other engine's members (the model of Phoenix.Tracker, checked by a simulation
//! that delivers messages out of order, twice or never, across crashes and restarts:
//! `tests/presence_merge.rs`). Listing takes this engine's presence lock and the
//! bridge's replica lock one after the other, never the writer role.
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

#[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
pub(crate) mod replica;
