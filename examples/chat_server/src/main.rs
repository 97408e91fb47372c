//! `chat_server`: the command line around [`fanout_chat_server::ChatServer`] — see the
//! library's docs for what the server shows and how it is built.
//!
//! ```text
//! cargo run --release --bin chat_server -- --moderator-token s3cret
//! cargo run --release --bin chat_server -- --port 0 --run-for-secs 5
//! cargo run --release --bin chat_server -- --help
//! ```
//!
//! The first line on stdout is always `listening on 127.0.0.1:PORT`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use fanout_chat_server::{init_logging, ChatServer, Config};

const USAGE: &str = "\
usage: chat_server [--port N] [--time-interval-ms N] [--run-for-secs N]
                   [--moderator-token T] [--bridge URL] [--max-message BYTES]
                   [--write-timeout-ms N] [--ping-interval-ms N] [--idle-timeout-ms N]
                   [--queue N] [--max-rate N] [--burst N] [--max-backlog BYTES]
                   [--send-buffer BYTES] [--worker-threads N]

  --port N              TCP port on 127.0.0.1 (default 8080; 0 picks a free one)
  --time-interval-ms N  how often the server time is pushed to every connection
                        (default 1000); each push carries its send time (sent_us)
  --run-for-secs N      stop after N seconds (default: run until Ctrl-C)
  --moderator-token T   a connection that sends {\"moderate\":\"T\"} becomes a moderator:
                        its console sees every room (room.>) and it may join the
                        private room `staff` (default: no moderators)
  --bridge URL          share rooms with every chat server bridged to this broker:
                        redis://127.0.0.1:6379/ (needs `--features redis`) or
                        nats://127.0.0.1:4222 (needs `--features nats`); chat lines
                        reach every server, and member lists span every server
  --redis URL           the same as --bridge URL
  --max-message BYTES   largest message a client may send; larger: close 1009
                        (default 65536)
  --write-timeout-ms N  a client whose frames wait longer than this for its socket is
                        disconnected as too slow (default 5000); it has as long again
                        to read through to its close frame
  --ping-interval-ms N  how often every client is pinged (default 20000)
  --idle-timeout-ms N   a client heard nothing from (not even a pong) for this long is
                        closed (default 60000)
  --queue N             frames the engine queues per connection (default 128)
  --max-rate N          lines a client may send per second after its burst; faster
                        clients are read no faster (default 20; 0: unlimited)
  --burst N             lines a client may send at once (default 5)
  --max-backlog BYTES   unsent bytes per client before it is too slow (default 1048576)
  --send-buffer BYTES   SO_SNDBUF of each connection (default: the kernel's)
  --worker-threads N    runtime threads (default: one per core)
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
        let config = &mut args.config;
        let ms = |n: u64| Duration::from_millis(n.max(1));
        let size = |n: u64| usize::try_from(n.max(1)).unwrap_or(usize::MAX);
        match flag.as_str() {
            "--port" => {
                let port = value("--port")?;
                config.port =
                    u16::try_from(port).map_err(|_| format!("--port: {port} is over 65535"))?;
            }
            "--time-interval-ms" => config.time_interval = ms(value(&flag)?),
            "--run-for-secs" => args.run_for = Some(Duration::from_secs(value(&flag)?)),
            "--max-message" => config.max_message = size(value(&flag)?),
            "--write-timeout-ms" => config.write_timeout = ms(value(&flag)?),
            "--ping-interval-ms" => config.ping_interval = ms(value(&flag)?),
            "--idle-timeout-ms" => config.idle_timeout = ms(value(&flag)?),
            "--queue" => config.queue = size(value(&flag)?),
            "--max-rate" => config.max_rate = u32::try_from(value(&flag)?).unwrap_or(u32::MAX),
            "--burst" => config.burst = u32::try_from(value(&flag)?).unwrap_or(u32::MAX),
            "--max-backlog" => config.max_backlog = size(value(&flag)?),
            "--send-buffer" => config.send_buffer = Some(size(value(&flag)?)),
            "--worker-threads" => config.worker_threads = size(value(&flag)?),
            "--moderator-token" => {
                let token = argv.next().ok_or("--moderator-token needs a value")?;
                if token.is_empty() {
                    return Err("--moderator-token: the token is empty".into());
                }
                config.moderator_token = Some(token);
            }
            "--bridge" | "--redis" => {
                let url = argv.next().ok_or_else(|| format!("{flag} needs a URL"))?;
                config.bridge = Some(url);
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if args.config.idle_timeout <= args.config.ping_interval {
        return Err("--idle-timeout-ms must be longer than --ping-interval-ms".into());
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

    init_logging(); // the engine's events, on stderr
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

    // Stop on Ctrl-C (or SIGTERM), or after --run-for-secs.
    let run_for = args.run_for;
    let why = server.block_on(async move {
        let deadline = async {
            match run_for {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        let terminate = async {
            #[cfg(unix)]
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                return;
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = terminate => "SIGTERM",
            _ = deadline => "--run-for-secs elapsed",
        }
    });
    println!("{why}: shutting down");
    server.shutdown();
    println!("stopped");
    ExitCode::SUCCESS
}
