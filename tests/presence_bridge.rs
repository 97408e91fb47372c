//! Presence across hosts against a real `redis-server` (feature `redis`): several engines
//! in this process stand for several hosts. One list everywhere, each change once on
//! every engine, a graceful detach at once, a late joiner converging, engines taken as
//! down while Redis is gone and back when it returns — under both channel layouts.
#![cfg(feature = "redis")]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fanout::bridge::{Bridge, ChannelLayout};
use fanout::transport::{decode_any, Frame, NodeId, PresenceEvent};
use fanout::{Bytes, Channel, ClientId, PubSub};

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use common::{both_layouts, eventually};
use redis_server::RedisServer;

const WAIT: Duration = Duration::from_secs(15);

/// A bridge with short timeouts, heartbeats every 100 ms and a down period of
/// `down_after`.
fn bridge(pubsub: &PubSub<str>, url: &str, layout: ChannelLayout, down_after: Duration) -> Bridge {
    Bridge::builder(url, "presence")
        .layout(layout)
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
        .read_timeout(Duration::from_millis(20))
        .ping_interval(Duration::from_millis(200))
        .presence(Duration::from_millis(100), down_after, down_after * 5)
        .attach(pubsub)
        .expect("attach")
}

/// A subscriber of `topic` that collects presence events.
fn watcher(pubsub: &PubSub<str>, topic: &str) -> Channel<Bytes> {
    let id = pubsub.generate_client_id();
    let channel = pubsub.register_channel(id).unwrap();
    pubsub.subscribe(id, topic).unwrap();
    channel
}

type Key = (NodeId, u64);

/// Every presence event `channel` holds now: (event, node, client, meta).
fn events(channel: &Channel<Bytes>) -> Vec<(PresenceEvent, Key, Vec<u8>)> {
    let mut out = Vec::new();
    while let Ok(frame) = channel.try_recv() {
        if let Ok(Frame::Presence(p)) = decode_any(&frame) {
            out.push((p.event, (p.node, p.client), p.meta.to_vec()));
        }
    }
    out
}

/// The list `events` builds from empty, checking that each changes something.
fn replay(into: &mut BTreeMap<Key, Vec<u8>>, events: &[(PresenceEvent, Key, Vec<u8>)]) {
    for (event, key, meta) in events {
        match event {
            PresenceEvent::Join => {
                let before = into.insert(*key, meta.clone());
                assert_ne!(before.as_ref(), Some(meta), "a join that changes nothing");
            }
            PresenceEvent::Leave => {
                assert!(into.remove(key).is_some(), "a leave of a member not listed");
            }
        }
    }
}

fn listed(pubsub: &PubSub<str>, topic: &str) -> BTreeMap<Key, Vec<u8>> {
    pubsub
        .list(topic)
        .unwrap()
        .into_iter()
        .map(|m| ((m.node, m.client.as_u64()), m.meta.to_vec()))
        .collect()
}

/// Engine, bridge, watcher of "room", and the list its events built so far.
struct Host {
    pubsub: PubSub<str>,
    bridge: Option<Bridge>,
    watcher: Channel<Bytes>,
    seen: BTreeMap<Key, Vec<u8>>,
}

impl Host {
    fn start(url: &str, layout: ChannelLayout, down_after: Duration) -> Self {
        let pubsub = PubSub::<str>::new().unwrap();
        let watcher = watcher(&pubsub, "room");
        let bridge = Some(bridge(&pubsub, url, layout, down_after));
        Self {
            pubsub,
            bridge,
            watcher,
            seen: BTreeMap::new(),
        }
    }

    fn node(&self) -> NodeId {
        self.bridge.as_ref().unwrap().node_id()
    }

    /// Tracks a new client in "room" with `meta`.
    fn join(&self, meta: &'static str) -> ClientId {
        let id = self.pubsub.generate_client_id();
        self.pubsub.register(id, |_| {}).unwrap();
        self.pubsub
            .track(id, "room", Bytes::from_static(meta.as_bytes()))
            .unwrap();
        id
    }

    /// Applies the events received since the last call; whether the events and the list
    /// both equal `want`.
    fn sees(&mut self, want: &BTreeMap<Key, Vec<u8>>) -> bool {
        let new = events(&self.watcher);
        replay(&mut self.seen, &new);
        &self.seen == want && &listed(&self.pubsub, "room") == want
    }
}

fn want(members: &[(NodeId, ClientId, &str)]) -> BTreeMap<Key, Vec<u8>> {
    members
        .iter()
        .map(|(n, c, m)| ((*n, c.as_u64()), m.as_bytes().to_vec()))
        .collect()
}

fn converge(hosts: &mut [&mut Host], want: &BTreeMap<Key, Vec<u8>>) -> Duration {
    let start = Instant::now();
    assert!(
        eventually(WAIT, || hosts.iter_mut().all(|h| h.sees(want))),
        "did not converge to {want:?}: {:?}",
        hosts
            .iter()
            .map(|h| listed(&h.pubsub, "room"))
            .collect::<Vec<_>>()
    );
    start.elapsed()
}

