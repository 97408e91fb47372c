//! The first thing to run: the engine on its default settings under a realistic mixed
//! load for a few seconds, then a summary table.
//!
//! ```text
//! cargo run --release --example demo
//! cargo run --release --example demo -- --seconds 2 --clients 2000 --topics 200
//! cargo run --release --example demo -- --help
//! ```
//!
//! The load, all on one [`PubSub`] built with `PubSub::new()`:
//!
//! - **clients**: `--clients` callback sinks (each a `Fn(&Bytes)` standing in for a
//!   WebSocket writer's enqueue), each in two chat rooms and one market symbol (popular
//!   symbols have more followers); plus `--channel-clients` channel sinks, each drained by
//!   its own thread and following every market symbol — the last one is slow and uses
//!   [`OverflowPolicy::DropOldest`], so it loses frames instead of slowing anyone down;
//! - **topics**: `--topics` in all, 90% chat rooms (`chat/room-N`) and 10% market symbols
//!   (`market/SYM-N`);
//! - **publishers**: `--publishers` threads, each alternating chat lines sent with
//!   `broadcast_from` (no echo to the sender) and price ticks sent through
//!   pre-resolved [`Topic`] handles, all as fast as they can;
//! - **churn**: one thread connecting and disconnecting short-lived clients
//!   (register, subscribe, unsubscribe, unregister), pausing 1 ms between connections;
//!   the table reports how long each connect/disconnect cycle took under the load.
//!
//! Progress goes to stderr, the table to stdout. Exit code 2 on a bad flag.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::transport::RawPayload;
use fanout::{Bytes, ChannelConfig, OverflowPolicy, PubSub, Topic};

const USAGE: &str = "\
usage: demo [--seconds N] [--clients N] [--topics N] [--publishers N] [--channel-clients N]

Runs fanout on its default settings under a mixed chat + market-data load, then prints
a summary.

  --seconds N          how long to run the load (default 5)
  --clients N          callback-sink clients (default 10000)
  --topics N           topics: 90% chat rooms, 10% market symbols (default 1000, >= 2)
  --publishers N       publishing threads, each alternating chat and market messages
                       (default 4, >= 1)
  --channel-clients N  channel-sink clients with their own thread; the last one is
                       deliberately slow (default 4)
  --help               show this help";

