//! A 60 Hz game server tick: every tick, each zone's world snapshot goes to every player
//! in that zone.
//!
//! What it shows:
//!
//! - **pre-resolved topics**: one [`Topic`] per zone, made once with
//!   [`PubSub::topic`]; broadcasting through it skips validating and hashing the name;
//! - **callback sinks**: each player is a `Fn(&Bytes)` that stands in for a WebSocket
//!   writer's non-blocking enqueue — it keeps the latest frame (a cheap `Bytes` clone) and
//!   counts what it got;
//! - **serialise once**: a zone's snapshot is encoded by a binary
//!   [`Serialiser`] once per tick, whatever the zone's population;
//! - players **moving between zones** during the tick: every move's `Unsubscribe` and
//!   `Subscribe` go to the engine as one batch ([`PubSub::apply`]);
//! - the **tick cost** distribution (hdrhistogram): p50/p99/max against the 16.7 ms
//!   budget.
//!
//! ```text
//! cargo run --release --example game_tick
//! cargo run --release --example game_tick -- --players 1000 --zones 10 --ticks 30
//! ```
//!
//! Flags: `--players N` (default 10000), `--zones N` (default 100), `--ticks N`
//! (default 300, 5 s at 60 Hz), `--migrations N` (players changing zone per tick,
//! default 10), `--hz N` (tick rate, default 60; 0 = back to back, no sleeping).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use fanout::transport::{SerialiseError, Serialiser};
use fanout::{Bytes, ClientId, Mutation, PubSub, Topic};
use hdrhistogram::Histogram;

/// The world is a square this wide; zone `z` is the `z`-th vertical strip of it.
const WORLD: f32 = 10_000.0;

#[derive(Debug, Clone, Copy)]
struct Player {
    id: u32,
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
}

/// Stands in for a player's connection: what its send callback did.
#[derive(Default)]
struct Connection {
    frames: AtomicU64,
    bytes: AtomicU64,
    /// The latest snapshot, as a real writer would hold it until the socket is writable.
    latest: Mutex<Option<Bytes>>,
}

/// Encodes one zone's snapshot: `tick: u64`, `count: u32`, then per player
/// `id: u32, x: f32, y: f32`, all big-endian. Runs once per zone per tick.
struct SnapshotCodec {
    tick: u64,
}

impl Serialiser<[Player]> for SnapshotCodec {
    fn serialise(&self, players: &[Player], out: &mut BytesMut) -> Result<(), SerialiseError> {
        out.put_u64(self.tick);
        out.put_u32(players.len() as u32);
        for p in players {
            out.put_u32(p.id);
            out.put_f32(p.x);
            out.put_f32(p.y);
        }
        Ok(())
    }

    fn size_hint(&self, players: &[Player]) -> usize {
        12 + players.len() * 12
    }
}

