//! Instructions per publish to conflating channels against `DropOldest` channels, for
//! `valgrind --tool=callgrind` (instruction counts are repeatable on a shared machine
//! where the wall clock of `channel_fanout`'s `conflation` group is not).
//!
//! The same work as that group: `Broadcaster<(u32, u64)>::publish` to `n` channels,
//! conflating ones keyed by the `u32` over 64 cycling keys, capacity 1,024 for both.
//! Every publish happens inside one `#[inline(never)]` function, `measure_publish`, so
//! callgrind can collect only there; draining happens outside it.
//!
//! Modes (`<mode> <n>`), `ROUNDS` × 64 publishes each:
//! - `slow_conflate`, `slow_drop_oldest`: nobody receives (the channels were filled
//!   first): every conflating publish replaces a pending item, every `DropOldest` publish
//!   drops the oldest queued one;
//! - `new_conflate`, `new_drop_oldest`: the consumer keeps up: every channel is drained
//!   between rounds of 64 publishes, so every conflating publish finds its key not
//!   pending and every queue has room.
//!
//! `scripts/callgrind_conflation.sh` runs each mode at 1 and 16 channels and prints the
//! instructions per publish and per extra channel (the slope from 1 to 16).
//!
//! `wall <n>` (not under callgrind) times the `new_*` scenario's batches of 64 publishes
//! to `n` channels, conflating and `DropOldest` in alternation (`WALL_BATCHES` of each,
//! interleaved in blocks of 50), and prints the 10th percentile, median and minimum per
//! publish and their ratios. On a shared machine a low percentile of many short batches
//! is what the neighbours disturb least; criterion's `conflation` group reports means.

use std::hint::black_box;
use std::time::{Duration, Instant};

use fanout::{Broadcaster, Channel, ChannelConfig, ConflatingChannel, OverflowPolicy};

/// Keys cycled through, as in `benches/channel_fanout.rs`.
const KEYS: u64 = 64;
/// Rounds of `KEYS` publishes measured.
const ROUNDS: usize = 100;
/// Queue capacity of both kinds of channel.
const CAPACITY: usize = 1024;

type Msg = (u32, u64);

#[inline(never)]
fn measure_publish(feed: &Broadcaster<Msg>, seq: &mut u64) -> usize {
    let mut total = 0;
    for _ in 0..KEYS {
        *seq += 1;
        total += feed.publish(((*seq % KEYS) as u32, *seq)).unwrap();
    }
    total
}

/// Not measured: the same publishes, to fill channels or warm up.
#[inline(never)]
fn publish_unmeasured(feed: &Broadcaster<Msg>, seq: &mut u64) {
    for _ in 0..KEYS {
        *seq += 1;
        black_box(feed.publish(((*seq % KEYS) as u32, *seq)).unwrap());
    }
}

