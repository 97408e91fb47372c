//! Workload 7 (custom harness, prints a table): memory per client and per subscription
//! at 1,000,000 clients, counted by a global allocator that tracks live bytes requested
//! (allocator overhead and fragmentation are not included).
//!
//! Phases, each measured once its calls have returned (a mutation returns after the
//! snapshot with its change is published):
//! 1. register 1M callback clients (zero-sized closures: the engine's own cost);
//! 2. subscribe each to one of 100k topics by `&str` name (creates the topics, 10
//!    subscribers each);
//! 3. subscribe each to a second, existing topic by `&str` name (each call allocates its
//!    own `Topic`, kept in the client's record);
//! 4. subscribe each to a third, existing topic through a shared pre-resolved `Topic`;
//! 5. per-user topics (the `user:123` pattern for direct messages), in a fresh engine:
//!    1M callback clients, each subscribed by name to a topic of its own (creates 1M
//!    topics with one subscriber each); bytes per client in all — client record, topic
//!    entry, subscription;
//! 6. for comparison, 100k channel clients (capacity 16) registered and subscribed.
//!
//! Run: `cargo bench --bench memory` (tens of seconds; `-- quick` uses 100k clients;
//! `-- sizes` also lists, under each phase, the live allocations it added by size).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fanout::{ChannelConfig, OverflowPolicy, PubSub, Topic};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Live allocations by requested size (`-- sizes`): index = size, the last for larger.
const SIZE_CLASSES: usize = 1024;
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicIsize = AtomicIsize::new(0);
static BY_SIZE: [AtomicIsize; SIZE_CLASSES] = [ZERO; SIZE_CLASSES];