struct Settings {
    players: usize,
    zones: usize,
    ticks: u64,
    migrations: usize,
    hz: u32,
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("game_tick: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("game_tick: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(s: &Settings) -> Result<bool, Box<dyn std::error::Error>> {
    let pubsub = PubSub::<[Player]>::new()?;

    // One pre-resolved topic per zone.
    let zone_topics: Vec<Topic> = (0..s.zones)
        .map(|z| pubsub.topic(&format!("zone/{z}")))
        .collect::<Result<_, _>>()?;

    // Players, spread evenly over the zones, each with a callback sink.
    let zone_width = WORLD / s.zones as f32;
    let mut zones: Vec<Vec<Player>> = vec![Vec::new(); s.zones];
    let mut ids: Vec<ClientId> = Vec::with_capacity(s.players);
    let mut connections = Vec::with_capacity(s.players);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let setup = Instant::now();
    for i in 0..s.players {
        let zone = i % s.zones;
        let id = pubsub.generate_client_id();
        let connection = Arc::new(Connection::default());
        let conn = Arc::clone(&connection);
        pubsub.register(id, move |frame: &Bytes| {
            // Must not block: it runs on the tick thread. Keep the latest, count it.
            conn.frames.fetch_add(1, Ordering::Relaxed);
            conn.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
            *conn.latest.lock().unwrap() = Some(frame.clone());
        })?;
        pubsub.subscribe(id, &zone_topics[zone])?;
        ids.push(id);
        connections.push(connection);
        zones[zone].push(Player {
            id: i as u32,
            x: (zone as f32 + rng.unit()) * zone_width,
            y: rng.unit() * WORLD,
            vx: rng.unit() - 0.5,
            vy: rng.unit() - 0.5,
        });
    }
    println!(
        "{} players in {} zones ({} per zone), set up in {:.2?}; {} ticks at {}",
        s.players,
        s.zones,
        s.players / s.zones.max(1),
        setup.elapsed(),
        s.ticks,
        if s.hz == 0 {
            "full speed".to_owned()
        } else {
            format!("{} Hz", s.hz)
        },
    );

    let budget = if s.hz == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(1) / s.hz
    };
    // Microseconds per tick: the whole tick, and its broadcast phase alone.
    let mut tick_cost = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut broadcast_cost = tick_cost.clone();
    let mut migrated = 0u64;
    let mut deliveries = 0u64;
    let started = Instant::now();
    for tick in 0..s.ticks {
        let tick_start = Instant::now();

        // 1. Simulate: everyone moves a little, staying inside their zone's strip.
        for (z, zone) in zones.iter_mut().enumerate() {
            let (left, right) = (z as f32 * zone_width, (z + 1) as f32 * zone_width - 0.01);
            for p in zone.iter_mut() {
                p.x = (p.x + p.vx).clamp(left, right);
                p.y = (p.y + p.vy).clamp(0.0, WORLD - 0.01);
            }
        }

        // 2. A few players walk into another zone: move their subscriptions with them,
        //    all in one batch of the engine's writer (`apply`): one snapshot publication.
        let mut moves = Vec::new();
        for _ in 0..s.migrations.min(s.players) {
            let from = rng.below(s.zones);
            if zones[from].is_empty() {
                continue;
            }
            let to = (from + 1 + rng.below(s.zones.max(2) - 1)) % s.zones;
            let which = rng.below(zones[from].len());
            let mut player = zones[from].swap_remove(which);
            player.x = (to as f32 + 0.5) * zone_width; // now standing in its new zone
            let id = ids[player.id as usize];
            moves.push(Mutation::Unsubscribe(id, zone_topics[from].clone()));
            moves.push(Mutation::Subscribe(id, zone_topics[to].clone()));
            zones[to].push(player);
            migrated += 1;
        }
        if !moves.is_empty() {
            for result in pubsub.apply(moves)? {
                result?; // each mutation's own outcome
            }
        }

        // 3. Broadcast each zone's snapshot to its players: serialised once per zone.
        let broadcast_start = Instant::now();
        let codec = SnapshotCodec { tick };
        for (topic, players) in zone_topics.iter().zip(&zones) {
            deliveries += pubsub.broadcast(topic, players.as_slice(), &codec)? as u64;
        }

        broadcast_cost.record(micros(broadcast_start.elapsed()))?;
        tick_cost.record(micros(tick_start.elapsed()))?;
        // Sleep out the rest of the tick.
        if let Some(rest) = budget.checked_sub(tick_start.elapsed()) {
            thread::sleep(rest);
        }
    }
    let wall = started.elapsed();

    // Every player got exactly one snapshot per tick, migrations included.
    let frames: Vec<u64> = connections
        .iter()
        .map(|c| c.frames.load(Ordering::Relaxed))
        .collect();
    let bytes: u64 = connections
        .iter()
        .map(|c| c.bytes.load(Ordering::Relaxed))
        .sum();
    let holding = connections
        .iter()
        .filter(|c| c.latest.lock().unwrap().is_some())
        .count();
    let all_exact = frames.iter().all(|&f| f == s.ticks);
    let stats = pubsub.stats();

    let ms = |us: u64| us as f64 / 1000.0;
    println!();
    println!("cost per tick over {} ticks, in ms:", tick_cost.len());
    println!(
        "  {:<34} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, h) in [
        ("whole tick (simulate+migrate+send)", &tick_cost),
        ("broadcasts alone", &broadcast_cost),
    ] {
        println!(
            "  {:<34} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            name,
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.90)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
        );
    }
    if s.hz > 0 {
        println!(
            "  the tick budget at {} Hz is {:.3} ms: p99 uses {:.1}% of it",
            s.hz,
            budget.as_secs_f64() * 1000.0,
            100.0 * ms(tick_cost.value_at_quantile(0.99)) / (budget.as_secs_f64() * 1000.0)
        );
    }
    println!();
    println!(
        "{} deliveries ({:.0}/s over {:.2?}); {} zone changes; {:.1} MB of frames a socket \
         writer would send, each frame serialised once per zone and shared by reference",
        deliveries,
        deliveries as f64 / wall.as_secs_f64(),
        wall,
        migrated,
        bytes as f64 / 1e6,
    );
    println!(
        "engine: {} clients, {} topics, {} broadcasts, {} deliveries, {} dropped, {} panics",
        stats.clients,
        stats.topics,
        stats.broadcasts,
        stats.deliveries,
        stats.dropped,
        stats.panics
    );
    println!(
        "{}: every player got exactly {} snapshots ({} hold a latest frame)",
        if all_exact { "ok" } else { "MISMATCH" },
        s.ticks,
        holding
    );
    pubsub.shutdown();
    Ok(all_exact)
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// A tiny deterministic random number generator, so the example needs no `rand`.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0.0..1.0`.
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const USAGE: &str = "\
usage: game_tick [--players N] [--zones N] [--ticks N] [--migrations N] [--hz N]

  --players N     player clients (default 10000)
  --zones N       zones, one topic each (default 100, at least 1)
  --ticks N       ticks to run (default 300)
  --migrations N  players changing zone per tick (default 10)
  --hz N          ticks per second (default 60; 0 = back to back)
  --help          show this help";

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings {
        players: 10_000,
        zones: 100,
        ticks: 300,
        migrations: 10,
        hz: 60,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let raw = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let value: u32 = raw
            .parse()
            .map_err(|_| format!("{flag}: {raw:?} is not an integer from 0 to 4294967295"))?;
        match flag.as_str() {
            "--players" => s.players = value as usize,
            "--zones" if value >= 1 => s.zones = value as usize,
            "--zones" => return Err("--zones must be at least 1".into()),
            "--ticks" => s.ticks = u64::from(value),
            "--migrations" => s.migrations = value as usize,
            "--hz" => s.hz = value,
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(s)
}
