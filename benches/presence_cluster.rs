//! Presence across hosts at scale: 100,000 members of one topic over 4 bridged engines
//! (25,000 each) on one `redis-server`. Needs feature `redis` and `redis-server`
//! installed; starts its own server on a free loopback port.
//!
//! ```text
//! cargo bench --features redis --bench presence_cluster
//! ```
//!
//! Reports:
//! - `track`: ns per `track` call while all 4 engines track their 25,000 members at
//!   once (p50/p99 on engine 0), and the time until every engine lists all 100,000;
//! - bytes on Redis per join: Redis's `total_net_input_bytes` (what the engines sent)
//!   and `total_net_output_bytes` (what it sent the 4 subscribers) over those joins,
//!   divided by 100,000;
//! - `list`: one `list` of the 100,000-member topic on engine 0 (25,000 local, 75,000
//!   from the others), median of 21; `count_members`: median ns;
//! - `track` p50/p99 on engine 0 (20,000 more) with another thread listing the topic in a
//!   loop, beside
//!   the same without: whether listing holds `track` up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::bridge::Bridge;
use fanout::{Bytes, PubSub};
use hdrhistogram::Histogram;

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;

const ENGINES: usize = 4;
const PER_ENGINE: usize = 25_000;
const TOPIC: &str = "lobby";

fn info(con: &mut redis::Connection, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Registers `n` clients on `pubsub` and tracks each in the topic; returns the
/// histogram of `track` times (ns).
fn track_all(pubsub: &PubSub<str>, n: usize, tag: usize) -> Histogram<u64> {
    let mut times = Histogram::<u64>::new(3).unwrap();
    for i in 0..n {
        let id = pubsub.generate_client_id();
        pubsub.register(id, |_| {}).unwrap();
        let meta = Bytes::from(format!("user-{tag}-{i}"));
        let start = Instant::now();
        pubsub.track(id, TOPIC, meta).unwrap();
        times.record(start.elapsed().as_nanos() as u64).unwrap();
    }
    times
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    let engines: Vec<PubSub<str>> = (0..ENGINES).map(|_| PubSub::new().unwrap()).collect();
    let bridges: Vec<Bridge> = engines
        .iter()
        .map(|e| Bridge::attach(e, &url, "bench").unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300)); // connected, states exchanged
    let (input_before, output_before) = (
        info(&mut con, "total_net_input_bytes"),
        info(&mut con, "total_net_output_bytes"),
    );

    // Every engine tracks its share at once.
    let start = Instant::now();
    let handles: Vec<_> = engines
        .iter()
        .enumerate()
        .map(|(tag, e)| {
            let e = e.clone();
            thread::spawn(move || track_all(&e, PER_ENGINE, tag))
        })
        .collect();
    let histograms: Vec<Histogram<u64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let tracked = start.elapsed();
    let total = ENGINES * PER_ENGINE;
    while engines
        .iter()
        .any(|e| e.count_members(TOPIC).unwrap() != total)
    {
        thread::sleep(Duration::from_millis(1));
    }
    let converged = start.elapsed();
    let h = &histograms[0];
    println!(
        "track, 4 engines at once: p50 {} ns, p99 {} ns, mean {:.0} ns (engine 0); all {total} tracked in {tracked:?}; every engine lists {total} after {converged:?}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.mean()
    );
    thread::sleep(Duration::from_millis(200));
    let (input_after, output_after) = (
        info(&mut con, "total_net_input_bytes"),
        info(&mut con, "total_net_output_bytes"),
    );
    println!(
        "bytes on Redis per join: {:.1} in (engines to Redis), {:.1} out (Redis to {ENGINES} subscribers), heartbeats included",
        (input_after - input_before) as f64 / total as f64,
        (output_after - output_before) as f64 / total as f64
    );

    // list and count of the 100k-member topic.
    let mut lists = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        let members = engines[0].list(TOPIC).unwrap();
        lists.push(start.elapsed());
        assert_eq!(members.len(), total);
    }
    lists.sort();
    let mut counts = Vec::new();
    for _ in 0..1001 {
        let start = Instant::now();
        std::hint::black_box(engines[0].count_members(TOPIC).unwrap());
        counts.push(start.elapsed());
    }
    counts.sort();
    println!(
        "list of {total} members: median {:?} (min {:?}); count_members: median {:?}",
        lists[10], lists[0], counts[500]
    );

    // Does listing hold track up? track 20,000 more on engine 0, alone and with a
    // thread listing in a loop.
    let alone = track_all(&engines[0], 20_000, 90);
    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (e, stop) = (engines[0].clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(e.list(TOPIC).unwrap());
                n += 1;
            }
            n
        })
    };
    let listed = track_all(&engines[0], 20_000, 91);
    stop.store(true, Ordering::Relaxed);
    let lists_done = lister.join().unwrap();
    println!(
        "track at {total} members: alone p50 {} ns p99 {} ns max {} ns; with a thread listing ({lists_done} lists meanwhile) p50 {} ns p99 {} ns max {} ns",
        alone.value_at_quantile(0.5),
        alone.value_at_quantile(0.99),
        alone.max(),
        listed.value_at_quantile(0.5),
        listed.value_at_quantile(0.99),
        listed.max()
    );
    drop(bridges);
}