fn count(size: usize, delta: isize) {
    BY_SIZE[size.min(SIZE_CLASSES - 1)].fetch_add(delta, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        count(layout.size(), 1);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        count(layout.size(), 1);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        count(layout.size(), -1);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        count(new_size, 1);
        count(layout.size(), -1);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const THREADS: usize = 16;

fn live() -> usize {
    // Let the writer finish dropping superseded snapshots.
    thread::sleep(Duration::from_millis(200));
    LIVE.load(Ordering::Relaxed)
}

/// Runs `f(i)` for `i in 0..count` from `THREADS` threads.
fn parallel(count: usize, f: impl Fn(usize) + Sync) {
    thread::scope(|s| {
        for t in 0..THREADS {
            let f = &f;
            s.spawn(move || {
                for i in (t..count).step_by(THREADS) {
                    f(i);
                }
            });
        }
    });
}

fn row(what: &str, bytes: usize, per: usize, unit: &str, took: Duration) {
    println!(
        "| {what:<58} | {:>10.1} | {:>8.1} {unit:<13} | {:>6.1} |",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / per as f64,
        took.as_secs_f64()
    );
}

/// Runs `work`, then prints a row with the live bytes it added (per `per` items) and the
/// time it took. Returns the live byte count after it.
fn measured_row(what: &str, per: usize, unit: &str, work: impl FnOnce()) -> usize {
    let before = live();
    let sizes_before = sizes();
    let start = Instant::now();
    work();
    let took = start.elapsed();
    let after = live();
    row(what, after - before, per, unit, took);
    if SHOW_SIZES.load(Ordering::Relaxed) {
        print_sizes(&sizes_before, &sizes(), per);
    }
    after
}

/// Whether to list the live allocations each phase added, by size (`-- sizes`).
static SHOW_SIZES: AtomicBool = AtomicBool::new(false);

fn sizes() -> Vec<isize> {
    BY_SIZE.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

/// One line per allocation size whose live count changed: the size, the change in
/// count per item, and bytes per item (sizes of `SIZE_CLASSES - 1` and more share one
/// line, its bytes not exact).
fn print_sizes(before: &[isize], after: &[isize], per: usize) {
    for (size, (b, a)) in before.iter().zip(after).enumerate() {
        let delta = a - b;
        if delta.unsigned_abs() * 1000 >= per {
            println!(
                "|   {:>5} B allocations{:<34} | {:>10} | {:>8.2} /item {:>5.1} B |        |",
                size,
                if size == SIZE_CLASSES - 1 {
                    " or more"
                } else {
                    ""
                },
                delta,
                delta as f64 / per as f64,
                (delta * size as isize) as f64 / per as f64
            );
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    SHOW_SIZES.store(std::env::args().any(|a| a == "sizes"), Ordering::Relaxed);
    let clients: usize = if quick { 100_000 } else { 1_000_000 };
    let topics = clients / 10;
    println!("\n## memory: {clients} clients, {topics} topics (live bytes requested)\n");
    println!("| phase                                                      |   Δ MiB    | bytes per              | secs   |");
    println!("|------------------------------------------------------------|------------|------------------------|--------|");

    let pubsub = PubSub::<[u8]>::builder()
        .command_capacity(16_384)
        .build()
        .unwrap();
    let ids: Vec<_> = (0..clients).map(|_| pubsub.generate_client_id()).collect();
    let names: Vec<String> = (0..topics).map(|i| format!("topic/{i:06}")).collect();
    let handles: Vec<Topic> = names.iter().map(|n| pubsub.topic(n).unwrap()).collect();

    measured_row("register (callback sink)", clients, "/client", || {
        parallel(clients, |i| {
            pubsub
                .register(ids[i], |frame| {
                    black_box(frame.len());
                })
                .unwrap();
        })
    });

    measured_row(
        "1st subscription by name (creates topics)",
        clients,
        "/subscription",
        || {
            parallel(clients, |i| {
                pubsub
                    .subscribe(ids[i], names[i % topics].as_str())
                    .unwrap();
            })
        },
    );

    measured_row(
        "2nd subscription by name (existing topics)",
        clients,
        "/subscription",
        || {
            parallel(clients, |i| {
                pubsub
                    .subscribe(ids[i], names[(i + 1) % topics].as_str())
                    .unwrap();
            })
        },
    );

    let engine_total = measured_row(
        "3rd subscription by shared Topic handle",
        clients,
        "/subscription",
        || {
            parallel(clients, |i| {
                pubsub
                    .subscribe(ids[i], &handles[(i + 2) % topics])
                    .unwrap();
            })
        },
    );
    let stats = pubsub.stats();
    assert_eq!(stats.clients, clients);
    assert_eq!(stats.subscriptions, 3 * clients);
    row(
        "total live (engine + ids + names + handles)",
        engine_total,
        clients,
        "/client",
        Duration::ZERO,
    );

    drop(pubsub);

    // Per-user topics: every client has a topic of its own, in a fresh engine.
    let own = PubSub::<[u8]>::builder()
        .command_capacity(16_384)
        .build()
        .unwrap();
    let own_ids: Vec<_> = (0..clients).map(|_| own.generate_client_id()).collect();
    let own_names: Vec<String> = (0..clients).map(|i| format!("user:{i}")).collect();
    let own_start = live();
    measured_row(
        "own topic: register (callback sink)",
        clients,
        "/client",
        || {
            parallel(clients, |i| {
                own.register(own_ids[i], |frame| {
                    black_box(frame.len());
                })
                .unwrap();
            })
        },
    );
    let own_total = measured_row(
        "own topic: subscribe to `user:<n>` by name (creates it)",
        clients,
        "/client",
        || {
            parallel(clients, |i| {
                own.subscribe(own_ids[i], own_names[i].as_str()).unwrap();
            })
        },
    );
    let stats = own.stats();
    assert_eq!(stats.clients, clients);
    assert_eq!(stats.topics, clients);
    assert_eq!(stats.subscriptions, clients);
    row(
        "own topic: in all (client + topic + subscription)",
        own_total - own_start,
        clients,
        "/client",
        Duration::ZERO,
    );
    drop(own);

    // Channel clients, for comparison: the queue is allocated up front.
    let channel_clients = clients / 10;
    let other = PubSub::<[u8]>::new().unwrap();
    let before = live();
    let start = Instant::now();
    let channels: Vec<_> = (0..channel_clients)
        .map(|i| {
            let id = other.generate_client_id();
            let channel = other
                .register_channel_with(id, ChannelConfig::new(16, OverflowPolicy::DropNewest))
                .unwrap();
            other.subscribe(id, &handles[i % topics]).unwrap();
            channel
        })
        .collect();
    let took = start.elapsed();
    let after = live();
    row(
        "channel client (capacity 16) + 1 subscription",
        after - before,
        channel_clients,
        "/client",
        took,
    );
    drop(channels);
    drop(other);
}
