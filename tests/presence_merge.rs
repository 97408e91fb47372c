//! The merge semantics of replicated presence, checked by simulation: several nodes
//! track and untrack members, and their deltas, heartbeats, states, requests and
//! goodbyes — deltas and states split to fit a message limit drawn per send, so a state
//! comes as parts cut in different places — reach the other nodes' replicas in random
//! order, duplicated or not at all, while nodes crash or leave and new ones start. Once the losses stop, every live node
//! must list exactly the live nodes' entries, and each node's join/leave events, replayed
//! from empty, must give its list with no event that changes nothing.
//!
//! The replica is pure (no threads, no clock), so the module is compiled into this test
//! as it is and driven with a simulated clock and a deterministic generator: a failing
//! seed fails the same way every run.

mod common;

#[allow(dead_code)]
#[path = "../src/presence/replica.rs"]
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
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Rng;
use fanout::transport::presence_sync::{split, Entry, Message};
use fanout::transport::NodeId;
use replica::{Change, Event, Local, Replica, Timing};

const TOPICS: [&str; 3] = ["lobby", "room.a", "room.b"];
const METAS: [&[u8]; 3] = [b"idle", b"busy", b"away"];
/// Live nodes at any time.
const NODES: usize = 3;

fn timing() -> Timing {
    Timing {
        down_after: Duration::from_secs(3),
        drop_after: Duration::from_secs(10),
        request_every: Duration::from_millis(500),
    }
}

struct Node {
    local: Local,
    replica: Replica,
    alive: bool,
    /// Until when everything it sends is lost (a partition, a stalled process).
    muted_until: Instant,
    /// Every event its replica made, oldest first.
    events: Vec<Event>,
}

impl Node {
    fn new(id: NodeId, now: Instant) -> Self {
        Self {
            local: Local::new(id),
            replica: Replica::new(id, timing()),
            alive: true,
            muted_until: now,
            events: Vec::new(),
        }
    }
}

