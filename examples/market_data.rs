//! Market data fan-out: one feed thread, several strategy threads, one of them slow.
//!
//! What it shows:
//!
//! - a typed [`Broadcaster<Arc<Quote>>`](fanout::Broadcaster): `publish` hands each
//!   strategy an `Arc` clone (one atomic increment), never a copy of the quote;
//! - strategies as `crossbeam_channel::select!` loops over their [`Channel`]'s receiver
//!   and a timer;
//! - [`OverflowPolicy::DropOldest`]: a strategy that falls behind loses the *oldest*
//!   queued quotes and always sees the latest price, and the feed never waits for it;
//! - end of stream: `shutdown()` on the broadcaster ends every channel once drained;
//! - accounting: for every strategy, `received + dropped == published`, and the quotes
//!   it missed are exactly the gaps in the sequence numbers it saw.
//!
//! ```text
//! cargo run --release --example market_data
//! cargo run --release --example market_data -- --quotes 1000 --strategies 3
//! ```
//!
//! Flags: `--quotes N` (default 200000), `--rate N` (quotes per second, default 200000,
//! 0 = as fast as possible), `--strategies N` (default 4, at least 1; the last one is the
//! slow one), `--capacity N` (queue length per strategy, default 1024), `--slow-us N`
//! (how long the slow strategy spends per quote, default 100).
//!
//! The fast strategies should drop little or nothing; the slow one drops most quotes
//! yet always ends on the feed's latest. On a busy machine the fast ones may drop too:
//! that is the policy doing its job rather than stalling the feed.

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick};
use fanout::{Broadcaster, Channel, ChannelConfig, DisconnectReason, OverflowPolicy};

/// One top-of-book quote. Shared by every strategy through an `Arc`.
#[derive(Debug)]
struct Quote {
    /// Feed sequence number, 0, 1, 2, ...: lets a strategy see what it missed.
    seq: u64,
    symbol: &'static str,
    bid: f64,
    ask: f64,
    /// When the feed published it, to measure how stale quotes are on arrival.
    published_at: Instant,
}

const SYMBOLS: [&str; 6] = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "USDCAD"];

struct Settings {
    quotes: u64,
    strategies: usize,
    capacity: usize,
    slow_per_quote: Duration,
    /// Quotes per second, or `None` for as fast as possible.
    rate: Option<u64>,
}

/// What a strategy thread reports when the feed ends.
struct Report {
    name: String,
    received: u64,
    dropped: u64,
    /// Quotes missing from the sequence numbers received.
    gaps: u64,
    /// Largest queue length seen by the heartbeat.
    max_queued: usize,
    /// Mean time from publish to receipt.
    mean_age: Duration,
    /// The last quote received: with DropOldest, always the feed's last one.
    last: Option<Arc<Quote>>,
    ended_because: Option<DisconnectReason>,
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("market_data: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{} quotes at {} to {} strategies; queues of {} with DropOldest; the slow one spends {:?} per quote",
        settings.quotes,
        settings.rate.map_or("full speed".to_owned(), |r| format!("{r}/s")),
        settings.strategies,
        settings.capacity,
        settings.slow_per_quote
    );

    let feed = Broadcaster::<Arc<Quote>>::start().expect("start the broadcaster");

    // Subscribe every strategy before the feed starts, so each one can account for
    // every quote: received + dropped == published.
    let mut strategies = Vec::new();
    for i in 0..settings.strategies {
        let slow = i + 1 == settings.strategies;
        let config = ChannelConfig::new(settings.capacity, OverflowPolicy::DropOldest);
        let channel = feed.subscribe_with(config).expect("subscribe");
        let name = if slow {
            format!("strategy-{i} (slow)")
        } else {
            format!("strategy-{i}")
        };
        let work = if slow {
            settings.slow_per_quote
        } else {
            Duration::ZERO
        };
        strategies.push(thread::spawn(move || run_strategy(name, &channel, work)));
    }

