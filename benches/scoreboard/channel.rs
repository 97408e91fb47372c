//! Channel fan-out: one broadcast of a 64 B payload to `n` bounded queues (capacity 128),
//! fanout's `PubSub` channel clients against raw crossbeam queues (the floor), tokio
//! broadcast and bus, as in `benches/channel_fanout.rs`.
//!
//! - *one thread*: publish, then one `try_recv` from every queue on the same thread: what
//!   a delivery costs the two ends, without wake-ups;
//! - *consumer thread*: a second thread receives from every queue (blocking `recv`)
//!   while the publisher publishes, at most two batches of 32 ahead, so nothing is ever
//!   dropped. Whenever the consumer catches up it parks, and the next push pays a futex
//!   wake-up: these ratios move from run to run more than the one-thread ones.
//!
//! Every implementation builds one frame per publish (`encode_push` for the peers, the
//! engine's own for fanout).

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use fanout::transport::{encode_push, RawPayload};
use fanout::{Channel, ChannelConfig, OverflowPolicy, PubSub, Topic};

use crate::harness::{compare, timed, Contender, Role, Sample, Scenario};

const TOPIC: &str = "market/eurusd";
const PAYLOAD: [u8; 64] = [7; 64];
const CAPACITY: usize = 128;
/// Deliveries per timed sample.
const DELIVERIES: usize = 1 << 20;
/// Frames the consumer thread takes from each queue in turn; the publisher stays at most
/// two such batches ahead.
const BATCH: usize = 32;

#[inline(always)]
fn consume(frame: &Bytes) {
    black_box(frame.len());
}

fn fanout_clients(n: usize) -> (PubSub<[u8]>, Topic, Vec<Channel<Bytes>>) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let topic = pubsub.topic(TOPIC).unwrap();
    let channels = (0..n)
        .map(|_| {
            let id = pubsub.generate_client_id();
            let config = ChannelConfig::new(CAPACITY, OverflowPolicy::DropNewest);
            let channel = pubsub.register_channel_with(id, config).unwrap();
            pubsub.subscribe(id, &topic).unwrap();
            channel
        })
        .collect();
    (pubsub, topic, channels)
}

/// One thread: publish, then one `try_recv` per queue, at 1, 256 and 4,096 subscribers.
pub fn one_thread(rounds: usize) -> Vec<Scenario> {
    [1, 256, 4096]
        .into_iter()
        .map(|n| {
            let broadcasts = DELIVERIES / n;
            let units = (broadcasts * n) as u64;
            let (pubsub, topic, channels) = fanout_clients(n);
            let (senders, receivers): (Vec<_>, Vec<_>) =
                (0..n).map(|_| crossbeam_channel::bounded(CAPACITY)).unzip();
            let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(CAPACITY);
            let mut tokio_rx: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            let mut bus = bus::Bus::<Bytes>::new(CAPACITY);
            let mut readers: Vec<_> = (0..n).map(|_| bus.add_rx()).collect();
            let mut contenders = [
                Contender::new("fanout", Role::Fanout, || {
                    timed(|| {
                        for _ in 0..broadcasts {
                            pubsub
                                .broadcast(black_box(&topic), &PAYLOAD[..], &RawPayload)
                                .unwrap();
                            for channel in &channels {
                                consume(&channel.try_recv().unwrap());
                            }
                        }
                        units
                    })
                }),
                Contender::new("crossbeam queues", Role::Floor, || {
                    timed(|| {
                        for _ in 0..broadcasts {
                            let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
                            for tx in &senders {
                                tx.try_send(frame.clone()).unwrap();
                            }
                            for rx in &receivers {
                                consume(&rx.try_recv().unwrap());
                            }
                        }
                        units
                    })
                }),
                Contender::new("tokio broadcast", Role::Peer, || {
                    timed(|| {
                        for _ in 0..broadcasts {
                            tx.send(encode_push(TOPIC, black_box(&PAYLOAD)).unwrap())
                                .unwrap();
                            for rx in &mut tokio_rx {
                                consume(&rx.try_recv().unwrap());
                            }
                        }
                        units
                    })
                }),
                Contender::new("bus", Role::Peer, || {
                    timed(|| {
                        for _ in 0..broadcasts {
                            bus.broadcast(encode_push(TOPIC, black_box(&PAYLOAD)).unwrap());
                            for rx in &mut readers {
                                consume(&rx.try_recv().unwrap());
                            }
                        }
                        units
                    })
                }),
            ];
            compare(
                format!("channel_st_{n}"),
                format!(
                    "channel fan-out, {} subscriber{}, publish + receive on one thread",
                    crate::report::count(n),
                    if n == 1 { "" } else { "s" }
                ),
                "delivery",
                false,
                rounds,
                &mut contenders,
            )
        })
        .collect()
}