/// The nodes, the messages in flight (to a node index) and the clock.
struct World {
    rng: Rng,
    nodes: Vec<Node>,
    in_flight: Vec<(usize, Message)>,
    now: Instant,
    next_id: u128,
    topics: Vec<Arc<str>>,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut world = Self {
            rng: Rng(seed),
            nodes: Vec::new(),
            in_flight: Vec::new(),
            now: Instant::now(),
            next_id: 1,
            topics: TOPICS.iter().map(|t| Arc::from(*t)).collect(),
        };
        for _ in 0..NODES {
            world.start_node();
        }
        world
    }

    /// A new node (a fresh id), which asks everyone for their states.
    fn start_node(&mut self) {
        let id = NodeId(self.next_id);
        self.next_id += 1;
        self.nodes.push(Node::new(id, self.now));
        let hello = Message::Request {
            origin: id,
            of: Vec::new(),
        };
        self.broadcast(self.nodes.len() - 1, hello);
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect()
    }

    fn pick_alive(&mut self) -> usize {
        let alive = self.alive();
        alive[self.rng.below(alive.len())]
    }

    /// Sends `message` from node `from` to every other live node (pub/sub: nodes that
    /// start later do not get it), split to fit a limit drawn for this send: one or two
    /// entries per part, a few, or no limit.
    fn broadcast(&mut self, from: usize, message: Message) {
        if self.nodes[from].muted_until > self.now {
            return;
        }
        let limit = [50, 60, 90, 150, usize::MAX][self.rng.below(5)];
        for part in split(message, limit) {
            for to in self.alive() {
                if to != from {
                    self.in_flight.push((to, part.clone()));
                }
            }
        }
    }

    /// What node `i` has to send now: its delta, its state if asked, its requests.
    fn flush(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let out: Vec<Message> = [
            node.local.take_delta(),
            node.local.take_state(),
            node.replica.request(now),
        ]
        .into_iter()
        .flatten()
        .collect();
        for message in out {
            self.broadcast(i, message);
        }
    }

    fn heartbeat(&mut self, i: usize) {
        let beat = self.nodes[i].local.heartbeat();
        self.broadcast(i, beat);
    }

    /// Delivers in-flight message `k` (keeping a copy in flight if `duplicate`).
    fn deliver(&mut self, k: usize, duplicate: bool) {
        let (to, message) = if duplicate {
            self.in_flight[k].clone()
        } else {
            self.in_flight.swap_remove(k)
        };
        let now = self.now;
        let node = &mut self.nodes[to];
        if !node.alive {
            return;
        }
        node.local.on_message(&message);
        node.replica.receive(&message, now, &mut node.events);
    }

    fn tick(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        node.replica.tick(now, &mut node.events);
    }

    fn local_change(&mut self, i: usize) {
        let topic = Arc::clone(&self.topics[self.rng.below(TOPICS.len())]);
        let client = self.rng.below(4) as u64 + 1;
        if self.rng.below(3) == 0 {
            self.nodes[i].local.untrack(&topic, client);
        } else {
            let meta = Bytes::from_static(METAS[self.rng.below(METAS.len())]);
            self.nodes[i].local.track(topic, client, meta);
        }
    }

    /// One random step of the lossy phase.
    fn chaos_step(&mut self) {
        self.now += Duration::from_millis(self.rng.below(50) as u64);
        let roll = self.rng.below(100);
        match roll {
            0..=29 => {
                let i = self.pick_alive();
                self.local_change(i);
            }
            30..=39 => {
                let i = self.pick_alive();
                self.flush(i);
            }
            40..=47 => {
                let i = self.pick_alive();
                self.heartbeat(i);
            }
            48..=84 if !self.in_flight.is_empty() => {
                let k = self.rng.below(self.in_flight.len());
                let duplicate = self.rng.below(7) == 0;
                self.deliver(k, duplicate);
            }
            85..=89 if !self.in_flight.is_empty() => {
                let k = self.rng.below(self.in_flight.len());
                self.in_flight.swap_remove(k); // lost
            }
            90..=95 => {
                let i = self.pick_alive();
                self.tick(i);
            }
            96 => {
                // A partition: one node's messages are lost for up to 8 s, long enough
                // for the others to take it as down.
                let i = self.pick_alive();
                self.nodes[i].muted_until =
                    self.now + Duration::from_millis(self.rng.below(8_000) as u64);
            }
            97 => {
                // Everyone stalls (a paused host, a slow broker): time jumps.
                self.now += Duration::from_millis(self.rng.below(5_000) as u64);
            }
            98 if self.rng.below(4) == 0 => {
                // A crash: silent from now on; a new node takes its place.
                let i = self.pick_alive();
                self.nodes[i].alive = false;
                self.start_node();
            }
            99 if self.rng.below(4) == 0 => {
                // A graceful leave, then a new node.
                let i = self.pick_alive();
                let bye = self.nodes[i].local.goodbye();
                self.broadcast(i, bye);
                self.nodes[i].alive = false;
                self.start_node();
            }
            _ => {}
        }
    }

    /// No more losses, duplicates or crashes: everything in flight arrives, then every
    /// second each node sends what it has and a heartbeat, until past `drop_after`.
    fn settle(&mut self) {
        while !self.in_flight.is_empty() {
            let k = self.rng.below(self.in_flight.len());
            self.deliver(k, false);
        }
        let rounds = timing().drop_after.as_secs() + 5;
        for _ in 0..rounds {
            self.now += Duration::from_secs(1);
            for i in self.alive() {
                self.flush(i);
                self.heartbeat(i);
            }
            while !self.in_flight.is_empty() {
                let k = self.rng.below(self.in_flight.len());
                self.deliver(k, false);
            }
            for i in self.alive() {
                self.tick(i);
            }
        }
    }

    /// Every live node's entries: (topic, node, client) → meta.
    fn expected(&self) -> BTreeMap<(Arc<str>, NodeId, u64), Bytes> {
        let mut all = BTreeMap::new();
        for node in self.nodes.iter().filter(|n| n.alive) {
            for (topic, client, meta) in node.local.entries() {
                all.insert((Arc::clone(topic), node.local.node(), client), meta.clone());
            }
        }
        all
    }

    /// What node `i` lists: its own entries and its replica's.
    fn listed_by(&self, i: usize) -> BTreeMap<(Arc<str>, NodeId, u64), Bytes> {
        let node = &self.nodes[i];
        let mut all = BTreeMap::new();
        for (topic, client, meta) in node.local.entries() {
            all.insert((Arc::clone(topic), node.local.node(), client), meta.clone());
        }
        for (topic, origin, client, meta) in node.replica.all() {
            let fresh = all.insert((Arc::clone(topic), origin, client), meta.clone());
            assert!(fresh.is_none(), "node {i} lists its own member as remote");
        }
        all
    }
}

