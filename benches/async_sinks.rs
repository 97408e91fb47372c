//! Async sinks: what a delivery to an [`AsyncChannel`] costs against the crossbeam channel
//! sink it is built on, and against the glue a tokio user writes without it.
//!
//! Group `async_sinks/<sink>/<n>`: a `PubSub<[u8]>` with `n` clients on one topic; one
//! iteration broadcasts a round of 32 frames of 64 B (`broadcast(&Topic, …,
//! &RawPayload)`: the frame is built once per broadcast, as in every variant) and then
//! every client's queue is drained; throughput is `32 × n` deliveries. Queues hold 32
//! frames, so nothing is ever dropped. Sinks:
//!
//! - `channel`: `register_channel_with`, drained with `try_recv` — the baseline;
//! - `async_try_recv`: `register_async_with`, drained with `try_recv` (the publisher
//!   pays the async flavour's notify: a fence and a load; nobody is parked);
//! - `async_task`: `register_async_with`, each client drained by its own tokio task
//!   awaiting `recv()` on a one-worker runtime — cross-thread: a task parks whenever its
//!   queue runs dry, so this includes the wake-ups and the scheduler;
//! - `tokio_mpsc_glue`: `register` a callback that `try_send`s into a
//!   `tokio::sync::mpsc` channel (what people write today; it loses the engine's
//!   overflow policies, counters and disconnect reasons), drained with `try_recv`;
//! - `async_channel_glue`: the same glue into an `async-channel` bounded channel (the
//!   other design: an async MPMC channel), drained with `try_recv`.
//!
//! Run: `cargo bench -p fanout-benches --features async --bench async_sinks`.
//! Target: `async_try_recv` within 1.3× of `channel` per delivery (PERFORMANCE.md,
//! "Async sinks").
//!
//! On a shared, noisy machine criterion's runs of one variant after another drift by
//! ±30%; `ASYNC_SINKS_ROUNDS=7` (after criterion, or alone with a filter that matches
//! nothing, e.g. `-- none`) also runs every variant in that many interleaved rounds and
//! prints the minimum and median ns per delivery, the comparison PERFORMANCE.md quotes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use fanout::transport::RawPayload;
use fanout::{ChannelConfig, OverflowPolicy, PubSub, Topic};

const TOPIC: &str = "market/eurusd";
const SIZES: [usize; 3] = [1, 16, 256];
/// Broadcasts per iteration, and each queue's capacity: a round never overflows.
const ROUND: usize = 32;
const PAYLOAD: [u8; 64] = [7; 64];
const CONFIG: ChannelConfig = ChannelConfig::new(ROUND, OverflowPolicy::DropNewest);

/// An engine with `n` clients made by `register` (given the engine and a fresh id; it
/// returns the consumer's end), all subscribed to `TOPIC`.
fn engine<C>(
    n: usize,
    mut register: impl FnMut(&PubSub<[u8]>, fanout::ClientId) -> C,
) -> (PubSub<[u8]>, Topic, Vec<C>) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let consumers = (0..n)
        .map(|_| {
            let id = pubsub.generate_client_id();
            let consumer = register(&pubsub, id);
            pubsub.subscribe(id, TOPIC).unwrap();
            consumer
        })
        .collect();
    let topic = pubsub.topic(TOPIC).unwrap();
    (pubsub, topic, consumers)
}

fn round(pubsub: &PubSub<[u8]>, topic: &Topic, n: usize) {
    for _ in 0..ROUND {
        let reached = pubsub.broadcast(topic, &PAYLOAD[..], &RawPayload).unwrap();
        debug_assert_eq!(reached, n);
    }
}

/// The sinks compared, in the order they are reported.
const VARIANTS: [&str; 5] = [
    "channel",
    "async_try_recv",
    "async_task",
    "tokio_mpsc_glue",
    "async_channel_glue",
];

/// One iteration of a variant: a round of broadcasts, then every queue drained.
type Step = Box<dyn FnMut()>;

