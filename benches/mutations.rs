//! Workload 5 (custom harness, prints a table): subscribe/unsubscribe cost with 1k, 100k
//! and 1M topics already in the engine, and mutations/s with 1, 2 and 16 calling threads.
//!
//! Preloading: `topics / 100` filler clients, each subscribed to 100 distinct topics, from
//! 16 threads (so the writer batches). Then:
//! - `subscribe` / `unsubscribe` latency: one caller, a fresh client joining and leaving
//!   existing one-subscriber topics one round trip at a time (mean, p50, p99);
//! - mutations/s: `k` callers, each with its own client, alternately subscribing to and
//!   unsubscribing from existing topics for `RUN_TIME` (best of two runs); one call per
//!   mutation, and batched through `PubSub::apply` (`BATCH` mutations per call).
//!
//! Every mutation is a synchronous round trip to the writer thread, so this measures the
//! round trip (two thread wake-ups) more than the writer's own work; see PERFORMANCE.md.
//!
//! Run: `cargo bench --bench mutations` (about a minute; `-- quick` skips 1M topics).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fanout::{Mutation, PubSub, Topic};
use hdrhistogram::Histogram;

const TOPICS_PER_FILLER: usize = 100;
const PRELOAD_THREADS: usize = 16;
const LATENCY_OPS: usize = 20_000;
const RUN_TIME: Duration = Duration::from_millis(1000);
/// Mutations per `PubSub::apply` call in the batched runs.
const BATCH: usize = 256;

fn topic_name(i: usize) -> String {
    format!("preload/{i:07}")
}

/// An engine holding `topics` topics with one subscriber each. Returns it with how long
/// the preload took.
fn preloaded(topics: usize) -> (PubSub<[u8]>, Duration) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let fillers = topics / TOPICS_PER_FILLER;
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..PRELOAD_THREADS {
            let pubsub = &pubsub;
            s.spawn(move || {
                for f in (t..fillers).step_by(PRELOAD_THREADS) {
                    let id = pubsub.generate_client_id();
                    pubsub
                        .register(id, |frame| {
                            black_box(frame.len());
                        })
                        .unwrap();
                    for k in 0..TOPICS_PER_FILLER {
                        pubsub
                            .subscribe(id, topic_name(f * TOPICS_PER_FILLER + k))
                            .unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(pubsub.stats().topics, topics);
    (pubsub, start.elapsed())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// Mutations/s with `callers` threads, each alternately subscribing its own client to
/// and unsubscribing it from existing topics.
fn throughput(pubsub: &PubSub<[u8]>, topics: &[Topic], callers: usize, batch: usize) -> f64 {
    // Best of two runs: other processes on this machine steal whole time slices.
    (0..2)
        .map(|_| throughput_once(pubsub, topics, callers, batch))
        .fold(0.0, f64::max)
}

/// One run: `batch == 1` uses `subscribe`/`unsubscribe` (a round trip each), otherwise
/// `apply` with `batch` mutations (`batch / 2` subscribe–unsubscribe pairs) per call.
fn throughput_once(pubsub: &PubSub<[u8]>, topics: &[Topic], callers: usize, batch: usize) -> f64 {
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    let start = Instant::now();
    thread::scope(|s| {
        for c in 0..callers {
            let (pubsub, stop, ops) = (pubsub, &stop, &ops);
            s.spawn(move || {
                let id = pubsub.generate_client_id();
                pubsub
                    .register(id, |frame| {
                        black_box(frame.len());
                    })
                    .unwrap();
                let mut done = 0u64;
                let mut i = c * 7919;
                while !stop.load(Ordering::Relaxed) {
                    if batch == 1 {
                        let topic = &topics[i % topics.len()];
                        pubsub.subscribe(id, topic).unwrap();
                        pubsub.unsubscribe(id, topic).unwrap();
                        done += 2;
                        i += 1;
                    } else {
                        let mut changes = Vec::with_capacity(batch);
                        for _ in 0..batch / 2 {
                            let topic = &topics[i % topics.len()];
                            changes.push(Mutation::Subscribe(id, topic.clone()));
                            changes.push(Mutation::Unsubscribe(id, topic.clone()));
                            i += 1;
                        }
                        let results = pubsub.apply(changes).unwrap();
                        debug_assert!(results.iter().all(Result::is_ok));
                        done += results.len() as u64;
                    }
                }
                ops.fetch_add(done, Ordering::Relaxed);
                pubsub.unregister(id).unwrap();
            });
        }
        thread::sleep(RUN_TIME);
        stop.store(true, Ordering::Relaxed);
    });
    ops.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let sizes: &[usize] = if quick {
        &[1_000, 100_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    println!("\n## mutations: subscribe/unsubscribe vs topics already in the engine\n");
    println!("| topics    | preload s | sub mean µs | sub p50 µs | sub p99 µs | unsub mean µs | unsub p99 µs | 1 caller op/s | 2 callers op/s | 16 callers op/s | 1 caller apply op/s | 2 callers apply op/s |");
    println!("|-----------|-----------|-------------|------------|------------|---------------|--------------|---------------|----------------|-----------------|---------------------|----------------------|");
    for &topics in sizes {
        let (pubsub, preload) = preloaded(topics);
        // Existing topics spread over the whole trie, resolved once.
        let sample: Vec<Topic> = (0..LATENCY_OPS)
            .map(|i| pubsub.topic(&topic_name((i * 7_919) % topics)).unwrap())
            .collect();
        let id = pubsub.generate_client_id();
        pubsub
            .register(id, |frame| {
                black_box(frame.len());
            })
            .unwrap();
        let (mut sub, mut unsub) = (histogram(), histogram());
        let (mut sub_total, mut unsub_total) = (Duration::ZERO, Duration::ZERO);
        for topic in &sample {
            let t0 = Instant::now();
            pubsub.subscribe(id, topic).unwrap();
            let t1 = Instant::now();
            pubsub.unsubscribe(id, topic).unwrap();
            let t2 = Instant::now();
            sub.record((t1 - t0).as_nanos() as u64).unwrap();
            unsub.record((t2 - t1).as_nanos() as u64).unwrap();
            sub_total += t1 - t0;
            unsub_total += t2 - t1;
        }
        let one = throughput(&pubsub, &sample, 1, 1);
        let two = throughput(&pubsub, &sample, 2, 1);
        let sixteen = throughput(&pubsub, &sample, 16, 1);
        let one_batched = throughput(&pubsub, &sample, 1, BATCH);
        let two_batched = throughput(&pubsub, &sample, 2, BATCH);
        let us = |ns: u64| ns as f64 / 1e3;
        println!(
            "| {topics:>9} | {:>9.1} | {:>11.2} | {:>10.2} | {:>10.2} | {:>13.2} | {:>12.2} | {:>13.0} | {:>14.0} | {:>15.0} | {:>19.0} | {:>20.0} |",
            preload.as_secs_f64(),
            sub_total.as_secs_f64() * 1e6 / LATENCY_OPS as f64,
            us(sub.value_at_quantile(0.5)),
            us(sub.value_at_quantile(0.99)),
            unsub_total.as_secs_f64() * 1e6 / LATENCY_OPS as f64,
            us(unsub.value_at_quantile(0.99)),
            one,
            two,
            sixteen,
            one_batched,
            two_batched,
        );
    }
}
