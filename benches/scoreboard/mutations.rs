//! Mutations: subscribing and unsubscribing against the registries a user would
//! hand-roll instead, as in `benches/mutations.rs`, plus registering clients.
//!
//! - `naive RwLock<HashMap>`: `RwLock<HashMap<String, Vec<u64>>>` (topic → client ids; a
//!   mutation takes the write lock, a batch takes it once);
//! - `DashMap registry`: `DashMap<String, SmallVec<[u64; 4]>>` (sharded locks; no batch
//!   API, so a batch is one call per mutation).
//!
//! The peers keep ids only — no sinks, no snapshot for lock-free broadcasts, no index per
//! client — so they are a floor for the bookkeeping, not an equivalent engine (a
//! broadcast through them holds their lock while it delivers). Every registry is preloaded
//! with one-subscriber topics (100 per filler client); fanout gets pre-resolved `Topic`
//! handles, the peers `&str` names.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Barrier, RwLock};
use std::time::Instant;

use bytes::Bytes;
use dashmap::DashMap;
use fanout::{ClientId, Mutation, PubSub, Topic};
use smallvec::SmallVec;

use crate::harness::{compare, timed, Contender, Role, Sample, Scenario};

/// Fresh clients subscribing once each, per sample.
const SUBSCRIBES: usize = 8_000;
/// Subscribe–unsubscribe pairs per caller per sample.
const PAIRS: usize = 16_000;
/// Mutations per `apply` call (and per peer batch).
const BATCH: usize = 256;
/// `apply` calls per caller per sample.
const BATCHES: usize = 64;
/// Topics one client subscribes to, one call each, in the one-client scenario.
const CLIENT_TOPICS: usize = 20_000;
/// Clients registered per sample in the registration scenario.
const REGISTER: usize = 100_000;

fn topic_name(i: usize) -> String {
    format!("preload/{i:07}")
}

fn sink(frame: &Bytes) {
    black_box(frame.len());
}

/// Topic indices spread over the registry, `count` of them, starting at `offset`.
fn spread(topics: usize, count: usize, offset: usize) -> Vec<usize> {
    (0..count).map(|i| (offset + i * 7_919) % topics).collect()
}

/// What the hand-rolled peers do.
trait Registry: Sync {
    fn subscribe(&self, client: u64, topic: &str);
    fn unsubscribe(&self, client: u64, topic: &str);
    /// Subscribes `client` to each of `topics` and unsubscribes it again, as one batch.
    fn batch(&self, client: u64, topics: &[&str]);
}

struct Naive(RwLock<HashMap<String, Vec<u64>>>);

fn remove(list: &mut Vec<u64>, client: u64) {
    if let Some(at) = list.iter().position(|&c| c == client) {
        list.swap_remove(at);
    }
}

impl Registry for Naive {
    fn subscribe(&self, client: u64, topic: &str) {
        let mut map = self.0.write().unwrap();
        match map.get_mut(topic) {
            Some(list) if !list.contains(&client) => list.push(client),
            Some(_) => {}
            None => {
                map.insert(topic.to_owned(), vec![client]);
            }
        }
    }

    fn unsubscribe(&self, client: u64, topic: &str) {
        let mut map = self.0.write().unwrap();
        if let Some(list) = map.get_mut(topic) {
            remove(list, client);
            if list.is_empty() {
                map.remove(topic);
            }
        }
    }

    fn batch(&self, client: u64, topics: &[&str]) {
        let mut map = self.0.write().unwrap();
        for &topic in topics {
            let list = map.entry(topic.to_owned()).or_default();
            if !list.contains(&client) {
                list.push(client);
            }
            remove(list, client);
            if list.is_empty() {
                map.remove(topic);
            }
        }
    }
}

struct Dash(DashMap<String, SmallVec<[u64; 4]>>);

impl Registry for Dash {
    fn subscribe(&self, client: u64, topic: &str) {
        if let Some(mut list) = self.0.get_mut(topic) {
            if !list.contains(&client) {
                list.push(client);
            }
            return;
        }
        let mut list = self.0.entry(topic.to_owned()).or_default();
        if !list.contains(&client) {
            list.push(client);
        }
    }

