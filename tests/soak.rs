//! Bounded soak test: publishers, consumers with every overflow policy, and churn, all at
//! once, with exact per-subscriber accounting.
//!
//! Runs about 3 seconds; `FANOUT_SOAK_SECS=N` runs it for N seconds.
//!
//! # Design
//!
//! The run is a sequence of *phases*. Before a phase the main thread registers a fresh
//! set of phase subscribers — channel clients with every [`OverflowPolicy`]
//! (`DropNewest`, `DropOldest`, `Disconnect`, `Block(short)`), each read by a fast
//! consumer thread, a slow one, or nobody until the phase ends, plus callback clients —
//! and subscribes each to a random set of publisher topics (by name or pre-resolved
//! handle, some twice; plus one extra topic subscribed and unsubscribed again). All of
//! that returns before the start barrier, so by the visibility guarantee every broadcast
//! of the phase reaches them. Publisher threads then broadcast on their topics (by
//! `&str`, by `&Topic`, and as pre-encoded frames) with a per-(publisher, topic) sequence
//! number in the payload, until the main thread stops the phase; they count what they
//! published and meet the main thread at the end barrier, after which nothing more is
//! published on those topics. The consumers drain, and every subscriber is checked:
//!
//! - delivered + `Channel::dropped()` == frames published on its topics in the phase
//!   (callbacks: delivered == published);
//! - a `Disconnect` subscriber that overflowed reports `DisconnectReason::Overflow`, lost
//!   exactly one frame, and got an unbroken prefix of every publisher's sequence;
//! - per publisher and topic, sequence numbers arrive strictly increasing (and without
//!   gaps for the lossless sinks).
//!
//! Meanwhile churn threads keep registering callback and channel clients, subscribing
//! them to churn topics *and to the publisher topics* (so subscriber lists of live topics
//! are copied and rewritten under load), unsubscribing, unregistering and dropping
//! channels; a churn publisher broadcasts on the churn topics. Churn clients check order
//! too. At the end every client is gone: `stats()` goes back to zero clients, topics and
//! subscriptions, every callback sink was freed (a shared token's count returns to one),
//! every unregistered channel's receiver ends, engine-wide `disconnects` equals the
//! disconnects observed, and resident memory grew by less than a generous margin.
//!
//! A last segment (a sixth of the time, at least 0.3 s) does the same for the typed face:
//! `Broadcaster<u64>` publishers, channels with every policy (delivered + dropped ==
//! published, per-publisher order, unbroken prefixes before a disconnect), and a churn
//! thread that subscribes, unsubscribes and drops channels until the subscriber count
//! returns to zero.
//!
//! A watchdog aborts the process if the test runs far past its time (a failed thread
//! would otherwise leave the others waiting at a barrier forever).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::Rng;
use fanout::transport::{decode, RawPayload};
use fanout::{
    Broadcaster, Bytes, Channel, ChannelConfig, ClientId, DisconnectReason, OverflowPolicy, PubSub,
    Topic,
};

/// Counts the bytes the process has allocated and not freed, for an exact leak check.
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only adds to an
// atomic counter, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

const PUBLISHERS: u32 = 3;
const TOPICS_PER_PUBLISHER: u32 = 2;
const CHURN_THREADS: usize = 2;
const CHURN_TOPICS: u32 = 6;
/// The publisher number the churn publisher writes into its payloads.
const CHURN_PUBLISHER: u32 = 99;
const PHASE: Duration = Duration::from_millis(120);
const BLOCK: Duration = Duration::from_micros(200);

fn publisher_topic(p: u32, k: u32) -> String {
    format!("pub/{p}/{k}")
}

fn churn_topic(k: u32) -> String {
    format!("churn/{k}")
}

/// Payload: publisher, topic index, sequence number (big-endian).
fn payload(p: u32, k: u32, seq: u64) -> [u8; 16] {
    let mut out = [0; 16];
    out[..4].copy_from_slice(&p.to_be_bytes());
    out[4..8].copy_from_slice(&k.to_be_bytes());
    out[8..].copy_from_slice(&seq.to_be_bytes());
    out
}

