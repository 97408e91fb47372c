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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fanout::transport::RawPayload;
use fanout::{AsyncChannel, Channel, ChannelConfig, OverflowPolicy, PubSub, Topic};

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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("async_sinks");
    for n in SIZES {
        group.throughput(Throughput::Elements((ROUND * n) as u64));

        let (pubsub, topic, channels) =
            engine(n, |p, id| p.register_channel_with(id, CONFIG).unwrap());
        group.bench_function(BenchmarkId::new("channel", n), |b| {
            b.iter(|| {
                round(&pubsub, &topic, n);
                for channel in &channels {
                    while channel.try_recv().is_ok() {}
                }
            })
        });
        drop::<Vec<Channel<Bytes>>>(channels);

        let (pubsub, topic, channels) =
            engine(n, |p, id| p.register_async_with(id, CONFIG).unwrap());
        group.bench_function(BenchmarkId::new("async_try_recv", n), |b| {
            b.iter(|| {
                round(&pubsub, &topic, n);
                for channel in &channels {
                    while channel.try_recv().is_ok() {}
                }
            })
        });
        drop::<Vec<AsyncChannel<Bytes>>>(channels);

        async_task(&mut group, n);

        let (pubsub, topic, mut receivers) = engine(n, |p, id| {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(ROUND);
            p.register(id, move |frame: &Bytes| {
                let _ = tx.try_send(frame.clone());
            })
            .unwrap();
            rx
        });
        group.bench_function(BenchmarkId::new("tokio_mpsc_glue", n), |b| {
            b.iter(|| {
                round(&pubsub, &topic, n);
                for rx in &mut receivers {
                    while rx.try_recv().is_ok() {}
                }
            })
        });

        let (pubsub, topic, receivers) = engine(n, |p, id| {
            let (tx, rx) = async_channel::bounded::<Bytes>(ROUND);
            p.register(id, move |frame: &Bytes| {
                let _ = tx.try_send(frame.clone());
            })
            .unwrap();
            rx
        });
        group.bench_function(BenchmarkId::new("async_channel_glue", n), |b| {
            b.iter(|| {
                round(&pubsub, &topic, n);
                for rx in &receivers {
                    while rx.try_recv().is_ok() {}
                }
            })
        });
    }
    group.finish();
}

/// `n` tokio tasks on one worker thread, each awaiting `recv()` on its own client; the
/// benchmark thread publishes a round and waits (blocking, not spinning) until every
/// task has received its 32 frames.
fn async_task(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    n: usize,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (pubsub, topic, channels) = engine(n, |p, id| p.register_async_with(id, CONFIG).unwrap());
    // The last task to finish a round resets the count and tells the publisher.
    let finished = Arc::new(AtomicUsize::new(0));
    let (done, round_done) = mpsc::channel::<()>();
    for channel in channels {
        let (finished, done) = (Arc::clone(&finished), done.clone());
        rt.spawn(async move {
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
    group.bench_function(BenchmarkId::new("async_task", n), |b| {
        b.iter(|| {
            round(&pubsub, &topic, n);
            round_done.recv().unwrap();
        })
    });
    // Shutting the engine down ends every task's `recv` loop.
    pubsub.shutdown();
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
}

criterion_group!(benches, bench);
criterion_main!(benches);
