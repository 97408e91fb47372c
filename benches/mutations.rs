//! Workload 5 (custom harness, prints tables): subscribe/unsubscribe cost with 1k, 100k
//! and 1M topics already in the engine, mutations/s with 1, 2 and 16 calling threads, and
//! registering 1M callback clients — fanout next to the two topic registries a user would
//! hand-roll instead, measured in the same run and the same shape:
//!
//! - `naive`: `RwLock<HashMap<String, Vec<u64>>>` (topic name → client ids; a mutation
//!   takes the write lock, a batch takes it once);
//! - `dashmap`: `DashMap<String, SmallVec<[u64; 4]>>` (sharded locks; no batch API, so its
//!   "apply" rows run the same batch one call per mutation).
//!
//! The peers only keep ids (no sinks, no snapshot, no reverse index per client), so they
//! are a floor for the bookkeeping, not an equivalent engine: a broadcast through them
//! holds a read lock while it delivers (see `latency_churn`).
//!
//! Preloading: `topics / 100` filler clients, each subscribed to 100 distinct topics, from
//! 16 threads (the same ids and names in every implementation). Then:
//! - `subscribe` / `unsubscribe` latency: one caller, a fresh client joining and leaving
//!   existing one-subscriber topics one call at a time (mean, p50, p99). fanout is given
//!   pre-resolved `Topic`s, the peers `&str` names (they hash the name on every call);
//! - mutations/s: `k` callers, each with its own client, alternately subscribing to and
//!   unsubscribing from existing topics for `RUN_TIME` (best of two runs); one call per
//!   mutation, and batched (`PubSub::apply`, `BATCH` mutations per call).
//!
//! With the combining writer a mutation is applied by its own caller when no
//! other caller holds the writer role: no thread hop, one snapshot publication per call
//! (or per batch of everyone's queued commands when callers contend). Callers that find the
//! role taken post to the bounded queue and wait for the holder's answer, so contended
//! calls still pay a wake-up.
//!
//! Last table: registering 1M callback clients into an empty engine, through
//! `PubSub::register_many` (chunks of `REGISTER_CHUNK`, and one call of 1M) against one
//! `register` call each from one thread (wall time).
//!
//! Run: `cargo bench --bench mutations` (2–3 minutes; `-- quick` skips 1M topics and
//! registers 100k clients; `-- focus` measures only the mutation path's targets — subscribe
//! p50 and one call per mutation with 1 and 2 callers at 1k topics, `apply` with 1 and 2
//! callers at 100k — for fanout and the DashMap registry in the same run, about 30 s).
//!
//! Group `one_client_many_topics` (last table; `-- one_client` runs it alone): one client
//! subscribing to 1k, 10k and 40k fresh topics one call at a time, then unsubscribing from
//! each — the cost per call must not grow with the topics that client already has (a
//! strategy thread subscribing to every symbol of a market). The peers keep no list per
//! client, so they are the floor for the topic-map part.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use fanout::{ClientId, Mutation, PubSub, Topic};
use hdrhistogram::Histogram;
use smallvec::SmallVec;

const TOPICS_PER_FILLER: usize = 100;
const PRELOAD_THREADS: usize = 16;
const LATENCY_OPS: usize = 20_000;
const RUN_TIME: Duration = Duration::from_millis(1000);
/// Mutations per `PubSub::apply` call in the batched runs.
const BATCH: usize = 256;
/// Clients per `register_many` call in the chunked registration row.
const REGISTER_CHUNK: usize = 100_000;

fn topic_name(i: usize) -> String {
    format!("preload/{i:07}")
}

/// The callback every fanout client gets (reads the frame's length).
fn sink(frame: &Bytes) {
    black_box(frame.len());
}

/// What the hand-rolled peers do in this bench: subscribe/unsubscribe a client to/from a
/// topic, one call each or a batch of them.
trait Registry: Sync + Default {
    fn subscribe(&self, client: u64, topic: &str);
    fn unsubscribe(&self, client: u64, topic: &str);
    /// Subscribes `client` to each of `topics` and unsubscribes it again, as one batch.
    fn batch(&self, client: u64, topics: &[String]);
}

/// `RwLock<HashMap<String, Vec<u64>>>`: what the README's naive baseline keeps.
#[derive(Default)]
struct Naive(RwLock<HashMap<String, Vec<u64>>>);