    // The feed: publish as fast as possible, then end the stream.
    let started = Instant::now();
    for seq in 0..settings.quotes {
        if let Some(rate) = settings.rate {
            // Paced: publish in 1 ms bursts to keep to `rate` quotes per second.
            let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait.max(Duration::from_millis(1)));
            }
        }
        let bid = 1.0840 + 0.0010 * (seq as f64 / 5000.0).sin();
        let quote = Quote {
            seq,
            symbol: SYMBOLS[seq as usize % SYMBOLS.len()],
            bid,
            ask: bid + 0.0002,
            published_at: Instant::now(),
        };
        feed.publish(Arc::new(quote)).expect("publish");
    }
    let elapsed = started.elapsed();
    let stats = feed.stats();
    // Every strategy's receiver ends once it has drained what is queued.
    feed.shutdown();

    println!(
        "feed: published {} quotes in {:.3}s ({:.0} quotes/s); {} deliveries, {} dropped",
        settings.quotes,
        elapsed.as_secs_f64(),
        settings.quotes as f64 / elapsed.as_secs_f64().max(1e-9),
        stats.deliveries,
        stats.dropped,
    );
    println!();
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>10}  {:<28} ended",
        "strategy", "received", "dropped", "gaps", "max queue", "mean age", "last quote"
    );
    let mut consistent = true;
    for strategy in strategies {
        let r = strategy.join().expect("strategy thread panicked");
        let last = r.last.as_ref().map_or_else(String::new, |q| {
            format!("#{} {} {:.5}/{:.5}", q.seq, q.symbol, q.bid, q.ask)
        });
        println!(
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>10}  {:<28} {}",
            r.name,
            r.received,
            r.dropped,
            r.gaps,
            r.max_queued,
            format!("{:.1?}", r.mean_age),
            last,
            r.ended_because
                .map_or_else(|| "still connected".to_owned(), |why| format!("{why:?}")),
        );
        let saw_latest = r.last.map(|q| q.seq + 1) == Some(settings.quotes) || settings.quotes == 0;
        consistent &=
            r.received + r.dropped == settings.quotes && r.gaps == r.dropped && saw_latest;
    }
    println!();
    if consistent {
        println!(
            "ok: every strategy got the latest quote, received + dropped == published, \
             and dropped == the gaps in the sequence numbers it saw"
        );
        ExitCode::SUCCESS
    } else {
        println!("MISMATCH: some strategy's counts do not add up");
        ExitCode::FAILURE
    }
}

/// A strategy: consume quotes until the feed ends, spending `work` on each.
fn run_strategy(name: String, quotes: &Channel<Arc<Quote>>, work: Duration) -> Report {
    let heartbeat = tick(Duration::from_millis(5));
    let (mut received, mut gaps, mut max_queued) = (0u64, 0u64, 0usize);
    let mut total_age = Duration::ZERO;
    let mut next_seq = 0u64;
    let mut last = None;
    loop {
        select! {
            recv(quotes.receiver()) -> quote => {
                let Ok(quote) = quote else {
                    break; // the feed shut down and the queue is drained
                };
                total_age += quote.published_at.elapsed();
                // DropOldest keeps the queue in order: a jump in `seq` is what was dropped.
                gaps += quote.seq - next_seq;
                next_seq = quote.seq + 1;
                received += 1;
                if !work.is_zero() {
                    thread::sleep(work); // a slow model, a blocking call, a GC pause...
                }
                last = Some(quote); // keeping it costs nothing: it is an Arc
            }
            recv(heartbeat) -> _ => max_queued = max_queued.max(quotes.len()),
        }
    }
    // Quotes dropped after the last one received are gaps too.
    let dropped = quotes.dropped();
    gaps += (received + dropped).saturating_sub(next_seq);
    Report {
        name,
        received,
        dropped,
        gaps,
        max_queued,
        mean_age: total_age / u32::try_from(received.max(1)).unwrap_or(u32::MAX),
        last,
        ended_because: quotes.disconnect_reason(),
    }
}

const USAGE: &str = "\
usage: market_data [--quotes N] [--rate N] [--strategies N] [--capacity N] [--slow-us N]

  --quotes N      quotes the feed publishes (default 200000)
  --rate N        quotes per second (default 200000; 0 = as fast as possible)
  --strategies N  strategy threads, the last one slow (default 4, at least 1)
  --capacity N    queue length per strategy (default 1024, at least 1)
  --slow-us N     microseconds the slow strategy spends per quote (default 100)
  --help          show this help";

fn parse_args() -> Result<Settings, String> {
    let mut settings = Settings {
        quotes: 200_000,
        strategies: 4,
        capacity: 1024,
        slow_per_quote: Duration::from_micros(100),
        rate: Some(200_000),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let raw = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let value: u64 = raw
            .parse()
            .map_err(|_| format!("{flag}: {raw:?} is not a non-negative integer"))?;
        match flag.as_str() {
            "--quotes" => settings.quotes = value,
            "--strategies" if value >= 1 => settings.strategies = value as usize,
            "--capacity" if value >= 1 => settings.capacity = value as usize,
            "--strategies" | "--capacity" => return Err(format!("{flag} must be at least 1")),
            "--slow-us" => settings.slow_per_quote = Duration::from_micros(value),
            "--rate" => settings.rate = (value > 0).then_some(value),
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(settings)
}
