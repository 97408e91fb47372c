//! One subscriber among 100,000 topics: per-user topics (direct messages, one player's
//! state), as in `benches/one_subscriber.rs`. Every contender finds topic `user.<k>`'s
//! subscriber, builds one 64 B-payload frame and hands it to the one callback.
//!
//! - `fanout` (`Topic` handle) and `fanout by &str`: `PubSub::broadcast`;
//! - `tokio broadcast`: `RwLock<HashMap<String, broadcast::Sender>>`, the subscriber
//!   `try_recv`s on this thread;
//! - `bus`: `Mutex<HashMap<String, Bus>>` holding only the topics broadcast to (each
//!   `Bus` runs a thread, so 100,000 of them cannot be made: in bus's favour);
//! - `naive RwLock<HashMap>`: boxed callbacks under a read lock;
//! - `ArcSwap<HashMap>` (floor): a lock-free snapshot map (ahash), one lookup, the frame
//!   in one exact allocation, one call — the least a shared registry can do.
//!
//! Two access patterns: `hot` repeats one topic (everything in cache); `cold` walks
//! 4,096 of them in a shuffled order, so each lookup touches memory the previous 4,000
//! did not.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Mutex, RwLock};

use arc_swap::ArcSwap;
use bytes::Bytes;
use fanout::transport::{RawPayload, FRAME_KIND_PUSH, FRAME_VERSION};
use fanout::{Mutation, PubSub, Topic};

use crate::harness::{compare, timed, Contender, Role, Scenario};

const TOPICS: usize = 100_000;
const COLD: usize = 4_096;
const PAYLOAD: [u8; 64] = [7; 64];
/// Broadcasts per timed sample.
const BROADCASTS: usize = 200_000;

type Callback = Box<dyn Fn(&Bytes) + Send + Sync>;

fn consume(frame: &Bytes) {
    black_box(frame.len());
}

fn topic_name(k: usize) -> String {
    format!("user.{k:06}")
}

