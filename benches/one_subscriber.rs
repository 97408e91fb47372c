//! Broadcasts to a topic with one subscriber, among 100,000 topics: per-user topics —
//! direct messages, one player's private state, one session's order updates — are one
//! subscriber each, and most of a server's topics.
//!
//! Every row does the same work per broadcast: find topic `user.<k>`'s subscribers among
//! 100,000 per-user topics, build one 64 B-payload Push frame (the wire format of
//! `fanout::transport`), and hand it to the one subscriber, which reads its length.
//!
//! - `fanout_str`, `fanout_topic`: `PubSub::broadcast` with the topic by name, or a
//!   pre-resolved [`Topic`]; `fanout_frame`: `broadcast_frame` of a frame encoded
//!   beforehand (no serialisation: the engine's own fixed cost).
//! - `tokio`: what a tokio user writes — `RwLock<HashMap<String, broadcast::Sender>>`,
//!   read-lock, look up, send, the subscriber `try_recv`s on this thread.
//! - `bus`: `Mutex<HashMap<String, Bus>>` (a `Bus` needs `&mut` to broadcast), the
//!   reader `try_recv`s. Each `Bus` runs a thread, so its map holds only the topics
//!   broadcast to (1 or 4,096), not 100,000.
//! - `naive`: `RwLock<HashMap<String, Vec<Box<dyn Fn(&Bytes)>>>>`, encode, call.
//! - `floor`: the least any shared registry can do — `ArcSwap<HashMap>` (ahash) load, one
//!   lookup, the frame in one allocation sized exactly, one call. Lock-free like fanout.
//! - `floor_no_lookup`: frame and call only (what is left without any registry).
//!
//! Two access patterns: `hot` broadcasts to the same topic every time (everything in
//! cache); `spread` walks 4,096 topics in a shuffled order, so the lookups touch cold
//! parts of each map as a server's per-user traffic does.
//!
//! ```text
//! cargo bench --bench one_subscriber                 # min / median ns, 9 interleaved rounds
//! cargo bench --bench one_subscriber -- --rounds 21  # more rounds
//! # instructions per broadcast (repeatable on a loaded machine):
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_*' \
//!     target/release/deps/one_subscriber-<hash> --ir fanout_topic hot
//! ```
//!
//! The rows of a round run back to back and the rounds interleave, so the ratios compare
//! rows measured in the same minutes of the same run; the minimum over rounds is the
//! least-disturbed sample on a shared machine.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use fanout::transport::{encode_push, RawPayload, FRAME_KIND_PUSH, FRAME_VERSION};
use fanout::{PubSub, Topic};

const TOPICS: usize = 100_000;
const SPREAD: usize = 4_096;
const PAYLOAD: [u8; 64] = [7; 64];
/// Broadcasts per timed sample, and per callgrind run.
const ITERS: usize = 20_000;

type Callback = Box<dyn Fn(&Bytes) + Send + Sync>;

fn consume(frame: &Bytes) {
    black_box(frame.len());
}

fn topic_name(k: usize) -> String {
    format!("user.{k:06}")
}

