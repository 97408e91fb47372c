//! Loom models of presence across hosts, where the threads meet.
//!
//! With a bridge attached, an engine's member list is its own members (changed by user
//! threads through the writer) plus a replica of every other engine's (changed by the
//! bridge's receiving thread, which delivers the joins and leaves it makes). The merge
//! itself is pure and checked by simulation in `tests/presence_merge.rs`; these models
//! check what the simulation cannot see — the threads:
//!
//! - a subscriber taking the member list and every later change in one ordered step
//!   (`subscribe_with_members`) while a user thread tracks a member and the receiving
//!   thread applies another engine's delta, or that engine's restart: the joins it gets
//!   first plus the events after them give the final list, no join doubled or missed;
//! - the bridge detaching (the other engines' members leave, this engine's are renamed
//!   back to `NodeId(0)`) while a subscriber takes the list then the changes;
//! - the bridge attaching (this engine's members renamed to the bridge's node id) while
//!   a subscriber takes the list then the changes and a user thread tracks;
//! - a bridge attaching while a user thread tracks and while the receiving thread applies
//!   another engine's state, duplicated: afterwards the engine lists exactly what the
//!   replicated state says — its own members as the other engines learn them from what
//!   the bridge sends, and the other engine's as a replica of the messages it received.
//!
//! The bridge's two threads are played by the model through
//! `fanout::bridge::loom_seam::PresenceSeam` (compiled only under `--cfg loom`): the
//! real receiving end and presence exchange, attached as a bridge attaches them, with no
//! broker. Messages are real bridge envelopes.
#![cfg(loom)]

mod common;

/// The replica, compiled into this test as it is (as `tests/presence_merge.rs` does): the
/// reference the engine's lists are checked against.
#[allow(dead_code)]
#[path = "../../src/presence/replica.rs"]
mod replica;

/// The paths `replica.rs` imports from, here the crate's public ones.
mod vocab {
    pub mod node {
        pub use fanout::transport::NodeId;
    }
}
mod transport {
    pub mod presence_sync {
        pub use fanout::transport::presence_sync::*;
    }
}

use std::collections::BTreeMap;
use std::sync::Arc as StdArc;
use std::time::Instant;

use common::model;
use fanout::bridge::loom_seam::PresenceSeam;
use fanout::transport::presence_sync::{Entry, Message, Op};
use fanout::transport::{decode_any, encode_presence_envelope, Frame, NodeId, PresenceEvent};
use fanout::{Bytes, ChannelConfig, ClientId, OverflowPolicy, PubSub};
use loom::thread;

/// This engine's node id.
const ME: NodeId = NodeId(1);
/// Another engine.
const OTHER: NodeId = NodeId(2);
/// The same engine after a restart (a new process draws a new node id).
const OTHER_RESTARTED: NodeId = NodeId(3);
const ROOM: &str = "room";

/// A member list: (node, client) → metadata.
type Members = BTreeMap<(NodeId, u64), Bytes>;

fn pubsub() -> PubSub<str> {
    PubSub::<str>::builder()
        .command_capacity(2)
        .build()
        .expect("the engine starts")
}

/// A registered client that ignores what it is sent.
fn client(pubsub: &PubSub<str>) -> ClientId {
    let id = pubsub.generate_client_id();
    pubsub.register(id, |_: &Bytes| {}).unwrap();
    id
}

/// A message as the receiving thread reads it from the broker.
fn envelope(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_presence_envelope(message, &mut out);
    out
}

