//! A WebSocket chat server with rooms, presence, a moderator console, a private room
//! and a server clock, on `PubSub`.
//!
//! What it shows:
//!
//! - one client id and one **channel sink** per WebSocket connection
//!   ([`PubSub::register_channel`](fanout::PubSub::register_channel)), drained by a
//!   writer thread that `select!`s over the client's frames and a shutdown signal;
//! - rooms as topics `room.NAME`: join/leave are `subscribe`/`unsubscribe`, chat lines
//!   go out with `broadcast_from` (everyone in the room but the speaker), and a client
//!   that disconnects leaves every room it was in;
//! - **presence**: a member is `track`ed in its room with its display name as metadata
//!   (`{"name":"Alice"}` sets it) and `untrack`ed when it leaves; the engine sends
//!   Presence frames (kind 2) to the room, `list` gives a newcomer the members, and the
//!   page's member list is built from them;
//! - **wildcards**: a moderator's console subscribes to `room.>` and sees every room's
//!   messages and presence (`--moderator-token T`, then `{"moderate":"T"}`);
//! - **authorization**: the `can_subscribe` hook keeps the private room `staff`
//!   (`room.staff`) and every wildcard pattern (`room.>`, `room.*`, …) for moderators;
//!   anyone else gets an error reply and nothing changes;
//! - a background thread pushing the server time to topic `time`, which every
//!   connection is subscribed to, through a pre-resolved `Topic`;
//! - a JSON [`Serialiser`](fanout::transport::Serialiser): each broadcast is serialised
//!   once, however many clients are in the room;
//! - a browser client (`GET /` on the same port) whose JavaScript decodes the binary
//!   Push and Presence frames per the documented wire format.
//!
//! No async runtime: sync `tungstenite` over `std::net`, two threads per connection.
//! The server logic and its protocol are in `server.rs`, which `examples/chat_server/tests/chat_server.rs`
//! runs in-process.
//!
//! Run it, then open <http://127.0.0.1:8080/> in two browser tabs:
//!
//! ```text
//! cargo run --release --bin chat_server -- --moderator-token s3cret
//! cargo run --release --bin chat_server -- --port 0 --run-for-secs 5
//! ```
//!
//! Enter `s3cret` in a page's "moderator token" box to open its console: every room
//! appears with its members, every room's lines show in its log, and it may join
//! `staff`. Without `--moderator-token` nobody is a moderator.
//!
//! Flags: `--port N` (default 8080; 0 picks a free port), `--time-interval-ms N`
//! (default 1000), `--run-for-secs N` (stop after N seconds; default: until Ctrl-C),
//! `--moderator-token T` (the token that makes a connection a moderator),
//! `--redis URL` (share rooms with every server bridged to that Redis; build with
//! `--features redis`):
//!
//! ```text
//! cargo run --release --features redis --bin chat_server -- --port 8080 --redis redis://127.0.0.1:6379/
//! cargo run --release --features redis --bin chat_server -- --port 8081 --redis redis://127.0.0.1:6379/
//! ```
//!
//! A line typed in a browser on one server appears in the same room on the other.
//! Member lists and counts ("N here") are per server (the bridge carries Push frames,
//! not presence), and each server's clock reaches both.
//! The first line on stdout is always `listening on 127.0.0.1:PORT`.

mod server;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crossbeam_channel::{after, bounded, never, select};

use server::{ChatServer, Config};

const USAGE: &str = "\
usage: chat_server [--port N] [--time-interval-ms N] [--run-for-secs N]
                   [--moderator-token T] [--redis URL]

  --port N              TCP port on 127.0.0.1 (default 8080; 0 picks a free one)
  --time-interval-ms N  how often the server time is pushed (default 1000)
  --run-for-secs N      stop after N seconds (default: run until Ctrl-C)
  --moderator-token T   a connection that sends {\"moderate\":\"T\"} becomes a moderator:
                        its console sees every room (room.>) and it may join the
                        private room `staff` (default: no moderators)
  --redis URL           share rooms with every chat server bridged to this Redis
                        (redis://127.0.0.1:6379/; needs `--features redis`)
  --help                show this help";

struct Args {
    config: Config,
    run_for: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        config: Config::default(),
        run_for: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let mut value = |name: &str| -> Result<u64, String> {
            let raw = argv.next().ok_or_else(|| format!("{name} needs a value"))?;
            raw.parse()
                .map_err(|_| format!("{name}: {raw:?} is not a non-negative integer"))
        };
        match flag.as_str() {
            "--port" => {
                let port = value("--port")?;
                args.config.port =
                    u16::try_from(port).map_err(|_| format!("--port: {port} is over 65535"))?;
            }
            "--time-interval-ms" => {
                let ms = value("--time-interval-ms")?.max(1);
                args.config.time_interval = Duration::from_millis(ms);
            }
            "--run-for-secs" => args.run_for = Some(Duration::from_secs(value("--run-for-secs")?)),
            "--moderator-token" => {
                let token = argv.next().ok_or("--moderator-token needs a value")?;
                if token.is_empty() {
                    return Err("--moderator-token: the token is empty".into());
                }
                args.config.moderator_token = Some(token);
            }
            "--redis" => {
                let url = argv.next().ok_or("--redis needs a URL")?;
                args.config.redis = Some(url);
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("chat_server: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let server = match ChatServer::start(args.config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("chat_server: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    println!("listening on {addr}");
    println!("open http://{addr}/ in a browser (two tabs to chat); Ctrl-C stops");
    let _ = std::io::stdout().flush();

    // Stop on Ctrl-C, or after --run-for-secs.
    let (ctrl_c, ctrl_c_pressed) = bounded::<()>(1);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = ctrl_c.try_send(());
    }) {
        eprintln!("chat_server: cannot install the Ctrl-C handler: {e}");
    }
    let deadline = args.run_for.map_or_else(never, after);
    select! {
        recv(ctrl_c_pressed) -> _ => println!("Ctrl-C: shutting down"),
        recv(deadline) -> _ => println!("--run-for-secs elapsed: shutting down"),
    }
    server.shutdown();
    println!("stopped");
    ExitCode::SUCCESS
}
