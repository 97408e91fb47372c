//! The NATS bridge beside the floor: a raw `async-nats` publish → subscribe loop on the
//! same `nats-server`, in the same run. Needs feature `nats` and `nats-server`
//! installed; starts its own servers on free loopback ports.
//!
//! ```text
//! cargo bench -p fanout-benches --features nats --bench bridge_nats              # everything
//! cargo bench -p fanout-benches --features nats --bench bridge_nats -- throughput
//! cargo bench -p fanout-benches --features nats --bench bridge_nats -- quarter   # interest routing only
//! ROUNDS=5 cargo bench … -- throughput                                           # more rounds
//! ```
//!
//! Scenarios, 64 B payloads, one server:
//! - `throughput`: frames/s from one publisher to one remote subscriber, 200,000 frames
//!   in bursts of 1,000 each waited for (a subscriber that falls behind gets frames
//!   dropped by NATS: flat out, both loops would measure their receiver's losses). Raw:
//!   one client publishing a burst with `publish().await` then one `flush()` (on its own
//!   thread and current-thread runtime), another client on another thread receiving.
//!   Bridge: engine A broadcasts a burst, engine B has one callback subscriber.
//! - `latency`: one frame in flight at a time, publish (raw: and `flush()`) → receive,
//!   p50/p99 over 2,000.
//!
//!   Both run in interleaved rounds (raw, then bridge; `ROUNDS`, default 3), so a noisy
//!   neighbour skews both alike; each round is printed with the load average, then the
//!   median ratio with its min and max (`bridge_common.rs`).
//! - `handoff`: the lone-frame latency of three loops in interleaved rounds (2,000 frames
//!   each, one in flight): the raw loop, the raw loop with the one thread hand-off the
//!   bridge's design requires (the publishing client lives on its own thread and
//!   runtime; the bench thread hands it each payload through a channel, as a broadcast
//!   hands its frame to the bridge's io thread), and the bridge. It tells what of the
//!   bridge's p50 gap is that hand-off and what is the bridge's own work.
//! - `quarter`: a publisher and four nodes on a 3-server cluster, 96 topics; each node
//!   serves a quarter of them, node 0 through one pattern (`q.0.*`), the others by
//!   name; what share of the frames each node receives, and frames/s.
//!
//! `bridge_nats profile_bridge [FRAMES]` and `bridge_nats profile_raw [FRAMES]` run one
//! throughput run each, `profile_paced_bridge [FRAMES]` and `profile_paced_raw [FRAMES]`
//! one paced run each, for `valgrind --tool=callgrind --separate-threads=yes` or
//! `strace -c -f` (per frame: the difference of two runs of different lengths).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fanout::bridge::Bridge;
use fanout::transport::RawPayload;
use fanout::PubSub;
use futures_core::Stream;

mod bridge_common;
#[path = "../tests/common/nats_server.rs"]
mod nats_server;

use bridge_common::{bridged, compare, now_ns, stamped, Received, Run, BURST};
use nats_server::NatsCluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn next(sub: &mut async_nats::Subscriber) -> Option<async_nats::Message> {
    poll_fn(|cx| Pin::new(&mut *sub).poll_next(cx)).await
}

/// The raw loop: a subscriber client on its own thread, a publisher client on this
/// one, publishing bursts of [`BURST`] with `publish().await` and one `flush()` each
/// (paced: one frame in flight at a time, flushed).
fn raw(url: &str, frames: u64, paced: bool) -> Run {
    let (received, arrivals) = Received::paced();
    let subscriber = raw_subscriber(url, &received, paced);
    let rt = runtime();
    let client = rt.block_on(async_nats::connect(url)).unwrap();
    rt.block_on(client.flush()).unwrap();
    thread::sleep(Duration::from_millis(50));
    let start = now_ns();
    if paced {
        for _ in 0..frames {
            rt.block_on(async {
                let payload = Bytes::copy_from_slice(&stamped());
                client.publish("raw", payload).await.unwrap();
                client.flush().await.unwrap();
            });
            arrivals.recv().unwrap();
        }
    } else {
        for burst in 0..frames / BURST {
            rt.block_on(async {
                for _ in 0..BURST {
                    let payload = Bytes::copy_from_slice(&stamped());
                    client.publish("raw", payload).await.unwrap();
                }
                client.flush().await.unwrap();
            });
            assert!(received.wait_for((burst + 1) * BURST, Duration::from_secs(30)));
        }
    }
    let (arrived, rate) = received.settle(frames, start);
    if arrived < frames {
        println!("raw: {arrived} of {frames} arrived (the subscriber fell behind)");
    }
    subscriber.join().unwrap();
    let (p50, p99) = received.percentiles();
    Run {
        rate: if paced { 0.0 } else { rate },
        p50,
        p99,
    }
}

