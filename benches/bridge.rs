//! The Redis bridge beside the floor: a raw `redis` crate PUBLISH → SUBSCRIBE loop on
//! the same `redis-server`. Needs feature `redis` and `redis-server` installed; starts
//! its own server on a free loopback port.
//!
//! ```text
//! cargo bench -p fanout-benches --features redis --bench bridge               # everything
//! cargo bench -p fanout-benches --features redis --bench bridge -- throughput # raw vs bridge
//! cargo bench -p fanout-benches --features redis --bench bridge -- tap        # broadcast cost only
//! cargo bench -p fanout-benches --features redis --bench bridge -- layout     # channel layouts only
//! ROUNDS=5 SUBSCRIBERS=1 cargo bench … -- throughput    # rounds, remote subscriber counts
//! ```
//!
//! Scenarios, 64 B payloads:
//! - `throughput`: frames/s from one publisher to 1, 10, 100 remote subscribers, flat
//!   out (20,000 frames), per subscriber. Raw: what a user would write with the `redis`
//!   crate — one connection pipelining 256 `PUBLISH`es per round trip (as many as the
//!   bridge hands Redis at once), and that many `SUBSCRIBE` connections. Bridge: engine
//!   A broadcasts as fast as it can, engine B has that many callback subscribers, under
//!   each channel layout; timed until the last frame reached every subscriber.
//! - `latency`: one frame in flight at a time, publish → receive, p50/p99 over all
//!   deliveries (2,000 frames).
//!
//!   Both run in interleaved rounds (raw, then bridge; `ROUNDS`, default 3), so a noisy
//!   neighbour skews both alike; each round is printed with the load average, then the
//!   median ratio with its min and max (`bridge_common.rs`).
//! - `layout`: both channel layouts end to end (raw clients: 2/4/8 nodes each serving a
//!   share of 96 topics, one channel vs per-topic channels), and what per-topic channels
//!   cost Redis: SUBSCRIBE+UNSUBSCRIBE round trip, memory per subscribed channel,
//!   PUBLISH to a channel nobody subscribes.
//! - `tap`: ns per broadcast to one local callback subscriber, plain engine vs bridged
//!   (Redis unreachable: the tap's cost alone, frames dropped by the publisher).
//!
//! `floor` modes for callgrind: `bridge tap_plain` / `bridge tap_bridged` run `ITERS`
//! broadcasts inside `measure_tap`:
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_tap*'
//! target/release/deps/bridge-<hash> tap_bridged`. `bridge profile_bridge [FRAMES]` and
//! `bridge profile_raw [FRAMES]` run one throughput run each (one remote subscriber,
//! namespace layout), for `valgrind --tool=callgrind --separate-threads=yes` (each
//! thread's instructions per frame) or `strace -c -f` (system calls).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::bridge::{Bridge, ChannelLayout};
use fanout::transport::RawPayload;
use fanout::PubSub;

mod bridge_common;
#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use bridge_common::{bridged, compare, now_ns, stamped, Received, Run, PAYLOAD};
use redis_server::{free_port, url_for, RedisServer};

/// Most `PUBLISH`es the raw loop pipelines in one round trip (as many as the bridge's
/// publisher thread hands Redis at once).
const PIPELINE: u64 = 256;

/// `subscribers` raw SUBSCRIBE connections, each on its own thread.
fn raw_subscribers(
    url: &str,
    subscribers: usize,
    keep_latency: bool,
) -> (
    Arc<Received>,
    std::sync::mpsc::Receiver<()>,
    Vec<thread::JoinHandle<()>>,
    Arc<AtomicU64>,
) {
    let (received, arrivals) = Received::paced();
    let stop = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicU64::new(0));
    let threads = (0..subscribers)
        .map(|_| {
            let (received, stop, ready) = (received.clone(), stop.clone(), ready.clone());
            let client = redis::Client::open(url).unwrap();
            thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                con.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let mut ps = con.as_pubsub();
                ps.subscribe("raw").unwrap();
                ready.fetch_add(1, Ordering::Release);
                while stop.load(Ordering::Relaxed) == 0 {
                    if let Ok(msg) = ps.get_message() {
                        received.record(msg.get_payload_bytes(), keep_latency);
                    }
                }
            })
        })
        .collect();
    while ready.load(Ordering::Acquire) < subscribers as u64 {
        thread::sleep(Duration::from_millis(1));
    }
    (received, arrivals, threads, stop)
}

