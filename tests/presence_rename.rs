//! An engine's own members change name when a bridge attaches (from `NodeId(0)` to the
//! bridge's node id) and when it detaches (back to `NodeId(0)`); a subscriber that keeps
//! its member list from `subscribe_with_members` and the events after it must still have
//! the engine's exact list, before, during and after — a leave of every old name and a
//! join of every new one, nothing missed or doubled (feature `redis`, against a real
//! `redis-server` this test starts).
#![cfg(feature = "redis")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fanout::bridge::{Bridge, ChannelLayout};
use fanout::transport::{decode_any, Frame, NodeId, PresenceEvent};
use fanout::{Bytes, Channel, ChannelConfig, ClientId, OverflowPolicy, PubSub};

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use common::{both_layouts, eventually};
use redis_server::RedisServer;

const WAIT: Duration = Duration::from_secs(15);
const ROOM: &str = "room";

/// (node, client) → metadata, as text.
type Members = BTreeMap<(NodeId, u64), String>;

fn bridge(pubsub: &PubSub<str>, url: &str, layout: ChannelLayout) -> Bridge {
    Bridge::builder(url, "rename")
        .layout(layout)
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
        .read_timeout(Duration::from_millis(20))
        .ping_interval(Duration::from_millis(200))
        // A down period longer than the test: only goodbyes remove an engine's members.
        .presence(
            Duration::from_millis(100),
            Duration::from_secs(60),
            Duration::from_secs(300),
        )
        .attach(pubsub)
        .expect("attach")
}

/// A client subscribed to the room that keeps the member list from what it is told:
/// the joins `subscribe_with_members` hands it first, then every join and leave.
struct Follower {
    frames: Channel<Bytes>,
    list: Members,
}

impl Follower {
    fn subscribe(pubsub: &PubSub<str>) -> Self {
        let id = pubsub.generate_client_id();
        // Room for every event of the test: nothing may be dropped.
        let config = ChannelConfig::new(1 << 16, OverflowPolicy::DropNewest);
        let frames = pubsub.register_channel_with(id, config).unwrap();
        pubsub.subscribe_with_members(id, ROOM).unwrap();
        Self {
            frames,
            list: Members::new(),
        }
    }

    /// Applies what arrived since the last call, failing on a join that changes nothing
    /// or a leave of a member it was never told about.
    fn catch_up(&mut self) -> &Members {
        while let Ok(frame) = self.frames.try_recv() {
            let Ok(Frame::Presence(p)) = decode_any(&frame) else {
                panic!("only presence frames here");
            };
            let key = (p.node, p.client);
            match p.event {
                PresenceEvent::Join => {
                    let meta = String::from_utf8_lossy(p.meta).into_owned();
                    let before = self.list.insert(key, meta);
                    assert_ne!(
                        before.as_ref(),
                        self.list.get(&key),
                        "join of {key:?} doubled: {:?}",
                        self.list
                    );
                }
                PresenceEvent::Leave => {
                    assert!(
                        self.list.remove(&key).is_some(),
                        "leave of {key:?}, a member it was never told about: {:?}",
                        self.list
                    );
                }
            }
        }
        &self.list
    }
}

fn listed(pubsub: &PubSub<str>) -> Members {
    pubsub
        .list(ROOM)
        .unwrap()
        .into_iter()
        .map(|m| {
            let meta = String::from_utf8_lossy(&m.meta).into_owned();
            ((m.node, m.client.as_u64()), meta)
        })
        .collect()
}

/// A registered client tracked in the room with `meta`.
fn join(pubsub: &PubSub<str>, meta: &'static str) -> ClientId {
    let id = pubsub.generate_client_id();
    pubsub.register(id, |_| {}).unwrap();
    pubsub
        .track(id, ROOM, Bytes::from_static(meta.as_bytes()))
        .unwrap();
    id
}

/// Every follower's list equals the engine's (eventually: remote changes arrive late),
/// and the engine's is `want`.
fn agree(pubsub: &PubSub<str>, followers: &mut [Follower], want: &Members) {
    let ok = eventually(WAIT, || {
        let now = listed(pubsub);
        now == *want && followers.iter_mut().all(|f| *f.catch_up() == now)
    });
    assert!(
        ok,
        "the engine lists {:?} (want {want:?}); its followers were told {:?}",
        listed(pubsub),
        followers.iter().map(|f| &f.list).collect::<Vec<_>>()
    );
}

