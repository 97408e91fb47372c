//! What the two bridge benches (`bridge.rs`: Redis, `bridge_nats.rs`: NATS) share: the
//! stamped payloads, the receiving side's counts and latencies, the bridged run (engine
//! A broadcasts, engine B's subscribers count), and the medians.
//!
//! Both benches compare the bridge with a raw client loop on the same server in the same
//! run, in interleaved rounds, so a noisy neighbour skews both alike.

#![allow(dead_code)] // each bench uses its part

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use fanout::bridge::{Bridge, BridgeBuilder};
use fanout::transport::{decode, RawPayload};
use fanout::PubSub;

/// Payload bytes per frame.
pub const PAYLOAD: usize = 64;

/// Throughput runs send bursts of this many frames and wait for each to arrive before
/// the next, so neither side outruns the receiver (a NATS server drops frames for a
/// subscriber that falls behind: that would measure drops, not delivery).
pub const BURST: u64 = 1000;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since the bench started.
pub fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// A 64-byte payload whose first 8 bytes are the send time.
pub fn stamped() -> [u8; PAYLOAD] {
    let mut p = [7u8; PAYLOAD];
    p[..8].copy_from_slice(&now_ns().to_be_bytes());
    p
}

fn sent_at(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[..8].try_into().unwrap())
}

/// Deliveries counted and latencies recorded by every receiver.
#[derive(Default)]
pub struct Received {
    count: AtomicU64,
    /// When the last one arrived (`now_ns`).
    last_ns: AtomicU64,
    latencies: Mutex<Vec<u64>>,
    /// Paced runs: told of every arrival, so the publisher waits blocked, not spinning
    /// (on a 2-core machine a spinning waiter takes a core from the threads it waits on).
    arrivals: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl Received {
    /// A receiver whose arrivals the returned end hears of (paced runs).
    pub fn paced() -> (Arc<Self>, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let received = Self::default();
        *received.arrivals.lock().unwrap() = Some(tx);
        (Arc::new(received), rx)
    }

    /// One arrival; `keep_latency`: record its latency and tell the paced publisher.
    pub fn record(&self, payload: &[u8], keep_latency: bool) {
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

    /// Arrivals so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Waits (sleeping, not spinning) until `n` arrived; false after `limit`.
    pub fn wait_for(&self, n: u64, limit: Duration) -> bool {
        let start = Instant::now();
        while self.count() < n {
            if start.elapsed() > limit {
                return false;
            }
            thread::sleep(Duration::from_micros(20));
        }
        true
    }

    /// Waits until `n` arrived or nothing arrived for 500 ms; returns (arrived, frames/s
    /// from `start_ns` to the last arrival). A receiver that could not keep up shows as
    /// fewer than `n`.
    pub fn settle(&self, n: u64, start_ns: u64) -> (u64, f64) {
        let mut last = (self.count(), Instant::now());
        loop {
            let count = self.count();
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
        let count = self.count();
        let secs = (self.last_ns.load(Ordering::Relaxed) - start_ns) as f64 / 1e9;
        (count, count as f64 / secs)
    }

    /// p50 and p99 latency in µs.
    pub fn percentiles(&self) -> (f64, f64) {
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort_unstable();
        if l.is_empty() {
            return (0.0, 0.0);
        }
        let at = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)] as f64 / 1000.0;
        (at(0.5), at(0.99))
    }
}

/// One measured run: frames/s (0 for paced runs), p50 and p99 µs (0 for throughput runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
}

