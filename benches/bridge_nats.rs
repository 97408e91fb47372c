//! The NATS bridge beside the floor: a raw `async-nats` publish → subscribe loop on the
//! same `nats-server`, in the same run. Needs feature `nats` and `nats-server`
//! installed; starts its own servers on free loopback ports.
//!
//! ```text
//! cargo bench --features nats --bench bridge_nats              # everything, ~1 min
//! cargo bench --features nats --bench bridge_nats -- quarter   # interest routing only
//! ```
//!
//! Scenarios, 64 B payloads, one server:
//! - `throughput`: frames/s from one publisher to one remote subscriber, in bursts of
//!   1,000 frames each waited for (a subscriber that falls behind gets frames dropped
//!   by NATS: flat out, both loops measure their receiver's losses). Raw: one client
//!   publishing a burst with `publish().await` then `flush()` (on its own thread and
//!   current-thread runtime), another client on another thread receiving. Bridge:
//!   engine A broadcasts a burst, engine B has one callback subscriber.
//! - `latency`: one frame in flight at a time, publish → receive, p50/p99 over 2,000.
//!
//!   Both are the median of 3 interleaved rounds (raw, bridge), so a noisy neighbour
//!   skews both alike.
//! - `quarter`: a publisher and four nodes on a 3-server cluster, 96 topics; each node
//!   serves a quarter of them, node 0 through one pattern (`q.0.*`), the others by
//!   name; what share of the frames each node receives, and frames/s.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fanout::bridge::Bridge;
use fanout::transport::{decode, RawPayload};
use fanout::PubSub;
use futures_core::Stream;

#[path = "../tests/common/nats_server.rs"]
mod nats_server;

use nats_server::NatsCluster;

const PAYLOAD: usize = 64;
/// Throughput runs send bursts of this many frames and wait for each to arrive before
/// the next, so that neither side outruns the receiver (a NATS server or client drops
/// frames for a subscriber that falls behind: that would measure drops, not delivery).
const BURST: u64 = 1000;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// A 64-byte payload whose first 8 bytes are the send time.
fn stamped() -> [u8; PAYLOAD] {
    let mut p = [7u8; PAYLOAD];
    p[..8].copy_from_slice(&now_ns().to_be_bytes());
    p
}

fn sent_at(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[..8].try_into().unwrap())
}

/// Deliveries counted and latencies recorded by a receiver.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    /// When the last one arrived (`now_ns`).
    last_ns: AtomicU64,
    latencies: Mutex<Vec<u64>>,
    /// Paced runs: told of every arrival, so the publisher waits blocked, not spinning
    /// (on a 2-core machine a spinning waiter takes a core from the threads it waits on).
    arrivals: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl Received {
    fn paced() -> (Arc<Self>, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let received = Self::default();
        *received.arrivals.lock().unwrap() = Some(tx);
        (Arc::new(received), rx)
    }

    fn record(&self, payload: &[u8], keep_latency: bool) {
        if keep_latency {
            let lat = now_ns().saturating_sub(sent_at(payload));
            self.latencies.lock().unwrap().push(lat);
        }
        self.last_ns.store(now_ns(), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
        if keep_latency {
            if let Some(arrivals) = &*self.arrivals.lock().unwrap() {
                let _ = arrivals.send(());
            }
        }
    }

    /// Waits until `n` arrived or nothing arrived for 500 ms; returns (arrived, frames/s
    /// from `start_ns` to the last arrival). A receiver that could not keep up (the
    /// client or server dropped frames for it) shows as fewer than `n`.
    fn settle(&self, n: u64, start_ns: u64) -> (u64, f64) {
        let mut last = (self.count.load(Ordering::Acquire), Instant::now());
        loop {
            let count = self.count.load(Ordering::Acquire);
            if count >= n {
                break;
            }
            if count != last.0 {
                last = (count, Instant::now());
            } else if last.1.elapsed() > Duration::from_millis(500) {
                break;
            }
            thread::sleep(Duration::from_micros(50));
        }
        let count = self.count.load(Ordering::Acquire);
        let secs = (self.last_ns.load(Ordering::Relaxed) - start_ns) as f64 / 1e9;
        (count, count as f64 / secs)
    }

    /// Waits (sleeping, not spinning) until `n` arrived.
    fn wait_count(&self, n: u64) {
        let limit = Instant::now() + Duration::from_secs(30);
        while self.count.load(Ordering::Acquire) < n {
            assert!(
                Instant::now() < limit,
                "{} of {n} arrived",
                self.count.load(Ordering::Acquire)
            );
            thread::sleep(Duration::from_micros(20));
        }
    }

    fn percentiles(&self) -> (f64, f64) {
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort_unstable();
        let at = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)] as f64 / 1000.0;
        (at(0.5), at(0.99))
    }
}

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
/// one. Returns (frames/s, p50 µs, p99 µs); `paced`: one frame in flight at a time.
fn raw(url: &str, frames: u64, paced: bool) -> (f64, f64, f64) {
    let (received, arrivals) = Received::paced();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let subscriber = {
        let (url, received) = (url.to_owned(), Arc::clone(&received));
        thread::spawn(move || {
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
        })
    };
    ready.recv().unwrap();
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
            received.wait_count((burst + 1) * BURST);
        }
    }
    let (arrived, rate) = received.settle(frames, start);
    if arrived < frames {
        println!("raw: {arrived} of {frames} arrived (the subscriber fell behind)");
    }
    subscriber.join().unwrap();
    let (p50, p99) = if paced {
        received.percentiles()
    } else {
        (0.0, 0.0)
    };
    (rate, p50, p99)
}

