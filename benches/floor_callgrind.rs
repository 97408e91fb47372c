//! A small fixed-work driver for `valgrind --tool=callgrind` (instruction counts are
//! repeatable on a noisy machine; wall time is not). Each mode does `ITERS` broadcasts
//! inside one `#[inline(never)]` function named `measure_*`, so callgrind can collect
//! only that function:
//!
//! ```text
//! cargo bench --bench floor_callgrind --no-run
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_*' \
//!     target/release/deps/floor_callgrind-<hash> cb_fanout 256
//! callgrind_annotate callgrind.out.<pid>
//! ```
//!
//! Modes (`<mode> <n>`):
//! - callback sinks, 64 B raw payload: `cb_fanout` (pre-resolved `Topic`), `cb_fanout_str`
//!   (topic by name), `cb_fanout_from` (`broadcast_from` a client that is not
//!   subscribed: the same deliveries plus the sender compare), `cb_fanout_churn` (while another thread churns subscriptions on the
//!   same topic), `cb_floor` (boxed-`Fn` loop), `cb_tokio` and `cb_bus` (one tokio
//!   broadcast channel or `bus::Bus`, every receiver `try_recv`ing on this thread);
//! - channel sinks: `ch_fanout`, `ch_crossbeam` (queues drained outside the measured
//!   function); with `--features async`, `as_fanout` (async channel sinks, drained the
//!   same way);
//! - channel sinks end to end on one thread (`E2E_DELIVERIES / n` broadcasts, each
//!   followed by one `try_recv` from every subscriber, all inside the measured function;
//!   capacity 128): `e2e_pubsub` (`PubSub` channel clients, registered and subscribed one
//!   by one as the criterion bench does), `e2e_pubsub_apart` (all registered first, then
//!   subscribed in one `apply`: the allocation-order experiment), `e2e_broadcaster`
//!   (`Broadcaster<Bytes>` channels), `e2e_crossbeam` (one `bounded` queue per
//!   subscriber, `try_send` of a `Bytes` clone); run them with `--cache-sim=yes` for
//!   D1/LL misses per delivery; the layout experiments on raw crossbeam
//!   `e2e_crossbeam_boxed` (each sender behind its own `Arc`, as fanout's sink),
//!   `e2e_crossbeam_boxed_pf` (the same, prefetching the sender 4 ahead),
//!   `e2e_crossbeam_inline` (the same holders side by side in the publisher's `Vec`) and
//!   `e2e_crossbeam_fat` (receivers 48 bytes apart on the consumer's side); and the
//!   allocation-layout experiments `e2e_crossbeam_churn` (the raw queues allocated while
//!   a list of one entry per queue is copied and the old copy freed, as a copy-on-write
//!   subscriber list is when clients subscribe one by one: the queues land scattered in
//!   the freed copies, as fanout's do) and `e2e_crossbeam_shuffled` (regular queues
//!   walked in a scrambled order); `e2e_pubsub_frame` and `e2e_crossbeam_frame`: one
//!   frame encoded beforehand, handed on by every broadcast (`broadcast_frame`) or cloned
//!   into every queue;
//! - mutations: `mutate` (`n` subscribe/unsubscribe round trips), `mutate_pre` (`n` topics
//!   preloaded, then `[pairs]` (default 1,000) subscribe/unsubscribe pairs on them, one
//!   round trip each), `apply_pre` (the same pairs through `PubSub::apply`, 256 per call). For
//!   these collect everything (the writer thread does most of the work) and diff two
//!   `pairs` values.
//!
//! Without arguments (as under `cargo bench`) it runs the broadcast modes in 7 interleaved
//! rounds and prints the minimum and median wall-clock ns per delivery.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use fanout::transport::{encode_push, RawPayload};
use fanout::{
    Broadcaster, Channel, ChannelConfig, ClientId, Mutation, OverflowPolicy, PubSub, Topic,
};

type FloorSink = Box<dyn Fn(&Bytes) + Send + Sync>;

const TOPIC: &str = "room/rust";
const ITERS: usize = 2_000;
const ROUND: usize = 32;
const PAYLOAD: [u8; 64] = [7; 64];
/// Deliveries per `e2e_*` run (`E2E_DELIVERIES / n` broadcasts, after as many untimed
/// ones to warm up: the first few hundred broadcasts after a registration burst ran 2–3×
/// slower at n = 16, for fanout only).
const E2E_DELIVERIES: usize = 1 << 20;
/// Queue capacity of the `e2e_*` modes (as in `benches/channel_fanout.rs`).
const E2E_CAPACITY: usize = 128;

fn consume(frame: &Bytes) {
    black_box(frame.len());
}