/// The frame in one allocation of exactly its size (the bytes `encode_push` writes).
fn exact_frame(topic: &str, payload: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(4 + topic.len() + 4 + payload.len());
    frame.extend_from_slice(&[FRAME_VERSION, FRAME_KIND_PUSH]);
    frame.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    frame.extend_from_slice(topic.as_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// The topics broadcast to, in order: one (`hot`) or 4,096 shuffled (`cold`).
fn targets(cold: bool) -> Vec<usize> {
    if !cold {
        return vec![TOPICS / 2];
    }
    let mut order: Vec<usize> = (0..COLD).map(|i| i * (TOPICS / COLD)).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

/// `TOPICS` callback clients, each subscribed to its own topic.
fn fanout_engine() -> PubSub<[u8]> {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let ids: Vec<_> = (0..TOPICS).map(|_| pubsub.generate_client_id()).collect();
    pubsub
        .register_many(ids.iter().map(|&id| (id, consume)))
        .unwrap();
    let changes = ids
        .iter()
        .enumerate()
        .map(|(k, &id)| Mutation::Subscribe(id, pubsub.topic(&topic_name(k)).unwrap()));
    pubsub.apply(changes).unwrap();
    pubsub
}

/// Hot and cold.
pub fn scenarios(rounds: usize) -> Vec<Scenario> {
    let pubsub = fanout_engine();
    [false, true]
        .into_iter()
        .map(|cold| {
            let names: Vec<String> = targets(cold).into_iter().map(topic_name).collect();
            let topics: Vec<Topic> = names.iter().map(|n| pubsub.topic(n).unwrap()).collect();

            let mut tokio_map = HashMap::new();
            let mut all_rx = HashMap::new();
            for k in 0..TOPICS {
                let (tx, rx) = tokio::sync::broadcast::channel::<Bytes>(16);
                tokio_map.insert(topic_name(k), tx);
                all_rx.insert(topic_name(k), rx);
            }
            let tokio_map = RwLock::new(tokio_map);
            let mut tokio_rx: Vec<_> = names
                .iter()
                .map(|n| (n.clone(), all_rx.remove(n).unwrap()))
                .collect();
            drop(all_rx);

            let mut buses: HashMap<String, bus::Bus<Bytes>> = names
                .iter()
                .map(|n| (n.clone(), bus::Bus::new(16)))
                .collect();
            let mut bus_rx: Vec<_> = names
                .iter()
                .map(|n| (n.clone(), buses.get_mut(n).unwrap().add_rx()))
                .collect();
            let buses = Mutex::new(buses);

            let naive: RwLock<HashMap<String, Vec<Callback>>> = RwLock::new(
                (0..TOPICS)
                    .map(|k| (topic_name(k), vec![Box::new(consume) as Callback]))
                    .collect(),
            );
            let floor: ArcSwap<HashMap<Box<str>, Vec<Callback>, ahash::RandomState>> =
                ArcSwap::from_pointee(
                    (0..TOPICS)
                        .map(|k| {
                            let name: Box<str> = topic_name(k).into();
                            (name, vec![Box::new(consume) as Callback])
                        })
                        .collect(),
                );

            let (pubsub, names, topics) = (&pubsub, &names, &topics);
            let mut contenders = [
                Contender::new("fanout", Role::Fanout, || {
                    timed(|| {
                        let mut delivered = 0;
                        for topic in topics.iter().cycle().take(BROADCASTS) {
                            delivered += pubsub
                                .broadcast(black_box(topic), &PAYLOAD[..], &RawPayload)
                                .unwrap();
                        }
                        delivered as u64
                    })
                }),
                Contender::new("fanout by &str", Role::Fanout, || {
                    timed(|| {
                        let mut delivered = 0;
                        for name in names.iter().cycle().take(BROADCASTS) {
                            delivered += pubsub
                                .broadcast(black_box(name.as_str()), &PAYLOAD[..], &RawPayload)
                                .unwrap();
                        }
                        delivered as u64
                    })
                }),
                Contender::new("tokio broadcast", Role::Peer, || {
                    timed(|| {
                        let len = tokio_rx.len();
                        for i in 0..BROADCASTS {
                            let (name, rx) = &mut tokio_rx[i % len];
                            let name = black_box(name.as_str());
                            if let Some(tx) = tokio_map.read().unwrap().get(name) {
                                tx.send(exact_frame(name, &PAYLOAD)).unwrap();
                            }
                            consume(&rx.try_recv().unwrap());
                        }
                        BROADCASTS as u64
                    })
                }),
                Contender::new("bus", Role::Peer, || {
                    timed(|| {
                        let len = bus_rx.len();
                        for i in 0..BROADCASTS {
                            let (name, rx) = &mut bus_rx[i % len];
                            let name = black_box(name.as_str());
                            if let Some(bus) = buses.lock().unwrap().get_mut(name) {
                                bus.broadcast(exact_frame(name, &PAYLOAD));
                            }
                            consume(&rx.try_recv().unwrap());
                        }
                        BROADCASTS as u64
                    })
                }),
                Contender::new("naive RwLock<HashMap>", Role::Peer, || {
                    timed(|| {
                        let mut delivered = 0;
                        for name in names.iter().cycle().take(BROADCASTS) {
                            let name = black_box(name.as_str());
                            if let Some(callbacks) = naive.read().unwrap().get(name) {
                                let frame = exact_frame(name, &PAYLOAD);
                                for callback in callbacks {
                                    callback(&frame);
                                }
                                delivered += callbacks.len() as u64;
                            }
                        }
                        delivered
                    })
                }),
                Contender::new("ArcSwap<HashMap>", Role::Floor, || {
                    timed(|| {
                        let mut delivered = 0;
                        for name in names.iter().cycle().take(BROADCASTS) {
                            let name = black_box(name.as_str());
                            let map = floor.load();
                            if let Some(callbacks) = map.get(name) {
                                let frame = exact_frame(name, &PAYLOAD);
                                for callback in callbacks {
                                    callback(&frame);
                                }
                                delivered += callbacks.len() as u64;
                            }
                        }
                        delivered
                    })
                }),
            ];
            let (id, title) = if cold {
                (
                    "one_subscriber_cold",
                    "one subscriber, 4,096 cold topics in turn among 100,000",
                )
            } else {
                (
                    "one_subscriber_hot",
                    "one subscriber, one hot topic among 100,000 (whole broadcast)",
                )
            };
            compare(id, title, "broadcast", false, rounds, &mut contenders)
        })
        .collect()
}