fn one_list_everywhere_and_each_change_once(layout: ChannelLayout) {
    // A down period longer than the test waits: only a goodbye removes a member.
    let down = Duration::from_secs(60);
    let redis = RedisServer::start();
    let (mut a, mut b, mut c) = (
        Host::start(&redis.url(), layout, down),
        Host::start(&redis.url(), layout, down),
        Host::start(&redis.url(), layout, down),
    );
    let alice = a.join("Alice");
    let bob = b.join("Bob");
    let carol = c.join("Carol");
    let all = want(&[
        (a.node(), alice, "Alice"),
        (b.node(), bob, "Bob"),
        (c.node(), carol, "Carol"),
    ]);
    let took = converge(&mut [&mut a, &mut b, &mut c], &all);
    eprintln!("three engines converged in {took:?}");
    for host in [&a, &b, &c] {
        assert_eq!(host.pubsub.count_members("room").unwrap(), 3);
    }

    // New metadata: one join carrying it, everywhere.
    a.pubsub
        .track(alice, "room", Bytes::from_static(b"Alice (away)"))
        .unwrap();
    let renamed = want(&[
        (a.node(), alice, "Alice (away)"),
        (b.node(), bob, "Bob"),
        (c.node(), carol, "Carol"),
    ]);
    converge(&mut [&mut a, &mut b, &mut c], &renamed);

    // A graceful detach: Carol leaves the other engines at once.
    let detached = Instant::now();
    c.bridge.take().unwrap().shutdown();
    let without_carol = want(&[(a.node(), alice, "Alice (away)"), (b.node(), bob, "Bob")]);
    converge(&mut [&mut a, &mut b], &without_carol);
    eprintln!("a detach reached the others in {:?}", detached.elapsed());
    // Detached, c lists its own member only, renamed to node 0, and its watcher was
    // told: the others left, Carol left under c's node id and joined under node 0.
    let alone = want(&[(NodeId(0), carol, "Carol")]);
    assert!(c.sees(&alone), "{:?} vs {alone:?}", c.seen);

    // A late joiner gets everyone's state.
    let mut d = Host::start(&redis.url(), layout, down);
    let dave = d.join("Dave");
    let with_dave = want(&[
        (a.node(), alice, "Alice (away)"),
        (b.node(), bob, "Bob"),
        (d.node(), dave, "Dave"),
    ]);
    let took = converge(&mut [&mut a, &mut b, &mut d], &with_dave);
    eprintln!("a late joiner converged in {took:?}");

    // Untrack and unregister: one leave each, everywhere.
    b.pubsub.unregister(bob).unwrap();
    let no_bob = want(&[(a.node(), alice, "Alice (away)"), (d.node(), dave, "Dave")]);
    converge(&mut [&mut a, &mut b, &mut d], &no_bob);
}
both_layouts!(one_list_everywhere_and_each_change_once);

fn down_while_redis_is_gone_and_back_when_it_returns(layout: ChannelLayout) {
    let mut redis = RedisServer::start();
    let down = Duration::from_secs(1);
    let (mut a, mut b) = (
        Host::start(&redis.url(), layout, down),
        Host::start(&redis.url(), layout, down),
    );
    let alice = a.join("Alice");
    let bob = b.join("Bob");
    let both = want(&[(a.node(), alice, "Alice"), (b.node(), bob, "Bob")]);
    converge(&mut [&mut a, &mut b], &both);

    redis.kill();
    let killed = Instant::now();
    let only_a = want(&[(a.node(), alice, "Alice")]);
    let only_b = want(&[(b.node(), bob, "Bob")]);
    assert!(eventually(WAIT, || a.sees(&only_a) && b.sees(&only_b)));
    eprintln!("down detected in {:?} (down period 1 s)", killed.elapsed());

    redis.restart();
    let back = Instant::now();
    converge(&mut [&mut a, &mut b], &both);
    eprintln!("back in {:?} after Redis returned", back.elapsed());
}
both_layouts!(down_while_redis_is_gone_and_back_when_it_returns);

/// Snapshot then events across hosts: a client of `b` subscribes with the member list
/// while `a` churns; once everything has arrived, its frames replayed from empty equal
/// `b`'s list (nothing missed or doubled between the snapshot and the events).
fn subscribe_with_members_across_hosts(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let down = Duration::from_secs(60);
    let (a, mut b) = (
        Host::start(&redis.url(), layout, down),
        Host::start(&redis.url(), layout, down),
    );
    let ids: Vec<ClientId> = (0..6).map(|_| a.join("start")).collect();
    let want_start: Vec<_> = ids.iter().map(|id| (a.node(), *id, "start")).collect();
    converge(&mut [&mut b], &want(&want_start));
    // Many rounds: the window between a remote change reaching the replica and its
    // event reaching subscribers is short, and each round is one more chance at it.
    for round in 0..30 {
        let churn = {
            let pubsub = a.pubsub.clone();
            let ids = ids.clone();
            std::thread::spawn(move || {
                for i in 0..300usize {
                    let id = ids[(i * 5 + round) % ids.len()];
                    if i % 3 == 2 {
                        pubsub.untrack(id, "room").unwrap();
                    } else {
                        let meta = Bytes::from(format!("m{}", i % 4));
                        pubsub.track(id, "room", meta).unwrap();
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_micros(200 * (round as u64 % 10)));
        let late = b.pubsub.generate_client_id();
        let frames = b.pubsub.register_channel(late).unwrap();
        b.pubsub.subscribe_with_members(late, "room").unwrap();
        churn.join().unwrap();
        let mut replayed: BTreeMap<Key, Vec<u8>> = BTreeMap::new();
        let agree = eventually(WAIT, || {
            replay(&mut replayed, &events(&frames));
            let a_list = listed(&a.pubsub, "room");
            replayed == listed(&b.pubsub, "room") && replayed == a_list
        });
        assert!(
            agree,
            "round {round}: {replayed:?} vs {:?}",
            listed(&b.pubsub, "room")
        );
        b.pubsub.unregister(late).unwrap();
    }
}
both_layouts!(subscribe_with_members_across_hosts);
