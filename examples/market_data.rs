//! Market data fan-out: one feed thread, several strategy threads, two of them slow.
//!
//! What it shows:
//!
//! - a typed [`Broadcaster<Arc<Quote>>`](fanout::Broadcaster): `publish` hands each
//!   strategy an `Arc` clone (one atomic increment), never a copy of the quote;
//! - strategies as `crossbeam_channel::select!` loops over their channel's receiver and a
//!   timer;
//! - [`OverflowPolicy::DropOldest`]: a strategy that falls behind loses the *oldest*
//!   queued quotes and always sees the feed's very last quote, and the feed never waits
//!   for it — but the quotes it loses may be the only recent ones of a quiet symbol;
//! - conflation ([`Broadcaster::subscribe_conflating`], keyed by symbol): the slow
//!   strategy beside it holds at most one pending quote per symbol, a newer quote
//!   replacing the pending one in place, so it ends on the latest quote of **every**
//!   symbol;
//! - end of stream: `shutdown()` on the broadcaster ends every channel once drained;
//! - accounting: for every `DropOldest` strategy `received + dropped == published` and
//!   the quotes it missed are exactly the gaps in the sequence numbers it saw; for the
//!   conflating one `received + conflated + dropped == published`; and, per strategy, the
//!   number of symbols whose latest quote it never saw ("stale"), which must be 0 for
//!   the conflating one.
//!
//! Quotes are skewed like a real feed: 90% go to 10 busy symbols, the rest round-robin
//! over the quiet ones.
//!
//! ```text
//! cargo run --release --example market_data
//! cargo run --release --example market_data -- --quotes 1000 --strategies 3
//! ```
//!
//! Flags: `--quotes N` (default 200000), `--rate N` (quotes per second, default 200000,
//! 0 = as fast as possible), `--strategies N` (`DropOldest` strategies, default 4, at
//! least 1; the last one is slow), `--symbols N` (default 500, at least 11),
//! `--capacity N` (queue length per `DropOldest` strategy, default 1024; the conflating
//! one holds one quote per symbol), `--slow-us N` (how long each slow strategy spends
//! per quote, default 100).
//!
//! The fast strategies should drop little or nothing. The slow `DropOldest` one drops
//! most quotes and ends on the feed's last quote, yet misses the latest quote of many
//! quiet symbols; the slow conflating one misses none. On a busy machine the fast ones
//! may drop too: that is the policy doing its job rather than stalling the feed.

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick};
use fanout::{
    Broadcaster, Channel, ChannelConfig, ConflatingChannel, DisconnectReason, OverflowPolicy,
};

/// One top-of-book quote. Shared by every strategy through an `Arc`.
#[derive(Debug)]
struct Quote {
    /// Feed sequence number, 0, 1, 2, ...: lets a strategy see what it missed.
    seq: u64,
    /// Index of the symbol (see [`symbol_name`]).
    symbol: usize,
    bid: f64,
    ask: f64,
    /// When the feed published it, to measure how stale quotes are on arrival.
    published_at: Instant,
}

/// Symbols 0..BUSY take 90% of the quotes.
const BUSY: usize = 10;

fn symbol_name(symbol: usize) -> String {
    format!("SYM{symbol:03}")
}

/// The symbol of quote `seq`: nine in ten go to a busy symbol, the tenth round-robin to
/// a quiet one.
fn symbol_of(seq: u64, symbols: usize) -> usize {
    if seq % 10 != 9 {
        (seq % BUSY as u64) as usize
    } else {
        BUSY + (seq / 10) as usize % (symbols - BUSY)
    }
}

struct Settings {
    quotes: u64,
    strategies: usize,
    symbols: usize,
    capacity: usize,
    slow_per_quote: Duration,
    /// Quotes per second, or `None` for as fast as possible.
    rate: Option<u64>,
}