/// A variant with `n` subscribers, set up and ready to step.
fn variant(name: &str, n: usize) -> Step {
    match name {
        "channel" => {
            let (pubsub, topic, channels) =
                engine(n, |p, id| p.register_channel_with(id, CONFIG).unwrap());
            Box::new(move || {
                round(&pubsub, &topic, n);
                for channel in &channels {
                    while channel.try_recv().is_ok() {}
                }
            })
        }
        "async_try_recv" => {
            let (pubsub, topic, channels) =
                engine(n, |p, id| p.register_async_with(id, CONFIG).unwrap());
            Box::new(move || {
                round(&pubsub, &topic, n);
                for channel in &channels {
                    while channel.try_recv().is_ok() {}
                }
            })
        }
        "async_task" => {
            let mut tasks = AsyncTasks::new(n);
            Box::new(move || tasks.step())
        }
        "tokio_mpsc_glue" => {
            let (pubsub, topic, mut receivers) = engine(n, |p, id| {
                let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(ROUND);
                p.register(id, move |frame: &Bytes| {
                    let _ = tx.try_send(frame.clone());
                })
                .unwrap();
                rx
            });
            Box::new(move || {
                round(&pubsub, &topic, n);
                for rx in &mut receivers {
                    while rx.try_recv().is_ok() {}
                }
            })
        }
        "async_channel_glue" => {
            let (pubsub, topic, receivers) = engine(n, |p, id| {
                let (tx, rx) = async_channel::bounded::<Bytes>(ROUND);
                p.register(id, move |frame: &Bytes| {
                    let _ = tx.try_send(frame.clone());
                })
                .unwrap();
                rx
            });
            Box::new(move || {
                round(&pubsub, &topic, n);
                for rx in &receivers {
                    while rx.try_recv().is_ok() {}
                }
            })
        }
        other => panic!("unknown variant {other}"),
    }
}

/// `n` tokio tasks on one worker thread, each awaiting `recv()` on its own client; a
/// step publishes a round and waits (blocking, not spinning) until every task has
/// received its 32 frames.
struct AsyncTasks {
    pubsub: PubSub<[u8]>,
    topic: Topic,
    n: usize,
    round_done: mpsc::Receiver<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl AsyncTasks {
    fn new(n: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let (pubsub, topic, channels) =
            engine(n, |p, id| p.register_async_with(id, CONFIG).unwrap());
        // The last task to finish a round resets the count and tells the publisher.
        let finished = Arc::new(AtomicUsize::new(0));
        let (done, round_done) = mpsc::channel::<()>();
        for channel in channels {
            let (finished, done) = (Arc::clone(&finished), done.clone());
            runtime.spawn(async move {
                let mut received = 0;
                while channel.recv().await.is_ok() {
                    received += 1;
                    if received % ROUND == 0 && finished.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        finished.store(0, Ordering::Release);
                        let _ = done.send(());
                    }
                }
            });
        }
        Self {
            pubsub,
            topic,
            n,
            round_done,
            runtime: Some(runtime),
        }
    }

    fn step(&mut self) {
        round(&self.pubsub, &self.topic, self.n);
        self.round_done.recv().unwrap();
    }
}

impl Drop for AsyncTasks {
    fn drop(&mut self) {
        // Shutting the engine down ends every task's `recv` loop.
        self.pubsub.shutdown();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("async_sinks");
    for n in SIZES {
        group.throughput(Throughput::Elements((ROUND * n) as u64));
        for name in VARIANTS {
            let mut step = variant(name, n);
            group.bench_function(BenchmarkId::new(name, n), |b| b.iter(&mut step));
        }
    }
    group.finish();
}

/// Every variant at every size, `rounds` times interleaved; prints min and median ns per
/// delivery (publish and drain) and each variant's ratio to `channel`.
fn interleaved(rounds: usize) {
    /// Steps per sample: about 64k deliveries at n = 256, 2k at n = 1.
    const STEPS: [usize; 3] = [64, 16, 8];
    let mut steps: Vec<Vec<Step>> = SIZES
        .iter()
        .map(|&n| VARIANTS.iter().map(|name| variant(name, n)).collect())
        .collect();
    let mut samples = vec![vec![Vec::new(); VARIANTS.len()]; SIZES.len()];
    for _ in 0..rounds {
        for (k, &n) in SIZES.iter().enumerate() {
            for (v, step) in steps[k].iter_mut().enumerate() {
                step(); // warm
                let start = Instant::now();
                for _ in 0..STEPS[k] {
                    step();
                }
                let deliveries = (STEPS[k] * ROUND * n) as f64;
                samples[k][v].push(start.elapsed().as_nanos() as f64 / deliveries);
            }
        }
    }
    println!("\n## async_sinks: ns per delivery, publish + drain (min / median of {rounds} interleaved rounds)\n");
    println!("| sink | n=1 min | n=1 med | n=16 min | n=16 med | n=256 min | n=256 med | min ÷ channel (1 / 16 / 256) |");
    println!("|---|---|---|---|---|---|---|---|");
    for v in &mut samples {
        for s in v.iter_mut() {
            s.sort_by(f64::total_cmp);
        }
    }
    for (v, name) in VARIANTS.iter().enumerate() {
        let mut line = format!("| `{name}` |");
        for per_size in &samples {
            let s = &per_size[v];
            line += &format!(" {:.1} | {:.1} |", s[0], s[s.len() / 2]);
        }
        let ratios: Vec<String> = samples
            .iter()
            .map(|per_size| format!("{:.2}", per_size[v][0] / per_size[0][0]))
            .collect();
        line += &format!(" {} |", ratios.join(" / "));
        println!("{line}");
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    if let Some(rounds) = std::env::var("ASYNC_SINKS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        interleaved(rounds);
    }
}