fn callback_engine(n: usize) -> (PubSub<[u8]>, Topic) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    for _ in 0..n {
        let id = pubsub.generate_client_id();
        pubsub.register(id, consume).unwrap();
        pubsub.subscribe(id, TOPIC).unwrap();
    }
    let topic = pubsub.topic(TOPIC).unwrap();
    (pubsub, topic)
}

#[inline(never)]
fn measure_cb_fanout(pubsub: &PubSub<[u8]>, topic: &Topic, iters: usize) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        total += pubsub
            .broadcast(black_box(topic), &PAYLOAD[..], &RawPayload)
            .unwrap();
    }
    total
}

#[inline(never)]
fn measure_cb_fanout_from(
    pubsub: &PubSub<[u8]>,
    topic: &Topic,
    from: ClientId,
    iters: usize,
) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        total += pubsub
            .broadcast_from(from, black_box(topic), &PAYLOAD[..], &RawPayload)
            .unwrap();
    }
    total
}

#[inline(never)]
fn measure_cb_fanout_str(pubsub: &PubSub<[u8]>, iters: usize) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        total += pubsub
            .broadcast(black_box(TOPIC), &PAYLOAD[..], &RawPayload)
            .unwrap();
    }
    total
}

#[inline(never)]
fn measure_cb_floor(sinks: &[FloorSink], iters: usize) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
        for send in sinks {
            send(&frame);
        }
        total += sinks.len();
    }
    total
}

#[inline(never)]
fn measure_cb_tokio(
    tx: &tokio::sync::broadcast::Sender<Bytes>,
    receivers: &mut [tokio::sync::broadcast::Receiver<Bytes>],
    iters: usize,
) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        tx.send(encode_push(TOPIC, black_box(&PAYLOAD)).unwrap())
            .unwrap();
        for rx in receivers.iter_mut() {
            consume(&rx.try_recv().unwrap());
        }
        total += receivers.len();
    }
    total
}

#[inline(never)]
fn measure_cb_bus(
    bus: &mut bus::Bus<Bytes>,
    readers: &mut [bus::BusReader<Bytes>],
    iters: usize,
) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        bus.broadcast(encode_push(TOPIC, black_box(&PAYLOAD)).unwrap());
        for rx in readers.iter_mut() {
            consume(&rx.try_recv().unwrap());
        }
        total += readers.len();
    }
    total
}

#[inline(never)]
fn measure_ch_fanout(pubsub: &PubSub<[u8]>, topic: &Topic, iters: usize) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        total += pubsub
            .broadcast(black_box(topic), &PAYLOAD[..], &RawPayload)
            .unwrap();
    }
    total
}

#[inline(never)]
fn measure_ch_crossbeam(senders: &[crossbeam_channel::Sender<Bytes>], iters: usize) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
        for tx in senders {
            if tx.try_send(frame.clone()).is_ok() {
                total += 1;
            }
        }
    }
    total
}

/// One `e2e_*` run: `iters` times, `publish` once, then `drain` one frame from every
/// queue (returns how many it received).
#[inline(always)]
fn e2e_loop(iters: usize, mut publish: impl FnMut(), mut drain: impl FnMut() -> usize) -> usize {
    let mut total = 0;
    for _ in 0..iters {
        publish();
        total += drain();
    }
    total
}

#[inline(never)]
fn measure_e2e(iters: usize, publish: impl FnMut(), drain: impl FnMut() -> usize) -> usize {
    e2e_loop(iters, publish, drain)
}

/// The same work as [`measure_e2e`], outside what callgrind collects.
#[inline(never)]
fn warm_up_e2e(iters: usize, publish: impl FnMut(), drain: impl FnMut() -> usize) -> usize {
    e2e_loop(iters, publish, drain)
}

/// Warms up, then times `E2E_DELIVERIES / n` rounds of `publish` and `drain`.
fn run_e2e(
    n: usize,
    mut publish: impl FnMut(),
    mut drain: impl FnMut() -> usize,
) -> (usize, std::time::Duration) {
    let iters = E2E_DELIVERIES / n;
    warm_up_e2e(iters, &mut publish, &mut drain);
    let start = Instant::now();
    let delivered = measure_e2e(iters, &mut publish, &mut drain);
    (delivered, start.elapsed())
}

/// Frames a consumer thread takes from each queue before moving to the next, and how many
/// such batches the publisher may run ahead (as in `benches/channel_fanout.rs`).
const THREAD_BATCH: usize = 32;