fn members(entries: &[(NodeId, ClientId, &str)]) -> Members {
    entries
        .iter()
        .map(|(node, client, meta)| ((*node, client.as_u64()), (*meta).to_owned()))
        .collect()
}

/// Members join, a bridge attaches, members join and leave (here and on another
/// engine), the bridge detaches, and again: at every step each follower — subscribed
/// before the first attach, while bridged, and after the detach — has exactly the list
/// the engine shows.
fn followers_keep_the_list_across_attach_and_detach(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let url = redis.url();
    let here = PubSub::<str>::new().unwrap();
    let there = PubSub::<str>::new().unwrap();
    let there_bridge = bridge(&there, &url, layout);
    let other = there_bridge.node_id();
    let carol = join(&there, "Carol");

    let mut followers = vec![Follower::subscribe(&here)];
    let alice = join(&here, "Alice");
    let bob = join(&here, "Bob");
    followers.push(Follower::subscribe(&here));
    let unbridged = NodeId(0);
    agree(
        &here,
        &mut followers,
        &members(&[(unbridged, alice, "Alice"), (unbridged, bob, "Bob")]),
    );

    for round in 0..2 {
        let attached = bridge(&here, &url, layout);
        let me = attached.node_id();
        assert_eq!(here.node_id(), me);
        agree(
            &here,
            &mut followers,
            &members(&[
                (me, alice, "Alice"),
                (me, bob, "Bob"),
                (other, carol, "Carol"),
            ]),
        );
        followers.push(Follower::subscribe(&here));
        let dave = join(&here, "Dave");
        here.untrack(alice, ROOM).unwrap();
        let erin = join(&there, "Erin");
        agree(
            &here,
            &mut followers,
            &members(&[
                (me, bob, "Bob"),
                (me, dave, "Dave"),
                (other, carol, "Carol"),
                (other, erin, "Erin"),
            ]),
        );

        attached.shutdown();
        assert_eq!(here.node_id(), unbridged, "round {round}");
        agree(
            &here,
            &mut followers,
            &members(&[(unbridged, bob, "Bob"), (unbridged, dave, "Dave")]),
        );
        followers.push(Follower::subscribe(&here));
        // Back as the test started: Alice in, Dave and Erin out.
        here.track(alice, ROOM, Bytes::from_static(b"Alice"))
            .unwrap();
        here.unregister(dave).unwrap();
        there.unregister(erin).unwrap();
        agree(
            &here,
            &mut followers,
            &members(&[(unbridged, alice, "Alice"), (unbridged, bob, "Bob")]),
        );
    }
    drop(there_bridge);
}
both_layouts!(followers_keep_the_list_across_attach_and_detach);

/// The same while a user thread tracks and untracks without pause and followers
/// subscribe as the bridge attaches and detaches: once the churn stops, every follower's
/// list is the engine's. The rename and the changes around it are ordered for every
/// subscriber, whichever comes first.
#[test]
fn followers_keep_the_list_while_members_churn_across_attach_and_detach() {
    let redis = RedisServer::start();
    let url = redis.url();
    let here = PubSub::<str>::new().unwrap();
    let ids: Vec<ClientId> = (0..8).map(|_| join(&here, "start")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = std::thread::spawn({
        let (here, ids, stop) = (here.clone(), ids.clone(), Arc::clone(&stop));
        move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let id = ids[i % ids.len()];
                if i % 3 == 2 {
                    here.untrack(id, ROOM).unwrap();
                } else {
                    let meta = Bytes::from(format!("m{}", i % 5));
                    here.track(id, ROOM, meta).unwrap();
                }
                i += 1;
                if i % 16 == 0 {
                    // A pace every follower's queue keeps up with between catch-ups.
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
    });
    let mut followers = vec![Follower::subscribe(&here)];
    for _ in 0..10 {
        let attached = bridge(&here, &url, ChannelLayout::Namespace);
        followers.push(Follower::subscribe(&here));
        std::thread::sleep(Duration::from_millis(2));
        followers.push(Follower::subscribe(&here));
        attached.shutdown();
        followers.push(Follower::subscribe(&here));
        for follower in &mut followers {
            follower.catch_up();
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    let now = listed(&here);
    assert!(now.keys().all(|(node, _)| *node == NodeId(0)));
    agree(&here, &mut followers, &now);
}
