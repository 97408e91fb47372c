//! Workloads 3 and 4 (custom harness, prints tables):
//!
//! 3. `latency`: publish → receive latency of one channel sink drained by a consumer
//!    thread, p50/p99/p99.9/max via hdrhistogram, fanout next to raw crossbeam, tokio
//!    broadcast and bus. The publisher sends a 64 B payload whose first 8 bytes are its
//!    send time every `INTERVAL`; the consumer spins on `try_recv` for up to `SPIN`,
//!    then blocks in the library's own `recv` (on 2 cores a consumer that only spins
//!    starves the publisher). Then the same fanout measurement while `CHURN_THREADS`
//!    threads subscribe/unsubscribe other clients to the *same* topic (the worst case:
//!    every mutation copies its subscriber list and publishes a snapshot), aiming at
//!    `CHURN_TARGET` mutations/s in total.
//! 4. `broadcast under churn`: cost of one broadcast to 256 callback sinks (64 B raw
//!    payload), timed in runs of 16, with and without that churn; the naive
//!    `RwLock<HashMap>` baseline under the same churn (its writers take the write lock).
//!
//! Run: `cargo bench --bench latency_churn` (about 30 s).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fanout::transport::{decode, encode_push, RawPayload};
use fanout::{ChannelConfig, OverflowPolicy, PubSub};
use hdrhistogram::Histogram;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

const TOPIC: &str = "game/zone-17";
const MESSAGES: u64 = 30_000;
const ROUNDS: usize = 3;
const INTERVAL: Duration = Duration::from_micros(20);
const SPIN: Duration = Duration::from_micros(30);
const CHURN_THREADS: usize = 4;
const CHURN_TARGET: u64 = 100_000;
const CHURN_SUBSCRIBERS: usize = 256;
const BROADCAST_RUN: u64 = 16;
const BROADCAST_TIME: Duration = Duration::from_secs(2);

/// A frame, or how many frames the receiver lost (tokio's `Lagged`).
type Received = Result<Bytes, u64>;

/// One latency run: histogram, churn rate achieved (if any), frames lost.
type Run = (Histogram<u64>, Option<f64>, u64);

