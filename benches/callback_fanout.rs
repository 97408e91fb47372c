//! Workloads 1 and 6: one broadcast to `n` callback sinks, fanout next to its peers.
//!
//! Groups (criterion ids are `<group>/<implementation>/<n>`; throughput is `n`
//! deliveries per iteration, so criterion's elements/s is deliveries/s):
//!
//! - `callback_fanout_64B`, `callback_fanout_4KiB`: a small chat struct serialised with
//!   serde_json (64 B or 4 KiB of JSON), broadcast to `n` subscribers whose callback reads
//!   the frame's length. Implementations:
//!   - `fanout`: `PubSub::broadcast` through a pre-resolved `Topic`, serde_json
//!     [`Serialiser`] (serialised once per broadcast);
//!   - `naive`: `RwLock<HashMap<String, Vec<Box<dyn Fn(&[u8])>>>>`, serialised once per
//!     subscriber;
//!   - `tokio_broadcast`: one `tokio::sync::broadcast` channel per topic (looked up in a
//!     map), serialised once, then every receiver `try_recv`s it on the same thread;
//!   - `bus`: one `bus::Bus` per topic, same pattern;
//!   - `floor_boxed_fn`: serialise once into `Bytes`, then call `n` boxed `Fn(&Bytes)`
//!     from a `Vec` — what a callback delivery cannot cost less than.
//! - `broadcast_variants`: 64 B raw payload; `broadcast` vs `broadcast_from`, topic by
//!   `&str` vs pre-resolved `Topic`, and `broadcast_frame` with a pre-encoded frame.
//!
//! Every fanout engine also holds 1,000 unrelated topics, so the topic lookup walks a
//! real trie rather than a one-entry root.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fanout::transport::{RawPayload, SerialiseError, Serialiser};
use fanout::{ClientId, PubSub};
use serde::Serialize;

const TOPIC: &str = "room/rust";
const SIZES: [usize; 5] = [1, 16, 256, 4096, 10_000];
const FILLER_TOPICS: usize = 1_000;

/// The message every implementation serialises.
#[derive(Serialize, Clone)]
struct ChatMessage {
    room: u32,
    seq: u64,
    user: &'static str,
    text: String,
}

impl ChatMessage {
    /// A message whose JSON encoding is exactly `len` bytes.
    fn of_json_len(len: usize) -> Self {
        let mut message = ChatMessage {
            room: 7,
            seq: 1_234_567,
            user: "alice",
            text: String::new(),
        };
        let empty = serde_json::to_vec(&message).unwrap().len();
        message.text = "x".repeat(len.saturating_sub(empty));
        assert_eq!(serde_json::to_vec(&message).unwrap().len(), len);
        message
    }
}

/// serde_json into the frame's buffer.
struct Json;

impl Serialiser<ChatMessage> for Json {
    fn serialise(&self, message: &ChatMessage, out: &mut BytesMut) -> Result<(), SerialiseError> {
        serde_json::to_writer(out.writer(), message).map_err(SerialiseError::new)
    }

    fn size_hint(&self, message: &ChatMessage) -> usize {
        message.text.len() + 64
    }
}

/// What the peers do to serialise once: serde_json into a fresh `Bytes`.
fn json_bytes(message: &ChatMessage) -> Bytes {
    let mut out = BytesMut::with_capacity(message.text.len() + 64);
    serde_json::to_writer((&mut out).writer(), message).unwrap();
    out.freeze()
}

/// The sink body every implementation runs per delivery.
#[inline(always)]
fn consume(frame: &[u8]) {
    black_box(frame.len());
}

/// Registers `n` callback clients on `topic` (and a filler client on 1,000 other topics),
/// from several threads so the writer batches the round trips.
fn fanout_engine<M: ?Sized + 'static>(n: usize) -> (PubSub<M>, Vec<ClientId>) {
    let pubsub = PubSub::<M>::new().unwrap();
    let ids: Vec<ClientId> = (0..n).map(|_| pubsub.generate_client_id()).collect();
    let filler = pubsub.generate_client_id();
    pubsub.register(filler, |f| consume(f)).unwrap();
    std::thread::scope(|s| {
        for chunk in ids.chunks(n.div_ceil(8)) {
            let pubsub = &pubsub;
            s.spawn(move || {
                for &id in chunk {
                    pubsub.register(id, |f| consume(f)).unwrap();
                    pubsub.subscribe(id, TOPIC).unwrap();
                }
            });
        }
        for part in 0..4 {
            let pubsub = &pubsub;
            s.spawn(move || {
                for i in (part..FILLER_TOPICS).step_by(4) {
                    pubsub.subscribe(filler, format!("filler/{i}")).unwrap();
                }
            });
        }
    });
    assert_eq!(pubsub.subscriber_count(TOPIC).unwrap(), n);
    (pubsub, ids)
}

type NaiveSink = Box<dyn Fn(&[u8]) + Send + Sync>;
type NaiveMap = RwLock<HashMap<String, Vec<NaiveSink>>>;
type FloorSink = Box<dyn Fn(&Bytes) + Send + Sync>;

fn naive_map(n: usize) -> NaiveMap {
    let mut map: HashMap<String, Vec<NaiveSink>> = HashMap::new();
    for i in 0..FILLER_TOPICS {
        map.insert(format!("filler/{i}"), vec![Box::new(|f: &[u8]| consume(f))]);
    }
    map.insert(
        TOPIC.to_owned(),
        (0..n)
            .map(|_| Box::new(|f: &[u8]| consume(f)) as NaiveSink)
            .collect(),
    );
    RwLock::new(map)
}