fn parse(frame: &Bytes) -> (u32, u32, u64) {
    let push = decode(frame).expect("frames decode");
    let b = push.payload;
    assert_eq!(b.len(), 16, "payload length");
    let p = u32::from_be_bytes(b[..4].try_into().unwrap());
    let k = u32::from_be_bytes(b[4..8].try_into().unwrap());
    let seq = u64::from_be_bytes(b[8..].try_into().unwrap());
    let want = if p == CHURN_PUBLISHER {
        churn_topic(k)
    } else {
        publisher_topic(p, k)
    };
    assert_eq!(push.topic, want, "frame topic matches its payload");
    (p, k, seq)
}

/// Frames one subscriber received, per (publisher, topic): the sequence numbers, in
/// arrival order.
#[derive(Default)]
struct Received {
    seqs: HashMap<(u32, u32), Vec<u64>>,
    total: u64,
}

impl Received {
    fn record(&mut self, frame: &Bytes) {
        let (p, k, seq) = parse(frame);
        self.seqs.entry((p, k)).or_default().push(seq);
        self.total += 1;
    }

    /// Sequence numbers strictly increase per publisher and topic.
    fn assert_ordered(&self, who: &str) {
        for (key, seqs) in &self.seqs {
            if let Some(i) = seqs.windows(2).position(|w| w[0] >= w[1]) {
                panic!(
                    "{who}: frames of publisher/topic {key:?} out of order: frame {i} has \
                     sequence {}, frame {} has {}",
                    seq_index(seqs[i]),
                    i + 1,
                    seq_index(seqs[i + 1])
                );
            }
        }
    }

    /// Every publisher's sequence on every topic is 0, 1, 2, ... without gaps (or
    /// duplicates).
    fn assert_prefixes(&self, who: &str) {
        for (key, seqs) in &self.seqs {
            if let Some(i) = (0..seqs.len()).find(|&i| seq_index(seqs[i]) != i as u64) {
                panic!(
                    "{who}: publisher/topic {key:?}: frame {i} has sequence {}, not {i} \
                     (a lossless prefix was expected; {} frames)",
                    seq_index(seqs[i]),
                    seqs.len()
                );
            }
        }
    }
}

/// Checks per-(publisher, topic) order incrementally, for long-lived churn clients.
#[derive(Default)]
struct OrderCheck {
    last: HashMap<(u32, u32), u64>,
}