/// The raw loop's subscriber: a client on its own thread and runtime, subscribed to
/// `raw` when this returns; it stops 700 ms after the last message.
fn raw_subscriber(url: &str, received: &Arc<Received>, paced: bool) -> thread::JoinHandle<()> {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (url, received) = (url.to_owned(), Arc::clone(received));
    let subscriber = thread::spawn(move || {
        runtime().block_on(async move {
            let client = async_nats::connect(url).await.unwrap();
            let mut sub = client.subscribe("raw").await.unwrap();
            client.flush().await.unwrap();
            ready_tx.send(()).unwrap();
            let idle = Duration::from_millis(700);
            while let Ok(Some(m)) = tokio::time::timeout(idle, next(&mut sub)).await {
                received.record(&m.payload, paced);
            }
        })
    });
    ready.recv().unwrap();
    subscriber
}

/// The raw loop, paced, with the one hand-off the bridge's design requires: the
/// publishing client and its current-thread runtime live on their own thread; this
/// thread hands each payload over an unbounded channel (a send that never blocks; it
/// wakes the runtime's thread when it sleeps) and the client's task publishes it (the
/// connection handler writes it out at once: no `flush()` needed on a runtime that
/// keeps running). As a broadcast hands its frame to the bridge's io thread.
fn raw_handoff(url: &str, frames: u64) -> Run {
    let (received, arrivals) = Received::paced();
    let subscriber = raw_subscriber(url, &received, true);
    let (to_publisher, mut payloads) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let (up_tx, up) = std::sync::mpsc::channel();
    let publisher = {
        let url = url.to_owned();
        thread::spawn(move || {
            runtime().block_on(async move {
                let client = async_nats::connect(url).await.unwrap();
                client.flush().await.unwrap();
                up_tx.send(()).unwrap();
                while let Some(payload) = payloads.recv().await {
                    client.publish("raw", payload).await.unwrap();
                }
                client.flush().await.unwrap();
            })
        })
    };
    up.recv().unwrap();
    thread::sleep(Duration::from_millis(50));
    for _ in 0..frames {
        to_publisher
            .send(Bytes::copy_from_slice(&stamped()))
            .unwrap();
        arrivals.recv().unwrap();
    }
    drop(to_publisher);
    publisher.join().unwrap();
    subscriber.join().unwrap();
    let (p50, p99) = received.percentiles();
    Run {
        rate: 0.0,
        p50,
        p99,
    }
}

/// Interleaved rounds of the paced raw loop, the raw loop with the hand-off, and the
/// bridge: p50 (p99) µs per round, then the medians of the ratios with min–max.
fn handoff(rounds: usize) {
    let cluster = NatsCluster::start(1);
    let url = cluster.url_of(0);
    let frames = 2_000;
    println!(
        "nats, lone-frame latency: {rounds} interleaved rounds, load before {}",
        bridge_common::load()
    );
    println!("| round | raw p50 / p99 µs | raw + hand-off p50 / p99 µs | bridge p50 / p99 µs | bridge ÷ raw | bridge ÷ raw + hand-off | load |");
    println!("|---|---|---|---|---|---|---|");
    let (mut to_raw, mut to_handoff) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let r = raw(&url, frames, true);
        let h = raw_handoff(&url, frames);
        let b = bridge_run(&url, frames, true);
        to_raw.push(b.p50 / r.p50);
        to_handoff.push(b.p50 / h.p50);
        println!(
            "| {round} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}× | {:.2}× | {} |",
            r.p50,
            r.p99,
            h.p50,
            h.p99,
            b.p50,
            b.p99,
            b.p50 / r.p50,
            b.p50 / h.p50,
            bridge_common::load()
        );
    }
    let (r, rmin, rmax) = bridge_common::spread(to_raw);
    let (h, hmin, hmax) = bridge_common::spread(to_handoff);
    println!(
        "nats, lone-frame latency: bridge ÷ raw p50 median {r:.2}× (min {rmin:.2}, max {rmax:.2}); \
         bridge ÷ raw with the hand-off {h:.2}× (min {hmin:.2}, max {hmax:.2}); load after {}",
        bridge_common::load()
    );
}

/// The bridge between two engines on `url`, one callback subscriber on the receiving
/// engine; throughput in bursts of [`BURST`] (as the raw loop), or paced.
fn bridge_run(url: &str, frames: u64, paced: bool) -> Run {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let ns = format!("bench{}", RUN.fetch_add(1, Ordering::Relaxed));
    bridged(
        || Bridge::builder(url, &ns),
        1,
        frames,
        BURST,
        paced,
        |b| b.stats().channels == 1,
    )
}

