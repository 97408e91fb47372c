//! Workload 2: one broadcast to `n` channel sinks drained by a consumer thread —
//! end-to-end deliveries per second (criterion's elements/s; throughput is `n` per
//! broadcast).
//!
//! Group `channel_fanout_e2e/<implementation>/<n>`. The publisher (criterion's thread)
//! broadcasts a 64 B payload; one consumer thread receives from every subscriber's queue.
//! Every implementation gets the same flow control, so nothing is ever dropped or lagged
//! and every run delivers exactly `iterations × n` frames: queues hold 128 frames, the
//! publisher sends batches of 32 and stays at most two batches ahead of the consumer,
//! which blocks in each queue's own `recv` (spin briefly, then park — what each library's
//! blocking receive does).
//!
//! Implementations:
//! - `fanout_pubsub`: `PubSub<[u8]>` channel clients, `broadcast(&Topic, payload,
//!   &RawPayload)` (frames built per broadcast, like the peers);
//! - `fanout_pubsub_frame`: the same clients, `broadcast_frame` of one prebuilt frame
//!   (every delivery clones the same `Bytes`: publisher and consumer then update one
//!   reference count, which this row measures too);
//! - `fanout_broadcaster`: `Broadcaster<Bytes>::publish` of a frame encoded per publish;
//! - `crossbeam_raw`: one `crossbeam_channel::bounded` queue per subscriber, frame
//!   encoded once then `send(frame.clone())` per queue — the floor for channel sinks;
//! - `tokio_broadcast`: one `tokio::sync::broadcast` channel, `blocking_recv`;
//! - `bus`: one `bus::Bus`, `recv`.
//!
//! Group `channel_fanout_st/<implementation>/<n>` (n = 16, 256, 4096): the same
//! implementations without the consumer thread: one broadcast, then one `try_recv` from
//! every queue, on the publisher's thread (tokio's receivers and bus's readers
//! `try_recv` too). No flow control is needed and nothing waits, so this isolates what
//! a delivery costs the two ends from the wake-ups of the end-to-end group; per-delivery
//! ratios against `crossbeam_raw` are in benches/NOTES-2026-12.md (workload 2).
//!
//! Group `conflation/<scenario>/<policy>/<n>`: the publish cost of a conflating channel
//! against `DropOldest`, on one thread, for `Broadcaster<(u32, u64)>::publish` to `n`
//! channels (conflating ones keyed by the `u32`, 64 keys cycling):
//! - `slow_consumer`: nobody receives. Every conflating channel holds all 64 keys, so
//!   each publish replaces a pending item in place; every `DropOldest` queue (1024) is
//!   full, so each publish drops the oldest and queues the new one. The steady state of
//!   a consumer that fell behind.
//! - `new_key`: the consumer keeps up, so each publish finds its key not pending (idle
//!   in the table: a lookup, a slot write and a token) and the queue not full. Publish
//!   only: batches of 64 publishes (64 distinct keys) are timed, and every channel is
//!   drained untimed between them. `benches/conflation_callgrind.rs` has the same
//!   scenarios for callgrind, and a `wall` mode comparing low percentiles of many short
//!   batches, which a shared machine disturbs less than these means.
//! - `round_trip`: one publish, then every channel's item is received: publish plus
//!   receive (for a conflating channel the receive is a token pop and the lock).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fanout::transport::{encode_push, RawPayload};
use fanout::{Broadcaster, ChannelConfig, OverflowPolicy, PubSub};

const TOPIC: &str = "market/eurusd";
const SIZES: [usize; 4] = [1, 16, 256, 4096];
const CAPACITY: usize = 128;
const BATCH: u64 = 32;
/// Never reached (flow control keeps queues at most half full); `Block` only makes a
/// drop impossible should the consumer be descheduled for a long time.
const POLICY: OverflowPolicy = OverflowPolicy::Block(Duration::from_secs(10));