fn meta(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

/// `OTHER`'s state at version 1: its client 7 in the room.
fn other_state() -> Message {
    Message::State {
        origin: OTHER,
        version: 1,
        entries: vec![Entry {
            topic: StdArc::from(ROOM),
            client: 7,
            meta: meta("seven"),
        }],
    }
}

fn listed(pubsub: &PubSub<str>) -> Members {
    pubsub
        .list(ROOM)
        .unwrap()
        .into_iter()
        .map(|m| ((m.node, m.client.as_u64()), m.meta))
        .collect()
}

/// Replays the Presence frames a subscriber received, oldest first, into the list they
/// describe, failing on a join that changes nothing (doubled) or a leave of a member it
/// was never told joined (its join missed).
fn replay(frames: impl Iterator<Item = Bytes>) -> Members {
    let mut members = Members::new();
    for frame in frames {
        let Frame::Presence(p) = decode_any(&frame).unwrap() else {
            panic!("only presence frames here");
        };
        assert_eq!(p.topic, ROOM);
        let key = (p.node, p.client);
        match p.event {
            PresenceEvent::Join => {
                let before = members.insert(key, Bytes::copy_from_slice(p.meta));
                assert_ne!(
                    before.as_deref(),
                    Some(p.meta),
                    "join of {key:?} doubled: {members:?}"
                );
            }
            PresenceEvent::Leave => {
                assert!(
                    members.remove(&key).is_some(),
                    "leave of {key:?}, whose join the subscriber never got"
                );
            }
        }
    }
    members
}

/// Model 1, with `remote` as what the receiving thread gets from the other engine.
///
/// Set up: this engine (bridged as `ME`) knows `OTHER`'s state (client 7). Then, at once:
/// a user thread tracks local client `a`; the receiving thread accepts `remote`; the
/// model's own thread subscribes a channel with `subscribe_with_members`. Once all are
/// done, the frames the channel got replay (no join doubled, none missed) to exactly
/// what `list` shows, which is `expected`.
fn snapshot_then_changes(remote: Vec<Message>, expected: fn(ClientId) -> Members) {
    model(move || {
        let pubsub = pubsub();
        let mut seam = PresenceSeam::attach(&pubsub, ME).unwrap();
        assert!(seam.accept(&envelope(&other_state())));
        let a = client(&pubsub);
        let watcher = pubsub.generate_client_id();
        let frames = pubsub
            .register_channel_with(watcher, ChannelConfig::new(8, OverflowPolicy::DropNewest))
            .unwrap();

        let user = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.track(a, ROOM, meta("a")).unwrap()
        });
        let receiving = thread::spawn({
            let remote: Vec<Vec<u8>> = remote.iter().map(envelope).collect();
            move || {
                for message in &remote {
                    assert!(seam.accept(message));
                }
                seam
            }
        });
        pubsub.subscribe_with_members(watcher, ROOM).unwrap();
        user.join().unwrap();
        let seam = receiving.join().unwrap();

        let now = listed(&pubsub);
        assert_eq!(now, expected(a), "the engine's list");
        assert_eq!(
            replay(frames.try_iter()),
            now,
            "what the subscriber was told"
        );
        drop(seam);
    });
}

/// Model 1a. The other engine's delta (client 8 joins, client 7 leaves) races a local
/// track and a subscriber taking the list then the changes.
///
/// Broken on purpose once each (scratch copies): the receiving thread applying and
/// delivering without the bridge's delivery turn (`Exchange::receive` not taking
/// `turn`) fails with "join of (NodeId(2), 8) doubled" (the replica changed before the
/// list was copied, its join delivered after the subscription); `subscribe_with_members`
/// copying the other engines' members outside that turn (no `in_turn`) fails the same
/// way; and a local change delivered to the new subscriber in step 4 of
/// `engine::presence_snapshot` (no `skip`) fails with "join of (NodeId(1), ..) doubled".
#[test]
fn a_subscriber_gets_the_members_then_every_change_across_hosts() {
    snapshot_then_changes(
        vec![Message::Delta {
            origin: OTHER,
            base: 1,
            ops: vec![
                Op::Join {
                    topic: StdArc::from(ROOM),
                    client: 8,
                    meta: meta("eight"),
                },
                Op::Leave {
                    topic: StdArc::from(ROOM),
                    client: 7,
                },
            ],
        }],
        |a| Members::from([((ME, a.as_u64()), meta("a")), ((OTHER, 8), meta("eight"))]),
    );
}

/// Model 1b. The other engine restarts — a goodbye, then its state under a new node id —
/// while a local track and a subscriber taking the list then the changes race it.
#[test]
fn a_subscriber_gets_the_members_then_every_change_across_a_restart() {
    snapshot_then_changes(
        vec![
            Message::Goodbye { origin: OTHER },
            Message::State {
                origin: OTHER_RESTARTED,
                version: 1,
                entries: vec![Entry {
                    topic: StdArc::from(ROOM),
                    client: 7,
                    meta: meta("seven again"),
                }],
            },
        ],
        |a| {
            Members::from([
                ((ME, a.as_u64()), meta("a")),
                ((OTHER_RESTARTED, 7), meta("seven again")),
            ])
        },
    );
}

/// Model 2. A bridge attaches while a user thread tracks client `a`; the bridge then
/// receives the other engine's state twice (a duplicate) and takes its first presence
/// step, still racing the track. Once both are done and the bridge has taken its last
/// step, the engine's list is the replicated state's answer: its own members exactly as
/// another engine's replica rebuilds them from what this bridge sent (none missed or
/// doubled by the attach), and the other engine's as a replica of what it received.
///
/// Broken on purpose once (scratch copy): `PresenceTable::watch`'s two halves — copy the
/// members, start the watcher — under two takes of the table's lock instead of one fails
/// with the engine listing `a` and the other engines never told (left: {(NodeId(1), 1):
/// "a"}, right: {}), when the track lands in between.
#[test]
fn the_merged_list_is_the_replicated_states_answer() {
    model(|| {
        let pubsub = pubsub();
        let a = client(&pubsub);

        let user = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.track(a, ROOM, meta("a")).unwrap()
        });
        let mut seam = PresenceSeam::attach(&pubsub, ME).unwrap();
        let received = [other_state(), other_state()];
        for message in &received {
            assert!(seam.accept(&envelope(message)));
        }
        let mut sent = seam.publish();
        user.join().unwrap();
        sent.extend(seam.publish());

        // Another engine, hearing what this bridge sent.
        let now = Instant::now();
        let mut elsewhere = replica::Replica::new(NodeId(9), replica::Timing::default());
        for message in &sent {
            elsewhere.receive(message, now, &mut Vec::new());
        }
        // This engine's replica of the others, from what it received.
        let mut here = replica::Replica::new(ME, replica::Timing::default());
        for message in &received {
            here.receive(message, now, &mut Vec::new());
        }
        let answer: Members = elsewhere
            .list(ROOM)
            .chain(here.list(ROOM))
            .map(|(node, client, meta)| ((node, client), meta.clone()))
            .collect();

        let listed = listed(&pubsub);
        assert_eq!(
            listed,
            Members::from([((ME, a.as_u64()), meta("a")), ((OTHER, 7), meta("seven"))])
        );
        let own = |m: &Members| -> Members {
            m.iter()
                .filter(|((node, _), _)| *node == ME)
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        };
        assert_eq!(
            own(&listed),
            own(&answer),
            "what the other engines learn of ours"
        );
        assert_eq!(listed, answer);
        drop(seam);
    });
}