fn add(list: &mut Vec<u64>, client: u64) {
    if !list.contains(&client) {
        list.push(client);
    }
}

impl Registry for Naive {
    fn subscribe(&self, client: u64, topic: &str) {
        let mut map = self.0.write().unwrap();
        match map.get_mut(topic) {
            Some(list) => add(list, client),
            None => {
                map.insert(topic.to_owned(), vec![client]);
            }
        }
    }

    fn unsubscribe(&self, client: u64, topic: &str) {
        let mut map = self.0.write().unwrap();
        if let Some(list) = map.get_mut(topic) {
            if let Some(at) = list.iter().position(|&c| c == client) {
                list.swap_remove(at);
            }
            if list.is_empty() {
                map.remove(topic);
            }
        }
    }

    fn batch(&self, client: u64, topics: &[String]) {
        let mut map = self.0.write().unwrap();
        for topic in topics {
            match map.get_mut(topic.as_str()) {
                Some(list) => add(list, client),
                None => {
                    map.insert(topic.clone(), vec![client]);
                }
            }
            let list = map.get_mut(topic.as_str()).unwrap();
            if let Some(at) = list.iter().position(|&c| c == client) {
                list.swap_remove(at);
            }
            if list.is_empty() {
                map.remove(topic.as_str());
            }
        }
    }
}

/// `DashMap<String, SmallVec<[u64; 4]>>`: sharded locks, the usual "fast" hand-rolled
/// registry.
#[derive(Default)]
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

    fn batch(&self, client: u64, topics: &[String]) {
        for topic in topics {
            self.subscribe(client, topic);
            self.unsubscribe(client, topic);
        }
    }
}

/// Preloads `topics` topics with one subscriber each into `reg` from 16 threads; returns
/// how long it took.
fn preload_peer<R: Registry>(reg: &R, topics: usize) -> Duration {
    let fillers = topics / TOPICS_PER_FILLER;
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..PRELOAD_THREADS {
            s.spawn(move || {
                for f in (t..fillers).step_by(PRELOAD_THREADS) {
                    for k in 0..TOPICS_PER_FILLER {
                        reg.subscribe(f as u64, &topic_name(f * TOPICS_PER_FILLER + k));
                    }
                }
            });
        }
    });
    start.elapsed()
}

/// An engine holding `topics` topics with one subscriber each. Returns it with how long
/// the preload took.
fn preload_fanout(topics: usize) -> (PubSub<[u8]>, Duration) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let fillers = topics / TOPICS_PER_FILLER;
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..PRELOAD_THREADS {
            let pubsub = &pubsub;
            s.spawn(move || {
                for f in (t..fillers).step_by(PRELOAD_THREADS) {
                    let id = pubsub.generate_client_id();
                    pubsub.register(id, sink).unwrap();
                    for k in 0..TOPICS_PER_FILLER {
                        pubsub
                            .subscribe(id, topic_name(f * TOPICS_PER_FILLER + k))
                            .unwrap();
                    }
                }
            });
        }
    });
    let took = start.elapsed();
    assert_eq!(pubsub.stats().topics, topics);
    (pubsub, took)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// One row's measurements.
struct Row {
    preload: Duration,
    sub_mean_ns: f64,
    sub: Histogram<u64>,
    unsub_mean_ns: f64,
    unsub: Histogram<u64>,
    /// 1, 2, 16 callers, one call per mutation.
    per_call: [f64; 3],
    /// 1, 2 callers, batched.
    batched: [f64; 2],
}

/// Times `sub(topic)` then `unsub(topic)` for every topic of `sample`, one at a time.
fn latency<N>(
    sample: &[N],
    mut sub: impl FnMut(&N),
    mut unsub: impl FnMut(&N),
) -> [(f64, Histogram<u64>); 2] {
    let (mut s, mut u) = (histogram(), histogram());
    let (mut st, mut ut) = (Duration::ZERO, Duration::ZERO);
    for topic in sample {
        let t0 = Instant::now();
        sub(topic);
        let t1 = Instant::now();
        unsub(topic);
        let t2 = Instant::now();
        s.record((t1 - t0).as_nanos().max(1) as u64).unwrap();
        u.record((t2 - t1).as_nanos().max(1) as u64).unwrap();
        st += t1 - t0;
        ut += t2 - t1;
    }
    let n = sample.len() as f64;
    [(st.as_nanos() as f64 / n, s), (ut.as_nanos() as f64 / n, u)]
}