/// `batches × THREAD_BATCH` publishes while a consumer thread runs `consume_batch` (one
/// `THREAD_BATCH` from every queue, blocking) as often; the publisher stays at most two
/// batches ahead, so no queue of capacity 128 ever fills. Returns the elapsed time.
fn with_consumer_thread(
    batches: usize,
    publish: &mut dyn FnMut(),
    consume_batch: &(dyn Fn() + Sync),
) -> (std::time::Duration, u64) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let consumed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let consumed = &consumed;
        let consumer = s.spawn(move || {
            let before = voluntary_switches();
            for k in 0..batches {
                consume_batch();
                consumed.store(k + 1, Ordering::Release);
            }
            voluntary_switches().saturating_sub(before)
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
            for _ in 0..THREAD_BATCH {
                publish();
            }
        }
        while consumed.load(Ordering::Acquire) < batches {
            std::thread::yield_now();
        }
        let took = start.elapsed();
        (took, consumer.join().unwrap())
    })
}

/// A hint to fetch the cache line at `p` (x86-64 only; elsewhere nothing).
#[inline(always)]
fn prefetch(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever `p` is, and writes
    // nothing.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// This thread's voluntary context switches so far (each is the consumer parking in a
/// blocking `recv` and being woken by a publisher's push), from `/proc`; 0 where that
/// is not available.
fn voluntary_switches() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Same-run ratios, end to end: the three implementations are set up once per `n`, then
/// timed in alternating batches of about `E2E_BATCH` deliveries; each batch of fanout is
/// divided by the crossbeam batch next to it, and the median of the ratios is printed (a
/// disturbance hits one batch, not a whole mode). Single-threaded (broadcast, then one
/// `try_recv` per queue) or, with `threaded`, with a consumer thread receiving from every
/// queue while the publisher publishes (`with_consumer_thread`).
fn e2e_ratios(threaded: bool) {
    const PAIRS: usize = 41;
    const E2E_BATCH: usize = 1 << 18;
    let title = if threaded {
        "e2e_thread_ratios (consumer thread)"
    } else {
        "e2e_ratios (one thread)"
    };
    println!("\n## floor_callgrind {title}: median of {PAIRS} same-run batch ratios (ns per delivery: median)\n");
    if threaded {
        println!("| n | e2e_pubsub | e2e_broadcaster | e2e_crossbeam | pubsub / crossbeam | broadcaster / crossbeam | e2e_crossbeam_churn | pubsub / crossbeam_churn | consumer parks per 1k deliveries (pubsub / broadcaster / crossbeam) |");
        println!("|---|---|---|---|---|---|---|---|---|");
    } else {
        println!("| n | e2e_pubsub | e2e_broadcaster | e2e_crossbeam | pubsub / crossbeam | broadcaster / crossbeam | e2e_crossbeam_churn | pubsub / crossbeam_churn |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    for n in [16, 256, 4096] {
        let iters = E2E_BATCH / n;
        let (pubsub, topic, channels) = e2e_pubsub(n);
        let broadcaster = Broadcaster::<Bytes>::start().unwrap();
        let b_channels: Vec<_> = (0..n)
            .map(|_| broadcaster.subscribe_with(e2e_config()).unwrap())
            .collect();
        let (senders, receivers): (Vec<_>, Vec<_>) = crossbeam_queues(n, false).into_iter().unzip();
        let (churned_tx, churned_rx): (Vec<_>, Vec<_>) =
            crossbeam_queues(n, true).into_iter().unzip();
        // ns per delivery of one batch: `publish` and, on this thread, `drain` (one frame
        // from every queue) each time; or `publish` while another thread runs `consume`
        // (THREAD_BATCH frames from every queue, blocking) once per THREAD_BATCH publishes.
        let time =
            |publish: &mut dyn FnMut(), drain: &dyn Fn() -> usize, consume: &(dyn Fn() + Sync)| {
                if threaded {
                    let batches = iters.div_ceil(THREAD_BATCH);
                    let (took, parks) = with_consumer_thread(batches, publish, consume);
                    let deliveries = (batches * THREAD_BATCH * n) as f64;
                    return (
                        took.as_nanos() as f64 / deliveries,
                        parks as f64 * 1e3 / deliveries,
                    );
                }
                let start = Instant::now();
                let delivered = warm_up_e2e(iters, publish, drain);
                (start.elapsed().as_nanos() as f64 / delivered as f64, 0.0)
            };
        let mut p_pub = || {
            pubsub
                .broadcast(black_box(&topic), &PAYLOAD[..], &RawPayload)
                .unwrap();
        };
        let p_drain = || drain_channels(&channels);
        let p_consume = || consume_channels(&channels);
        // E2E_SHARED_FRAME=1: the broadcaster publishes clones of one prebuilt frame, as
        // `channel_fanout_e2e/fanout_broadcaster` does, instead of a new frame each time
        // (then publisher and consumer count references on the same cache line).
        let shared = std::env::var("E2E_SHARED_FRAME").is_ok_and(|v| v == "1");
        let prebuilt = encode_push(TOPIC, &PAYLOAD).unwrap();
        let mut b_pub = || {
            let frame = if shared {
                prebuilt.clone()
            } else {
                encode_push(TOPIC, black_box(&PAYLOAD)).unwrap()
            };
            broadcaster.publish(frame).unwrap();
        };
        let b_drain = || drain_channels(&b_channels);
        let b_consume = || consume_channels(&b_channels);
        let mut c_pub = || {
            let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
            for tx in &senders {
                tx.try_send(frame.clone()).unwrap();
            }
        };
        let c_drain = || {
            for rx in &receivers {
                consume(&rx.try_recv().unwrap());
            }
            receivers.len()
        };
        let c_consume = || {
            for rx in &receivers {
                for _ in 0..THREAD_BATCH {
                    consume(&rx.recv().unwrap());
                }
            }
        };
        let mut h_pub = || {
            let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
            for tx in &churned_tx {
                tx.try_send(frame.clone()).unwrap();
            }
        };
        let h_drain = || {
            for rx in &churned_rx {
                consume(&rx.try_recv().unwrap());
            }
            churned_rx.len()
        };
        let h_consume = || {
            for rx in &churned_rx {
                for _ in 0..THREAD_BATCH {
                    consume(&rx.recv().unwrap());
                }
            }
        };
        // Warm-up: one batch each.
        time(&mut p_pub, &p_drain, &p_consume);
        time(&mut b_pub, &b_drain, &b_consume);
        time(&mut c_pub, &c_drain, &c_consume);
        time(&mut h_pub, &h_drain, &h_consume);
        let (mut p, mut b, mut c, mut pc, mut bc) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut h, mut ph) = (vec![], vec![]);
        let mut parks = [vec![], vec![], vec![]];
        for _ in 0..PAIRS {
            let (tp, sp) = time(&mut p_pub, &p_drain, &p_consume);
            let (tc, sc) = time(&mut c_pub, &c_drain, &c_consume);
            let (tb, sb) = time(&mut b_pub, &b_drain, &b_consume);
            let (th, _) = time(&mut h_pub, &h_drain, &h_consume);
            p.push(tp);
            b.push(tb);
            c.push(tc);
            h.push(th);
            pc.push(tp / tc);
            bc.push(tb / tc);
            ph.push(tp / th);
            for (v, s) in parks.iter_mut().zip([sp, sb, sc]) {
                v.push(s);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let parked = if threaded {
            let [sp, sb, sc] = &mut parks;
            format!(
                " {:.2} / {:.2} / {:.2} |",
                median(sp),
                median(sb),
                median(sc)
            )
        } else {
            String::new()
        };
        println!(
            "| {n} | {:.2} | {:.2} | {:.2} | **{:.3}×** | {:.3}× | {:.2} | {:.3}× |{parked}",
            median(&mut p),
            median(&mut b),
            median(&mut c),
            median(&mut pc),
            median(&mut bc),
            median(&mut h),
            median(&mut ph)
        );
    }
}

/// `THREAD_BATCH` frames from every channel, blocking.
fn consume_channels(channels: &[Channel<Bytes>]) {
    for channel in channels {
        for _ in 0..THREAD_BATCH {
            consume(&channel.recv().unwrap());
        }
    }
}

/// `n` raw crossbeam queues of the `e2e_*` capacity. With `churn`, between two queues a
/// list of 16-byte entries, one per queue so far, is copied and the previous copy freed
/// — what a copy-on-write subscriber list does when clients subscribe one by one — so
/// the queues land in the freed copies, scattered, as `PubSub` channel clients
/// registered and subscribed one by one do, instead of at one regular stride.
fn crossbeam_queues(
    n: usize,
    churn: bool,
) -> Vec<(
    crossbeam_channel::Sender<Bytes>,
    crossbeam_channel::Receiver<Bytes>,
)> {
    let mut copy: Vec<[u64; 2]> = Vec::new();
    let queues = (0..n)
        .map(|i| {
            let pair = crossbeam_channel::bounded(e2e_config().capacity);
            if churn {
                let mut next = Vec::with_capacity(i + 1 + i / 2);
                next.extend_from_slice(&copy);
                next.push([i as u64, 0]);
                copy = black_box(next);
            }
            pair
        })
        .collect();
    drop(copy);
    queues
}

fn drain_channels(channels: &[Channel<Bytes>]) -> usize {
    for channel in channels {
        consume(&channel.try_recv().unwrap());
    }
    channels.len()
}

fn e2e_config() -> ChannelConfig {
    let capacity = std::env::var("E2E_CAPACITY").map_or(E2E_CAPACITY, |c| c.parse().unwrap());
    let policy = match std::env::var("E2E_POLICY").as_deref() {
        Ok("oldest") => OverflowPolicy::DropOldest,
        _ => OverflowPolicy::DropNewest,
    };
    ChannelConfig::new(capacity, policy)
}

/// The layout experiment: `n` `PubSub` channel clients all registered first (sinks,
/// states and queues allocated back to back), then all subscribed in one `apply`.
fn e2e_pubsub_apart(n: usize) -> (PubSub<[u8]>, Topic, Vec<Channel<Bytes>>) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let topic = pubsub.topic(TOPIC).unwrap();
    let ids: Vec<_> = (0..n).map(|_| pubsub.generate_client_id()).collect();
    let channels = ids
        .iter()
        .map(|&id| pubsub.register_channel_with(id, e2e_config()).unwrap())
        .collect();
    pubsub
        .apply(ids.iter().map(|&id| Mutation::Subscribe(id, topic.clone())))
        .unwrap();
    (pubsub, topic, channels)
}

/// `n` `PubSub` channel clients, each registered then subscribed (one call each, as in
/// `benches/channel_fanout.rs`).
fn e2e_pubsub(n: usize) -> (PubSub<[u8]>, Topic, Vec<Channel<Bytes>>) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let topic = pubsub.topic(TOPIC).unwrap();
    let config = e2e_config();
    let channels = (0..n)
        .map(|_| {
            let id = pubsub.generate_client_id();
            let channel = pubsub.register_channel_with(id, config).unwrap();
            pubsub.subscribe(id, &topic).unwrap();
            channel
        })
        .collect();
    (pubsub, topic, channels)
}

#[inline(never)]
fn measure_mutate(pubsub: &PubSub<[u8]>, id: fanout::ClientId, topics: &[Topic]) -> usize {
    for topic in topics {
        pubsub.subscribe(id, topic).unwrap();
        pubsub.unsubscribe(id, topic).unwrap();
    }
    2 * topics.len()
}

/// An engine holding `topics` topics (100 per filler client), loaded through `apply`.
fn preloaded(topics: usize) -> PubSub<[u8]> {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    for chunk in 0..topics.div_ceil(100) {
        let id = pubsub.generate_client_id();
        pubsub.register(id, consume).unwrap();
        let changes = (chunk * 100..((chunk + 1) * 100).min(topics))
            .map(|i| Mutation::Subscribe(id, pubsub.topic(&format!("preload/{i:07}")).unwrap()));
        pubsub.apply(changes).unwrap();
    }
    pubsub
}

/// A `preloaded(n)` engine, one registered client, and `pairs` of its topics spread over
/// the trie: the setup of the mutation modes.
fn preloaded_with_sample(n: usize, pairs: usize) -> (PubSub<[u8]>, ClientId, Vec<Topic>) {
    let pubsub = preloaded(n);
    let id = pubsub.generate_client_id();
    pubsub.register(id, consume).unwrap();
    let sample = (0..pairs)
        .map(|i| {
            pubsub
                .topic(&format!("preload/{:07}", (i * 7_919) % n))
                .unwrap()
        })
        .collect();
    (pubsub, id, sample)
}

/// `ch_fanout` and `as_fanout`: `n` clients of one channel flavour (made by `register`)
/// on one topic, `iters` broadcasts in rounds of `ROUND`; each round is drained (by
/// `drain`) outside the measured time, so the queues never fill.
fn channel_rounds<C>(
    n: usize,
    iters: usize,
    register: impl Fn(&PubSub<[u8]>, ClientId, ChannelConfig) -> C,
    drain: impl Fn(&C),
) -> (usize, std::time::Duration) {
    let pubsub = PubSub::<[u8]>::new().unwrap();
    let channels: Vec<C> = (0..n)
        .map(|_| {
            let id = pubsub.generate_client_id();
            let config = ChannelConfig::new(ROUND, OverflowPolicy::DropNewest);
            let channel = register(&pubsub, id, config);
            pubsub.subscribe(id, TOPIC).unwrap();
            channel
        })
        .collect();
    let topic = pubsub.topic(TOPIC).unwrap();
    let start = Instant::now();
    let mut total = 0;
    let mut draining = std::time::Duration::ZERO;
    for _ in 0..iters / ROUND {
        total += measure_ch_fanout(&pubsub, &topic, ROUND);
        let drain_start = Instant::now();
        channels.iter().for_each(&drain);
        draining += drain_start.elapsed();
    }
    (total, start.elapsed() - draining)
}

fn run(mode: &str, n: usize, iters: usize, pairs: usize) -> (usize, std::time::Duration) {
    let start;
    let delivered = match mode {
        "cb_fanout" | "cb_fanout_str" | "cb_fanout_from" => {
            let (pubsub, topic) = callback_engine(n);
            // A registered client that is not subscribed: `broadcast_from` then skips
            // nobody, so it delivers exactly what `broadcast` does and any difference is
            // the sender compare alone.
            let from = pubsub.generate_client_id();
            start = Instant::now();
            match mode {
                "cb_fanout" => measure_cb_fanout(&pubsub, &topic, iters),
                "cb_fanout_from" => measure_cb_fanout_from(&pubsub, &topic, from, iters),
                _ => measure_cb_fanout_str(&pubsub, iters),
            }
        }
        "cb_fanout_churn" => {
            // Same as cb_fanout while another thread subscribes/unsubscribes a client to
            // the same topic as fast as it can (each change publishes a new snapshot).
            let (pubsub, topic) = callback_engine(n);
            let churner = pubsub.generate_client_id();
            pubsub.register(churner, consume).unwrap();
            let stop = std::sync::atomic::AtomicBool::new(false);
            let churned = std::sync::atomic::AtomicUsize::new(0);
            let delivered = std::thread::scope(|s| {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        pubsub.subscribe(churner, &topic).unwrap();
                        pubsub.unsubscribe(churner, &topic).unwrap();
                        churned.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
                    }
                });
                let mut total = 0;
                for _ in 0..iters / ROUND {
                    total += measure_cb_fanout(&pubsub, &topic, ROUND);
                    // Let the churn thread make progress between rounds.
                    std::thread::yield_now();
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                total
            });
            eprintln!(
                "churn: {} mutations during {iters} broadcasts",
                churned.into_inner()
            );
            start = Instant::now();
            delivered
        }
        "cb_floor" => {
            let sinks: Vec<FloorSink> = (0..n).map(|_| Box::new(consume) as FloorSink).collect();
            start = Instant::now();
            measure_cb_floor(&sinks, iters)
        }
        "cb_tokio" => {
            let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(16);
            let mut receivers: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            start = Instant::now();
            measure_cb_tokio(&tx, &mut receivers, iters)
        }
        "cb_bus" => {
            let mut bus = bus::Bus::<Bytes>::new(16);
            let mut readers: Vec<_> = (0..n).map(|_| bus.add_rx()).collect();
            start = Instant::now();
            measure_cb_bus(&mut bus, &mut readers, iters)
        }
        "ch_fanout" => {
            return channel_rounds(
                n,
                iters,
                |pubsub, id, config| pubsub.register_channel_with(id, config).unwrap(),
                |channel: &Channel<Bytes>| while channel.try_recv().is_ok() {},
            )
        }
        // The async channel flavour (`--features async`): `ch_fanout` with
        // `register_async_with`, drained with `try_recv`, nobody parked.
        #[cfg(feature = "async")]
        "as_fanout" => {
            return channel_rounds(
                n,
                iters,
                |pubsub, id, config| pubsub.register_async_with(id, config).unwrap(),
                |channel: &fanout::AsyncChannel<Bytes>| while channel.try_recv().is_ok() {},
            )
        }
        "ch_crossbeam" => {
            let (senders, receivers): (Vec<_>, Vec<_>) =
                (0..n).map(|_| crossbeam_channel::bounded(ROUND)).unzip();
            start = Instant::now();
            let mut total = 0;
            let mut draining = std::time::Duration::ZERO;
            for _ in 0..iters / ROUND {
                total += measure_ch_crossbeam(&senders, ROUND);
                let drain = Instant::now();
                for rx in &receivers {
                    while rx.try_recv().is_ok() {}
                }
                draining += drain.elapsed();
            }
            return (total, start.elapsed() - draining);
        }
        "e2e_pubsub" | "e2e_pubsub_apart" => {
            let (pubsub, topic, channels) = if mode == "e2e_pubsub" {
                e2e_pubsub(n)
            } else {
                e2e_pubsub_apart(n)
            };
            let publish = || {
                pubsub
                    .broadcast(black_box(&topic), &PAYLOAD[..], &RawPayload)
                    .unwrap();
            };
            return run_e2e(n, publish, || drain_channels(&channels));
        }
        "e2e_pubsub_frame" => {
            // A frame encoded once, handed on by every broadcast (`broadcast_frame`).
            let (pubsub, topic, channels) = e2e_pubsub(n);
            let frame = encode_push(TOPIC, &PAYLOAD).unwrap();
            let publish = || {
                pubsub
                    .broadcast_frame(black_box(&topic), black_box(&frame))
                    .unwrap();
            };
            return run_e2e(n, publish, || drain_channels(&channels));
        }
        "e2e_crossbeam_frame" => {
            // Raw queues, each sent a clone of one frame encoded beforehand.
            let (senders, receivers): (Vec<_>, Vec<_>) =
                crossbeam_queues(n, false).into_iter().unzip();
            let frame = encode_push(TOPIC, &PAYLOAD).unwrap();
            let publish = || {
                for tx in &senders {
                    tx.try_send(black_box(&frame).clone()).unwrap();
                }
            };
            let drain = || {
                for rx in &receivers {
                    consume(&rx.try_recv().unwrap());
                }
                receivers.len()
            };
            return run_e2e(n, publish, drain);
        }
        "e2e_broadcaster" => {
            let broadcaster = Broadcaster::<Bytes>::start().unwrap();
            let channels: Vec<_> = (0..n)
                .map(|_| broadcaster.subscribe_with(e2e_config()).unwrap())
                .collect();
            let publish = || {
                let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
                broadcaster.publish(frame).unwrap();
            };
            return run_e2e(n, publish, || drain_channels(&channels));
        }
        "e2e_crossbeam" | "e2e_crossbeam_shuffled" | "e2e_crossbeam_churn" => {
            let mut pairs = crossbeam_queues(n, mode == "e2e_crossbeam_churn");
            if mode == "e2e_crossbeam_shuffled" {
                // The same queues walked in a scrambled order (publisher and consumer
                // alike): what a walk costs when consecutive queues are not laid out
                // at a regular stride the hardware prefetcher can follow.
                let mut x = 0x9e37_79b9_7f4a_7c15_u64;
                for i in (1..pairs.len()).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    pairs.swap(i, (x % (i as u64 + 1)) as usize);
                }
            }
            let (senders, receivers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
            let publish = || {
                let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
                for tx in &senders {
                    tx.try_send(frame.clone()).unwrap();
                }
            };
            let drain = || {
                for rx in &receivers {
                    consume(&rx.try_recv().unwrap());
                }
                receivers.len()
            };
            return run_e2e(n, publish, drain);
        }
        "e2e_crossbeam_boxed"
        | "e2e_crossbeam_fat"
        | "e2e_crossbeam_inline"
        | "e2e_crossbeam_boxed_pf" => {
            // Layout experiments on raw crossbeam. `boxed`: each sender behind its own
            // `Arc` (an open flag and the sender, like fanout's sink), allocated right
            // after its queue and a 16-byte shared state, as `register_channel` does;
            // the publisher walks a `Vec` of those. `fat`: plain senders, but the
            // consumer walks receivers 48 bytes apart (the size of a `Channel`). `inline`:
            // the same holders as `boxed`, but side by side in the publisher's `Vec`
            // (what a subscriber list holding each queue's sender inline would be).
            struct Holder {
                open: std::sync::atomic::AtomicBool,
                tx: crossbeam_channel::Sender<Bytes>,
                _state: std::sync::Arc<[u64; 2]>,
            }
            let capacity = e2e_config().capacity;
            let prefetching = mode == "e2e_crossbeam_boxed_pf";
            let boxed = mode == "e2e_crossbeam_boxed" || prefetching;
            let inline = mode == "e2e_crossbeam_inline";
            let mut holders = Vec::new();
            let mut inlined = Vec::new();
            let mut senders = Vec::new();
            let mut receivers = Vec::new();
            for _ in 0..n {
                let (tx, rx) = crossbeam_channel::bounded::<Bytes>(capacity);
                if inline {
                    inlined.push(Holder {
                        open: std::sync::atomic::AtomicBool::new(true),
                        tx,
                        _state: std::sync::Arc::new([0u64; 2]),
                    });
                } else if boxed {
                    let state = std::sync::Arc::new([0u64; 2]);
                    holders.push(std::sync::Arc::new(Holder {
                        open: std::sync::atomic::AtomicBool::new(true),
                        tx,
                        _state: state,
                    }));
                } else {
                    senders.push(tx);
                }
                receivers.push((rx, [0u64; 4]));
            }
            let publish = || {
                let frame = encode_push(TOPIC, black_box(&PAYLOAD)).unwrap();
                if inline {
                    for h in &inlined {
                        if h.open.load(std::sync::atomic::Ordering::Relaxed) {
                            h.tx.try_send(frame.clone()).unwrap();
                        }
                    }
                } else if prefetching {
                    for (i, h) in holders.iter().enumerate() {
                        if let Some(ahead) = holders.get(i + 4) {
                            prefetch(std::sync::Arc::as_ptr(ahead).cast());
                        }
                        if h.open.load(std::sync::atomic::Ordering::Relaxed) {
                            h.tx.try_send(frame.clone()).unwrap();
                        }
                    }
                } else if boxed {
                    for h in &holders {
                        if h.open.load(std::sync::atomic::Ordering::Relaxed) {
                            h.tx.try_send(frame.clone()).unwrap();
                        }
                    }
                } else {
                    for tx in &senders {
                        tx.try_send(frame.clone()).unwrap();
                    }
                }
            };
            let drain = || {
                for (rx, _) in &receivers {
                    consume(&rx.try_recv().unwrap());
                }
                receivers.len()
            };
            return run_e2e(n, publish, drain);
        }
        "mutate" => {
            let (pubsub, topic) = callback_engine(16);
            let id = pubsub.generate_client_id();
            pubsub.register(id, consume).unwrap();
            start = Instant::now();
            for _ in 0..n {
                pubsub.subscribe(id, &topic).unwrap();
                pubsub.unsubscribe(id, &topic).unwrap();
            }
            2 * n
        }
        "mutate_pre" => {
            // `n` topics preloaded; ITERS / 2 subscribe–unsubscribe pairs on existing
            // topics spread over the trie.
            let (pubsub, id, sample) = preloaded_with_sample(n, pairs);
            start = Instant::now();
            measure_mutate(&pubsub, id, &sample)
        }
        "apply_pre" => {
            // `n` topics preloaded; `pairs` mutations' worth of `apply` batches (256 per
            // call: 128 subscribe–unsubscribe pairs on topics spread over the trie).
            let (pubsub, id, sample) = preloaded_with_sample(n, pairs);
            start = Instant::now();
            let mut total = 0;
            for chunk in sample.chunks(128) {
                let changes = chunk.iter().flat_map(|t| {
                    [
                        Mutation::Subscribe(id, t.clone()),
                        Mutation::Unsubscribe(id, t.clone()),
                    ]
                });
                total += pubsub.apply(changes).unwrap().len();
            }
            total
        }
        other => panic!("unknown mode {other}"),
    };
    (delivered, start.elapsed())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let [mode, n, ..] = &args[..] {
        let n: usize = n.parse().expect("n");
        let pairs = args.get(2).map_or(ITERS / 2, |p| p.parse().expect("pairs"));
        let (delivered, took) = run(mode, n, ITERS, pairs);
        println!("{mode} n={n}: {delivered} deliveries in {took:?}");
        return;
    }
    // Wall clock, for reference: min and median of ROUNDS interleaved runs (the minimum is
    // the least disturbed by other processes on a shared machine).
    if let [table] = &args[..] {
        match table.as_str() {
            "e2e" => wall_clock_table(
                &["e2e_pubsub", "e2e_broadcaster", "e2e_crossbeam"],
                [16, 256, 4096],
            ),
            "e2e_ratios" => e2e_ratios(false),
            "e2e_thread_ratios" => e2e_ratios(true),
            other => panic!("unknown table {other} (e2e, e2e_ratios, e2e_thread_ratios)"),
        }
        return;
    }
    #[allow(unused_mut)] // without the `async` feature nothing is added
    let mut modes = vec![
        "cb_fanout",
        "cb_fanout_from",
        "cb_floor",
        "cb_tokio",
        "cb_bus",
        "ch_fanout",
        "ch_crossbeam",
    ];
    #[cfg(feature = "async")]
    modes.push("as_fanout");
    // FLOOR_MODES=ch_fanout,as_fanout: only those (a quicker, more focused comparison).
    if let Ok(only) = std::env::var("FLOOR_MODES") {
        modes.retain(|m| only.split(',').any(|o| o == *m));
    }
    wall_clock_table(&modes, [1, 256, 4096]);
}