/// Runs `iters` broadcasts (rounded up to whole batches, time scaled back) with
/// `consume_batch` receiving one batch from every subscriber on another thread.
fn end_to_end(
    iters: u64,
    mut publish: impl FnMut(),
    mut consume_batch: impl FnMut() + Send,
) -> Duration {
    let batches = iters.div_ceil(BATCH).max(1);
    let consumed = AtomicU64::new(0);
    let elapsed = thread::scope(|s| {
        let consumed = &consumed;
        s.spawn(move || {
            for k in 0..batches {
                consume_batch();
                consumed.store(k + 1, Ordering::Release);
            }
        });
        let start = Instant::now();
        for k in 0..batches {
            // At most two batches in flight (≤ 64 of 128 slots per queue).
            let mut spins = 0u32;
            while consumed.load(Ordering::Acquire) + 1 < k {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    thread::yield_now();
                }
            }
            for _ in 0..BATCH {
                publish();
            }
        }
        while consumed.load(Ordering::Acquire) < batches {
            thread::yield_now();
        }
        start.elapsed()
    });
    elapsed.mul_f64(iters as f64 / (batches * BATCH) as f64)
}

fn channel_fanout(c: &mut Criterion) {
    let payload = [7u8; 64];
    let frame = encode_push(TOPIC, &payload).unwrap();
    let mut group = c.benchmark_group("channel_fanout_e2e");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));

        {
            let pubsub = PubSub::<[u8]>::new().unwrap();
            let topic = pubsub.topic(TOPIC).unwrap();
            let channels: Vec<_> = (0..n)
                .map(|_| {
                    let id = pubsub.generate_client_id();
                    let channel = pubsub
                        .register_channel_with(id, ChannelConfig::new(CAPACITY, POLICY))
                        .unwrap();
                    pubsub.subscribe(id, &topic).unwrap();
                    channel
                })
                .collect();
            group.bench_with_input(BenchmarkId::new("fanout_pubsub", n), &n, |b, _| {
                b.iter_custom(|iters| {
                    end_to_end(
                        iters,
                        || {
                            pubsub.broadcast(&topic, &payload[..], &RawPayload).unwrap();
                        },
                        || {
                            for channel in &channels {
                                for _ in 0..BATCH {
                                    black_box(channel.recv().unwrap());
                                }
                            }
                        },
                    )
                })
            });
            group.bench_with_input(BenchmarkId::new("fanout_pubsub_frame", n), &n, |b, _| {
                b.iter_custom(|iters| {
                    end_to_end(
                        iters,
                        || {
                            pubsub.broadcast_frame(&topic, &frame).unwrap();
                        },
                        || {
                            for channel in &channels {
                                for _ in 0..BATCH {
                                    black_box(channel.recv().unwrap());
                                }
                            }
                        },
                    )
                })
            });
            assert_eq!(pubsub.stats().dropped, 0);
        }

        {
            let broadcaster = Broadcaster::<Bytes>::start().unwrap();
            let channels: Vec<_> = (0..n)
                .map(|_| {
                    broadcaster
                        .subscribe_with(ChannelConfig::new(CAPACITY, POLICY))
                        .unwrap()
                })
                .collect();
            group.bench_with_input(BenchmarkId::new("fanout_broadcaster", n), &n, |b, _| {
                b.iter_custom(|iters| {
                    end_to_end(
                        iters,
                        || {
                            // A new frame per publish, like the peers: clones of one
                            // prebuilt frame put the publisher's increments and the
                            // consumer's decrements of its reference count on one cache
                            // line, which cost 2–4× (benches/NOTES-2026-12.md,
                            // workload 2).
                            let frame = encode_push(TOPIC, black_box(&payload)).unwrap();
                            broadcaster.publish(frame).unwrap();
                        },
                        || {
                            for channel in &channels {
                                for _ in 0..BATCH {
                                    black_box(channel.recv().unwrap());
                                }
                            }
                        },
                    )
                })
            });
        }

        {
            let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
                .map(|_| crossbeam_channel::bounded::<Bytes>(CAPACITY))
                .unzip();
            group.bench_with_input(BenchmarkId::new("crossbeam_raw", n), &n, |b, _| {
                b.iter_custom(|iters| {
                    end_to_end(
                        iters,
                        || {
                            let frame = encode_push(TOPIC, black_box(&payload)).unwrap();
                            for tx in &senders {
                                tx.send(frame.clone()).unwrap();
                            }
                        },
                        || {
                            for rx in &receivers {
                                for _ in 0..BATCH {
                                    black_box(rx.recv().unwrap());
                                }
                            }
                        },
                    )
                })
            });
        }

        {
            let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(CAPACITY);
            let mut receivers: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
                b.iter_custom(|iters| {
                    end_to_end(
                        iters,
                        || {
                            let frame = encode_push(TOPIC, black_box(&payload)).unwrap();
                            tx.send(frame).unwrap();
                        },
                        || {
                            for rx in receivers.iter_mut() {
                                for _ in 0..BATCH {
                                    black_box(rx.blocking_recv().unwrap());
                                }
                            }
                        },
                    )
                })
            });
        }

        {
            let mut bus = bus::Bus::<Bytes>::new(CAPACITY);
            let mut readers: Vec<_> = (0..n).map(|_| bus.add_rx()).collect();
            group.bench_with_input(BenchmarkId::new("bus", n), &n, |b, _| {
                b.iter_custom(|iters| {
                    end_to_end(
                        iters,
                        || {
                            let frame = encode_push(TOPIC, black_box(&payload)).unwrap();
                            bus.broadcast(frame);
                        },
                        || {
                            for rx in readers.iter_mut() {
                                for _ in 0..BATCH {
                                    black_box(rx.recv().unwrap());
                                }
                            }
                        },
                    )
                })
            });
        }
    }
    group.finish();
}