/// Mutations/s with `callers` threads, each running `work(caller, stop)` until `stop` and
/// returning how many mutations it did. Best of two runs: other processes on this machine
/// steal whole time slices.
fn rate(callers: usize, work: impl Fn(usize, &AtomicBool) -> u64 + Sync) -> f64 {
    (0..2)
        .map(|_| {
            let stop = AtomicBool::new(false);
            let ops = AtomicU64::new(0);
            let start = Instant::now();
            thread::scope(|s| {
                for c in 0..callers {
                    let (stop, ops, work) = (&stop, &ops, &work);
                    s.spawn(move || ops.fetch_add(work(c, stop), Ordering::Relaxed));
                }
                thread::sleep(RUN_TIME);
                stop.store(true, Ordering::Relaxed);
            });
            ops.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// One caller of a fanout throughput run: `batch == 1` calls `subscribe`/`unsubscribe`,
/// otherwise `apply` with `batch` mutations (`batch / 2` subscribe–unsubscribe pairs).
fn fanout_worker(
    pubsub: &PubSub<[u8]>,
    topics: &[Topic],
    batch: usize,
    c: usize,
    stop: &AtomicBool,
) -> u64 {
    let id = pubsub.generate_client_id();
    pubsub.register(id, sink).unwrap();
    let mut done = 0u64;
    let mut i = c * 7919;
    while !stop.load(Ordering::Relaxed) {
        if batch == 1 {
            let topic = &topics[i % topics.len()];
            pubsub.subscribe(id, topic).unwrap();
            pubsub.unsubscribe(id, topic).unwrap();
            done += 2;
            i += 1;
        } else {
            let mut changes = Vec::with_capacity(batch);
            for _ in 0..batch / 2 {
                let topic = &topics[i % topics.len()];
                changes.push(Mutation::Subscribe(id, topic.clone()));
                changes.push(Mutation::Unsubscribe(id, topic.clone()));
                i += 1;
            }
            let results = pubsub.apply(changes).unwrap();
            debug_assert!(results.iter().all(Result::is_ok));
            done += results.len() as u64;
        }
    }
    pubsub.unregister(id).unwrap();
    done
}

/// One caller of a peer throughput run, same shape as `fanout_worker`.
fn peer_worker<R: Registry>(
    reg: &R,
    topics: &[String],
    batch: usize,
    c: usize,
    stop: &AtomicBool,
) -> u64 {
    let client = u64::MAX - c as u64;
    let mut done = 0u64;
    let mut i = c * 7919;
    while !stop.load(Ordering::Relaxed) {
        if batch == 1 {
            let topic = &topics[i % topics.len()];
            reg.subscribe(client, topic);
            reg.unsubscribe(client, topic);
            done += 2;
            i += 1;
        } else {
            let start = i % topics.len();
            let pairs = batch / 2;
            if start + pairs <= topics.len() {
                reg.batch(client, &topics[start..start + pairs]);
            } else {
                let wrapped: Vec<String> = (0..pairs)
                    .map(|k| topics[(start + k) % topics.len()].clone())
                    .collect();
                reg.batch(client, &wrapped);
            }
            done += batch as u64;
            i += pairs;
        }
    }
    done
}

fn fanout_row(topics: usize) -> Row {
    let (pubsub, preload) = preload_fanout(topics);
    // Existing topics spread over the whole trie, resolved once.
    let sample: Vec<Topic> = (0..LATENCY_OPS)
        .map(|i| pubsub.topic(&topic_name((i * 7_919) % topics)).unwrap())
        .collect();
    let id = pubsub.generate_client_id();
    pubsub.register(id, sink).unwrap();
    let [(sub_mean_ns, sub), (unsub_mean_ns, unsub)] = latency(
        &sample,
        |t| pubsub.subscribe(id, t).unwrap(),
        |t| pubsub.unsubscribe(id, t).unwrap(),
    );
    let w = |batch| {
        let (pubsub, sample) = (&pubsub, &sample);
        move |c, stop: &AtomicBool| fanout_worker(pubsub, sample, batch, c, stop)
    };
    let per_call = [rate(1, w(1)), rate(2, w(1)), rate(16, w(1))];
    let batched = [rate(1, w(BATCH)), rate(2, w(BATCH))];
    Row {
        preload,
        sub_mean_ns,
        sub,
        unsub_mean_ns,
        unsub,
        per_call,
        batched,
    }
}

fn peer_row<R: Registry>(topics: usize) -> Row {
    let reg = R::default();
    let preload = preload_peer(&reg, topics);
    let sample: Vec<String> = (0..LATENCY_OPS)
        .map(|i| topic_name((i * 7_919) % topics))
        .collect();
    let client = u64::MAX - 1_000;
    let [(sub_mean_ns, sub), (unsub_mean_ns, unsub)] = latency(
        &sample,
        |t| reg.subscribe(client, t),
        |t| reg.unsubscribe(client, t),
    );
    let w = |batch| {
        let (reg, sample) = (&reg, &sample);
        move |c, stop: &AtomicBool| peer_worker(reg, sample, batch, c, stop)
    };
    let per_call = [rate(1, w(1)), rate(2, w(1)), rate(16, w(1))];
    let batched = [rate(1, w(BATCH)), rate(2, w(BATCH))];
    Row {
        preload,
        sub_mean_ns,
        sub,
        unsub_mean_ns,
        unsub,
        per_call,
        batched,
    }
}

fn print_row(topics: usize, name: &str, r: &Row) {
    let us = |ns: u64| ns as f64 / 1e3;
    println!(
        "| {topics:>9} | {name:<7} | {:>9.1} | {:>11.3} | {:>10.3} | {:>10.3} | {:>10.1} | {:>13.3} | {:>12.3} | {:>13.0} | {:>14.0} | {:>15.0} | {:>19.0} | {:>20.0} |",
        r.preload.as_secs_f64(),
        r.sub_mean_ns / 1e3,
        us(r.sub.value_at_quantile(0.5)),
        us(r.sub.value_at_quantile(0.99)),
        us(r.sub.max()),
        r.unsub_mean_ns / 1e3,
        us(r.unsub.value_at_quantile(0.99)),
        r.per_call[0],
        r.per_call[1],
        r.per_call[2],
        r.batched[0],
        r.batched[1],
    );
}

/// Registers `clients` callback clients into a fresh engine, one of three ways; returns
/// the wall time.
fn register_once(clients: usize, how: usize) -> Duration {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let ids: Vec<ClientId> = (0..clients).map(|_| pubsub.generate_client_id()).collect();
    let start = Instant::now();
    match how {
        0 => {
            for part in ids.chunks(REGISTER_CHUNK.min(clients)) {
                let results = pubsub
                    .register_many(part.iter().map(|&id| (id, sink)))
                    .unwrap();
                assert!(results.iter().all(Result::is_ok));
            }
        }
        1 => {
            let results = pubsub
                .register_many(ids.iter().map(|&id| (id, sink)))
                .unwrap();
            assert!(results.iter().all(Result::is_ok));
        }
        _ => {
            for &id in &ids {
                pubsub.register(id, sink).unwrap();
            }
        }
    }
    let took = start.elapsed();
    assert_eq!(pubsub.stats().clients, clients);
    took
}

/// Registers `clients` callback clients into an empty engine three ways, two interleaved
/// rounds (the first engine of a run also pays for fresh pages from the OS); prints a
/// row each.
fn registration(clients: usize) {
    println!("\n## registering {clients} callback clients into an empty engine (wall time)\n");
    println!(
        "| how                                         | round 1 s | round 2 s | best clients/s |"
    );
    println!(
        "|---------------------------------------------|-----------|-----------|----------------|"
    );
    let chunk = REGISTER_CHUNK.min(clients);
    let hows = [
        format!("register_many, {} calls of {chunk}", clients / chunk),
        format!("register_many, 1 call of {clients}"),
        "register, one call each (1 thread)".to_string(),
    ];
    let mut took = [[Duration::ZERO; 2]; 3];
    for round in 0..2 {
        for (how, t) in took.iter_mut().enumerate() {
            t[round] = register_once(clients, how);
        }
    }
    for (how, t) in hows.iter().zip(took) {
        let best = t[0].min(t[1]);
        println!(
            "| {how:<43} | {:>9.3} | {:>9.3} | {:>14.0} |",
            t[0].as_secs_f64(),
            t[1].as_secs_f64(),
            clients as f64 / best.as_secs_f64()
        );
    }
}

/// `fanout_worker` over `sample` in batches of `batch`, as `rate` takes it.
fn fanout_work<'a>(
    pubsub: &'a PubSub<[u8]>,
    sample: &'a [Topic],
    batch: usize,
) -> impl Fn(usize, &AtomicBool) -> u64 + Sync + 'a {
    move |c, stop| fanout_worker(pubsub, sample, batch, c, stop)
}

/// `peer_worker` over `sample` in batches of `batch`, as `rate` takes it.
fn peer_work<'a, R: Registry>(
    reg: &'a R,
    sample: &'a [String],
    batch: usize,
) -> impl Fn(usize, &AtomicBool) -> u64 + Sync + 'a {
    move |c, stop| peer_worker(reg, sample, batch, c, stop)
}