/// Subscribes `CHURN_SUBSCRIBERS` callback clients (each only reads the frame's length)
/// to `TOPIC`.
fn add_callback_peers(pubsub: &PubSub<[u8]>) {
    for _ in 0..CHURN_SUBSCRIBERS {
        let id = pubsub.generate_client_id();
        pubsub
            .register(id, |f| {
                black_box(f.len());
            })
            .unwrap();
        pubsub.subscribe(id, TOPIC).unwrap();
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn now_ns(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// A 64 B payload starting with the send time.
fn stamped(base: Instant) -> [u8; 64] {
    let mut payload = [0u8; 64];
    payload[..8].copy_from_slice(&now_ns(base).to_le_bytes());
    payload
}

fn sent_at(frame: &[u8]) -> u64 {
    let payload = decode(frame).unwrap().payload;
    u64::from_le_bytes(payload[..8].try_into().unwrap())
}

/// Publishes `MESSAGES` stamped frames, one per `INTERVAL`, on this thread, while a
/// consumer thread receives them (spin on `try_recv` for up to `SPIN`, then `recv`).
fn measure_latency(
    base: Instant,
    mut publish: impl FnMut(),
    mut try_recv: impl FnMut() -> Option<Received> + Send,
    mut recv: impl FnMut() -> Received + Send,
) -> (Histogram<u64>, u64) {
    thread::scope(|s| {
        let consumer = s.spawn(move || {
            let mut hist = histogram();
            let (mut seen, mut lost) = (0, 0);
            while seen < MESSAGES {
                let spin_start = Instant::now();
                let received = loop {
                    if let Some(received) = try_recv() {
                        break received;
                    }
                    if spin_start.elapsed() > SPIN {
                        break recv();
                    }
                    std::hint::spin_loop();
                };
                match received {
                    Ok(frame) => {
                        let latency = now_ns(base).saturating_sub(sent_at(&frame));
                        hist.record(latency.max(1)).unwrap();
                        seen += 1;
                    }
                    Err(skipped) => {
                        seen += skipped;
                        lost += skipped;
                    }
                }
            }
            (hist, lost)
        });
        let start = Instant::now();
        for i in 0..MESSAGES {
            let deadline = start + INTERVAL * i as u32;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if deadline - now > Duration::from_micros(5) {
                    thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            publish();
        }
        consumer.join().unwrap()
    })
}

/// Mutation churn against a `PubSub`: `CHURN_THREADS` clients alternately subscribe to
/// and unsubscribe from `TOPIC`, rate-limited to `CHURN_TARGET` in total.
struct Churn {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    started: Instant,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Churn {
    fn start(mutate: impl Fn(usize, u64) + Send + Sync + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let mutate = Arc::new(mutate);
        let per_thread = CHURN_TARGET as f64 / CHURN_THREADS as f64;
        let threads = (0..CHURN_THREADS)
            .map(|t| {
                let (stop, ops, mutate) = (stop.clone(), ops.clone(), mutate.clone());
                thread::spawn(move || {
                    let start = Instant::now();
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        mutate(t, done);
                        done += 1;
                        ops.fetch_add(1, Ordering::Relaxed);
                        if done % 32 == 0 {
                            let due = Duration::from_secs_f64(done as f64 / per_thread);
                            let elapsed = start.elapsed();
                            if due > elapsed {
                                thread::sleep(due - elapsed);
                            }
                        }
                    }
                })
            })
            .collect();
        Churn {
            stop,
            ops,
            started: Instant::now(),
            threads,
        }
    }

    /// Stops the churn; returns the mutations/s it achieved.
    fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let ops = self.ops.load(Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        ops as f64 / elapsed.as_secs_f64()
    }
}

fn fanout_churn(pubsub: &PubSub<[u8]>) -> Churn {
    let ids: Vec<_> = (0..CHURN_THREADS)
        .map(|_| {
            let id = pubsub.generate_client_id();
            pubsub
                .register(id, |f| {
                    black_box(f.len());
                })
                .unwrap();
            id
        })
        .collect();
    let pubsub = pubsub.clone();
    let topic = pubsub.topic(TOPIC).unwrap();
    Churn::start(move |t, i| {
        if i % 2 == 0 {
            pubsub.subscribe(ids[t], &topic).unwrap();
        } else {
            pubsub.unsubscribe(ids[t], &topic).unwrap();
        }
    })
}

fn row(name: &str, hist: &Histogram<u64>, churn: Option<f64>, lost: u64) {
    println!(
        "| {name:<28} | {:>9.2} | {:>9.2} | {:>9.2} | {:>9.2} | {:>10} | {lost:>5} |",
        hist.value_at_quantile(0.50) as f64 / 1e3,
        hist.value_at_quantile(0.99) as f64 / 1e3,
        hist.value_at_quantile(0.999) as f64 / 1e3,
        hist.max() as f64 / 1e3,
        churn.map_or("-".to_owned(), |r| format!("{:.0}", r)),
    );
}

fn latency() {
    let base = Instant::now();
    println!("\n## latency: publish -> receive, 1 channel sink, consumer thread");
    println!(
        "{MESSAGES} messages per run, one per {INTERVAL:?}; consumer spins {SPIN:?} then blocks; \
         {ROUNDS} interleaved rounds (one row each); µs\n"
    );
    println!("| implementation               |   p50 µs  |   p99 µs  | p99.9 µs  |   max µs  | churn op/s |  lost |");
    println!("|------------------------------|-----------|-----------|-----------|-----------|------------|-------|");

    // Blocking (bounded) overflow everywhere it exists, so nothing is lost; tokio's
    // broadcast cannot block and reports `Lagged` instead (counted as lost).
    let config = ChannelConfig::new(4096, OverflowPolicy::Block(Duration::from_secs(1)));
    let make_fanout = || {
        let pubsub = PubSub::<[u8]>::new().unwrap();
        let id = pubsub.generate_client_id();
        let channel = pubsub.register_channel_with(id, config).unwrap();
        pubsub.subscribe(id, TOPIC).unwrap();
        // Some company on the topic, so churn changes a real list.
        add_callback_peers(&pubsub);
        let topic = pubsub.topic(TOPIC).unwrap();
        (pubsub, channel, topic)
    };

    let names = [
        "fanout (256 callback peers)",
        "fanout + churn same topic",
        "crossbeam_raw",
        "tokio_broadcast",
        "bus",
    ];
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); names.len()];
    // Rounds interleave the implementations, so a burst of load from other processes
    // does not land on one implementation only.
    for _round in 0..ROUNDS {
        {
            let (pubsub, channel, topic) = make_fanout();
            let (hist, lost) = measure_latency(
                base,
                || {
                    pubsub
                        .broadcast(&topic, &stamped(base)[..], &RawPayload)
                        .unwrap();
                },
                || channel.try_recv().ok().map(Ok),
                || Ok(channel.recv().unwrap()),
            );
            results[0].push((hist, None, lost));
        }
        {
            let (pubsub, channel, topic) = make_fanout();
            let churn = fanout_churn(&pubsub);
            let (hist, lost) = measure_latency(
                base,
                || {
                    pubsub
                        .broadcast(&topic, &stamped(base)[..], &RawPayload)
                        .unwrap();
                },
                || channel.try_recv().ok().map(Ok),
                || Ok(channel.recv().unwrap()),
            );
            let rate = churn.stop();
            results[1].push((hist, Some(rate), lost));
        }
        {
            let (tx, rx) = crossbeam_channel::bounded::<Bytes>(4096);
            let (hist, lost) = measure_latency(
                base,
                || {
                    tx.send(encode_push(TOPIC, &stamped(base)).unwrap())
                        .unwrap();
                },
                || rx.try_recv().ok().map(Ok),
                || Ok(rx.recv().unwrap()),
            );
            results[2].push((hist, None, lost));
        }
        {
            let (tx, mut rx) = tokio::sync::broadcast::channel::<Bytes>(4096);
            let rx = std::sync::Mutex::new(&mut rx);
            let (hist, lost) = measure_latency(
                base,
                || {
                    tx.send(encode_push(TOPIC, &stamped(base)).unwrap())
                        .unwrap();
                },
                || match rx.lock().unwrap().try_recv() {
                    Ok(frame) => Some(Ok(frame)),
                    Err(TryRecvError::Lagged(n)) => Some(Err(n)),
                    Err(_) => None,
                },
                || match rx.lock().unwrap().blocking_recv() {
                    Ok(frame) => Ok(frame),
                    Err(RecvError::Lagged(n)) => Err(n),
                    Err(RecvError::Closed) => panic!("closed"),
                },
            );
            results[3].push((hist, None, lost));
        }
        {
            let mut bus = bus::Bus::<Bytes>::new(4096);
            let reader = std::sync::Mutex::new(bus.add_rx());
            let (hist, lost) = measure_latency(
                base,
                || {
                    bus.broadcast(encode_push(TOPIC, &stamped(base)).unwrap());
                },
                || reader.lock().unwrap().try_recv().ok().map(Ok),
                || Ok(reader.lock().unwrap().recv().unwrap()),
            );
            results[4].push((hist, None, lost));
        }
    }
    for (name, runs) in names.iter().zip(&results) {
        for (hist, rate, lost) in runs {
            row(name, hist, *rate, *lost);
        }
    }
}

/// Times broadcasts in runs of `BROADCAST_RUN` for `BROADCAST_TIME`; returns the
/// per-broadcast histogram (ns) and the mean (ns).
fn time_broadcasts(mut broadcast: impl FnMut()) -> (Histogram<u64>, f64) {
    let mut hist = histogram();
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < BROADCAST_TIME {
        let t0 = Instant::now();
        for _ in 0..BROADCAST_RUN {
            broadcast();
        }
        let per = t0.elapsed().as_nanos() as u64 / BROADCAST_RUN;
        hist.record(per.max(1)).unwrap();
        count += BROADCAST_RUN;
    }
    (hist, start.elapsed().as_nanos() as f64 / count as f64)
}

fn cost_row(name: &str, hist: &Histogram<u64>, mean: f64, churn: Option<f64>) {
    println!(
        "| {name:<30} | {:>8.0} | {:>8} | {:>8} | {:>8} | {:>10} |",
        mean,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        churn.map_or("-".to_owned(), |r| format!("{:.0}", r)),
    );
}

type NaiveMap = RwLock<HashMap<String, Vec<(u64, Box<dyn Fn(&[u8]) + Send + Sync>)>>>;

fn broadcast_under_churn() {
    let payload = [7u8; 64];
    println!("\n## broadcast cost under subscribe/unsubscribe churn");
    println!(
        "{CHURN_SUBSCRIBERS} callback subscribers, 64 B raw payload, timed in runs of {BROADCAST_RUN}; \
         churn: {CHURN_THREADS} threads on the same topic, target {CHURN_TARGET} op/s; ns per broadcast\n"
    );
    println!("| implementation                 |  mean ns |   p50 ns |   p99 ns | p99.9 ns | churn op/s |");
    println!("|--------------------------------|----------|----------|----------|----------|------------|");

    let pubsub = PubSub::<[u8]>::new().unwrap();
    add_callback_peers(&pubsub);
    let topic = pubsub.topic(TOPIC).unwrap();
    for _round in 0..2 {
        let (hist, mean) = time_broadcasts(|| {
            pubsub.broadcast(&topic, &payload[..], &RawPayload).unwrap();
        });
        cost_row("fanout", &hist, mean, None);
        let churn = fanout_churn(&pubsub);
        let (hist, mean) = time_broadcasts(|| {
            pubsub.broadcast(&topic, &payload[..], &RawPayload).unwrap();
        });
        let rate = churn.stop();
        cost_row("fanout + churn", &hist, mean, Some(rate));
    }

    let naive: Arc<NaiveMap> = Arc::new(RwLock::new(HashMap::new()));
    naive.write().unwrap().insert(
        TOPIC.to_owned(),
        (0..CHURN_SUBSCRIBERS as u64)
            .map(|i| {
                (
                    i,
                    Box::new(|f: &[u8]| {
                        black_box(f.len());
                    }) as Box<dyn Fn(&[u8]) + Send + Sync>,
                )
            })
            .collect(),
    );
    let naive_broadcast = || {
        let map = naive.read().unwrap();
        for (_, send) in &map[TOPIC] {
            let encoded = encode_push(TOPIC, &payload).unwrap().to_vec();
            send(&encoded);
        }
    };
    let (hist, mean) = time_broadcasts(naive_broadcast);
    cost_row("naive RwLock<HashMap>", &hist, mean, None);
    let churn = {
        let naive = Arc::clone(&naive);
        Churn::start(move |t, i| {
            let id = 1_000_000 + t as u64;
            let mut map = naive.write().unwrap();
            let list = map.get_mut(TOPIC).unwrap();
            if i % 2 == 0 {
                list.push((
                    id,
                    Box::new(|f: &[u8]| {
                        black_box(f.len());
                    }),
                ));
            } else if let Some(p) = list.iter().position(|(s, _)| *s == id) {
                drop(list.swap_remove(p));
            }
        })
    };
    let (hist, mean) = time_broadcasts(naive_broadcast);
    let rate = churn.stop();
    cost_row("naive RwLock<HashMap> + churn", &hist, mean, Some(rate));
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one part.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    if filter.is_empty() || "latency".contains(&filter) {
        latency();
    }
    if filter.is_empty() || "churn".contains(&filter) {
        broadcast_under_churn();
    }
}