fn bridged(url: &str, frames: u64, paced: bool) -> (f64, f64, f64) {
    let (a, b) = (
        PubSub::<[u8]>::new().unwrap(),
        PubSub::<[u8]>::new().unwrap(),
    );
    let ns = format!("bench{frames}{paced}");
    let bridge_a = Bridge::builder(url, &ns)
        .queue_capacity(frames as usize)
        .attach(&a)
        .unwrap();
    let bridge_b = Bridge::builder(url, &ns).attach(&b).unwrap();
    let (received, arrivals) = Received::paced();
    let id = b.generate_client_id();
    let r = Arc::clone(&received);
    b.register(id, move |f| r.record(decode(f).unwrap().payload, paced))
        .unwrap();
    b.subscribe(id, "t").unwrap();
    while !(bridge_a.stats().connected && bridge_b.stats().channels == 1) {
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50)); // the SUB reaches the server
    let topic = a.topic("t").unwrap();
    let start = now_ns();
    if paced {
        for _ in 0..frames {
            a.broadcast(&topic, &stamped()[..], &RawPayload).unwrap();
            arrivals.recv().unwrap();
        }
    } else {
        for burst in 0..frames / BURST {
            for _ in 0..BURST {
                a.broadcast(&topic, &stamped()[..], &RawPayload).unwrap();
            }
            received.wait_count((burst + 1) * BURST);
        }
    }
    let (arrived, rate) = received.settle(frames, start);
    if arrived < frames {
        println!(
            "bridge: {arrived} of {frames} arrived: {:?} {:?}",
            bridge_a.stats(),
            bridge_b.stats()
        );
    }
    assert_eq!(bridge_a.stats().dropped, 0);
    let (p50, p99) = if paced {
        received.percentiles()
    } else {
        (0.0, 0.0)
    };
    (rate, p50, p99)
}

/// The median of `runs` values.
fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn throughput_and_latency() {
    const ROUNDS: usize = 3;
    let cluster = NatsCluster::start(1);
    let url = cluster.url_of(0);
    let frames = 200_000;
    let mut runs = vec![[Vec::new(), Vec::new(), Vec::new()]; 2];
    for _ in 0..ROUNDS {
        let (rate, _, _) = raw(&url, frames, false);
        let (_, p50, p99) = raw(&url, 2_000, true);
        for (v, x) in runs[0].iter_mut().zip([rate, p50, p99]) {
            v.push(x);
        }
        let (rate, _, _) = bridged(&url, frames, false);
        let (_, p50, p99) = bridged(&url, 2_000, true);
        for (v, x) in runs[1].iter_mut().zip([rate, p50, p99]) {
            v.push(x);
        }
    }
    let m: Vec<[f64; 3]> = runs
        .into_iter()
        .map(|[a, b, c]| [median(a), median(b), median(c)])
        .collect();
    let (raw, br) = (m[0], m[1]);
    println!("| raw frames/s | bridge frames/s | ratio | raw p50 / p99 µs | bridge p50 / p99 µs | p50 ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.0} | {:.0} | {:.2}× | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}× |",
        raw[0],
        br[0],
        br[0] / raw[0],
        raw[1],
        raw[2],
        br[1],
        br[2],
        br[1] / raw[1]
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
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("throughput") || wants("latency") {
        throughput_and_latency();
    }
    if wants("quarter") {
        quarter();
    }
}
