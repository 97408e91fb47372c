//! Callback fan-out: one broadcast of a 64 B JSON message to `n` callback subscribers,
//! fanout against the peers of `benches/callback_fanout.rs` (the same work, the same
//! engine shape: 1,000 unrelated topics beside the one broadcast to).
//!
//! - `fanout`: `PubSub::broadcast` through a pre-resolved `Topic`, serde_json serialised
//!   once per broadcast;
//! - `tokio broadcast`: one `tokio::sync::broadcast` channel per topic, looked up in a
//!   map, serialised once, every receiver `try_recv`s on this thread;
//! - `bus`: one `bus::Bus`, the same pattern;
//! - `naive RwLock<HashMap>`: boxed callbacks under a read lock, serialised once per
//!   subscriber (what a registry without a frame type does);
//! - `boxed-callback loop` (floor): serialise once, call `n` boxed `Fn(&Bytes)` from a
//!   `Vec`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;

use bytes::{BufMut, Bytes, BytesMut};
use fanout::transport::{SerialiseError, Serialiser};
use fanout::PubSub;
use serde::Serialize;

use crate::harness::{compare, timed, Contender, Role, Scenario};

const TOPIC: &str = "room/rust";
const FILLER_TOPICS: usize = 1_000;
/// Deliveries per timed sample.
const DELIVERIES: usize = 1 << 21;

#[derive(Serialize)]
struct ChatMessage {
    room: u32,
    seq: u64,
    user: &'static str,
    text: String,
}

/// A message whose JSON encoding is 64 bytes.
fn message() -> ChatMessage {
    let mut message = ChatMessage {
        room: 7,
        seq: 1_234_567,
        user: "alice",
        text: String::new(),
    };
    let empty = serde_json::to_vec(&message).unwrap().len();
    message.text = "x".repeat(64 - empty);
    message
}

struct Json;

impl Serialiser<ChatMessage> for Json {
    fn serialise(&self, message: &ChatMessage, out: &mut BytesMut) -> Result<(), SerialiseError> {
        serde_json::to_writer(out.writer(), message).map_err(SerialiseError::new)
    }

    fn size_hint(&self, message: &ChatMessage) -> usize {
        message.text.len() + 64
    }
}

fn json_bytes(message: &ChatMessage) -> Bytes {
    let mut out = BytesMut::with_capacity(message.text.len() + 64);
    serde_json::to_writer((&mut out).writer(), message).unwrap();
    out.freeze()
}

#[inline(always)]
fn consume(frame: &[u8]) {
    black_box(frame.len());
}

type Callback = Box<dyn Fn(&[u8]) + Send + Sync>;
type FloorSink = Box<dyn Fn(&Bytes) + Send + Sync>;

/// `n` subscribers on `TOPIC`, one filler client on 1,000 other topics.
fn fanout_engine(n: usize) -> PubSub<ChatMessage> {
    let pubsub = PubSub::<ChatMessage>::new().unwrap();
    for _ in 0..n {
        let id = pubsub.generate_client_id();
        pubsub.register(id, |f| consume(f)).unwrap();
        pubsub.subscribe(id, TOPIC).unwrap();
    }
    let filler = pubsub.generate_client_id();
    pubsub.register(filler, |f| consume(f)).unwrap();
    for i in 0..FILLER_TOPICS {
        pubsub.subscribe(filler, format!("filler/{i}")).unwrap();
    }
    pubsub
}

/// The scenarios at 16, 256 and 4,096 subscribers.
pub fn scenarios(rounds: usize) -> Vec<Scenario> {
    let message = message();
    let message = &message;
    [16, 256, 4096]
        .into_iter()
        .map(|n| {
            let broadcasts = DELIVERIES / n;
            let pubsub = fanout_engine(n);
            let topic = pubsub.topic(TOPIC).unwrap();

            let mut tokio_topics: HashMap<String, tokio::sync::broadcast::Sender<Bytes>> = (0
                ..FILLER_TOPICS)
                .map(|i| (format!("filler/{i}"), tokio::sync::broadcast::channel(16).0))
                .collect();
            let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(16);
            let mut receivers: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            tokio_topics.insert(TOPIC.to_owned(), tx);

            let mut bus = bus::Bus::<Bytes>::new(16);
            let mut readers: Vec<_> = (0..n).map(|_| bus.add_rx()).collect();

            let mut naive: HashMap<String, Vec<Callback>> = (0..FILLER_TOPICS)
                .map(|i| {
                    let callback: Callback = Box::new(|f: &[u8]| consume(f));
                    (format!("filler/{i}"), vec![callback])
                })
                .collect();
            naive.insert(
                TOPIC.to_owned(),
                (0..n)
                    .map(|_| Box::new(|f: &[u8]| consume(f)) as Callback)
                    .collect(),
            );
            let naive = RwLock::new(naive);

            let sinks: Vec<FloorSink> = (0..n)
                .map(|_| Box::new(|f: &Bytes| consume(f)) as FloorSink)
                .collect();

            let mut contenders = [
                Contender::new("fanout", Role::Fanout, || {
                    timed(|| {
                        let mut delivered = 0;
                        for _ in 0..broadcasts {
                            delivered +=
                                pubsub.broadcast(&topic, black_box(message), &Json).unwrap();
                        }
                        delivered as u64
                    })
                }),
                Contender::new("tokio broadcast", Role::Peer, || {
                    timed(|| {
                        for _ in 0..broadcasts {
                            let tx = &tokio_topics[black_box(TOPIC)];
                            tx.send(json_bytes(black_box(message))).unwrap();
                            for rx in &mut receivers {
                                consume(&rx.try_recv().unwrap());
                            }
                        }
                        (broadcasts * n) as u64
                    })
                }),
                Contender::new("bus", Role::Peer, || {
                    timed(|| {
                        for _ in 0..broadcasts {
                            bus.broadcast(json_bytes(black_box(message)));
                            for rx in &mut readers {
                                consume(&rx.try_recv().unwrap());
                            }
                        }
                        (broadcasts * n) as u64
                    })
                }),
                Contender::new("naive RwLock<HashMap>", Role::Peer, || {
                    // A quarter of the broadcasts: it costs ~40× more per delivery.
                    timed(|| {
                        let mut delivered = 0;
                        for _ in 0..broadcasts.div_ceil(4) {
                            let map = naive.read().unwrap();
                            for send in &map[black_box(TOPIC)] {
                                send(&serde_json::to_vec(black_box(message)).unwrap());
                                delivered += 1;
                            }
                        }
                        delivered
                    })
                }),
                Contender::new("boxed-callback loop", Role::Floor, || {
                    timed(|| {
                        for _ in 0..broadcasts {
                            let frame = json_bytes(black_box(message));
                            for send in &sinks {
                                send(&frame);
                            }
                        }
                        (broadcasts * n) as u64
                    })
                }),
            ];
            compare(
                format!("callback_{n}"),
                format!(
                    "callback fan-out, {} subscribers, 64 B JSON",
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