fn naive_broadcast(map: &NaiveMap, topic: &str, message: &ChatMessage) -> usize {
    let map = map.read().unwrap();
    let Some(subscribers) = map.get(topic) else {
        return 0;
    };
    for send in subscribers {
        let encoded = serde_json::to_vec(message).unwrap();
        send(&encoded);
    }
    subscribers.len()
}

fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    group
}

fn callback_fanout(c: &mut Criterion) {
    for (label, len) in [("64B", 64), ("4KiB", 4096)] {
        let message = ChatMessage::of_json_len(len);
        let mut group = group(c, &format!("callback_fanout_{label}"));
        for n in SIZES {
            group.throughput(Throughput::Elements(n as u64));

            // fanout: serialise once, hand the frame by reference.
            let (pubsub, _ids) = fanout_engine::<ChatMessage>(n);
            let topic = pubsub.topic(TOPIC).unwrap();
            group.bench_with_input(BenchmarkId::new("fanout", n), &n, |b, _| {
                b.iter(|| {
                    pubsub
                        .broadcast(&topic, black_box(&message), &Json)
                        .unwrap()
                })
            });
            drop(pubsub);

            // Floor: serialise once, call n boxed callbacks with &Bytes.
            let sinks: Vec<FloorSink> = (0..n)
                .map(|_| Box::new(|f: &Bytes| consume(f)) as FloorSink)
                .collect();
            group.bench_with_input(BenchmarkId::new("floor_boxed_fn", n), &n, |b, _| {
                b.iter(|| {
                    let frame = json_bytes(black_box(&message));
                    for send in &sinks {
                        send(&frame);
                    }
                    sinks.len()
                })
            });
            drop(sinks);

            // Naive: RwLock<HashMap>, serialised per subscriber. Too slow at 10,000.
            if n <= 4096 {
                let map = naive_map(n);
                group.bench_with_input(BenchmarkId::new("naive", n), &n, |b, _| {
                    b.iter(|| naive_broadcast(&map, black_box(TOPIC), black_box(&message)))
                });
            }

            // tokio::sync::broadcast: one channel per topic; receivers drain on this thread.
            {
                let mut topics: ahash::AHashMap<String, tokio::sync::broadcast::Sender<Bytes>> =
                    ahash::AHashMap::new();
                for i in 0..FILLER_TOPICS {
                    topics.insert(format!("filler/{i}"), tokio::sync::broadcast::channel(16).0);
                }
                let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(16);
                let mut receivers: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
                topics.insert(TOPIC.to_owned(), tx);
                group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
                    b.iter(|| {
                        let tx = &topics[black_box(TOPIC)];
                        tx.send(json_bytes(black_box(&message))).unwrap();
                        for rx in &mut receivers {
                            consume(&rx.try_recv().unwrap());
                        }
                    })
                });
            }

            // bus: one Bus per topic, readers drain on this thread.
            {
                let mut bus = bus::Bus::<Bytes>::new(16);
                let mut readers: Vec<_> = (0..n).map(|_| bus.add_rx()).collect();
                group.bench_with_input(BenchmarkId::new("bus", n), &n, |b, _| {
                    b.iter(|| {
                        bus.broadcast(json_bytes(black_box(&message)));
                        for rx in &mut readers {
                            consume(&rx.try_recv().unwrap());
                        }
                    })
                });
            }
        }
        group.finish();
    }
}

fn broadcast_variants(c: &mut Criterion) {
    let payload = [7u8; 64];
    let mut group = group(c, "broadcast_variants");
    for n in [1, 256] {
        group.throughput(Throughput::Elements(n as u64));
        let (pubsub, ids) = fanout_engine::<[u8]>(n);
        let topic = pubsub.topic(TOPIC).unwrap();
        // An id that is not subscribed: `broadcast_from` then skips nobody, and delivers
        // as many frames as `broadcast`.
        let outsider = pubsub.generate_client_id();
        let frame = pubsub.encode(&topic, &payload[..], &RawPayload).unwrap();
        let _ = ids;
        group.bench_with_input(BenchmarkId::new("broadcast_str", n), &n, |b, _| {
            b.iter(|| {
                pubsub
                    .broadcast(black_box(TOPIC), &payload[..], &RawPayload)
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("broadcast_topic", n), &n, |b, _| {
            b.iter(|| {
                pubsub
                    .broadcast(black_box(&topic), &payload[..], &RawPayload)
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("broadcast_from_str", n), &n, |b, _| {
            b.iter(|| {
                pubsub
                    .broadcast_from(outsider, black_box(TOPIC), &payload[..], &RawPayload)
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("broadcast_from_topic", n), &n, |b, _| {
            b.iter(|| {
                pubsub
                    .broadcast_from(outsider, black_box(&topic), &payload[..], &RawPayload)
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("broadcast_frame_topic", n), &n, |b, _| {
            b.iter(|| pubsub.broadcast_frame(black_box(&topic), &frame).unwrap())
        });
        // The floor for the same work: copy 64 B into a fresh frame, n boxed calls.
        let sinks: Vec<FloorSink> = (0..n)
            .map(|_| Box::new(|f: &Bytes| consume(f)) as FloorSink)
            .collect();
        group.bench_with_input(BenchmarkId::new("floor_boxed_fn", n), &n, |b, _| {
            b.iter(|| {
                let frame = Bytes::copy_from_slice(black_box(&payload[..]));
                for send in &sinks {
                    send(&frame);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, callback_fanout, broadcast_variants);
criterion_main!(benches);