/// Replays node `i`'s events from empty: every event changes something, and the result
/// is what its replica lists.
fn check_events(world: &World, i: usize, seed: u64) {
    let node = &world.nodes[i];
    let mut replayed: BTreeMap<(Arc<str>, NodeId, u64), Bytes> = BTreeMap::new();
    for (n, event) in node.events.iter().enumerate() {
        let key = (Arc::clone(&event.topic), event.origin, event.client);
        match event.change {
            Change::Join => {
                let before = replayed.insert(key, event.meta.clone());
                assert_ne!(
                    before.as_ref(),
                    Some(&event.meta),
                    "seed {seed:#x}: node {i} event {n} is a join that changes nothing: {event:?}"
                );
            }
            Change::Leave => {
                let before = replayed.remove(&key);
                assert_eq!(
                    before.as_ref(),
                    Some(&event.meta),
                    "seed {seed:#x}: node {i} event {n} is a leave of a member not listed (or with other metadata): {event:?}"
                );
            }
        }
    }
    let listed: BTreeMap<_, _> = node
        .replica
        .all()
        .map(|(t, o, c, m)| ((Arc::clone(t), o, c), m.clone()))
        .collect();
    assert_eq!(
        replayed, listed,
        "seed {seed:#x}: node {i}'s events do not add up to its list"
    );
    for topic in &world.topics {
        assert_eq!(node.replica.count(topic), node.replica.list(topic).count());
    }
}

fn run(seed: u64, steps: usize) {
    let mut world = World::new(seed);
    for _ in 0..steps {
        world.chaos_step();
    }
    // Mid-way, with losses: the events already add up to each list.
    for i in world.alive() {
        check_events(&world, i, seed);
    }
    world.settle();
    let expected = world.expected();
    for i in world.alive() {
        assert_eq!(
            world.listed_by(i),
            expected,
            "seed {seed:#x}: node {i} did not converge"
        );
        check_events(&world, i, seed);
    }
}

#[test]
fn replicas_converge_and_report_each_change_once() {
    for seed in 0..300 {
        run(0xC0FFEE ^ (seed * 0x9E37_79B9), 2_000);
    }
}

#[test]
fn long_runs_with_many_restarts() {
    for seed in 0..20 {
        run(0xBADC0DE + seed, 20_000);
    }
}