/// One thread, one subscriber, a frame encoded once beforehand: every broadcast hands on
/// the same `Bytes` (`broadcast_frame` for fanout, a clone for the peers), then receives
/// it. What a hot path that encodes once for many topics, or forwards frames it was
/// given, pays per publish, without the allocation of a new frame each time.
pub fn one_thread_preencoded(rounds: usize) -> Vec<Scenario> {
    const N: usize = 1;
    let units = DELIVERIES as u64;
    let (pubsub, topic, channels) = fanout_clients(N);
    let channel = &channels[0];
    let frame = encode_push(TOPIC, &PAYLOAD).unwrap();
    let (sender, receiver) = crossbeam_channel::bounded(CAPACITY);
    let (tx, mut tokio_rx) = tokio::sync::broadcast::channel::<Bytes>(CAPACITY);
    let mut bus = bus::Bus::<Bytes>::new(CAPACITY);
    let mut reader = bus.add_rx();
    let mut contenders = [
        Contender::new("fanout", Role::Fanout, || {
            timed(|| {
                for _ in 0..DELIVERIES {
                    pubsub
                        .broadcast_frame(black_box(&topic), black_box(&frame))
                        .unwrap();
                    consume(&channel.try_recv().unwrap());
                }
                units
            })
        }),
        Contender::new("crossbeam queues", Role::Floor, || {
            timed(|| {
                for _ in 0..DELIVERIES {
                    sender.try_send(black_box(&frame).clone()).unwrap();
                    consume(&receiver.try_recv().unwrap());
                }
                units
            })
        }),
        Contender::new("tokio broadcast", Role::Peer, || {
            timed(|| {
                for _ in 0..DELIVERIES {
                    tx.send(black_box(&frame).clone()).unwrap();
                    consume(&tokio_rx.try_recv().unwrap());
                }
                units
            })
        }),
        Contender::new("bus", Role::Peer, || {
            timed(|| {
                for _ in 0..DELIVERIES {
                    bus.broadcast(black_box(&frame).clone());
                    consume(&reader.try_recv().unwrap());
                }
                units
            })
        }),
    ];
    vec![compare(
        "channel_st_frame_1".to_string(),
        "channel fan-out, 1 subscriber, pre-encoded frame, publish + receive on one thread"
            .to_string(),
        "delivery",
        false,
        rounds,
        &mut contenders,
    )]
}

/// `batches × BATCH` publishes while another thread runs `consume_batch` as often.
fn with_consumer(
    batches: usize,
    n: usize,
    publish: &mut dyn FnMut(),
    consume_batch: &(dyn Fn() + Sync),
) -> Sample {
    let consumed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let consumed = &consumed;
        s.spawn(move || {
            for k in 0..batches {
                consume_batch();
                consumed.store(k + 1, Ordering::Release);
            }
        });
        let start = Instant::now();
        for k in 0..batches {
            let mut spins = 0u32;
            while consumed.load(Ordering::Acquire) + 1 < k {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            for _ in 0..BATCH {
                publish();
            }
        }
        while consumed.load(Ordering::Acquire) < batches {
            std::thread::yield_now();
        }
        Sample {
            units: (batches * BATCH * n) as u64,
            elapsed: start.elapsed(),
        }
    })
}

/// A consumer thread receiving while the publisher publishes, at 256 and 4,096
/// subscribers: fanout against raw crossbeam queues.
pub fn consumer_thread(rounds: usize) -> Vec<Scenario> {
    [256, 4096]
        .into_iter()
        .map(|n| {
            let batches = (DELIVERIES / n).div_ceil(BATCH);
            let (pubsub, topic, channels) = fanout_clients(n);
            let (senders, receivers): (Vec<_>, Vec<_>) =
                (0..n).map(|_| crossbeam_channel::bounded(CAPACITY)).unzip();
            let mut publish_fanout = || {
                pubsub
                    .broadcast(black_box(&topic), &PAYLOAD[..], &RawPayload)
                    .unwrap();
            };
            let consume_fanout = || {
                for channel in &channels {
                    for _ in 0..BATCH {
                        consume(&channel.recv().unwrap());
                    }
                }
            };
            let mut publish_crossbeam = || {
                let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
                for tx in &senders {
                    tx.try_send(frame.clone()).unwrap();
                }
            };
            let consume_crossbeam = || {
                for rx in &receivers {
                    for _ in 0..BATCH {
                        consume(&rx.recv().unwrap());
                    }
                }
            };
            let mut contenders = [
                Contender::new("fanout", Role::Fanout, || {
                    with_consumer(batches, n, &mut publish_fanout, &consume_fanout)
                }),
                Contender::new("crossbeam queues", Role::Floor, || {
                    with_consumer(batches, n, &mut publish_crossbeam, &consume_crossbeam)
                }),
            ];
            compare(
                format!("channel_mt_{n}"),
                format!(
                    "channel fan-out, {} subscribers, consumer thread",
                    crate::report::count(n)
                ),
                "delivery",
                false,
                rounds,
                &mut contenders,
            )
        })
        .collect()
}