fn throughput_and_latency(rounds: usize) {
    let cluster = NatsCluster::start(1);
    let url = cluster.url_of(0);
    let frames = 200_000;
    compare(
        "nats, 1 remote subscriber",
        rounds,
        || (raw(&url, frames, false), raw(&url, 2_000, true)),
        || {
            (
                bridge_run(&url, frames, false),
                bridge_run(&url, 2_000, true),
            )
        },
    );
}

/// Four nodes on a 3-server cluster, each serving a quarter of 96 topics (node 0 by
/// one pattern), a publisher round robin over all 96.
fn quarter() {
    let cluster = NatsCluster::start(3);
    let frames = 96_000u64;
    let publisher = PubSub::<[u8]>::new().unwrap();
    let bridge_p = Bridge::builder(&cluster.url_of(0), "quarter")
        .queue_capacity(frames as usize)
        .attach(&publisher)
        .unwrap();
    let nodes: Vec<PubSub<[u8]>> = (0..4).map(|_| PubSub::new().unwrap()).collect();
    let bridges: Vec<Bridge> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Bridge::builder(&cluster.url_of(1 + i % 2), "quarter")
                .attach(n)
                .unwrap()
        })
        .collect();
    let counts: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::default()).collect();
    for (i, node) in nodes.iter().enumerate() {
        let id = node.generate_client_id();
        let count = Arc::clone(&counts[i]);
        node.register(id, move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        if i == 0 {
            node.subscribe(id, "q.0.*").unwrap();
        } else {
            for k in 0..24 {
                node.subscribe(id, format!("q.{i}.{k}").as_str()).unwrap();
            }
        }
    }
    while !(bridge_p.stats().connected
        && bridges
            .iter()
            .enumerate()
            .all(|(i, b)| b.stats().channels == if i == 0 { 1 } else { 24 }))
    {
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(300)); // interest spreads through the cluster
    let topics: Vec<String> = (0..96).map(|t| format!("q.{}.{}", t % 4, t / 4)).collect();
    let start = Instant::now();
    for i in 0..frames {
        publisher
            .broadcast(
                topics[i as usize % 96].as_str(),
                &stamped()[..],
                &RawPayload,
            )
            .unwrap();
    }
    let all = || {
        counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let limit = Instant::now() + Duration::from_secs(60);
    while all() < frames && Instant::now() < limit {
        thread::sleep(Duration::from_micros(100));
    }
    let rate = frames as f64 / start.elapsed().as_secs_f64();
    let shares: Vec<String> = counts
        .iter()
        .map(|c| format!("{:.3}", c.load(Ordering::Relaxed) as f64 / frames as f64))
        .collect();
    let received: Vec<u64> = bridges.iter().map(|b| b.stats().received).collect();
    println!(
        "quarter: 4 nodes each serving 24 of 96 topics (node 0 by the pattern q.0.*): \
         shares of the frames received {shares:?} (envelopes received per node {received:?} \
         of {frames}), {rate:.0} frames/s end to end"
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let frames = || args.get(1).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    // One run each, for callgrind or `strace -c -f`: `profile_bridge [FRAMES]`,
    // `profile_raw [FRAMES]`.
    match args.first().map(String::as_str) {
        Some("profile_bridge") => {
            let cluster = NatsCluster::start(1);
            let run = bridge_run(&cluster.url_of(0), frames(), false);
            return println!("bridge: {:.0} frames/s", run.rate);
        }
        Some("profile_paced_bridge") => {
            let cluster = NatsCluster::start(1);
            let run = bridge_run(&cluster.url_of(0), frames(), true);
            return println!("bridge: p50 {:.1} µs", run.p50);
        }
        Some("profile_paced_raw") => {
            let cluster = NatsCluster::start(1);
            let run = raw(&cluster.url_of(0), frames(), true);
            return println!("raw: p50 {:.1} µs", run.p50);
        }
        Some("profile_raw") => {
            let cluster = NatsCluster::start(1);
            let run = raw(&cluster.url_of(0), frames(), false);
            return println!("raw: {:.0} frames/s", run.rate);
        }
        _ => {}
    }
    let wants = |name: &str| args.is_empty() || args.iter().any(|f| name.contains(f.as_str()));
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    if wants("throughput") || wants("latency") {
        throughput_and_latency(rounds);
    }
    if wants("handoff") {
        handoff(rounds);
    }
    if wants("quarter") {
        quarter();
    }
}