/// What a strategy thread reports when the feed ends.
struct Report {
    name: String,
    policy: &'static str,
    received: u64,
    dropped: u64,
    /// Replaced by a newer quote of the same symbol (conflating only).
    conflated: u64,
    /// Quotes missing from the sequence numbers received (`DropOldest` only: a
    /// conflating strategy sees each symbol in order, not the feed).
    gaps: u64,
    /// Largest queue length seen by the heartbeat.
    max_queued: usize,
    /// Mean time from publish to receipt.
    mean_age: Duration,
    /// The last quote received.
    last: Option<Arc<Quote>>,
    /// Per symbol, the sequence number of the last quote received.
    last_seen: Vec<Option<u64>>,
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
        "{} quotes over {} symbols at {} to {} DropOldest strategies (queues of {}) and one \
         conflating strategy; the slow ones spend {:?} per quote",
        settings.quotes,
        settings.symbols,
        settings
            .rate
            .map_or("full speed".to_owned(), |r| format!("{r}/s")),
        settings.strategies,
        settings.capacity,
        settings.slow_per_quote
    );

    let feed = Broadcaster::<Arc<Quote>>::start().expect("start the broadcaster");

    // Subscribe every strategy before the feed starts, so each one can account for
    // every quote.
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
        let symbols = settings.symbols;
        strategies.push(thread::spawn(move || {
            run_queued(name, &channel, work, symbols)
        }));
    }
    // The slow conflating strategy: one pending quote per symbol, so it never drops.
    let conflating = feed
        .subscribe_conflating(|quote: &Arc<Quote>| quote.symbol, settings.symbols)
        .expect("subscribe");
    let (work, symbols) = (settings.slow_per_quote, settings.symbols);
    strategies.push(thread::spawn(move || {
        let name = format!("strategy-{} (slow)", settings.strategies);
        run_conflating(name, &conflating, work, symbols)
    }));

    // The feed: publish, then end the stream.
    let mut last_published: Vec<Option<u64>> = vec![None; settings.symbols];
    let started = Instant::now();
    for seq in 0..settings.quotes {
        if let Some(rate) = settings.rate {
            // Paced: publish in 1 ms bursts to keep to `rate` quotes per second.
            let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait.max(Duration::from_millis(1)));
            }
        }
        let symbol = symbol_of(seq, settings.symbols);
        let bid = 1.0840 + 0.0010 * (seq as f64 / 5000.0).sin();
        let quote = Quote {
            seq,
            symbol,
            bid,
            ask: bid + 0.0002,
            published_at: Instant::now(),
        };
        feed.publish(Arc::new(quote)).expect("publish");
        last_published[symbol] = Some(seq);
    }
    let elapsed = started.elapsed();
    let stats = feed.stats();
    // Every strategy's receiver ends once it has drained what is queued.
    feed.shutdown();

    println!(
        "feed: published {} quotes in {:.3}s ({:.0} quotes/s); {} deliveries, {} dropped, \
         {} conflated",
        settings.quotes,
        elapsed.as_secs_f64(),
        settings.quotes as f64 / elapsed.as_secs_f64().max(1e-9),
        stats.deliveries,
        stats.dropped,
        stats.conflated,
    );
    println!();
    println!(
        "{:<20} {:<10} {:>8} {:>8} {:>9} {:>8} {:>6} {:>9} {:>9}  {:<26} ended",
        "strategy",
        "policy",
        "received",
        "dropped",
        "conflated",
        "gaps",
        "stale",
        "max queue",
        "mean age",
        "last quote"
    );
    let mut consistent = true;
    for strategy in strategies {
        let r = strategy.join().expect("strategy thread panicked");
        let last = r.last.as_ref().map_or_else(String::new, |q| {
            format!(
                "#{} {} {:.5}/{:.5}",
                q.seq,
                symbol_name(q.symbol),
                q.bid,
                q.ask
            )
        });
        // Symbols whose latest quote this strategy never saw.
        let stale = last_published
            .iter()
            .zip(&r.last_seen)
            .filter(|(published, seen)| published != seen)
            .count();
        println!(
            "{:<20} {:<10} {:>8} {:>8} {:>9} {:>8} {:>6} {:>9} {:>9}  {:<26} {}",
            r.name,
            r.policy,
            r.received,
            r.dropped,
            r.conflated,
            r.gaps,
            stale,
            r.max_queued,
            format!("{:.1?}", r.mean_age),
            last,
            r.ended_because
                .map_or_else(|| "still connected".to_owned(), |why| format!("{why:?}")),
        );
        let accounted = r.received + r.dropped + r.conflated == settings.quotes;
        consistent &= accounted
            && if r.policy == "Conflate" {
                r.dropped == 0 && stale == 0
            } else {
                let saw_latest =
                    r.last.map(|q| q.seq + 1) == Some(settings.quotes) || settings.quotes == 0;
                r.gaps == r.dropped && saw_latest
            };
    }
    println!();
    if consistent {
        println!(
            "ok: every DropOldest strategy got the feed's last quote with received + dropped \
             == published and dropped == its gaps; the conflating one got the latest quote \
             of every symbol (stale 0) with received + conflated == published"
        );
        ExitCode::SUCCESS
    } else {
        println!("MISMATCH: some strategy's counts do not add up");
        ExitCode::FAILURE
    }
}

/// What a strategy tracks while it consumes.
struct Tracker {
    received: u64,
    max_queued: usize,
    total_age: Duration,
    last: Option<Arc<Quote>>,
    last_seen: Vec<Option<u64>>,
    work: Duration,
}