    fn unsubscribe(&self, client: u64, topic: &str) {
        self.0.remove_if_mut(topic, |_, list| {
            if let Some(at) = list.iter().position(|&c| c == client) {
                list.swap_remove(at);
            }
            list.is_empty()
        });
    }

    fn batch(&self, client: u64, topics: &[&str]) {
        for &topic in topics {
            self.subscribe(client, topic);
            self.unsubscribe(client, topic);
        }
    }
}

/// The three registries with `topics` one-subscriber topics each.
struct Registries {
    pubsub: PubSub<[u8]>,
    handles: Vec<Topic>,
    names: Vec<String>,
    naive: Naive,
    dash: Dash,
}

fn preload(topics: usize) -> Registries {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let names: Vec<String> = (0..topics).map(topic_name).collect();
    let mut handles = Vec::with_capacity(topics);
    let mut naive = HashMap::new();
    let dash = DashMap::new();
    for (chunk, names) in names.chunks(100).enumerate() {
        let id = pubsub.generate_client_id();
        pubsub.register(id, sink).unwrap();
        let chunk_handles: Vec<Topic> = names.iter().map(|n| pubsub.topic(n).unwrap()).collect();
        pubsub
            .apply(
                chunk_handles
                    .iter()
                    .map(|t| Mutation::Subscribe(id, t.clone())),
            )
            .unwrap();
        // The subscribed topic's handle (shares the stored name).
        handles.extend(names.iter().map(|n| pubsub.topic(n).unwrap()));
        for name in names {
            naive.insert(name.clone(), vec![chunk as u64]);
            dash.insert(name.clone(), SmallVec::from_slice(&[chunk as u64]));
        }
    }
    Registries {
        pubsub,
        handles,
        names,
        naive: Naive(RwLock::new(naive)),
        dash: Dash(dash),
    }
}

/// Peer client ids start far above the fillers'.
const PEER_CLIENT: u64 = 1 << 40;

/// Fresh clients subscribing once each (the unsubscribes after the clock are untimed).
fn subscribe_scenario(rounds: usize, topics: usize, reg: &Registries) -> Scenario {
    let targets = spread(topics, SUBSCRIBES, 0);
    let ids: Vec<ClientId> = (0..SUBSCRIBES)
        .map(|_| reg.pubsub.generate_client_id())
        .collect();
    reg.pubsub
        .register_many(ids.iter().map(|&id| (id, sink)))
        .unwrap();
    let peer = |registry: &dyn Registry| {
        let sample = timed(|| {
            for (i, &t) in targets.iter().enumerate() {
                registry.subscribe(PEER_CLIENT + i as u64, black_box(&reg.names[t]));
            }
            SUBSCRIBES as u64
        });
        for (i, &t) in targets.iter().enumerate() {
            registry.unsubscribe(PEER_CLIENT + i as u64, &reg.names[t]);
        }
        sample
    };
    let mut contenders = [
        Contender::new("fanout", Role::Fanout, || {
            let sample = timed(|| {
                for (&id, &t) in ids.iter().zip(&targets) {
                    reg.pubsub.subscribe(id, &reg.handles[t]).unwrap();
                }
                SUBSCRIBES as u64
            });
            for (&id, &t) in ids.iter().zip(&targets) {
                reg.pubsub.unsubscribe(id, &reg.handles[t]).unwrap();
            }
            sample
        }),
        Contender::new("DashMap registry", Role::Peer, || peer(&reg.dash)),
        Contender::new("naive RwLock<HashMap>", Role::Peer, || peer(&reg.naive)),
    ];
    let scenario = compare(
        format!("subscribe_{}", topics / 1000),
        format!(
            "subscribe, one call each, {} topics",
            crate::report::count(topics)
        ),
        "subscribe",
        false,
        rounds,
        &mut contenders,
    );
    reg.pubsub
        .apply(ids.iter().map(|&id| Mutation::Unregister(id)))
        .unwrap();
    scenario
}