struct Settings {
    seconds: u64,
    clients: usize,
    topics: usize,
    publishers: usize,
    channel_clients: usize,
}

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings {
        seconds: 5,
        clients: 10_000,
        topics: 1_000,
        publishers: 4,
        channel_clients: 4,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let known = [
            "--seconds",
            "--clients",
            "--topics",
            "--publishers",
            "--channel-clients",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown flag {flag:?}"));
        }
        let raw = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let value: usize = raw
            .parse()
            .map_err(|_| format!("{flag}: {raw:?} is not a non-negative integer"))?;
        match flag.as_str() {
            "--seconds" => s.seconds = value as u64,
            "--clients" => s.clients = value,
            "--topics" if value >= 2 => s.topics = value,
            "--topics" => return Err("--topics must be at least 2".into()),
            "--publishers" if value >= 1 => s.publishers = value,
            "--publishers" => return Err("--publishers must be at least 1".into()),
            "--channel-clients" => s.channel_clients = value,
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(s)
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("demo: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(s: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    let pubsub = PubSub::<[u8]>::new()?; // engine defaults

    // Topics, resolved once: publishers use the handles on their hot path.
    let market_count = (s.topics / 10).max(1);
    let chat_count = s.topics - market_count;
    let chat: Arc<[Topic]> = (0..chat_count)
        .map(|i| pubsub.topic(&format!("chat/room-{i}")))
        .collect::<Result<_, _>>()?;
    let market: Arc<[Topic]> = (0..market_count)
        .map(|i| pubsub.topic(&format!("market/SYM-{i}")))
        .collect::<Result<_, _>>()?;

    eprint!("setting up {} clients... ", s.clients + s.channel_clients);
    let setup = Instant::now();
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    // What the callback sinks received, in bytes: a stand-in for socket writes.
    let received_bytes = Arc::new(AtomicU64::new(0));
    let mut client_ids = Vec::with_capacity(s.clients);
    for _ in 0..s.clients {
        let id = pubsub.generate_client_id();
        let bytes = Arc::clone(&received_bytes);
        pubsub.register(id, move |frame: &Bytes| {
            bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        })?;
        pubsub.subscribe(id, &chat[rng.below(chat_count)])?;
        pubsub.subscribe(id, &chat[rng.below(chat_count)])?;
        // Skewed: low-numbered symbols are the popular ones.
        pubsub.subscribe(id, &market[rng.skewed(market_count)])?;
        client_ids.push(id);
    }

    // Channel sinks, each drained by its own thread; the last one is slow.
    let mut consumers = Vec::new();
    for i in 0..s.channel_clients {
        let slow = i + 1 == s.channel_clients;
        let id = pubsub.generate_client_id();
        let channel = if slow {
            pubsub.register_channel_with(id, ChannelConfig::new(256, OverflowPolicy::DropOldest))?
        } else {
            pubsub.register_channel(id)? // default: 1024 frames, DropNewest
        };
        for topic in market.iter() {
            pubsub.subscribe(id, topic)?;
        }
        consumers.push(thread::spawn(move || {
            let mut frames = 0u64;
            // Ends when the engine shuts down and the queue is drained.
            for _frame in channel.iter() {
                frames += 1;
                if slow && frames % 64 == 0 {
                    thread::sleep(Duration::from_millis(1)); // a consumer that falls behind
                }
            }
            (frames, channel.dropped())
        }));
    }
    eprintln!("done in {:.2?}", setup.elapsed());

    // The load.
    let running = Arc::new(AtomicBool::new(true));
    let client_ids: Arc<[_]> = client_ids.into();
    let mut publishers = Vec::new();
    for p in 0..s.publishers {
        let (pubsub, running) = (pubsub.clone(), Arc::clone(&running));
        let (chat, market, client_ids) = (chat.clone(), market.clone(), client_ids.clone());
        publishers.push(thread::spawn(move || -> Result<(), fanout::Error> {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (p as u64 + 1));
            let mut payload = Vec::with_capacity(64);
            let mut n = 0u64;
            while running.load(Ordering::Relaxed) {
                n += 1;
                payload.clear();
                if n % 2 == 0 && !client_ids.is_empty() {
                    // Chat: a line from a random client to one of the rooms, not echoed.
                    let from = client_ids[rng.below(client_ids.len())];
                    write!(
                        payload,
                        "{{\"from\":{},\"text\":\"message {n}\"}}",
                        from.as_u64()
                    )
                    .expect("writing to a Vec");
                    let room = &chat[rng.below(chat.len())];
                    pubsub.broadcast_from(from, room, &payload, &RawPayload)?;
                } else {
                    // Market data: a 16-byte price tick on a symbol, popular ones more often.
                    let symbol = &market[rng.skewed(market.len())];
                    payload.extend_from_slice(&n.to_be_bytes());
                    payload.extend_from_slice(&(1.0842f64 + (n % 100) as f64 * 1e-5).to_be_bytes());
                    pubsub.broadcast(symbol, &payload, &RawPayload)?;
                }
            }
            Ok(())
        }));
    }
    // Connect/disconnect cycles done, and the time they took in total (microseconds).
    let churn_cycles = Arc::new(AtomicU64::new(0));
    let churn_micros = Arc::new(AtomicU64::new(0));
    let churn = {
        let (pubsub, running) = (pubsub.clone(), Arc::clone(&running));
        let (chat, cycles) = (chat.clone(), Arc::clone(&churn_cycles));
        let micros = Arc::clone(&churn_micros);
        thread::spawn(move || -> Result<(), fanout::Error> {
            let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
            while running.load(Ordering::Relaxed) {
                // A client connects, joins three rooms, leaves one, disconnects.
                let cycle_start = Instant::now();
                let id = pubsub.generate_client_id();
                pubsub.register(id, |_frame: &Bytes| {})?;
                let rooms = [0; 3].map(|_| &chat[rng.below(chat.len())]);
                for room in rooms {
                    pubsub.subscribe(id, room)?;
                }
                pubsub.unsubscribe(id, rooms[0])?;
                pubsub.unregister(id)?;
                cycles.fetch_add(1, Ordering::Relaxed);
                micros.fetch_add(cycle_start.elapsed().as_micros() as u64, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
    };

    // Progress on stderr while the load runs.
    let duration = Duration::from_secs(s.seconds);
    let started = Instant::now();
    let start_stats = pubsub.stats();
    let mut progress = Progress::new(duration);
    while started.elapsed() < duration {
        thread::sleep(Duration::from_millis(100).min(duration));
        let stats = pubsub.stats();
        progress.show(started.elapsed(), stats.deliveries - start_stats.deliveries);
    }
    running.store(false, Ordering::Relaxed);
    for publisher in publishers {
        publisher.join().expect("publisher panicked")?;
    }
    churn.join().expect("churn thread panicked")?;
    let elapsed = started.elapsed();
    let stats = pubsub.stats();
    progress.finish();

    // Shutting down ends every channel: the consumers drain and report.
    pubsub.shutdown();
    let (mut channel_frames, mut slow_dropped, mut others_dropped) = (0, 0, 0);
    for (i, consumer) in consumers.into_iter().enumerate() {
        let (frames, dropped) = consumer.join().expect("consumer panicked");
        channel_frames += frames;
        if i + 1 == s.channel_clients {
            slow_dropped = dropped;
        } else {
            others_dropped += dropped;
        }
    }

    let secs = elapsed.as_secs_f64();
    let broadcasts = stats.broadcasts - start_stats.broadcasts;
    let deliveries = stats.deliveries - start_stats.deliveries;
    println!();
    println!(
        "fanout demo: {:.1} s, {} publisher thread{}, engine defaults",
        secs,
        s.publishers,
        if s.publishers == 1 { "" } else { "s" }
    );
    println!();
    let row = |name: &str, value: String, note: String| {
        println!("{}", format!("  {name:<14} {value:>14}  {note}").trim_end());
    };
    row(
        "clients",
        thousands(stats.clients as u64),
        format!(
            "{} callback sinks, {} channel sinks",
            thousands(s.clients as u64),
            s.channel_clients
        ),
    );
    row(
        "topics",
        thousands(stats.topics as u64),
        format!(
            "{} chat rooms, {} market symbols",
            thousands(chat_count as u64),
            thousands(market_count as u64)
        ),
    );
    row(
        "subscriptions",
        thousands(stats.subscriptions as u64),
        String::new(),
    );
    row(
        "frames",
        thousands(broadcasts),
        format!(
            "{}/s, each serialised once, {:.1} subscribers each on average",
            thousands((broadcasts as f64 / secs) as u64),
            deliveries as f64 / broadcasts.max(1) as f64
        ),
    );
    row(
        "deliveries",
        thousands(deliveries),
        format!(
            "{}/s ({} to channel sinks)",
            thousands((deliveries as f64 / secs) as u64),
            thousands(channel_frames)
        ),
    );
    row(
        "drops",
        thousands(stats.dropped),
        format!(
            "{} by the slow DropOldest channel, {} by the other (DropNewest) channels; \
             publishers never waited",
            thousands(slow_dropped),
            thousands(others_dropped)
        ),
    );
    row(
        "bytes out",
        format!(
            "{:.2} GB",
            received_bytes.load(Ordering::Relaxed) as f64 / 1e9
        ),
        "what callback sinks would write to sockets (frames shared, not copied)".into(),
    );
    let cycles = churn_cycles.load(Ordering::Relaxed);
    row(
        "churn",
        thousands(cycles),
        format!(
            "connect + 3 subscribes + unsubscribe + disconnect cycles, {:.2} ms each",
            churn_micros.load(Ordering::Relaxed) as f64 / 1000.0 / cycles.max(1) as f64
        ),
    );
    row(
        "panics",
        thousands(stats.panics),
        format!("{} disconnects", stats.disconnects),
    );
    Ok(())
}

/// A progress line on stderr: redrawn in place on a terminal, one line a second otherwise.
struct Progress {
    total: Duration,
    terminal: bool,
    last_line: Duration,
    last_deliveries: u64,
    last_at: Duration,
}

impl Progress {
    fn new(total: Duration) -> Self {
        Self {
            total,
            terminal: std::io::stderr().is_terminal(),
            last_line: Duration::ZERO,
            last_deliveries: 0,
            last_at: Duration::ZERO,
        }
    }

    fn show(&mut self, elapsed: Duration, deliveries: u64) {
        if !self.terminal && elapsed - self.last_line < Duration::from_secs(1) {
            return;
        }
        let rate = (deliveries - self.last_deliveries) as f64
            / (elapsed - self.last_at).as_secs_f64().max(1e-9);
        (self.last_deliveries, self.last_at, self.last_line) = (deliveries, elapsed, elapsed);
        let done = (elapsed.as_secs_f64() / self.total.as_secs_f64().max(1e-9)).min(1.0);
        let bar = (done * 30.0) as usize;
        let line = format!(
            "[{}{}] {:>4.1}/{:.0} s  {:>12} deliveries/s",
            "#".repeat(bar),
            " ".repeat(30 - bar),
            elapsed.as_secs_f64().min(self.total.as_secs_f64()),
            self.total.as_secs_f64(),
            thousands(rate as u64)
        );
        if self.terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A tiny deterministic random number generator, so the example needs no `rand`.
struct XorShift(u64);

impl XorShift {
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// In `0..n`, low numbers far more often than high ones (popular symbols).
    fn skewed(&mut self, n: usize) -> usize {
        let k = self.below(n) + 1;
        self.below(k)
    }
}