/// Subscriber counts of the single-threaded group.
const ST_SIZES: [usize; 3] = [16, 256, 4096];

fn channel_fanout_st(c: &mut Criterion) {
    let payload = [7u8; 64];
    let mut group = c.benchmark_group("channel_fanout_st");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    let config = ChannelConfig::new(CAPACITY, OverflowPolicy::DropNewest);
    for n in ST_SIZES {
        group.throughput(Throughput::Elements(n as u64));

        {
            let pubsub = PubSub::<[u8]>::new().unwrap();
            let topic = pubsub.topic(TOPIC).unwrap();
            let channels: Vec<_> = (0..n)
                .map(|_| {
                    let id = pubsub.generate_client_id();
                    let channel = pubsub.register_channel_with(id, config).unwrap();
                    pubsub.subscribe(id, &topic).unwrap();
                    channel
                })
                .collect();
            group.bench_with_input(BenchmarkId::new("fanout_pubsub", n), &n, |b, _| {
                b.iter(|| {
                    pubsub.broadcast(&topic, &payload[..], &RawPayload).unwrap();
                    for channel in &channels {
                        black_box(channel.try_recv().unwrap());
                    }
                })
            });
            assert_eq!(pubsub.stats().dropped, 0);
        }

        {
            let broadcaster = Broadcaster::<Bytes>::start().unwrap();
            let channels: Vec<_> = (0..n)
                .map(|_| broadcaster.subscribe_with(config).unwrap())
                .collect();
            group.bench_with_input(BenchmarkId::new("fanout_broadcaster", n), &n, |b, _| {
                b.iter(|| {
                    let frame = encode_push(TOPIC, black_box(&payload)).unwrap();
                    broadcaster.publish(frame).unwrap();
                    for channel in &channels {
                        black_box(channel.try_recv().unwrap());
                    }
                })
            });
        }

        {
            let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
                .map(|_| crossbeam_channel::bounded::<Bytes>(CAPACITY))
                .unzip();
            group.bench_with_input(BenchmarkId::new("crossbeam_raw", n), &n, |b, _| {
                b.iter(|| {
                    let frame = encode_push(TOPIC, black_box(&payload)).unwrap();
                    for tx in &senders {
                        tx.try_send(frame.clone()).unwrap();
                    }
                    for rx in &receivers {
                        black_box(rx.try_recv().unwrap());
                    }
                })
            });
        }

        {
            let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(CAPACITY);
            let mut receivers: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
                b.iter(|| {
                    let frame = encode_push(TOPIC, black_box(&payload)).unwrap();
                    tx.send(frame).unwrap();
                    for rx in receivers.iter_mut() {
                        black_box(rx.try_recv().unwrap());
                    }
                })
            });
        }

        {
            let mut bus = bus::Bus::<Bytes>::new(CAPACITY);
            let mut readers: Vec<_> = (0..n).map(|_| bus.add_rx()).collect();
            group.bench_with_input(BenchmarkId::new("bus", n), &n, |b, _| {
                b.iter(|| {
                    let frame = encode_push(TOPIC, black_box(&payload)).unwrap();
                    bus.broadcast(frame);
                    for rx in readers.iter_mut() {
                        black_box(rx.try_recv().unwrap());
                    }
                })
            });
        }
    }
    group.finish();
}