/// Model 3. The bridge detaches while a subscriber takes the list then the changes: the
/// other engine's members leave this engine's list (with the leave events) and this
/// engine's own member is renamed from the bridge's node id back to `NodeId(0)` (a leave
/// and a join), as the subscriber subscribes. Whichever comes first, what it was told
/// replays, with no leave of a member it was never told joined, to exactly the list
/// afterwards: this engine's member, under `NodeId(0)`.
///
/// This model found a bug: the detach took the bridge's view out of the engine's
/// remote-members slot *before* the other engine's members left, so a subscriber in
/// between copied a list without client 7 and then got its leave ("leave of
/// (NodeId(2), 7), whose join the subscriber never got"). Now `unlink_presence` lets
/// them leave first; putting the two steps back in the old order fails the model again.
///
/// Broken on purpose once (scratch copy): the detach renaming the engine's members
/// without events (as it once did: `PresenceTable::unwatch` setting `NodeId(0)` and
/// queuing nothing) fails with the subscriber told of (NodeId(1), a) and the engine
/// listing (NodeId(0), a).
#[test]
fn a_subscriber_gets_the_members_then_every_change_across_a_detach() {
    model(|| {
        let pubsub = pubsub();
        let mut seam = PresenceSeam::attach(&pubsub, ME).unwrap();
        assert!(seam.accept(&envelope(&other_state())));
        let a = client(&pubsub);
        pubsub.track(a, ROOM, meta("a")).unwrap();
        let watcher = pubsub.generate_client_id();
        let frames = pubsub
            .register_channel_with(watcher, ChannelConfig::new(8, OverflowPolicy::DropNewest))
            .unwrap();

        let detach = thread::spawn(move || drop(seam));
        pubsub.subscribe_with_members(watcher, ROOM).unwrap();
        detach.join().unwrap();

        let now = listed(&pubsub);
        assert_eq!(now, Members::from([((NodeId(0), a.as_u64()), meta("a"))]));
        assert_eq!(replay(frames.try_iter()), now, "what the subscriber was told");
    });
}

/// Model 4. A bridge attaches while a subscriber takes the list then the changes and a
/// user thread tracks a second member: the attach renames this engine's members from
/// `NodeId(0)` to the bridge's node id (a leave and a join each), and the track's join
/// names whichever is current when it is applied. Whatever the order, what the
/// subscriber was told replays, no join doubled or missed, to exactly the list
/// afterwards: both members under the bridge's node id.
///
/// Broken on purpose once each (scratch copies): the attach renaming without events
/// fails with the subscriber told of (NodeId(0), a) and the engine listing
/// (NodeId(1), a); and the rename's events queued under a second take of the table's
/// lock, after the one that changed the name, fails with "leave of (NodeId(0), ..),
/// whose join the subscriber never got" (a snapshot taken in between has the new names,
/// and then gets the events of the rename it already includes).
#[test]
fn a_subscriber_gets_the_members_then_every_change_across_an_attach() {
    model(|| {
        let pubsub = pubsub();
        let a = client(&pubsub);
        let b = client(&pubsub);
        pubsub.track(a, ROOM, meta("a")).unwrap();
        let watcher = pubsub.generate_client_id();
        let frames = pubsub
            .register_channel_with(watcher, ChannelConfig::new(8, OverflowPolicy::DropNewest))
            .unwrap();

        let attach = thread::spawn({
            let pubsub = pubsub.clone();
            move || PresenceSeam::attach(&pubsub, ME).unwrap()
        });
        let user = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.track(b, ROOM, meta("b")).unwrap()
        });
        pubsub.subscribe_with_members(watcher, ROOM).unwrap();
        let seam = attach.join().unwrap();
        user.join().unwrap();

        let now = listed(&pubsub);
        assert_eq!(
            now,
            Members::from([
                ((ME, a.as_u64()), meta("a")),
                ((ME, b.as_u64()), meta("b")),
            ])
        );
        assert_eq!(replay(frames.try_iter()), now, "what the subscriber was told");
        drop(seam);
    });
}