/// Prints min and median wall-clock ns per delivery of `modes` at each of `ns`, over
/// `ROUNDS` interleaved rounds.
fn wall_clock_table(modes: &[&str], ns: [usize; 3]) {
    const ROUNDS: usize = 7;
    let mut samples = vec![Vec::new(); modes.len() * ns.len()];
    for _ in 0..ROUNDS {
        for (m, mode) in modes.iter().enumerate() {
            for (k, &n) in ns.iter().enumerate() {
                let (delivered, took) = run(mode, n, ITERS, 0);
                samples[m * ns.len() + k].push(took.as_nanos() as f64 / delivered as f64);
            }
        }
    }
    println!(
        "\n## floor_callgrind: wall-clock ns per delivery (min / median of {ROUNDS} rounds)\n"
    );
    let mut header = "| mode            |".to_string();
    let mut rule = "|-----------------|".to_string();
    for n in ns {
        header += &format!(" n={n} min | n={n} med |");
        rule += "---------|---------|";
    }
    println!("{header}\n{rule}");
    for (m, mode) in modes.iter().enumerate() {
        let mut line = format!("| {mode:<15} |");
        for k in 0..ns.len() {
            let v = &mut samples[m * ns.len() + k];
            v.sort_by(f64::total_cmp);
            line += &format!(" {:>7.2} | {:>7.2} |", v[0], v[v.len() / 2]);
        }
        println!("{line}");
    }
}