/// Keys the conflation group cycles through.
const KEYS: u32 = 64;

fn conflation(c: &mut Criterion) {
    let mut group = c.benchmark_group("conflation");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    let key = |m: &(u32, u64)| m.0;
    for n in [1usize, 16] {
        group.throughput(Throughput::Elements(n as u64));
        for conflate in [false, true] {
            let policy = if conflate { "conflate" } else { "drop_oldest" };
            let feed = Broadcaster::<(u32, u64)>::start().unwrap();
            let (queues, conflating): (Vec<_>, Vec<_>) = if conflate {
                let channels = (0..n)
                    .map(|_| feed.subscribe_conflating(key, 1024).unwrap())
                    .collect();
                (Vec::new(), channels)
            } else {
                let config = ChannelConfig::new(1024, OverflowPolicy::DropOldest);
                let channels = (0..n)
                    .map(|_| feed.subscribe_with(config).unwrap())
                    .collect();
                (channels, Vec::new())
            };
            let mut seq = 0u64;
            let mut publish = || {
                seq += 1;
                feed.publish(((seq % u64::from(KEYS)) as u32, seq)).unwrap()
            };
            // Fill: every key pending, every queue full.
            for _ in 0..2048 {
                publish();
            }
            group.bench_function(
                BenchmarkId::new(format!("slow_consumer/{policy}"), n),
                |b| b.iter(|| black_box(publish())),
            );
            let drain = || {
                for channel in &queues {
                    while channel.try_recv().is_ok() {}
                }
                for channel in &conflating {
                    while channel.try_recv().is_ok() {}
                }
            };
            drain();
            group.bench_function(BenchmarkId::new(format!("new_key/{policy}"), n), |b| {
                b.iter_custom(|iters| {
                    let batches = iters.div_ceil(u64::from(KEYS));
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..batches {
                        let start = Instant::now();
                        for _ in 0..KEYS {
                            black_box(publish());
                        }
                        elapsed += start.elapsed();
                        drain();
                    }
                    elapsed.mul_f64(iters as f64 / (batches * u64::from(KEYS)) as f64)
                })
            });
            group.bench_function(BenchmarkId::new(format!("round_trip/{policy}"), n), |b| {
                b.iter(|| {
                    black_box(publish());
                    for channel in &queues {
                        black_box(channel.try_recv().unwrap());
                    }
                    for channel in &conflating {
                        black_box(channel.try_recv().unwrap());
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, channel_fanout, channel_fanout_st, conflation);
criterion_main!(benches);