/// `callers` threads, each with its own client, running `work(caller)`; the sample is
/// the wall time until all are done.
fn threads(callers: usize, units: u64, work: &(dyn Fn(usize) + Sync)) -> Sample {
    let barrier = Barrier::new(callers + 1);
    std::thread::scope(|s| {
        for caller in 0..callers {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                work(caller);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        Sample {
            units,
            elapsed: start.elapsed(),
        }
    })
}

/// Subscribe–unsubscribe pairs, one call per mutation, from `callers` threads.
fn pairs_scenario(rounds: usize, topics: usize, callers: usize, reg: &Registries) -> Scenario {
    let targets: Vec<Vec<usize>> = (0..callers)
        .map(|c| spread(topics, PAIRS, c * 104_729))
        .collect();
    let ids: Vec<ClientId> = (0..callers)
        .map(|_| {
            let id = reg.pubsub.generate_client_id();
            reg.pubsub.register(id, sink).unwrap();
            id
        })
        .collect();
    let units = (2 * PAIRS * callers) as u64;
    let peer = |registry: &dyn Registry| {
        threads(callers, units, &|c| {
            let client = PEER_CLIENT + c as u64;
            for &t in &targets[c] {
                let name = black_box(reg.names[t].as_str());
                registry.subscribe(client, name);
                registry.unsubscribe(client, name);
            }
        })
    };
    let mut contenders = [
        Contender::new("fanout", Role::Fanout, || {
            threads(callers, units, &|c| {
                for &t in &targets[c] {
                    reg.pubsub.subscribe(ids[c], &reg.handles[t]).unwrap();
                    reg.pubsub.unsubscribe(ids[c], &reg.handles[t]).unwrap();
                }
            })
        }),
        Contender::new("DashMap registry", Role::Peer, || peer(&reg.dash)),
        Contender::new("naive RwLock<HashMap>", Role::Peer, || peer(&reg.naive)),
    ];
    let who = if callers == 1 {
        "one caller".to_owned()
    } else {
        format!("{callers} callers")
    };
    compare(
        format!("pairs_{}_{callers}", topics / 1000),
        format!(
            "subscribe + unsubscribe, one call each, {who}, {} topics",
            crate::report::count(topics)
        ),
        "mutation",
        true,
        rounds,
        &mut contenders,
    )
}

/// Batches of `BATCH` mutations (`BATCH / 2` subscribe–unsubscribe pairs) from
/// `callers` threads: `PubSub::apply` against one write lock per batch (naive) and one
/// call per mutation (DashMap).
fn apply_scenario(rounds: usize, topics: usize, callers: usize, reg: &Registries) -> Scenario {
    let per_caller = BATCHES * BATCH / 2;
    let targets: Vec<Vec<usize>> = (0..callers)
        .map(|c| spread(topics, per_caller, c * 104_729 + 13))
        .collect();
    let ids: Vec<ClientId> = (0..callers)
        .map(|_| {
            let id = reg.pubsub.generate_client_id();
            reg.pubsub.register(id, sink).unwrap();
            id
        })
        .collect();
    let units = (2 * per_caller * callers) as u64;
    let peer = |registry: &dyn Registry| {
        threads(callers, units, &|c| {
            let names: Vec<&str> = targets[c].iter().map(|&t| reg.names[t].as_str()).collect();
            for chunk in names.chunks(BATCH / 2) {
                registry.batch(PEER_CLIENT + c as u64, black_box(chunk));
            }
        })
    };
    let mut contenders = [
        Contender::new("fanout", Role::Fanout, || {
            threads(callers, units, &|c| {
                for chunk in targets[c].chunks(BATCH / 2) {
                    let changes = chunk.iter().flat_map(|&t| {
                        [
                            Mutation::Subscribe(ids[c], reg.handles[t].clone()),
                            Mutation::Unsubscribe(ids[c], reg.handles[t].clone()),
                        ]
                    });
                    reg.pubsub.apply(changes).unwrap();
                }
            })
        }),
        Contender::new("DashMap registry", Role::Peer, || peer(&reg.dash)),
        Contender::new("naive RwLock<HashMap>", Role::Peer, || peer(&reg.naive)),
    ];
    compare(
        format!("apply_{}_{callers}", topics / 1000),
        format!(
            "batches of {BATCH} mutations (`apply`), {callers} callers, {} topics",
            crate::report::count(topics)
        ),
        "mutation",
        true,
        rounds,
        &mut contenders,
    )
}

/// Registering 100,000 callback clients into an empty engine: `register_many` in one
/// call against one `register` call each (fanout only: what registration costs).
fn register_scenario(rounds: usize) -> Scenario {
    let fresh = |many: bool| {
        let pubsub = PubSub::<[u8]>::new().unwrap();
        let ids: Vec<ClientId> = (0..REGISTER).map(|_| pubsub.generate_client_id()).collect();
        let sample = timed(|| {
            if many {
                pubsub
                    .register_many(ids.iter().map(|&id| (id, sink)))
                    .unwrap();
            } else {
                for &id in &ids {
                    pubsub.register(id, sink).unwrap();
                }
            }
            REGISTER as u64
        });
        drop(pubsub);
        sample
    };
    let mut contenders = [
        Contender::new("register_many", Role::Fanout, || fresh(true)),
        Contender::new("register, one call each", Role::Fanout, || fresh(false)),
    ];
    compare(
        "register",
        "register 100,000 callback clients into an empty engine",
        "client",
        true,
        rounds,
        &mut contenders,
    )
}

/// One client subscribing to `CLIENT_TOPICS` fresh topics one call at a time, then
/// unsubscribing from each (both timed), in an empty registry: a strategy thread taking
/// every symbol of a market. The cost per call must not grow with the topics the client
/// already has; the peers keep no list per client, so they show the topic map's part.
fn one_client_scenario(rounds: usize) -> Scenario {
    let names: Vec<String> = (0..CLIENT_TOPICS).map(topic_name).collect();
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let handles: Vec<Topic> = names.iter().map(|n| pubsub.topic(n).unwrap()).collect();
    let id = pubsub.generate_client_id();
    pubsub.register(id, sink).unwrap();
    let units = 2 * CLIENT_TOPICS as u64;
    let peer = |registry: &dyn Registry| {
        timed(|| {
            for name in &names {
                registry.subscribe(PEER_CLIENT, black_box(name));
            }
            for name in &names {
                registry.unsubscribe(PEER_CLIENT, black_box(name));
            }
            units
        })
    };
    let naive = Naive(RwLock::new(HashMap::new()));
    let dash = Dash(DashMap::new());
    let mut contenders = [
        Contender::new("fanout", Role::Fanout, || {
            timed(|| {
                for topic in &handles {
                    pubsub.subscribe(id, topic).unwrap();
                }
                for topic in &handles {
                    pubsub.unsubscribe(id, topic).unwrap();
                }
                units
            })
        }),
        Contender::new("DashMap registry", Role::Peer, || peer(&dash)),
        Contender::new("naive RwLock<HashMap>", Role::Peer, || peer(&naive)),
    ];
    compare(
        "one_client_20k",
        "subscribe + unsubscribe, one client with 20,000 topics, one call each",
        "mutation",
        true,
        rounds,
        &mut contenders,
    )
}

/// All the mutation scenarios.
pub fn scenarios(rounds: usize) -> Vec<Scenario> {
    let mut out = Vec::new();
    let small = preload(1_000);
    out.push(subscribe_scenario(rounds, 1_000, &small));
    out.push(pairs_scenario(rounds, 1_000, 1, &small));
    out.push(pairs_scenario(rounds, 1_000, 2, &small));
    drop(small);
    let large = preload(100_000);
    out.push(subscribe_scenario(rounds, 100_000, &large));
    out.push(apply_scenario(rounds, 100_000, 2, &large));
    drop(large);
    out.push(one_client_scenario(rounds.min(7)));
    out.push(register_scenario(rounds.min(7)));
    out
}