/// Engine A (bridged by `builder(…)`) broadcasts `frames` frames on topic `t`; engine B
/// (bridged the same way) has `subscribers` callback subscribers. Throughput: bursts of
/// `burst` frames, each waited for; `paced`: one frame in flight at a time.
/// `ready(&bridge_b)` says when B receives the topic.
pub fn bridged(
    builder: impl Fn() -> BridgeBuilder,
    subscribers: usize,
    frames: u64,
    burst: u64,
    paced: bool,
    ready: impl Fn(&Bridge) -> bool,
) -> Run {
    let (a, b) = (
        PubSub::<[u8]>::new().unwrap(),
        PubSub::<[u8]>::new().unwrap(),
    );
    let bridge_a = builder()
        .queue_capacity(frames.max(burst) as usize)
        .attach(&a)
        .unwrap();
    let bridge_b = builder().attach(&b).unwrap();
    let (received, arrivals) = Received::paced();
    for _ in 0..subscribers {
        let id = b.generate_client_id();
        let r = Arc::clone(&received);
        b.register(id, move |f| r.record(decode(f).unwrap().payload, paced))
            .unwrap();
        b.subscribe(id, "t").unwrap();
    }
    let limit = Instant::now() + Duration::from_secs(30);
    while !(bridge_a.stats().connected && bridge_b.stats().connected && ready(&bridge_b)) {
        assert!(Instant::now() < limit, "the bridges never connected");
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50)); // the subscription reaches the server
    let topic = a.topic("t").unwrap();
    let each = subscribers as u64;
    let start = now_ns();
    if paced {
        for i in 0..frames {
            a.broadcast(&topic, &stamped()[..], &RawPayload).unwrap();
            for _ in 0..each {
                arrivals.recv().unwrap();
            }
            debug_assert!(received.count() >= (i + 1) * each);
        }
    } else {
        let mut sent = 0;
        while sent < frames {
            let burst = burst.min(frames - sent);
            for _ in 0..burst {
                a.broadcast(&topic, &stamped()[..], &RawPayload).unwrap();
            }
            sent += burst;
            assert!(
                received.wait_for(sent * each, Duration::from_secs(30)),
                "{} of {} arrived: {:?} {:?}",
                received.count(),
                sent * each,
                bridge_a.stats(),
                bridge_b.stats()
            );
        }
    }
    let (arrived, rate) = received.settle(frames * each, start);
    assert_eq!(arrived, frames * each);
    assert_eq!(bridge_a.stats().dropped, 0);
    let (p50, p99) = received.percentiles();
    Run {
        rate: if paced { 0.0 } else { rate / each as f64 },
        p50,
        p99,
    }
}

/// The median of `runs` values, with the smallest and largest.
pub fn spread(mut runs: Vec<f64>) -> (f64, f64, f64) {
    runs.sort_by(f64::total_cmp);
    (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
}

/// The load average (1, 5, 15 min) as `uptime` prints it.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Interleaved rounds of `peer` and `bridge` (each returning a throughput `Run` and a
/// paced `Run`), printed as one table row per round and the medians with min–max.
pub fn compare(
    label: &str,
    rounds: usize,
    mut peer: impl FnMut() -> (Run, Run),
    mut bridge: impl FnMut() -> (Run, Run),
) {
    println!(
        "{label}: {rounds} interleaved rounds, load before {}",
        load()
    );
    println!("| round | raw frames/s | bridge frames/s | ratio | raw p50 / p99 µs | bridge p50 / p99 µs | p50 ratio | load |");
    println!("|---|---|---|---|---|---|---|---|");
    let (mut ratios, mut p50_ratios) = (Vec::new(), Vec::new());
    let (mut raw_rates, mut bridge_rates, mut raw_p50, mut bridge_p50) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (raw_t, raw_l) = peer();
        let (br_t, br_l) = bridge();
        let ratio = br_t.rate / raw_t.rate;
        let p50_ratio = br_l.p50 / raw_l.p50;
        println!(
            "| {round} | {:.0} | {:.0} | {ratio:.2}× | {:.1} / {:.1} | {:.1} / {:.1} | {p50_ratio:.2}× | {} |",
            raw_t.rate,
            br_t.rate,
            raw_l.p50,
            raw_l.p99,
            br_l.p50,
            br_l.p99,
            load()
        );
        ratios.push(ratio);
        p50_ratios.push(p50_ratio);
        raw_rates.push(raw_t.rate);
        bridge_rates.push(br_t.rate);
        raw_p50.push(raw_l.p50);
        bridge_p50.push(br_l.p50);
    }
    let (r, rmin, rmax) = spread(ratios);
    let (p, pmin, pmax) = spread(p50_ratios);
    let (raw_rate, _, _) = spread(raw_rates);
    let (bridge_rate, _, _) = spread(bridge_rates);
    let (raw_p, _, _) = spread(raw_p50);
    let (bridge_p, _, _) = spread(bridge_p50);
    println!(
        "{label}: throughput ratio median {r:.2}× (min {rmin:.2}, max {rmax:.2}; raw {raw_rate:.0}, bridge {bridge_rate:.0} frames/s); \
         p50 ratio median {p:.2}× (min {pmin:.2}, max {pmax:.2}; raw {raw_p:.1} µs, bridge {bridge_p:.1} µs); load after {}",
        load()
    );
}