/// The behaviours the simulation relies on, one at a time.
#[test]
fn a_delta_that_does_not_connect_waits_for_the_state() {
    let t0 = Instant::now();
    let (mut a, mut b) = (Local::new(NodeId(1)), Replica::new(NodeId(2), timing()));
    let topic: Arc<str> = Arc::from("t");
    let mut events = Vec::new();
    a.track(Arc::clone(&topic), 1, Bytes::from_static(b"x"));
    let _lost = a.take_delta();
    a.track(Arc::clone(&topic), 2, Bytes::from_static(b"y"));
    let second = a.take_delta().unwrap();
    b.receive(&second, t0, &mut events);
    assert!(
        events.is_empty(),
        "a delta past the replica's version is not applied"
    );
    let Some(Message::Request { of, .. }) = b.request(t0) else {
        panic!("the replica asks for the state");
    };
    assert_eq!(of, [NodeId(1)]);
    assert!(b.request(t0).is_none(), "not again before `request_every`");
    b.receive(&a.state(), t0, &mut events);
    assert_eq!(b.count("t"), 2);
    assert_eq!(events.len(), 2);
    // The lost delta, late: already covered by the state.
    b.receive(&second, t0, &mut events);
    assert_eq!(events.len(), 2);
}

#[test]
fn a_silent_node_goes_down_comes_back_and_is_dropped() {
    let t0 = Instant::now();
    let (mut a, mut b) = (Local::new(NodeId(1)), Replica::new(NodeId(2), timing()));
    let mut events = Vec::new();
    a.track(Arc::from("t"), 1, Bytes::from_static(b"x"));
    b.receive(&a.take_delta().unwrap(), t0, &mut events);
    b.tick(t0 + Duration::from_millis(2_999), &mut events);
    assert_eq!(events.len(), 1);
    b.tick(t0 + Duration::from_secs(3), &mut events);
    assert_eq!(events.last().unwrap().change, Change::Leave);
    assert_eq!(b.count("t"), 0);
    b.receive(&a.heartbeat(), t0 + Duration::from_secs(4), &mut events);
    assert_eq!(
        events.last().unwrap().change,
        Change::Join,
        "back: joins again"
    );
    assert_eq!(b.count("t"), 1);
    b.tick(t0 + Duration::from_secs(14), &mut events);
    assert_eq!(b.nodes().count(), 0, "dropped after `drop_after`");
    assert_eq!(events.last().unwrap().change, Change::Leave);
}

#[test]
fn a_goodbye_is_final() {
    let t0 = Instant::now();
    let (mut a, mut b) = (Local::new(NodeId(1)), Replica::new(NodeId(2), timing()));
    let mut events = Vec::new();
    a.track(Arc::from("t"), 1, Bytes::from_static(b"x"));
    let delta = a.take_delta().unwrap();
    b.receive(&delta, t0, &mut events);
    b.receive(&a.goodbye(), t0, &mut events);
    assert_eq!(b.count("t"), 0);
    b.receive(&delta, t0, &mut events);
    b.receive(&a.heartbeat(), t0, &mut events);
    assert_eq!(
        b.count("t"),
        0,
        "nothing brings back a node that said goodbye"
    );
    assert_eq!(events.len(), 2);
}

/// Tracks `n` members of node 1 (topic `t{i % 100}`, metadata `i`).
fn local_with(n: u64) -> Local {
    let mut a = Local::new(NodeId(1));
    for i in 0..n {
        let topic: Arc<str> = Arc::from(format!("t{}", i % 100).as_str());
        a.track(topic, i, Bytes::from(i.to_string()));
    }
    a
}