/// The raw loop a user would write: one connection publishing, `PIPELINE` `PUBLISH`es
/// per round trip flat out (paced: one `PUBLISH` and wait for every subscriber), and
/// `subscribers` SUBSCRIBE connections.
fn raw(url: &str, subscribers: usize, frames: u64, paced: bool) -> Run {
    let (received, arrivals, threads, stop) = raw_subscribers(url, subscribers, paced);
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let each = subscribers as u64;
    let start = now_ns();
    if paced {
        for _ in 0..frames {
            redis::cmd("PUBLISH")
                .arg("raw")
                .arg(&stamped()[..])
                .exec(&mut con)
                .unwrap();
            for _ in 0..each {
                arrivals.recv().unwrap();
            }
        }
    } else {
        let mut sent = 0;
        let mut pipe = redis::pipe();
        while sent < frames {
            pipe.clear();
            for _ in 0..PIPELINE.min(frames - sent) {
                pipe.cmd("PUBLISH").arg("raw").arg(&stamped()[..]).ignore();
                sent += 1;
            }
            pipe.exec(&mut con).unwrap();
        }
    }
    let (arrived, rate) = received.settle(frames * each, start);
    assert_eq!(arrived, frames * each);
    stop.store(1, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());
    let (p50, p99) = received.percentiles();
    Run {
        rate: if paced { 0.0 } else { rate / each as f64 },
        p50,
        p99,
    }
}

/// The bridge between two engines on `url`, `subscribers` callbacks on the receiving
/// engine; throughput flat out (the queue holds every frame), or paced.
fn bridge_run(
    url: &str,
    subscribers: usize,
    frames: u64,
    paced: bool,
    layout: ChannelLayout,
) -> Run {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let ns = format!("bench-{}", RUN.fetch_add(1, Ordering::Relaxed));
    bridged(
        || Bridge::builder(url, &ns).layout(layout),
        subscribers,
        frames,
        frames,
        paced,
        |b| b.stats().channels == 1,
    )
}

/// Remote subscriber counts: `SUBSCRIBERS` in the environment (`1,10`), or 1, 10, 100.
fn subscriber_counts() -> Vec<usize> {
    std::env::var("SUBSCRIBERS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 100])
}

fn throughput_and_latency(url: &str, rounds: usize) {
    for subscribers in subscriber_counts() {
        for layout in [ChannelLayout::Namespace, ChannelLayout::PerTopic] {
            let frames = 20_000;
            let paced_frames = 2_000;
            compare(
                &format!("redis, {subscribers} remote subscriber(s), {layout:?}"),
                rounds,
                || {
                    (
                        raw(url, subscribers, frames, false),
                        raw(url, subscribers, paced_frames, true),
                    )
                },
                || {
                    (
                        bridge_run(url, subscribers, frames, false, layout),
                        bridge_run(url, subscribers, paced_frames, true, layout),
                    )
                },
            );
        }
    }
}

/// Both layouts end to end, raw: `nodes` subscriber connections, `topics` topics of
/// which each node serves `topics / nodes`, one publisher pipelining 256 PUBLISHes per
/// round trip (as the bridge does), round robin over the topics. One channel: every
/// node gets every frame. Per-topic channels: each frame reaches the one node serving
/// its topic. Returns frames/s until every expected message arrived.
fn layout_throughput(url: &str, nodes: usize, topics: usize, per_topic: bool) -> f64 {
    let frames = 40_000u64;
    let received = Arc::new(Received::default());
    let stop = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..nodes)
        .map(|node| {
            let (received, stop, ready) = (received.clone(), stop.clone(), ready.clone());
            let client = redis::Client::open(url).unwrap();
            thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                con.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let mut ps = con.as_pubsub();
                if per_topic {
                    let mine: Vec<String> = (0..topics)
                        .filter(|t| t % nodes == node)
                        .map(|t| format!("lt:{t}"))
                        .collect();
                    ps.subscribe(&mine).unwrap();
                } else {
                    ps.subscribe("lt").unwrap();
                }
                ready.fetch_add(1, Ordering::Release);
                while stop.load(Ordering::Relaxed) == 0 {
                    if let Ok(msg) = ps.get_message() {
                        received.record(msg.get_payload_bytes(), false);
                    }
                }
            })
        })
        .collect();
    while ready.load(Ordering::Acquire) < nodes as u64 {
        thread::sleep(Duration::from_millis(1));
    }
    let names: Vec<String> = (0..topics).map(|t| format!("lt:{t}")).collect();
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let payload = [7u8; PAYLOAD + 34];
    let start = Instant::now();
    let mut i = 0u64;
    while i < frames {
        let mut pipe = redis::pipe();
        for _ in 0..256.min(frames - i) {
            let channel = if per_topic {
                names[i as usize % topics].as_str()
            } else {
                "lt"
            };
            pipe.cmd("PUBLISH").arg(channel).arg(&payload[..]).ignore();
            i += 1;
        }
        pipe.exec(&mut con).unwrap();
    }
    let expected = if per_topic {
        frames
    } else {
        frames * nodes as u64
    };
    assert!(received.wait_for(expected, Duration::from_secs(60)));
    let rate = frames as f64 / start.elapsed().as_secs_f64();
    stop.store(1, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());
    rate
}