fn drain(queues: &[Channel<Msg>], conflating: &[ConflatingChannel<Msg>]) {
    for channel in queues {
        while channel.try_recv().is_ok() {}
    }
    for channel in conflating {
        while channel.try_recv().is_ok() {}
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let [mode, n] = &args[..] else {
        // Under `cargo bench` (no arguments): run every mode once, so the file stays built
        // and working.
        for mode in [
            "slow_conflate",
            "slow_drop_oldest",
            "new_conflate",
            "new_drop_oldest",
        ] {
            println!("{mode} n=16: {} deliveries", run(mode, 16));
        }
        return;
    };
    let n: usize = n.parse().expect("n");
    if mode == "wall" {
        wall(n);
        return;
    }
    println!("{mode} n={n}: {} deliveries", run(mode, n));
}

fn run(mode: &str, n: usize) -> usize {
    let (slow, conflate) = match mode {
        "slow_conflate" => (true, true),
        "slow_drop_oldest" => (true, false),
        "new_conflate" => (false, true),
        "new_drop_oldest" => (false, false),
        other => panic!("unknown mode {other}"),
    };
    let feed = Broadcaster::<Msg>::start().unwrap();
    let (queues, conflating) = channels(&feed, n, conflate);
    let mut seq = 0;
    // Fill (every key pending, every queue full) for `slow`; warm up for `new`.
    for _ in 0..(2 * CAPACITY as u64 / KEYS) {
        publish_unmeasured(&feed, &mut seq);
        if !slow {
            drain(&queues, &conflating);
        }
    }
    let mut total = 0;
    for _ in 0..ROUNDS {
        total += measure_publish(&feed, &mut seq);
        if !slow {
            drain(&queues, &conflating);
        }
    }
    total
}

/// `n` channels on `feed`: conflating ones (keyed by the message's key), or plain
/// `DropOldest` queues of the same capacity; the other list stays empty.
fn channels(
    feed: &Broadcaster<Msg>,
    n: usize,
    conflate: bool,
) -> (Vec<Channel<Msg>>, Vec<ConflatingChannel<Msg>>) {
    if conflate {
        let key = |m: &Msg| m.0;
        let channels = (0..n)
            .map(|_| feed.subscribe_conflating(key, CAPACITY).unwrap())
            .collect();
        (Vec::new(), channels)
    } else {
        let config = ChannelConfig::new(CAPACITY, OverflowPolicy::DropOldest);
        let channels = (0..n)
            .map(|_| feed.subscribe_with(config).unwrap())
            .collect();
        (channels, Vec::new())
    }
}

/// One channel set of the `new_*` scenario, for the wall-clock comparison.
struct Rig {
    feed: Broadcaster<Msg>,
    queues: Vec<Channel<Msg>>,
    conflating: Vec<ConflatingChannel<Msg>>,
    seq: u64,
    batches: Vec<Duration>,
}

impl Rig {
    fn new(n: usize, conflate: bool) -> Self {
        let feed = Broadcaster::<Msg>::start().unwrap();
        let (queues, conflating) = channels(&feed, n, conflate);
        Rig {
            feed,
            queues,
            conflating,
            seq: 0,
            batches: Vec::new(),
        }
    }

    /// `count` timed batches of `KEYS` publishes, each followed by an untimed drain.
    fn run(&mut self, count: usize) {
        for _ in 0..count {
            let start = Instant::now();
            black_box(measure_publish(&self.feed, &mut self.seq));
            self.batches.push(start.elapsed());
            drain(&self.queues, &self.conflating);
        }
    }

    /// (10th percentile, median, minimum) ns per publish.
    fn summary(&mut self) -> [f64; 3] {
        self.batches.sort();
        let per = |d: Duration| d.as_nanos() as f64 / KEYS as f64;
        let len = self.batches.len();
        [
            per(self.batches[len / 10]),
            per(self.batches[len / 2]),
            per(self.batches[0]),
        ]
    }
}

/// Batches of each kind timed by `wall`.
const WALL_BATCHES: usize = 20_000;

fn wall(n: usize) {
    let mut drop_oldest = Rig::new(n, false);
    let mut conflate = Rig::new(n, true);
    // Warm-up, untimed.
    drop_oldest.run(200);
    conflate.run(200);
    drop_oldest.batches.clear();
    conflate.batches.clear();
    for _ in 0..WALL_BATCHES / 50 {
        drop_oldest.run(50);
        conflate.run(50);
    }
    let (d, c) = (drop_oldest.summary(), conflate.summary());
    println!("new key, {n} channels, ns per publish (p10 / median / min):");
    println!("  drop_oldest {:7.1} {:7.1} {:7.1}", d[0], d[1], d[2]);
    println!("  conflate    {:7.1} {:7.1} {:7.1}", c[0], c[1], c[2]);
    println!(
        "  ratio       {:7.2} {:7.2} {:7.2}",
        c[0] / d[0],
        c[1] / d[1],
        c[2] / d[2]
    );
}