/// A state in parts, applied part by part: no member leaves and none joins until the
/// last part is in; then exactly the changes.
#[test]
fn a_partial_state_changes_nothing_until_it_is_whole() {
    let t0 = Instant::now();
    let mut a = local_with(40);
    let mut b = Replica::new(NodeId(2), timing());
    let mut events = Vec::new();
    b.receive(&a.state(), t0, &mut events);
    assert_eq!(events.len(), 40);
    // 20 members leave and 20 join while b hears nothing.
    for i in 0..20 {
        let topic: Arc<str> = Arc::from(format!("t{}", i % 100).as_str());
        a.untrack(&topic, i);
        a.track(Arc::from("new"), 1000 + i, Bytes::new());
    }
    let _lost = a.take_delta();
    let mut parts = split(a.state(), 120);
    assert!(parts.len() > 5);
    parts.reverse(); // the last part first
    let last = parts.pop().unwrap();
    for part in &parts {
        b.receive(part, t0, &mut events);
        b.receive(part, t0, &mut events); // twice
        assert_eq!(events.len(), 40, "a part alone changed the list");
        assert_eq!(
            (0..100).map(|t| b.count(&format!("t{t}"))).sum::<usize>(),
            40
        );
    }
    b.receive(&last, t0, &mut events);
    assert_eq!(events.len(), 80, "20 leaves and 20 joins, once each");
    assert_eq!(b.count("new"), 20);
    assert_eq!(
        (0..100).map(|t| b.count(&format!("t{t}"))).sum::<usize>(),
        20
    );
    // The same state again, cut elsewhere: nothing more.
    for part in split(a.state(), 300) {
        b.receive(&part, t0, &mut events);
    }
    assert_eq!(events.len(), 80);
}

/// A lost part leaves the replica behind (it asks again); a newer state's parts replace
/// an older one's unfinished parts; deltas that catch up make the parts moot.
#[test]
fn lost_parts_are_asked_for_again_and_newer_states_win() {
    let t0 = Instant::now();
    let mut a = local_with(30);
    let mut b = Replica::new(NodeId(2), timing());
    let mut events = Vec::new();
    let _lost = a.take_delta();
    let parts = split(a.state(), 100);
    for part in &parts[1..] {
        b.receive(part, t0, &mut events);
    }
    assert!(events.is_empty());
    let Some(Message::Request { of, .. }) = b.request(t0) else {
        panic!("a replica missing a part asks for the state");
    };
    assert_eq!(of, [NodeId(1)]);
    // A newer version: its first part to arrive drops the older state's parts, so the
    // older state's missing part, arriving late, completes nothing.
    a.track(Arc::from("t0"), 999, Bytes::from_static(b"late"));
    let _lost = a.take_delta();
    let newer = split(a.state(), 100);
    b.receive(newer.last().unwrap(), t0, &mut events);
    b.receive(&parts[0], t0, &mut events);
    assert!(events.is_empty(), "the older state is no longer assembled");
    for part in newer.iter().rev() {
        b.receive(part, t0, &mut events);
    }
    assert_eq!(events.len(), 31);
    assert_eq!(b.count("t0"), 2);
}

/// 100,000 members in parts of at most 16 KiB, delivered shuffled with duplicates: the
/// replica lists all of them, after the last part only.
#[test]
fn a_hundred_thousand_members_in_small_parts() {
    let t0 = Instant::now();
    let a = local_with(100_000);
    let mut parts = split(a.state(), 16 << 10);
    for part in &parts {
        let mut body = Vec::new();
        fanout::transport::presence_sync::encode_into(part, &mut body);
        assert!(body.len() <= 16 << 10);
    }
    let n = parts.len();
    assert!(n > 100, "{n} parts");
    let mut rng = Rng(7);
    for i in (1..n).rev() {
        parts.swap(i, rng.below(i + 1));
    }
    for k in 0..n / 10 {
        parts.push(parts[k * 7 % n].clone());
    }
    let mut b = Replica::new(NodeId(2), timing());
    let mut events = Vec::new();
    let total: u32 = 100_000;
    let mut complete = false;
    for part in &parts {
        assert!(!complete || events.len() == 100_000);
        b.receive(part, t0, &mut events);
        if !events.is_empty() {
            complete = true;
        }
    }
    assert_eq!(events.len(), total as usize);
    assert_eq!(b.count("t7"), 1000);
    let Message::StatePart { total: t, .. } = &parts[0] else {
        panic!("parts");
    };
    assert_eq!(*t, total);
    let _ = Entry {
        topic: Arc::from("unused"),
        client: 0,
        meta: Bytes::new(),
    };
}
