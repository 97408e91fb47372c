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
//! - `fanout_pubsub_frame`: the same clients, `broadcast_frame` of one prebuilt frame;
//! - `fanout_broadcaster`: `Broadcaster<Bytes>::publish` of a prebuilt frame;
//! - `crossbeam_raw`: one `crossbeam_channel::bounded` queue per subscriber, frame
//!   encoded once then `send(frame.clone())` per queue — the floor for channel sinks;
//! - `tokio_broadcast`: one `tokio::sync::broadcast` channel, `blocking_recv`;
//! - `bus`: one `bus::Bus`, `recv`.

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
                            broadcaster.publish(frame.clone()).unwrap();
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

criterion_group!(benches, channel_fanout);
criterion_main!(benches);