fn used_memory(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn layout(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut admin = client.get_connection().unwrap();
    let mut con = client.get_connection().unwrap();
    let mut ps = con.as_pubsub();
    // Churn: what a topic opening and closing on a node would cost its subscriber
    // connection (one round trip each).
    let pairs = 5_000;
    let start = Instant::now();
    for i in 0..pairs {
        let ch = format!("churn:{i}");
        ps.subscribe(&ch).unwrap();
        ps.unsubscribe(&ch).unwrap();
    }
    let churn_us = start.elapsed().as_secs_f64() * 1e6 / pairs as f64;
    // Memory per subscribed channel (one subscriber).
    let channels = 20_000;
    let before = used_memory(&mut admin);
    let names: Vec<String> = (0..channels).map(|i| format!("ns:room/{i}")).collect();
    for chunk in names.chunks(1000) {
        ps.subscribe(chunk).unwrap();
    }
    let per_channel = (used_memory(&mut admin) - before) as f64 / channels as f64;
    // PUBLISH to a channel with no subscriber (what Redis does for a node that does not
    // serve the topic under per-topic channels) vs with one.
    let publish_rate = |admin: &mut redis::Connection, channel: &str| {
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(&[7u8; PAYLOAD][..])
                .exec(admin)
                .unwrap();
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let idle = publish_rate(&mut admin, "nobody-listens");
    for nodes in [2usize, 4, 8] {
        let single = layout_throughput(url, nodes, 96, false);
        let per_topic = layout_throughput(url, nodes, 96, true);
        println!(
            "{nodes} nodes, 96 topics, each node serving 1/{nodes}: one channel {single:.0} frames/s, per-topic channels {per_topic:.0} frames/s ({:.2}×)",
            per_topic / single
        );
    }
    println!("SUBSCRIBE+UNSUBSCRIBE round trips: {churn_us:.1} µs per pair");
    println!("Redis memory per subscribed channel (one subscriber): {per_channel:.0} B");
    println!("PUBLISH to a channel nobody subscribes: {idle:.0}/s (one round trip each)");
}

#[inline(never)]
fn measure_tap(pubsub: &PubSub<[u8]>, iters: usize) {
    let topic = pubsub.topic("t").unwrap();
    let payload = [7u8; PAYLOAD];
    for _ in 0..iters {
        black_box(pubsub.broadcast(&topic, &payload[..], &RawPayload).unwrap());
    }
}

fn tap_engine(bridged: bool) -> (PubSub<[u8]>, Option<Bridge>) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let id = pubsub.generate_client_id();
    pubsub
        .register(id, |f| {
            black_box(f);
        })
        .unwrap();
    pubsub.subscribe(id, "t").unwrap();
    let bridge = bridged.then(|| {
        // Nobody listens there: the publisher drops what the tap hands it.
        Bridge::builder(&url_for(free_port()), "tap")
            .backoff(Duration::from_secs(60), Duration::from_secs(60))
            .attach(&pubsub)
            .unwrap()
    });
    (pubsub, bridge)
}

fn tap() {
    let iters = 200_000;
    let mut results = [Vec::new(), Vec::new()];
    for _round in 0..5 {
        for (i, bridged) in [false, true].into_iter().enumerate() {
            let (pubsub, _bridge) = tap_engine(bridged);
            measure_tap(&pubsub, 1000);
            let start = Instant::now();
            measure_tap(&pubsub, iters);
            results[i].push(start.elapsed().as_nanos() as f64 / iters as f64);
        }
    }
    for r in &mut results {
        r.sort_by(f64::total_cmp);
    }
    println!(
        "broadcast to 1 local callback: plain {:.1} ns, bridged {:.1} ns (min of 5; median {:.1} / {:.1})",
        results[0][0], results[1][0], results[0][2], results[1][2]
    );
}

/// Rounds of the throughput and latency comparison: `ROUNDS` in the environment, or 3.
fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let frames = || args.get(1).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    match args.first().map(String::as_str) {
        Some("tap_plain") | Some("tap_bridged") => {
            let (pubsub, _bridge) = tap_engine(args[0] == "tap_bridged");
            measure_tap(&pubsub, 2_000);
            return;
        }
        Some("tap") => return tap(),
        Some("layout") => {
            let redis = RedisServer::start();
            return layout(&redis.url());
        }
        // One run each, for callgrind or `strace -c -f`: `profile_bridge [FRAMES]`,
        // `profile_raw [FRAMES]` (one remote subscriber, namespace layout, flat out).
        Some("profile_bridge") => {
            let redis = RedisServer::start();
            let run = bridge_run(&redis.url(), 1, frames(), false, ChannelLayout::Namespace);
            return println!("bridge: {:.0} frames/s", run.rate);
        }
        Some("profile_raw") => {
            let redis = RedisServer::start();
            let run = raw(&redis.url(), 1, frames(), false);
            return println!("raw: {:.0} frames/s", run.rate);
        }
        Some("throughput") | Some("latency") => {
            let redis = RedisServer::start();
            return throughput_and_latency(&redis.url(), rounds());
        }
        _ => {}
    }
    let redis = RedisServer::start();
    let url = redis.url();
    println!("redis-server on {url}, {PAYLOAD} B payloads");
    throughput_and_latency(&url, rounds());
    layout(&url);
    tap();
}
