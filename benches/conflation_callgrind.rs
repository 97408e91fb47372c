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

use std::hint::black_box;

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
    let key = |m: &Msg| m.0;
    let (queues, conflating): (Vec<_>, Vec<_>) = if conflate {
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
    };
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