/// The frame as a user would build it for the best case: one allocation of exactly the
/// frame's size, written once (the same bytes as `fanout::transport::encode_push`).
fn floor_frame(topic: &str, payload: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(4 + topic.len() + 4 + payload.len());
    frame.extend_from_slice(&[FRAME_VERSION, FRAME_KIND_PUSH]);
    frame.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    frame.extend_from_slice(topic.as_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// Which topics a run broadcasts to, in order: one (`hot`) or 4,096 shuffled (`spread`).
fn targets(pattern: &str) -> Vec<usize> {
    match pattern {
        "hot" => vec![TOPICS / 2],
        "spread" => {
            // A fixed xorshift permutation: the same order in every run.
            let mut order: Vec<usize> = (0..SPREAD).map(|i| i * (TOPICS / SPREAD)).collect();
            let mut state = 0x9E37_79B9_7F4A_7C15_u64;
            for i in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            order
        }
        other => panic!("unknown access pattern {other:?} (hot | spread)"),
    }
}

/// One row's prepared state: everything built before the clock starts.
enum Row {
    FanoutStr(PubSub<[u8]>, Vec<String>),
    FanoutTopic(PubSub<[u8]>, Vec<Topic>),
    FanoutFrame(PubSub<[u8]>, Vec<(Topic, Bytes)>),
    Tokio(
        RwLock<HashMap<String, tokio::sync::broadcast::Sender<Bytes>>>,
        Vec<(String, tokio::sync::broadcast::Receiver<Bytes>)>,
    ),
    Bus(
        Mutex<HashMap<String, bus::Bus<Bytes>>>,
        Vec<(String, bus::BusReader<Bytes>)>,
    ),
    Naive(RwLock<HashMap<String, Vec<Callback>>>, Vec<String>),
    Floor(
        ArcSwap<HashMap<Box<str>, Vec<Callback>, ahash::RandomState>>,
        Vec<String>,
    ),
    FloorNoLookup(Callback, Vec<String>),
}

const ROWS: [&str; 8] = [
    "fanout_str",
    "fanout_topic",
    "fanout_frame",
    "tokio",
    "bus",
    "naive",
    "floor",
    "floor_no_lookup",
];

/// A `PubSub` with `TOPICS` callback clients, each subscribed to its own topic.
fn fanout_engine() -> PubSub<[u8]> {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let ids: Vec<_> = (0..TOPICS).map(|_| pubsub.generate_client_id()).collect();
    pubsub
        .register_many(ids.iter().map(|&id| (id, consume)))
        .unwrap();
    let changes = ids
        .iter()
        .enumerate()
        .map(|(k, &id)| fanout::Mutation::Subscribe(id, pubsub.topic(&topic_name(k)).unwrap()));
    pubsub.apply(changes).unwrap();
    pubsub
}

fn prepare(row: &str, pattern: &str) -> Row {
    let order = targets(pattern);
    let names: Vec<String> = order.iter().map(|&k| topic_name(k)).collect();
    match row {
        "fanout_str" => Row::FanoutStr(fanout_engine(), names),
        "fanout_topic" => {
            let pubsub = fanout_engine();
            let topics = names
                .iter()
                .map(|name| pubsub.topic(name).unwrap())
                .collect();
            Row::FanoutTopic(pubsub, topics)
        }
        "fanout_frame" => {
            let pubsub = fanout_engine();
            let frames = names
                .iter()
                .map(|name| {
                    let frame = encode_push(name, &PAYLOAD).unwrap();
                    (pubsub.topic(name).unwrap(), frame)
                })
                .collect();
            Row::FanoutFrame(pubsub, frames)
        }
        "tokio" => {
            let mut map = HashMap::new();
            let mut receivers = HashMap::new();
            for k in 0..TOPICS {
                let (tx, rx) = tokio::sync::broadcast::channel(16);
                map.insert(topic_name(k), tx);
                receivers.insert(topic_name(k), rx);
            }
            let rx = names
                .iter()
                .map(|name| (name.clone(), receivers.remove(name).unwrap()))
                .collect();
            Row::Tokio(RwLock::new(map), rx)
        }
        "bus" => {
            // Every `Bus` starts a thread of its own, so 100,000 of them cannot be made:
            // the map holds only the topics broadcast to (1 or 4,096) — smaller than the
            // other rows' maps, in bus's favour.
            let mut map = HashMap::new();
            for name in &names {
                map.insert(name.clone(), bus::Bus::new(16));
            }
            let readers = names
                .iter()
                .map(|name| (name.clone(), map.get_mut(name).unwrap().add_rx()))
                .collect();
            Row::Bus(Mutex::new(map), readers)
        }
        "naive" => {
            let map = (0..TOPICS)
                .map(|k| (topic_name(k), vec![Box::new(consume) as Callback]))
                .collect();
            Row::Naive(RwLock::new(map), names)
        }
        "floor" => {
            let map = (0..TOPICS)
                .map(|k| {
                    let name: Box<str> = topic_name(k).into();
                    (name, vec![Box::new(consume) as Callback])
                })
                .collect();
            Row::Floor(ArcSwap::from_pointee(map), names)
        }
        "floor_no_lookup" => Row::FloorNoLookup(Box::new(consume), names),
        other => panic!("unknown row {other:?}"),
    }
}

#[inline(never)]
fn measure_fanout_str(pubsub: &PubSub<[u8]>, names: &[String], iters: usize) -> usize {
    let mut total = 0;
    for name in names.iter().cycle().take(iters) {
        total += pubsub
            .broadcast(black_box(name.as_str()), &PAYLOAD[..], &RawPayload)
            .unwrap();
    }
    total
}

#[inline(never)]
fn measure_fanout_topic(pubsub: &PubSub<[u8]>, topics: &[Topic], iters: usize) -> usize {
    let mut total = 0;
    for topic in topics.iter().cycle().take(iters) {
        total += pubsub
            .broadcast(black_box(topic), &PAYLOAD[..], &RawPayload)
            .unwrap();
    }
    total
}

#[inline(never)]
fn measure_fanout_frame(pubsub: &PubSub<[u8]>, frames: &[(Topic, Bytes)], iters: usize) -> usize {
    let mut total = 0;
    for (topic, frame) in frames.iter().cycle().take(iters) {
        total += pubsub.broadcast_frame(black_box(topic), frame).unwrap();
    }
    total
}

#[inline(never)]
fn measure_tokio(
    map: &RwLock<HashMap<String, tokio::sync::broadcast::Sender<Bytes>>>,
    receivers: &mut [(String, tokio::sync::broadcast::Receiver<Bytes>)],
    iters: usize,
) -> usize {
    let mut total = 0;
    let len = receivers.len();
    for i in 0..iters {
        let (name, rx) = &mut receivers[i % len];
        let name = black_box(name.as_str());
        if let Some(tx) = map.read().unwrap().get(name) {
            total += tx.send(floor_frame(name, &PAYLOAD)).unwrap_or(0);
        }
        consume(&rx.try_recv().unwrap());
    }
    total
}

#[inline(never)]
fn measure_bus(
    map: &Mutex<HashMap<String, bus::Bus<Bytes>>>,
    readers: &mut [(String, bus::BusReader<Bytes>)],
    iters: usize,
) -> usize {
    let mut total = 0;
    let len = readers.len();
    for i in 0..iters {
        let (name, rx) = &mut readers[i % len];
        let name = black_box(name.as_str());
        if let Some(bus) = map.lock().unwrap().get_mut(name) {
            bus.broadcast(floor_frame(name, &PAYLOAD));
            total += 1;
        }
        consume(&rx.try_recv().unwrap());
    }
    total
}

#[inline(never)]
fn measure_naive(
    map: &RwLock<HashMap<String, Vec<Callback>>>,
    names: &[String],
    iters: usize,
) -> usize {
    let mut total = 0;
    for name in names.iter().cycle().take(iters) {
        let name = black_box(name.as_str());
        if let Some(callbacks) = map.read().unwrap().get(name) {
            let frame = floor_frame(name, &PAYLOAD);
            for callback in callbacks {
                callback(&frame);
            }
            total += callbacks.len();
        }
    }
    total
}

#[inline(never)]
fn measure_floor(
    map: &ArcSwap<HashMap<Box<str>, Vec<Callback>, ahash::RandomState>>,
    names: &[String],
    iters: usize,
) -> usize {
    let mut total = 0;
    for name in names.iter().cycle().take(iters) {
        let name = black_box(name.as_str());
        let map = map.load();
        if let Some(callbacks) = map.get(name) {
            let frame = floor_frame(name, &PAYLOAD);
            for callback in callbacks {
                callback(&frame);
            }
            total += callbacks.len();
        }
    }
    total
}

#[inline(never)]
fn measure_floor_no_lookup(callback: &Callback, names: &[String], iters: usize) -> usize {
    for name in names.iter().cycle().take(iters) {
        callback(&floor_frame(black_box(name.as_str()), &PAYLOAD));
    }
    iters
}

/// Runs `iters` broadcasts of a prepared row; returns the deliveries.
fn run(row: &mut Row, iters: usize) -> usize {
    match row {
        Row::FanoutStr(pubsub, names) => measure_fanout_str(pubsub, names, iters),
        Row::FanoutTopic(pubsub, topics) => measure_fanout_topic(pubsub, topics, iters),
        Row::FanoutFrame(pubsub, frames) => measure_fanout_frame(pubsub, frames, iters),
        Row::Tokio(map, receivers) => measure_tokio(map, receivers, iters),
        Row::Bus(map, readers) => measure_bus(map, readers, iters),
        Row::Naive(map, names) => measure_naive(map, names, iters),
        Row::Floor(map, names) => measure_floor(map, names, iters),
        Row::FloorNoLookup(callback, names) => measure_floor_no_lookup(callback, names, iters),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--ir") {
        // One row, one pass, for callgrind: `--ir ROW [hot|spread]`.
        let row = args.get(at + 1).expect("--ir needs a row name");
        let pattern = args.get(at + 2).map_or("hot", String::as_str);
        let mut prepared = prepare(row, pattern);
        run(&mut prepared, ITERS / 10); // warm the caches and the allocator
        let delivered = run(&mut prepared, ITERS);
        assert_eq!(
            delivered, ITERS,
            "{row}: every broadcast reaches its one subscriber"
        );
        println!("{row} {pattern}: {ITERS} broadcasts");
        return;
    }
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|at| args.get(at + 1))
        .map_or(9, |n| n.parse().expect("--rounds takes a number"));

    for pattern in ["hot", "spread"] {
        let mut rows: Vec<(&str, Row)> = ROWS.iter().map(|&r| (r, prepare(r, pattern))).collect();
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
        for _ in 0..rounds {
            for ((name, row), samples) in rows.iter_mut().zip(&mut samples) {
                run(row, ITERS / 10);
                let start = Instant::now();
                let delivered = run(row, ITERS);
                let elapsed = start.elapsed();
                assert_eq!(delivered, ITERS, "{name}: one delivery per broadcast");
                samples.push(elapsed.as_nanos() as f64 / ITERS as f64);
            }
        }
        let stat = |s: &mut Vec<f64>| {
            s.sort_by(f64::total_cmp);
            (s[0], s[s.len() / 2])
        };
        let stats: Vec<(f64, f64)> = samples.iter_mut().map(stat).collect();
        let floor = stats[ROWS.iter().position(|&r| r == "floor").unwrap()];
        println!(
            "\n{pattern}: one subscriber among {TOPICS} topics, 64 B payload, {rounds} rounds"
        );
        println!(
            "{:<16} {:>9} {:>9} {:>13}",
            "row", "min ns", "median ns", "min / floor"
        );
        for (name, (min, median)) in ROWS.iter().zip(&stats) {
            println!(
                "{name:<16} {min:>9.1} {median:>9.1} {:>12.2}×",
                min / floor.0
            );
        }
    }
}