impl OrderCheck {
    fn record(&mut self, frame: &Bytes) {
        let (p, k, seq) = parse(frame);
        // Sequence numbers grow across phases too (the phase is in their high bits), so
        // a churn client living through several phases can compare them directly.
        if let Some(prev) = self.last.insert((p, k), seq) {
            assert!(
                seq > prev,
                "churn client: publisher/topic {:?} out of order ({prev} then {seq})",
                (p, k)
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speed {
    Fast,
    Slow,
    /// Nobody reads until the phase ends.
    Stalled,
}

struct PhaseSubscriber {
    name: String,
    id: ClientId,
    /// Publisher topics `(p, k)` it is subscribed to during the phase.
    topics: Vec<(u32, u32)>,
    kind: PhaseSink,
}

enum PhaseSink {
    Callback(Arc<Mutex<Received>>),
    Channel {
        channel: Arc<Channel<Bytes>>,
        policy: OverflowPolicy,
        speed: Speed,
        consumer: Option<thread::JoinHandle<Received>>,
    },
}

/// Shared between the main thread and the publishers.
struct Phases {
    start: Barrier,
    end: Barrier,
    /// The current phase should stop publishing.
    stop: AtomicBool,
    /// No more phases: publishers exit after the start barrier.
    finished: AtomicBool,
    /// The current phase number (publishers put it in the high bits of the sequence
    /// number so that sequence numbers grow across phases too).
    phase: AtomicU64,
    /// Frames published in the current phase, per (p, k).
    published: Mutex<HashMap<(u32, u32), u64>>,
}

/// A sequence number: phase in the high 24 bits, per-phase count below.
fn phase_seq(phase: u64, n: u64) -> u64 {
    (phase << 40) | n
}

fn seq_index(seq: u64) -> u64 {
    seq & ((1 << 40) - 1)
}

/// Resident set size in bytes, from /proc/self/statm (0 where unavailable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn soak_duration() -> Duration {
    let secs = std::env::var("FANOUT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs.max(0.5))
}

fn publisher(ps: PubSub<[u8]>, p: u32, phases: Arc<Phases>) -> u64 {
    let topics: Vec<Topic> = (0..TOPICS_PER_PUBLISHER)
        .map(|k| ps.topic(&publisher_topic(p, k)).unwrap())
        .collect();
    let names: Vec<String> = (0..TOPICS_PER_PUBLISHER)
        .map(|k| publisher_topic(p, k))
        .collect();
    let mut total = 0;
    loop {
        phases.start.wait();
        if phases.finished.load(Ordering::Acquire) {
            return total;
        }
        let phase = phases.phase.load(Ordering::Acquire);
        let mut counts = vec![0u64; TOPICS_PER_PUBLISHER as usize];
        let mut i = 0u64;
        while !phases.stop.load(Ordering::Acquire) {
            let k = (i % u64::from(TOPICS_PER_PUBLISHER)) as u32;
            let n = counts[k as usize];
            let msg = payload(p, k, phase_seq(phase, n));
            // Each publisher uses another way in: &Topic, &str, a pre-encoded frame.
            let result = match p % 3 {
                0 => ps.broadcast(&topics[k as usize], &msg[..], &RawPayload),
                1 => ps.broadcast(names[k as usize].as_str(), &msg[..], &RawPayload),
                _ => {
                    let frame = ps
                        .encode(&topics[k as usize], &msg[..], &RawPayload)
                        .unwrap();
                    ps.broadcast_frame(&topics[k as usize], &frame)
                }
            };
            result.expect("broadcast");
            counts[k as usize] += 1;
            i += 1;
            if i % 256 == 0 {
                thread::yield_now();
            }
        }
        total += i;
        {
            let mut published = phases.published.lock().unwrap();
            for (k, n) in counts.into_iter().enumerate() {
                published.insert((p, k as u32), n);
            }
        }
        phases.end.wait();
    }
}

fn consume(channel: Arc<Channel<Bytes>>, speed: Speed, done: Arc<AtomicBool>) -> Received {
    let mut received = Received::default();
    if speed == Speed::Stalled {
        while !done.load(Ordering::Acquire) {
            thread::sleep(Duration::from_millis(2));
        }
    }
    loop {
        match channel.recv_timeout(Duration::from_millis(1)) {
            Ok(frame) => {
                received.record(&frame);
                if speed == Speed::Slow && received.total % 8 == 0 {
                    thread::sleep(Duration::from_micros(50));
                }
            }
            Err(e) if e.is_timeout() => {
                if done.load(Ordering::Acquire) {
                    // Every broadcast of the phase has returned: what is queued is all.
                    for frame in channel.try_iter() {
                        received.record(&frame);
                    }
                    return received;
                }
            }
            // Disconnected and drained (a disconnected subscriber, pruned).
            Err(_) => {
                if done.load(Ordering::Acquire) {
                    return received;
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// What churn leaves for the final checks.
#[derive(Default)]
struct ChurnReport {
    operations: u64,
    registrations: u64,
    /// Receivers of channels that were unregistered: they must all end.
    unregistered_channels: Vec<Channel<Bytes>>,
}

enum ChurnSink {
    Callback,
    Channel(Channel<Bytes>, OrderCheck),
}

struct ChurnClient {
    id: ClientId,
    topics: Vec<String>,
    sink: ChurnSink,
}

fn churn(
    ps: PubSub<[u8]>,
    seed: u64,
    stop: Arc<AtomicBool>,
    token: Arc<()>,
    churn_frames: Arc<AtomicU64>,
) -> ChurnReport {
    let mut rng = Rng(seed);
    let mut report = ChurnReport::default();
    let mut pool: Vec<ChurnClient> = Vec::new();
    let any_topic = |rng: &mut Rng| -> String {
        if rng.below(3) == 0 {
            publisher_topic(
                rng.below(PUBLISHERS as usize) as u32,
                rng.below(TOPICS_PER_PUBLISHER as usize) as u32,
            )
        } else {
            churn_topic(rng.below(CHURN_TOPICS as usize) as u32)
        }
    };
    let drain = |client: &mut ChurnClient| {
        if let ChurnSink::Channel(channel, order) = &mut client.sink {
            for frame in channel.try_iter() {
                order.record(&frame);
            }
        }
    };
    while !stop.load(Ordering::Acquire) {
        report.operations += 1;
        match rng.below(8) {
            0 | 1 if pool.len() < 12 => {
                let id = ps.generate_client_id();
                let sink = if rng.below(3) == 0 {
                    let token = Arc::clone(&token);
                    let frames = Arc::clone(&churn_frames);
                    ps.register(id, move |frame: &Bytes| {
                        let _ = &token;
                        let _ = parse(frame);
                        frames.fetch_add(1, Ordering::Relaxed);
                    })
                    .expect("register");
                    ChurnSink::Callback
                } else {
                    let policy = match rng.below(3) {
                        0 => OverflowPolicy::DropNewest,
                        1 => OverflowPolicy::DropOldest,
                        _ => OverflowPolicy::Block(Duration::from_micros(50)),
                    };
                    let capacity = [1, 16, 256][rng.below(3)];
                    let channel = ps
                        .register_channel_with(id, ChannelConfig::new(capacity, policy))
                        .expect("register_channel");
                    ChurnSink::Channel(channel, OrderCheck::default())
                };
                report.registrations += 1;
                let mut client = ChurnClient {
                    id,
                    topics: Vec::new(),
                    sink,
                };
                for _ in 0..1 + rng.below(3) {
                    let topic = any_topic(&mut rng);
                    ps.subscribe(id, topic.as_str()).expect("subscribe");
                    client.topics.push(topic);
                }
                pool.push(client);
            }
            2 if !pool.is_empty() => {
                let i = rng.below(pool.len());
                let topic = any_topic(&mut rng);
                ps.subscribe(pool[i].id, topic.as_str()).expect("subscribe");
                pool[i].topics.push(topic);
            }
            3 if !pool.is_empty() => {
                let i = rng.below(pool.len());
                let client = &mut pool[i];
                if !client.topics.is_empty() {
                    let t = rng.below(client.topics.len());
                    let topic = client.topics.swap_remove(t);
                    ps.unsubscribe(client.id, topic.as_str())
                        .expect("unsubscribe");
                }
            }
            4 | 5 if !pool.is_empty() => {
                let i = rng.below(pool.len());
                let mut client = pool.swap_remove(i);
                drain(&mut client);
                match client.sink {
                    ChurnSink::Channel(channel, _) if rng.below(2) == 0 => drop(channel),
                    ChurnSink::Channel(channel, _) => {
                        ps.unregister(client.id).expect("unregister");
                        assert_eq!(
                            channel.disconnect_reason(),
                            Some(DisconnectReason::Unsubscribed)
                        );
                        if report.unregistered_channels.len() < 256 {
                            report.unregistered_channels.push(channel);
                        }
                    }
                    ChurnSink::Callback => ps.unregister(client.id).expect("unregister"),
                }
            }
            _ if !pool.is_empty() => {
                let i = rng.below(pool.len());
                drain(&mut pool[i]);
            }
            _ => thread::yield_now(),
        }
    }
    for mut client in pool {
        drain(&mut client);
        ps.unregister(client.id).expect("unregister at the end");
    }
    report
}

fn churn_publisher(ps: PubSub<[u8]>, stop: Arc<AtomicBool>) -> u64 {
    let mut seqs = vec![0u64; CHURN_TOPICS as usize];
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        let k = (n % u64::from(CHURN_TOPICS)) as u32;
        let msg = payload(CHURN_PUBLISHER, k, seqs[k as usize]);
        seqs[k as usize] += 1;
        ps.broadcast(churn_topic(k).as_str(), &msg[..], &RawPayload)
            .expect("churn broadcast");
        n += 1;
        if n % 32 == 0 {
            thread::sleep(Duration::from_micros(100));
        }
    }
    n
}

/// Registers and subscribes this phase's subscribers. Everything here returns before the
/// phase starts.
fn setup_phase(ps: &PubSub<[u8]>, rng: &mut Rng, done: &Arc<AtomicBool>) -> Vec<PhaseSubscriber> {
    let all: Vec<(u32, u32)> = (0..PUBLISHERS)
        .flat_map(|p| (0..TOPICS_PER_PUBLISHER).map(move |k| (p, k)))
        .collect();
    let policies = [
        OverflowPolicy::DropNewest,
        OverflowPolicy::DropOldest,
        OverflowPolicy::Disconnect,
        OverflowPolicy::Block(BLOCK),
    ];
    let mut subscribers = Vec::new();
    let mut kinds: Vec<Option<(OverflowPolicy, Speed)>> = vec![None, None];
    for policy in policies {
        for speed in [Speed::Fast, Speed::Slow, Speed::Stalled] {
            kinds.push(Some((policy, speed)));
        }
    }
    for (n, kind) in kinds.into_iter().enumerate() {
        let id = ps.generate_client_id();
        // A random non-empty subset of the publisher topics, and one topic outside it.
        let mut topics: Vec<(u32, u32)> =
            all.iter().copied().filter(|_| rng.below(2) == 0).collect();
        if topics.is_empty() {
            topics.push(all[rng.below(all.len())]);
        }
        let outside = all.iter().copied().find(|t| !topics.contains(t));
        let (name, sink) = match kind {
            None => {
                let received = Arc::new(Mutex::new(Received::default()));
                let inbox = Arc::clone(&received);
                ps.register(id, move |frame: &Bytes| inbox.lock().unwrap().record(frame))
                    .expect("register");
                (format!("callback #{n}"), PhaseSink::Callback(received))
            }
            Some((policy, speed)) => {
                let capacity = [4, 32, 256][rng.below(3)];
                let channel = Arc::new(
                    ps.register_channel_with(id, ChannelConfig::new(capacity, policy))
                        .expect("register_channel"),
                );
                (
                    format!("channel #{n} {policy:?} {speed:?} capacity {capacity}"),
                    PhaseSink::Channel {
                        channel,
                        policy,
                        speed,
                        consumer: None,
                    },
                )
            }
        };
        for &(p, k) in &topics {
            let name = publisher_topic(p, k);
            match rng.below(3) {
                0 => ps.subscribe(id, name.as_str()).unwrap(),
                1 => ps.subscribe(id, ps.topic(&name).unwrap()).unwrap(),
                _ => {
                    // Twice: idempotent.
                    ps.subscribe(id, &name).unwrap();
                    ps.subscribe(id, name.as_str()).unwrap();
                }
            }
        }
        if let Some((p, k)) = outside {
            let name = publisher_topic(p, k);
            ps.subscribe(id, name.as_str()).unwrap();
            ps.unsubscribe(id, name.as_str()).unwrap();
        }
        let mut subscriber = PhaseSubscriber {
            name,
            id,
            topics,
            kind: sink,
        };
        if let PhaseSink::Channel {
            channel,
            speed,
            consumer,
            ..
        } = &mut subscriber.kind
        {
            let (channel, speed, done) = (Arc::clone(channel), *speed, Arc::clone(done));
            *consumer = Some(thread::spawn(move || consume(channel, speed, done)));
        }
        subscribers.push(subscriber);
    }
    subscribers
}

/// Totals the checks of one phase add up.
#[derive(Default, Debug)]
struct Totals {
    phases: u64,
    published: u64,
    delivered: u64,
    dropped: u64,
    disconnects: u64,
}

fn check_phase(
    ps: &PubSub<[u8]>,
    subscribers: Vec<PhaseSubscriber>,
    published: &HashMap<(u32, u32), u64>,
    phase: u64,
    totals: &mut Totals,
) {
    for subscriber in subscribers {
        let expected: u64 = subscriber.topics.iter().map(|t| published[t]).sum();
        let who = format!("phase {phase}, {}", subscriber.name);
        let (received, dropped) = match subscriber.kind {
            PhaseSink::Callback(received) => {
                ps.unregister(subscriber.id).expect("unregister");
                let received = std::mem::take(&mut *received.lock().unwrap());
                received.assert_prefixes(&who);
                assert_eq!(received.total, expected, "{who}: delivered");
                (received, 0)
            }
            PhaseSink::Channel {
                channel,
                policy,
                consumer,
                ..
            } => {
                let received = consumer.unwrap().join().expect("consumer thread");
                let dropped = channel.dropped();
                received.assert_ordered(&who);
                let reason = channel.disconnect_reason();
                match policy {
                    OverflowPolicy::Disconnect if reason == Some(DisconnectReason::Overflow) => {
                        assert_eq!(dropped, 1, "{who}: a disconnect drops one frame");
                        received.assert_prefixes(&who);
                        assert!(
                            received.total < expected,
                            "{who}: received {} of {expected} yet disconnected",
                            received.total
                        );
                        totals.disconnects += 1;
                        // Removed by the writer asynchronously; maybe already gone.
                        match ps.unregister(subscriber.id) {
                            Ok(()) | Err(fanout::Error::UnknownClient(_)) => {}
                            Err(e) => panic!("{who}: unregister: {e}"),
                        }
                    }
                    _ => {
                        assert_eq!(reason, None, "{who}: still connected");
                        assert_eq!(
                            received.total + dropped,
                            expected,
                            "{who}: delivered {} + dropped {dropped} != published {expected}",
                            received.total
                        );
                        if policy == OverflowPolicy::Disconnect {
                            assert_eq!(dropped, 0, "{who}");
                        }
                        if dropped == 0 {
                            received.assert_prefixes(&who);
                        }
                        ps.unregister(subscriber.id).expect("unregister");
                        assert_eq!(
                            channel.disconnect_reason(),
                            Some(DisconnectReason::Unsubscribed)
                        );
                    }
                }
                (received, dropped)
            }
        };
        // Only topics it was subscribed to, only frames of this phase.
        for (key, seqs) in &received.seqs {
            assert!(
                subscriber.topics.contains(key),
                "{who}: got frames of {key:?}, not subscribed to it"
            );
            assert!(seqs.iter().all(|&s| s >> 40 == phase), "{who}: stale frame");
        }
        totals.delivered += received.total;
        totals.dropped += dropped;
    }
}

#[test]
fn soak() {
    let total_duration = soak_duration();
    let broadcaster_duration = (total_duration / 6).max(Duration::from_millis(300));
    let duration = total_duration.saturating_sub(broadcaster_duration);
    let started = Instant::now();
    // A failed thread would leave the others waiting at a barrier forever: abort the
    // process instead of hanging CI.
    let finished = Arc::new(AtomicBool::new(false));
    {
        let finished = Arc::clone(&finished);
        let limit = total_duration * 3 + Duration::from_secs(60);
        thread::spawn(move || {
            while started.elapsed() < limit {
                if finished.load(Ordering::Acquire) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            eprintln!("soak: still running after {limit:?}; a thread failed or hung. Aborting.");
            std::process::abort();
        });
    }
    let ps = PubSub::<[u8]>::new().unwrap();
    let mut rng = Rng(0x50A4_0001);

    let phases = Arc::new(Phases {
        start: Barrier::new(PUBLISHERS as usize + 1),
        end: Barrier::new(PUBLISHERS as usize + 1),
        stop: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        phase: AtomicU64::new(0),
        published: Mutex::new(HashMap::new()),
    });
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (ps, phases) = (ps.clone(), Arc::clone(&phases));
            thread::spawn(move || publisher(ps, p, phases))
        })
        .collect();

    let churn_stop = Arc::new(AtomicBool::new(false));
    let token = Arc::new(());
    let churn_frames = Arc::new(AtomicU64::new(0));
    let mut rss_start = 0;
    let mut live_start = 0;
    let mut churners = Vec::new();
    let mut churn_pub = None;

    let mut totals = Totals::default();
    let mut phase = 0u64;
    loop {
        phase += 1;
        if phase == 2 {
            // Memory baseline after one phase warmed every code path up; churn starts now.
            rss_start = rss_bytes();
            live_start = live_bytes();
            churners = (0..CHURN_THREADS)
                .map(|i| {
                    let (ps, stop) = (ps.clone(), Arc::clone(&churn_stop));
                    let (token, frames) = (Arc::clone(&token), Arc::clone(&churn_frames));
                    thread::spawn(move || churn(ps, 0xC4A0 + i as u64, stop, token, frames))
                })
                .collect();
            let (ps, stop) = (ps.clone(), Arc::clone(&churn_stop));
            churn_pub = Some(thread::spawn(move || churn_publisher(ps, stop)));
        }
        let done = Arc::new(AtomicBool::new(false));
        phases.phase.store(phase, Ordering::Release);
        phases.stop.store(false, Ordering::Release);
        let subscribers = setup_phase(&ps, &mut rng, &done);

        phases.start.wait();
        thread::sleep(PHASE);
        phases.stop.store(true, Ordering::Release);
        phases.end.wait();
        // Every broadcast of the phase has returned: consumers may finish.
        done.store(true, Ordering::Release);

        let published = phases.published.lock().unwrap().clone();
        totals.published += published.values().sum::<u64>();
        check_phase(&ps, subscribers, &published, phase, &mut totals);
        totals.phases += 1;
        if started.elapsed() >= duration && phase >= 3 {
            break;
        }
    }
    phases.finished.store(true, Ordering::Release);
    phases.start.wait();
    for publisher in publishers {
        publisher.join().expect("publisher thread");
    }

    churn_stop.store(true, Ordering::Release);
    let churn_published = churn_pub.unwrap().join().expect("churn publisher");
    let reports: Vec<ChurnReport> = churners
        .into_iter()
        .map(|c| c.join().expect("churn thread"))
        .collect();

    // Every client is gone. Dropped channels are pruned asynchronously: wait (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = ps.stats();
        if (stats.clients, stats.topics, stats.subscriptions) == (0, 0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "registry not empty after churn: {stats:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let stats = ps.stats();
    assert_eq!(stats.panics, 0);
    assert_eq!(
        stats.disconnects, totals.disconnects,
        "{stats:?} vs {totals:?}"
    );
    assert!(stats.dropped >= totals.dropped, "{stats:?} vs {totals:?}");
    assert!(
        stats.deliveries >= totals.delivered,
        "{stats:?} vs {totals:?}"
    );
    // No sink is left anywhere (snapshots, writer, queues): every callback captured the
    // token, every unregistered channel's senders are gone. A snapshot a broadcast still
    // held when the last client left is freed by the writer's janitor shortly after that
    // broadcast ends (a bounded wait, not a leak).
    assert!(
        common::eventually(Duration::from_secs(10), || Arc::strong_count(&token) == 1),
        "callback sinks leaked: {} handles on the token",
        Arc::strong_count(&token)
    );
    let mut unregistered = 0;
    for report in &reports {
        for channel in &report.unregistered_channels {
            let _ = channel.try_iter().count();
            assert!(
                matches!(channel.try_recv(), Err(e) if e.is_disconnected()),
                "an unregistered channel's receiver did not end"
            );
            unregistered += 1;
        }
    }
    let registrations: u64 = reports.iter().map(|r| r.registrations).sum();
    let operations: u64 = reports.iter().map(|r| r.operations).sum();
    drop(reports);
    let rss_end = rss_bytes();
    let growth = rss_end.saturating_sub(rss_start);
    let live_growth = live_bytes() - live_start;
    eprintln!(
        "soak: {:.1}s, {} phases, published {} (+{churn_published} churn), delivered {}, \
         dropped {}, disconnects {}; churn: {operations} ops, {registrations} registrations, \
         {unregistered} unregistered channels checked, {} churn callback frames; \
         RSS {} KiB -> {} KiB, live heap {live_growth:+} bytes",
        started.elapsed().as_secs_f64(),
        totals.phases,
        totals.published,
        totals.delivered,
        totals.dropped,
        totals.disconnects,
        churn_frames.load(Ordering::Relaxed),
        rss_start / 1024,
        rss_end / 1024,
    );
    assert!(totals.published > 0 && totals.delivered > 0, "{totals:?}");
    assert!(registrations > 0, "churn did nothing");
    // Generous: allocator caches and thread stacks; a leak per churned client would
    // still show over a long run.
    let margin = 64 * 1024 * 1024 + rss_start / 2;
    assert!(
        growth < margin,
        "RSS grew by {} KiB over the soak ({registrations} churned clients)",
        growth / 1024
    );
    // Exact: everything churn allocated was freed, give or take the registry's hash maps
    // keeping their capacity (the writer's client map, topic tables) and per-thread
    // bookkeeping. A leak of one byte per churned client would exceed this in a long run.
    assert!(
        live_growth < 256 * 1024,
        "the heap grew by {live_growth} bytes over the soak ({registrations} churned clients)"
    );
    ps.shutdown();

    broadcaster_segment(broadcaster_duration);
    finished.store(true, Ordering::Release);
}

/// The typed face: publishers, channel subscribers with every policy, and churn that
/// subscribes, unsubscribes and drops channels. Same accounting as the phases above.
fn broadcaster_segment(duration: Duration) {
    const PUBS: u64 = 2;
    let b = Broadcaster::<u64>::start().unwrap();
    let policies = [
        OverflowPolicy::DropNewest,
        OverflowPolicy::DropOldest,
        OverflowPolicy::Disconnect,
        OverflowPolicy::Block(BLOCK),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let mut subscribers = Vec::new();
    for (i, policy) in policies.into_iter().cycle().take(8).enumerate() {
        let capacity = if i < 4 { 8 } else { 256 };
        let channel = b
            .subscribe_with(ChannelConfig::new(capacity, policy))
            .unwrap();
        let done = Arc::clone(&done);
        let speed = if i % 2 == 0 { Speed::Fast } else { Speed::Slow };
        subscribers.push((
            policy,
            thread::spawn(move || {
                let mut seqs: HashMap<u64, Vec<u64>> = HashMap::new();
                let mut total = 0u64;
                fn record(seqs: &mut HashMap<u64, Vec<u64>>, total: &mut u64, m: u64) {
                    seqs.entry(m >> 48).or_default().push(m & 0xFFFF_FFFF_FFFF);
                    *total += 1;
                }
                loop {
                    match channel.recv_timeout(Duration::from_millis(1)) {
                        Ok(m) => {
                            record(&mut seqs, &mut total, m);
                            if speed == Speed::Slow && total % 8 == 0 {
                                thread::sleep(Duration::from_micros(50));
                            }
                        }
                        Err(_) if done.load(Ordering::Acquire) => {
                            for m in channel.try_iter() {
                                record(&mut seqs, &mut total, m);
                            }
                            break;
                        }
                        Err(_) => {}
                    }
                }
                (seqs, total, channel)
            }),
        ));
    }
    let baseline = b.subscriber_count();
    assert_eq!(baseline, 8);

    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (b, stop) = (b.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut n = 0u64;
            let mut kept: Vec<Channel<u64>> = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let channel = b
                    .subscribe_with(ChannelConfig::new(4, OverflowPolicy::DropOldest))
                    .unwrap();
                let _ = channel.try_iter().count();
                match n % 3 {
                    0 => drop(channel),
                    1 => {
                        b.unsubscribe(&channel).unwrap();
                        assert_eq!(
                            channel.disconnect_reason(),
                            Some(DisconnectReason::Unsubscribed)
                        );
                    }
                    _ => kept.push(channel),
                }
                if kept.len() > 8 {
                    kept.clear();
                }
                n += 1;
            }
            n
        })
    };
    let publishers: Vec<_> = (0..PUBS)
        .map(|p| {
            let (b, stop) = (b.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let mut seq = 0u64;
                while !stop.load(Ordering::Acquire) {
                    b.publish((p << 48) | seq).unwrap();
                    seq += 1;
                }
                seq
            })
        })
        .collect();
    thread::sleep(duration);
    stop.store(true, Ordering::Release);
    let published: Vec<u64> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    let churned = churn.join().unwrap();
    done.store(true, Ordering::Release);
    let expected: u64 = published.iter().sum();
    for (i, (policy, consumer)) in subscribers.into_iter().enumerate() {
        let (seqs, total, channel) = consumer.join().unwrap();
        let who = format!("broadcaster subscriber #{i} {policy:?}");
        for (p, list) in &seqs {
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "{who}: publisher {p} out of order"
            );
        }
        let dropped = channel.dropped();
        if channel.disconnect_reason() == Some(DisconnectReason::Overflow) {
            assert_eq!(policy, OverflowPolicy::Disconnect, "{who}");
            assert_eq!(dropped, 1, "{who}");
            assert!(total < expected, "{who}");
            for (p, list) in &seqs {
                assert!(
                    list.iter().enumerate().all(|(i, &s)| s == i as u64),
                    "{who}: publisher {p} has gaps before the disconnect"
                );
            }
        } else {
            assert_eq!(channel.disconnect_reason(), None, "{who}");
            assert_eq!(total + dropped, expected, "{who}: delivered + dropped");
        }
    }
    // Every channel is gone (dropped ones asynchronously).
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.subscriber_count() != 0 || b.stats().clients != 0 {
        assert!(
            Instant::now() < deadline,
            "broadcaster not empty: {:?}",
            b.stats()
        );
        thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "soak (broadcaster): published {expected}, {churned} channels churned, {:?}",
        b.stats()
    );
    b.shutdown();
}