/// The `focus` run: the mutation path's targets only, fanout and DashMap in the same run,
/// alternated (fanout, DashMap, fanout, DashMap) so a change in the machine's load shows.
fn focus() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\n## focus (load average at start: {})\n", load.trim());
    println!("| run | impl    | sub p50 µs @1k | 1 caller op/s @1k | 2 callers op/s @1k | apply 1 caller op/s @100k | apply 2 callers op/s @100k |");
    println!("|-----|---------|----------------|-------------------|--------------------|---------------------------|----------------------------|");
    for run in 0..2 {
        for name in ["fanout", "dashmap"] {
            let (p50, per_call, apply) = if name == "fanout" {
                let (pubsub, _) = preload_fanout(1_000);
                let sample: Vec<Topic> = (0..LATENCY_OPS)
                    .map(|i| pubsub.topic(&topic_name((i * 7_919) % 1_000)).unwrap())
                    .collect();
                let id = pubsub.generate_client_id();
                pubsub.register(id, sink).unwrap();
                let [(_, sub), _] = latency(
                    &sample,
                    |t| pubsub.subscribe(id, t).unwrap(),
                    |t| pubsub.unsubscribe(id, t).unwrap(),
                );
                let w = fanout_work;
                let per_call = [
                    rate(1, w(&pubsub, &sample, 1)),
                    rate(2, w(&pubsub, &sample, 1)),
                ];
                drop(pubsub);
                let (big, _) = preload_fanout(100_000);
                let sample: Vec<Topic> = (0..LATENCY_OPS)
                    .map(|i| big.topic(&topic_name((i * 7_919) % 100_000)).unwrap())
                    .collect();
                let apply = [
                    rate(1, w(&big, &sample, BATCH)),
                    rate(2, w(&big, &sample, BATCH)),
                ];
                (sub.value_at_quantile(0.5), per_call, apply)
            } else {
                let reg = Dash::default();
                preload_peer(&reg, 1_000);
                let sample: Vec<String> = (0..LATENCY_OPS)
                    .map(|i| topic_name((i * 7_919) % 1_000))
                    .collect();
                let client = u64::MAX - 1_000;
                let [(_, sub), _] = latency(
                    &sample,
                    |t| reg.subscribe(client, t),
                    |t| reg.unsubscribe(client, t),
                );
                let w = peer_work::<Dash>;
                let per_call = [rate(1, w(&reg, &sample, 1)), rate(2, w(&reg, &sample, 1))];
                let big = Dash::default();
                preload_peer(&big, 100_000);
                let sample: Vec<String> = (0..LATENCY_OPS)
                    .map(|i| topic_name((i * 7_919) % 100_000))
                    .collect();
                let apply = [
                    rate(1, w(&big, &sample, BATCH)),
                    rate(2, w(&big, &sample, BATCH)),
                ];
                (sub.value_at_quantile(0.5), per_call, apply)
            };
            println!(
                "| {run:>3} | {name:<7} | {:>14.3} | {:>17.0} | {:>18.0} | {:>25.0} | {:>26.0} |",
                p50 as f64 / 1e3,
                per_call[0],
                per_call[1],
                apply[0],
                apply[1]
            );
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at the end: {}", load.trim());
}

/// One client subscribing to `count` fresh topics one call at a time, then unsubscribing
/// from each: (ns per subscribe, ns per unsubscribe).
fn one_client_fanout(count: usize) -> (f64, f64) {
    let pubsub = PubSub::<[u8]>::builder().build().unwrap();
    let id = pubsub.generate_client_id();
    pubsub.register(id, sink).unwrap();
    let topics: Vec<Topic> = (0..count)
        .map(|i| pubsub.topic(&topic_name(i)).unwrap())
        .collect();
    let start = Instant::now();
    for topic in &topics {
        pubsub.subscribe(id, topic).unwrap();
    }
    let subscribed = start.elapsed();
    let start = Instant::now();
    for topic in &topics {
        pubsub.unsubscribe(id, topic).unwrap();
    }
    let per = |d: Duration| d.as_nanos() as f64 / count as f64;
    (per(subscribed), per(start.elapsed()))
}

/// [`one_client_fanout`] for a peer registry.
fn one_client_peer<R: Registry + Default>(count: usize) -> (f64, f64) {
    let reg = R::default();
    let names: Vec<String> = (0..count).map(topic_name).collect();
    let start = Instant::now();
    for name in &names {
        reg.subscribe(1, name);
    }
    let subscribed = start.elapsed();
    let start = Instant::now();
    for name in &names {
        reg.unsubscribe(1, name);
    }
    let per = |d: Duration| d.as_nanos() as f64 / count as f64;
    (per(subscribed), per(start.elapsed()))
}

fn one_client_many_topics() {
    println!("\n## one_client_many_topics: one client, many topics, one call each (ns per call)\n");
    println!("| topics of the client | impl    | subscribe ns | unsubscribe ns |");
    println!("|----------------------|---------|--------------|----------------|");
    for count in [1_000, 10_000, 40_000] {
        for (name, (sub, unsub)) in [
            ("fanout", one_client_fanout(count)),
            ("naive", one_client_peer::<Naive>(count)),
            ("dashmap", one_client_peer::<Dash>(count)),
        ] {
            println!("| {count:>20} | {name:<7} | {sub:>12.0} | {unsub:>14.0} |");
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "focus") {
        focus();
        return;
    }
    if std::env::args().any(|a| a == "one_client") {
        one_client_many_topics();
        return;
    }
    let quick = std::env::args().any(|a| a == "quick");
    let sizes: &[usize] = if quick {
        &[1_000, 100_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    println!("\n## mutations: subscribe/unsubscribe vs topics already in the registry\n");
    println!("| topics    | impl    | preload s | sub mean µs | sub p50 µs | sub p99 µs | sub max µs | unsub mean µs | unsub p99 µs | 1 caller op/s | 2 callers op/s | 16 callers op/s | 1 caller apply op/s | 2 callers apply op/s |");
    println!("|-----------|---------|-----------|-------------|------------|------------|------------|---------------|--------------|---------------|----------------|-----------------|---------------------|----------------------|");
    let mut ratios = Vec::new();
    for &topics in sizes {
        let fanout = fanout_row(topics);
        print_row(topics, "fanout", &fanout);
        let naive = peer_row::<Naive>(topics);
        print_row(topics, "naive", &naive);
        let dash = peer_row::<Dash>(topics);
        print_row(topics, "dashmap", &dash);
        ratios.push((topics, fanout, dash));
    }
    println!("\n## fanout / dashmap, same run (> 1: fanout faster for op/s, slower for µs)\n");
    println!("| topics    | sub p50 | sub p99 | 1 caller op/s | 2 callers op/s | 16 callers op/s | 2 callers apply op/s |");
    println!("|-----------|---------|---------|---------------|----------------|-----------------|----------------------|");
    for (topics, f, d) in &ratios {
        let q = |h: &Histogram<u64>, p| h.value_at_quantile(p) as f64;
        println!(
            "| {topics:>9} | {:>6.1}× | {:>6.1}× | {:>12.3}× | {:>13.3}× | {:>14.3}× | {:>19.3}× |",
            q(&f.sub, 0.5) / q(&d.sub, 0.5),
            q(&f.sub, 0.99) / q(&d.sub, 0.99),
            f.per_call[0] / d.per_call[0],
            f.per_call[1] / d.per_call[1],
            f.per_call[2] / d.per_call[2],
            f.batched[1] / d.batched[1],
        );
    }
    registration(if quick { 100_000 } else { 1_000_000 });
    one_client_many_topics();
}
