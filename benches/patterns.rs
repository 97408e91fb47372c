//! Wildcard subscriptions: what a broadcast costs with 1 to 100k patterns in
//! the engine, beside a linear scan of every pattern per publish (what Redis PSUBSCRIBE
//! does, measured in the same run), and what a broadcast costs when nobody uses patterns.
//!
//! Workload, for `N` patterns: `N` clients each subscribed to `feed.<i>.*`, plus one
//! client on `feed.*.quotes`. Broadcasts go to `feed.<k>.quotes` for random `k` — matched
//! by exactly two patterns — in two cases:
//! - *pattern-only topic*: nobody subscribed to it by name, so the broadcast walks the
//!   pattern index (levels × branches, not patterns);
//! - *known topic*: one more client subscribed to it by name, so its subscriber list
//!   already holds the pattern subscribers (the writer resolved them) and the broadcast
//!   never matches.
//!
//! The peer is a `Vec` of parsed patterns scanned in full per publish, collecting and
//! deduplicating the matching clients (the Redis PSUBSCRIBE shape).
//!
//! Run: `cargo bench --bench patterns` (about 20 s); prints a table of medians of 7 runs.
//! Instruction counts (repeatable on a busy machine): build with `cargo bench --bench
//! patterns --no-run`, then `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*measure_*' target/release/deps/patterns-<hash> --ir N [known]`
//! counts 2,000 broadcasts with `N` patterns (`known`: to topics that exist).

use std::hint::black_box;
use std::time::Instant;

use fanout::transport::RawPayload;
use fanout::{PubSub, Topic};

const BROADCASTS: usize = 20_000;
const RUNS: usize = 7;

struct Workload {
    pubsub: PubSub<[u8]>,
    topics: Vec<Topic>,
    scan: Vec<(u64, Vec<String>)>,
}

/// The engine for `n` patterns; with `by_name`, one more client subscribes to every
/// broadcast topic by name (the known-topic case).
fn workload(n: usize, by_name: bool) -> Workload {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let mut scan = Vec::with_capacity(n + 1);
    let clients: Vec<_> = (0..=n).map(|_| pubsub.generate_client_id()).collect();
    pubsub
        .register_many(clients.iter().map(|&id| {
            (id, |frame: &fanout::Bytes| {
                black_box(frame.len());
            })
        }))
        .unwrap();
    let mut subscribes = Vec::with_capacity(n + 1);
    for (i, &id) in clients.iter().enumerate().take(n) {
        let pattern = format!("feed.{i}.*");
        scan.push((id.as_u64(), tokens(&pattern)));
        subscribes.push(fanout::Mutation::Subscribe(
            id,
            pubsub.topic(&pattern).unwrap(),
        ));
    }
    scan.push((clients[n].as_u64(), tokens("feed.*.quotes")));
    subscribes.push(fanout::Mutation::Subscribe(
        clients[n],
        pubsub.topic("feed.*.quotes").unwrap(),
    ));
    for chunk in subscribes.chunks(10_000) {
        pubsub.apply(chunk.to_vec()).unwrap();
    }
    // Topics picked at random among the `n` feeds (a fixed sequence).
    let mut state = 0x5eed_u64;
    let picks: Vec<usize> = (0..256)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        })
        .collect();
    let topics: Vec<Topic> = picks
        .iter()
        .map(|k| pubsub.topic(&format!("feed.{k}.quotes")).unwrap())
        .collect();
    if by_name {
        let listener = pubsub.generate_client_id();
        pubsub.register(listener, |_| {}).unwrap();
        for topic in &topics {
            pubsub.subscribe(listener, topic).unwrap();
        }
    }
    Workload {
        pubsub,
        topics,
        scan,
    }
}

fn tokens(s: &str) -> Vec<String> {
    s.split('.').map(str::to_owned).collect()
}

/// The linear-scan peer: every pattern matched against the topic, matches deduplicated.
fn scan_publish(scan: &[(u64, Vec<String>)], topic: &str, out: &mut Vec<u64>) -> usize {
    out.clear();
    let parts: Vec<&str> = topic.split('.').collect();
    for (client, pattern) in scan {
        if matches(pattern, &parts) {
            out.push(*client);
        }
    }
    out.sort_unstable();
    out.dedup();
    for client in out.iter() {
        black_box(client);
    }
    out.len()
}

fn matches(pattern: &[String], topic: &[&str]) -> bool {
    let mut t = topic.iter();
    for p in pattern {
        match (p.as_str(), t.next()) {
            (_, None) => return false,
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(part)) if literal == *part => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

fn ns_per<F: FnMut(usize) -> usize>(mut f: F) -> f64 {
    // One unmeasured run first: caches, lazy page faults.
    for i in 0..BROADCASTS {
        black_box(f(i));
    }
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let mut reached = 0;
            for i in 0..BROADCASTS {
                reached += f(i);
            }
            black_box(reached);
            start.elapsed().as_nanos() as f64 / BROADCASTS as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

/// The broadcasts callgrind counts in `--ir` mode (collect only inside this function).
#[inline(never)]
fn measure_pattern_broadcasts(w: &Workload, payload: &[u8], by_name: bool) -> usize {
    let mut reached = 0;
    for i in 0..2_000 {
        let topic = &w.topics[i % w.topics.len()];
        reached += w.pubsub.broadcast(topic, payload, &RawPayload).unwrap();
    }
    assert_eq!(reached, 2_000 * if by_name { 3 } else { 2 });
    reached
}

fn main() {
    if std::env::args().any(|a| a == "--bench") && std::env::args().any(|a| a == "--list") {
        return;
    }
    // `--ir N [known]`: 2,000 broadcasts with N patterns, for
    // `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_*'`.
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--ir") {
        let n: usize = args[at + 1].parse().expect("--ir N");
        let by_name = args.get(at + 2).is_some_and(|a| a == "known");
        let w = workload(n, by_name);
        black_box(measure_pattern_broadcasts(&w, &[7u8; 64], by_name));
        return;
    }
    let payload = [7u8; 64];
    println!("## patterns: ns per broadcast (median of {RUNS} runs of {BROADCASTS})\n");
    println!("| patterns | pattern-only topic | known topic | linear scan (PSUBSCRIBE-like) | scan / pattern-only |");
    println!("|---------:|-------------------:|------------:|------------------------------:|--------------------:|");
    let mut first = None;
    for n in [1usize, 100, 10_000, 100_000] {
        let w = workload(n, false);
        let only = ns_per(|i| {
            let topic = &w.topics[i % w.topics.len()];
            let reached = w
                .pubsub
                .broadcast(topic, &payload[..], &RawPayload)
                .unwrap();
            assert_eq!(reached, 2);
            reached
        });
        let mut out = Vec::new();
        let scan = ns_per(|i| {
            let topic = &w.topics[i % w.topics.len()];
            scan_publish(&w.scan, topic.name(), &mut out)
        });
        drop(w);
        let w = workload(n, true);
        let known = ns_per(|i| {
            let topic = &w.topics[i % w.topics.len()];
            let reached = w
                .pubsub
                .broadcast(topic, &payload[..], &RawPayload)
                .unwrap();
            assert_eq!(reached, 3);
            reached
        });
        let base = *first.get_or_insert(only);
        println!(
            "| {n:>8} | {only:>14.0} ns ({:.2}×) | {known:>8.0} ns | {scan:>26.0} ns | {:>18.1}× |",
            only / base,
            scan / only
        );
    }
}