impl Tracker {
    fn new(work: Duration, symbols: usize) -> Self {
        Self {
            received: 0,
            max_queued: 0,
            total_age: Duration::ZERO,
            last: None,
            last_seen: vec![None; symbols],
            work,
        }
    }

    fn on_quote(&mut self, quote: Arc<Quote>) {
        self.total_age += quote.published_at.elapsed();
        self.received += 1;
        self.last_seen[quote.symbol] = Some(quote.seq);
        if !self.work.is_zero() {
            thread::sleep(self.work); // a slow model, a blocking call, a GC pause...
        }
        self.last = Some(quote); // keeping it costs nothing: it is an Arc
    }

    fn report(self, name: String, policy: &'static str) -> Report {
        Report {
            name,
            policy,
            received: self.received,
            dropped: 0,
            conflated: 0,
            gaps: 0,
            max_queued: self.max_queued,
            mean_age: self.total_age / u32::try_from(self.received.max(1)).unwrap_or(u32::MAX),
            last: self.last,
            last_seen: self.last_seen,
            ended_because: None,
        }
    }
}

/// A `DropOldest` strategy: consume quotes until the feed ends, spending `work` on each.
fn run_queued(
    name: String,
    quotes: &Channel<Arc<Quote>>,
    work: Duration,
    symbols: usize,
) -> Report {
    let heartbeat = tick(Duration::from_millis(5));
    let mut tracker = Tracker::new(work, symbols);
    let (mut gaps, mut next_seq) = (0u64, 0u64);
    loop {
        select! {
            recv(quotes.receiver()) -> quote => {
                let Ok(quote) = quote else {
                    break; // the feed shut down and the queue is drained
                };
                // DropOldest keeps the queue in order: a jump in `seq` is what was dropped.
                gaps += quote.seq - next_seq;
                next_seq = quote.seq + 1;
                tracker.on_quote(quote);
            }
            recv(heartbeat) -> _ => tracker.max_queued = tracker.max_queued.max(quotes.len()),
        }
    }
    // Quotes dropped after the last one received are gaps too.
    let dropped = quotes.dropped();
    gaps += (tracker.received + dropped).saturating_sub(next_seq);
    Report {
        dropped,
        gaps,
        ended_because: quotes.disconnect_reason(),
        ..tracker.report(name, "DropOldest")
    }
}

/// The conflating strategy: the same loop; each pending symbol's token is opened with
/// `take`, which yields that symbol's latest quote.
fn run_conflating(
    name: String,
    quotes: &ConflatingChannel<Arc<Quote>>,
    work: Duration,
    symbols: usize,
) -> Report {
    let heartbeat = tick(Duration::from_millis(5));
    let mut tracker = Tracker::new(work, symbols);
    loop {
        select! {
            recv(quotes.receiver()) -> pending => {
                let Ok(pending) = pending else {
                    break; // the feed shut down and every pending symbol is drained
                };
                tracker.on_quote(pending.take());
            }
            recv(heartbeat) -> _ => tracker.max_queued = tracker.max_queued.max(quotes.len()),
        }
    }
    Report {
        dropped: quotes.dropped(),
        conflated: quotes.conflated(),
        ended_because: quotes.disconnect_reason(),
        ..tracker.report(name, "Conflate")
    }
}

const USAGE: &str = "\
usage: market_data [--quotes N] [--rate N] [--strategies N] [--symbols N] [--capacity N]
                   [--slow-us N]

  --quotes N      quotes the feed publishes (default 200000)
  --rate N        quotes per second (default 200000; 0 = as fast as possible)
  --strategies N  DropOldest strategy threads, the last one slow (default 4, at least 1);
                  one slow conflating strategy runs beside them
  --symbols N     symbols quoted, 10 busy and the rest quiet (default 500, at least 11)
  --capacity N    queue length per DropOldest strategy (default 1024, at least 1)
  --slow-us N     microseconds each slow strategy spends per quote (default 100)
  --help          show this help";

fn parse_args() -> Result<Settings, String> {
    let mut settings = Settings {
        quotes: 200_000,
        strategies: 4,
        symbols: 500,
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
            "--symbols" if value > BUSY as u64 => settings.symbols = value as usize,
            "--symbols" => return Err(format!("--symbols must be at least {}", BUSY + 1)),
            "--strategies" | "--capacity" => return Err(format!("{flag} must be at least 1")),
            "--slow-us" => settings.slow_per_quote = Duration::from_micros(value),
            "--rate" => settings.rate = (value > 0).then_some(value),
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(settings)
}
