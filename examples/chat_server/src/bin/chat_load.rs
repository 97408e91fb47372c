//! `chat_load`: the chat server under load, measured from outside.
//!
//! It starts `chat_server` as a child process (the binary beside this one, or
//! `--server-bin PATH`; or it connects to one given by `--server ADDR`, optionally with
//! `--server-pid PID` for its memory), raises its own open-file limit, and measures:
//!
//! 1. **idle connections**: `--connections N` WebSocket clients connect and read their
//!    welcome; the server's resident memory (`VmRSS` in `/proc/PID/status`) after
//!    them, minus before, per connection (target ≤ 16 KiB), and its thread count;
//! 2. **time push latency**: for `--pushes K` pushes of the server clock (every
//!    `--time-interval-ms`), each client subtracts the push's `sent_us` stamp from its
//!    own clock on receipt (same host, same clock); p50/p99/max over all receipts
//!    (target p99 ≤ 50 ms), and every push must reach all N clients;
//! 3. **chat exactness**: `--chat-clients C` more clients in `--rooms R` rooms (client
//!    i in room i mod R) each say `--messages M` lines once everyone has joined; every
//!    client must receive each other member's M lines exactly once, in the order they
//!    were said, and never its own.
//!
//! Any violation (a push that did not reach everyone, a missing, duplicated, reordered,
//! echoed or misrouted line, a connection that failed) is printed and the exit code is
//! 1; missed performance targets are reported as "missed" but do not fail the run
//! (unless `--enforce-targets`).
//!
//! ```text
//! cargo build --release -p fanout-chat-server
//! target/release/chat_load                       # 10,000 connections, the full run
//! target/release/chat_load --connections 200 --pushes 3 --time-interval-ms 100 \
//!     --chat-clients 40 --rooms 4 --messages 20   # what CI runs (debug build)
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fanout::transport::{decode_any, Frame};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const USAGE: &str = "\
usage: chat_load [--connections N] [--pushes K] [--time-interval-ms N]
                 [--chat-clients C] [--rooms R] [--messages M]
                 [--server ADDR [--server-pid PID] | --server-bin PATH]
                 [--connect-concurrency N] [--timeout-secs N] [--enforce-targets]

  --connections N         idle WebSocket connections (default 10000)
  --pushes K              time pushes measured (default 10)
  --time-interval-ms N    the child server's push interval (default 500)
  --chat-clients C        chatting clients (default 200)
  --rooms R               rooms they are spread over (default 10)
  --messages M            lines each chatting client says (default 50)
  --server ADDR           use a running server instead of starting one
  --server-pid PID        ... and read its memory from /proc/PID/status
  --server-bin PATH       the chat_server binary to start (default: beside chat_load)
  --connect-concurrency N handshakes in flight at once (default 256)
  --timeout-secs N        limit for each phase (default 60)
  --enforce-targets       exit 1 when a performance target is missed too";

struct Args {
    connections: usize,
    pushes: usize,
    time_interval: Duration,
    chat_clients: usize,
    rooms: usize,
    messages: usize,
    server: Option<SocketAddr>,
    server_pid: Option<u32>,
    server_bin: Option<String>,
    concurrency: usize,
    phase_timeout: Duration,
    enforce: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        connections: 10_000,
        pushes: 10,
        time_interval: Duration::from_millis(500),
        chat_clients: 200,
        rooms: 10,
        messages: 50,
        server: None,
        server_pid: None,
        server_bin: None,
        concurrency: 256,
        phase_timeout: Duration::from_secs(60),
        enforce: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |raw: String| -> Result<usize, String> {
            raw.parse()
                .map_err(|_| format!("{raw:?} is not a non-negative integer"))
        };
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--connections" => args.connections = number(value()?)?,
            "--pushes" => args.pushes = number(value()?)?.max(1),
            "--time-interval-ms" => {
                args.time_interval = Duration::from_millis(number(value()?)?.max(1) as u64)
            }
            "--chat-clients" => args.chat_clients = number(value()?)?,
            "--rooms" => args.rooms = number(value()?)?.max(1),
            "--messages" => args.messages = number(value()?)?,
            "--server" => {
                let raw = value()?;
                args.server = Some(raw.parse().map_err(|_| format!("--server: {raw:?}"))?);
            }
            "--server-pid" => args.server_pid = Some(number(value()?)? as u32),
            "--server-bin" => args.server_bin = Some(value()?),
            "--connect-concurrency" => args.concurrency = number(value()?)?.max(1),
            "--timeout-secs" => {
                args.phase_timeout = Duration::from_secs(number(value()?)?.max(1) as u64)
            }
            "--enforce-targets" => args.enforce = true,
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("chat_load: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let needed = args.connections + args.chat_clients + 256;
    if let Err(e) = raise_fd_limit(needed as u64) {
        eprintln!("chat_load: {e}");
        return ExitCode::FAILURE;
    }
    let mut child = None;
    let (addr, pid) = match args.server {
        Some(addr) => (addr, args.server_pid),
        None => match start_server(&args) {
            Ok((addr, started)) => {
                let pid = started.id();
                child = Some(started);
                (addr, Some(pid))
            }
            Err(e) => {
                eprintln!("chat_load: cannot start the server: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    println!("chat_load: server {addr} (pid {pid:?})");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat_load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(run(&args, addr, pid));
    drop(runtime);
    if let Some(child) = child {
        stop_server(child);
    }
    println!();
    for line in &report.lines {
        println!("{line}");
    }
    for violation in report.violations.iter().take(20) {
        println!("VIOLATION: {violation}");
    }
    let failed = !report.violations.is_empty() || (args.enforce && report.missed > 0);
    if failed {
        println!(
            "chat_load: FAILED ({} violations, {} targets missed)",
            report.violations.len(),
            report.missed
        );
        ExitCode::FAILURE
    } else {
        println!("chat_load: OK ({} targets missed)", report.missed);
        ExitCode::SUCCESS
    }
}

/// Raises the soft `RLIMIT_NOFILE` to `needed` (at most the hard limit). The child
/// server inherits it.
fn raise_fd_limit(needed: u64) -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err("getrlimit(RLIMIT_NOFILE) failed".into());
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    if limit.rlim_max < needed {
        return Err(format!(
            "{needed} file descriptors needed, the hard limit is {}: fewer --connections, or raise it",
            limit.rlim_max
        ));
    }
    limit.rlim_cur = needed;
    // SAFETY: `limit` is a valid rlimit whose soft value is within its hard value.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err("setrlimit(RLIMIT_NOFILE) failed".into());
    }
    Ok(())
}

/// Starts `chat_server --port 0 ...` and reads its address from its first line.
fn start_server(args: &Args) -> Result<(SocketAddr, Child), String> {
    let bin = match &args.server_bin {
        Some(bin) => bin.into(),
        None => {
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            me.with_file_name(format!("chat_server{}", std::env::consts::EXE_SUFFIX))
        }
    };
    let mut child = Command::new(&bin)
        .args(["--port", "0", "--time-interval-ms"])
        .arg(args.time_interval.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .ok_or("the server printed nothing")?
        .map_err(|e| e.to_string())?;
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("unexpected first line {first:?}"))?;
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok((addr, child))
}

/// SIGTERM (a graceful shutdown), then wait; kill it if it takes too long.
fn stop_server(mut child: Child) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A field of `/proc/PID/status`, in its unit (kB for memory).
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time a process has used (user + system), from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces, so split after ')').
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

#[derive(Default)]
struct Report {
    lines: Vec<String>,
    violations: Vec<String>,
    missed: usize,
}

impl Report {
    fn target(&mut self, what: String, met: bool) {
        if !met {
            self.missed += 1;
        }
        self.lines
            .push(format!("{what}: {}", if met { "met" } else { "MISSED" }));
    }
}

type Ws = WebSocketStream<TcpStream>;

/// The load process holds as many connections as the server: small buffers here too.
fn client_config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 4096;
    config.write_buffer_size = 0;
    config.max_message_size = Some(1 << 20);
    config.max_frame_size = Some(1 << 20);
    config
}

async fn connect(addr: SocketAddr) -> Result<Ws, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}/"),
        stream,
        Some(client_config()),
    )
    .await
    .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// A decoded Push frame's topic and JSON payload, or `None` for anything else.
fn push_of(message: &Message) -> Option<(String, serde_json::Value)> {
    let Message::Binary(frame) = message else {
        return None;
    };
    match decode_any(frame).ok()? {
        Frame::Push(push) => Some((
            push.topic.to_owned(),
            serde_json::from_slice(push.payload).ok()?,
        )),
        Frame::Presence(_) => None,
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// Reads the welcome: the client's public id.
async fn welcome(ws: &mut Ws) -> Result<u64, String> {
    while let Some(message) = ws.next().await {
        let message = message.map_err(|e| format!("read: {e}"))?;
        if let Some((topic, event)) = push_of(&message) {
            if topic == "welcome" {
                return event["client"]
                    .as_u64()
                    .ok_or("a welcome without an id".into());
            }
        }
    }
    Err("closed before the welcome".into())
}

/// Resolves once the watched flag is `true` (the guard is dropped inside).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

#[derive(Deserialize)]
struct TimeStamp {
    sent_us: u64,
}

/// A time push's `sent_us`, or `None` for any other frame.
fn time_stamp(message: &Message) -> Option<u64> {
    let Message::Binary(frame) = message else {
        return None;
    };
    match decode_any(frame).ok()? {
        Frame::Push(push) if push.topic == "time" => Some(
            serde_json::from_slice::<TimeStamp>(push.payload)
                .ok()?
                .sent_us,
        ),
        _ => None,
    }
}

/// What a connection records while the push window is open.
struct Window {
    open: AtomicBool,
    /// Set when the connections are to close.
    done: AtomicBool,
}

/// One idle connection: reads everything; while the window is open, records each time
/// push as (sent_us, latency µs). Ends when `stop` says so; returns its samples.
async fn idle_client(mut ws: Ws, window: Arc<Window>) -> Result<Vec<(u64, u64)>, String> {
    let mut samples = Vec::new();
    // Nothing but the socket is awaited (no stop signal to register with per message):
    // `done` is seen on the next frame, at the latest the next clock push.
    while let Some(message) = ws.next().await {
        let message = message.map_err(|e| format!("read: {e}"))?;
        if let Message::Close(frame) = &message {
            return Err(format!("closed by the server: {frame:?}"));
        }
        if window.done.load(Ordering::Relaxed) {
            let _ = ws.close(None).await;
            return Ok(samples);
        }
        if !window.open.load(Ordering::Relaxed) {
            continue;
        }
        // The receipt time first; then only the stamp is parsed.
        let received = now_us();
        if let Some(sent) = time_stamp(&message) {
            samples.push((sent, received.saturating_sub(sent)));
        }
    }
    Err("closed by the server".into())
}

async fn run(args: &Args, addr: SocketAddr, pid: Option<u32>) -> Report {
    let mut report = Report::default();
    let rss = |pid: Option<u32>| pid.and_then(|p| proc_status(p, "VmRSS"));
    sleep(Duration::from_millis(300)).await; // let the server settle
    let rss_before = rss(pid);

    // Phase 1: N idle connections.
    let window = Arc::new(Window {
        open: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    let started = Instant::now();
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let mut idle = JoinSet::new();
    for _ in 0..args.connections {
        let (gate, window, connected, failed) = (
            Arc::clone(&gate),
            Arc::clone(&window),
            Arc::clone(&connected),
            Arc::clone(&failed),
        );
        idle.spawn(async move {
            let result = async {
                let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                let mut ws = connect(addr).await?;
                welcome(&mut ws).await?;
                drop(permit);
                connected.fetch_add(1, Ordering::Relaxed);
                idle_client(ws, window).await
            }
            .await;
            if result.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            result
        });
    }
    let all_in = timeout(args.phase_timeout, async {
        while connected.load(Ordering::Relaxed) < args.connections {
            if failed.load(Ordering::Relaxed) > 0 {
                break; // its error is collected below
            }
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let connect_time = started.elapsed();
    let n = connected.load(Ordering::Relaxed);
    if all_in.is_err() || n < args.connections {
        report.violations.push(format!(
            "only {n} of {} connections came up within {:?}",
            args.connections, args.phase_timeout
        ));
    }
    report.lines.push(format!(
        "connections: {n} up in {:.2} s",
        connect_time.as_secs_f64()
    ));
    // Let every connection receive a push or two (the server's first writes), then
    // measure.
    sleep(args.time_interval * 2 + Duration::from_millis(500)).await;
    match (rss_before, rss(pid), pid) {
        (Some(before), Some(after), Some(pid)) if n > 0 => {
            let per = (after.saturating_sub(before)) as f64 / n as f64;
            let threads = proc_status(pid, "Threads").unwrap_or(0);
            report.lines.push(format!(
                "server RSS: {before} kB before, {after} kB with {n} connections; {threads} threads"
            ));
            report.target(
                format!("RSS per connection: {per:.1} KiB (target <= 16 KiB)"),
                per <= 16.0,
            );
        }
        _ => report
            .lines
            .push("server RSS: not measured (no pid)".to_owned()),
    }

    // Phase 2: K time pushes to all N.
    let cpu = |pid: Option<u32>| pid.and_then(cpu_time);
    let (server_cpu_before, own_cpu_before) = (cpu(pid), cpu(Some(std::process::id())));
    let window_start = now_us();
    window.open.store(true, Ordering::Relaxed);
    sleep(args.time_interval * args.pushes as u32 + args.time_interval / 2).await;
    let window_end = now_us();
    let (server_cpu_after, own_cpu_after) = (cpu(pid), cpu(Some(std::process::id())));
    sleep(Duration::from_secs(1)).await; // stragglers of the last push
    window.open.store(false, Ordering::Relaxed);
    window.done.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    let mut failures = 0;
    let mut first_failure = None;
    while let Some(done) = idle.join_next().await {
        match done {
            Ok(Ok(mut mine)) => samples.append(&mut mine),
            Ok(Err(e)) => {
                failures += 1;
                first_failure.get_or_insert(e);
            }
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert(e.to_string());
            }
        }
    }
    if failures > 0 {
        report.violations.push(format!(
            "{failures} idle connections failed, first: {}",
            first_failure.unwrap_or_default()
        ));
    }
    samples.retain(|&(sent, _)| sent >= window_start && sent <= window_end);
    let mut reach: HashMap<u64, usize> = HashMap::new();
    for &(sent, _) in &samples {
        *reach.entry(sent).or_default() += 1;
    }
    let mut latencies: Vec<u64> = samples.iter().map(|&(_, l)| l).collect();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    let short: Vec<_> = reach.values().filter(|&&r| r < args.connections).collect();
    report.lines.push(format!(
        "time pushes: {} in the window, {} receipts; each reached {} of {} connections",
        reach.len(),
        latencies.len(),
        reach.values().min().copied().unwrap_or(0),
        args.connections
    ));
    if reach.is_empty() && args.connections > 0 {
        report.violations.push("no time push arrived".into());
    }
    if !short.is_empty() {
        report.violations.push(format!(
            "{} time pushes did not reach all {} connections",
            short.len(),
            args.connections
        ));
    }
    if let (Some(a), Some(b), Some(c), Some(d)) = (
        server_cpu_before,
        server_cpu_after,
        own_cpu_before,
        own_cpu_after,
    ) {
        let receipts = latencies.len().max(1) as f64;
        report.lines.push(format!(
            "CPU per push receipt during the window: server {:.1} us, chat_load {:.1} us \
             (the machine's load average then: {})",
            (b - a).as_secs_f64() * 1e6 / receipts,
            (d - c).as_secs_f64() * 1e6 / receipts,
            std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
                .unwrap_or_default()
        ));
    }
    if !latencies.is_empty() {
        let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));
        report.target(
            format!("push -> receipt latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms (target p99 <= 50 ms)"),
            p99 <= 50.0,
        );
    }

    // Phase 3: chat exactness, once the server has closed the idle connections (each
    // phase is measured on its own, not against a mass disconnect).
    if args.chat_clients > 0 && n > 0 {
        sleep(Duration::from_millis(500) + Duration::from_micros(100) * n as u32).await;
    }
    chat_phase(args, addr, &mut report).await;
    report
}

/// What one chatting client saw.
#[derive(Default)]
struct Seen {
    /// Per sender index: the sequence numbers received, in arrival order.
    from: HashMap<usize, Vec<usize>>,
    violations: Vec<String>,
}

async fn chat_phase(args: &Args, addr: SocketAddr, report: &mut Report) {
    let (c, r, m) = (args.chat_clients, args.rooms, args.messages);
    if c == 0 {
        return;
    }
    let room_of = |i: usize| i % r;
    let room_size = |room: usize| (0..c).filter(|&i| room_of(i) == room).count();
    let joined = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (go, go_rx) = watch::channel(false);
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for i in 0..c {
        let room = format!("load-{}", room_of(i));
        let expected = (room_size(room_of(i)) - 1) * m;
        let (joined, failed, mut go_rx) = (Arc::clone(&joined), Arc::clone(&failed), go_rx.clone());
        let limit = args.phase_timeout;
        clients.spawn(async move {
          let result = async {
            let mut seen = Seen::default();
            let mut ws = connect(addr).await?;
            let me = welcome(&mut ws).await?;
            let join = serde_json::json!({ "join": room }).to_string();
            ws.send(Message::Text(join.into())).await.map_err(|e| e.to_string())?;
            // Until our own join is confirmed.
            loop {
                let message = ws.next().await.ok_or("closed")?.map_err(|e| e.to_string())?;
                if let Some((_, event)) = push_of(&message) {
                    if event["type"] == "joined" && event["client"] == me {
                        break;
                    }
                }
            }
            joined.fetch_add(1, Ordering::Relaxed);
            let mut said = false;
            let mut received = 0;
            let deadline = Instant::now() + limit;
            while received < expected || !said {
                tokio::select! {
                    _ = until_true(&mut go_rx), if !said => {
                        for seq in 0..m {
                            let line = serde_json::json!({ "say": room, "text": format!("{i}:{seq}") });
                            ws.feed(Message::Text(line.to_string().into())).await.map_err(|e| e.to_string())?;
                        }
                        ws.flush().await.map_err(|e| e.to_string())?;
                        said = true;
                    }
                    message = ws.next() => {
                        let message = message.ok_or("closed by the server")?.map_err(|e| e.to_string())?;
                        if let Message::Close(frame) = &message {
                            return Err(format!("client {i}: closed by the server: {frame:?}"));
                        }
                        let Some((_, event)) = push_of(&message) else { continue };
                        if event["type"] != "message" {
                            continue;
                        }
                        received += 1;
                        if event["from"] == me {
                            seen.violations.push(format!("client {i} got its own line back: {event}"));
                        }
                        if event["room"] != room.as_str() {
                            seen.violations.push(format!("client {i} in {room} got a line of {}", event["room"]));
                        }
                        let text = event["text"].as_str().unwrap_or("");
                        let parsed = text.split_once(':').and_then(|(s, q)| Some((s.parse().ok()?, q.parse().ok()?)));
                        match parsed {
                            Some((sender, seq)) => seen.from.entry(sender).or_insert_with(Vec::new).push(seq),
                            None => seen.violations.push(format!("client {i}: unexpected text {text:?}")),
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        let mut short: Vec<(usize, usize)> = seen.from.iter().map(|(&s, q)| (s, q.len())).filter(|&(_, n)| n < m).collect();
                        short.sort_unstable();
                        return Err(format!("client {i}: got {received} of {expected} lines within {limit:?}; short senders (index, lines): {short:?}"));
                    }
                }
            }
            let _ = ws.close(None).await;
            Ok::<_, String>((i, seen))
          }
          .await;
          if result.is_err() {
              failed.fetch_add(1, Ordering::Relaxed);
          }
          result
        });
    }
    let all_joined = timeout(args.phase_timeout, async {
        while joined.load(Ordering::Relaxed) < c && failed.load(Ordering::Relaxed) == 0 {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    if all_joined.is_err() {
        report.violations.push(format!(
            "only {} of {c} chat clients joined",
            joined.load(Ordering::Relaxed)
        ));
    }
    let said_at = Instant::now();
    let _ = go.send(true);
    let mut deliveries = 0;
    let mut done = 0;
    while let Some(result) = clients.join_next().await {
        match result {
            Ok(Ok((i, seen))) => {
                done += 1;
                report.violations.extend(seen.violations);
                for sender in (0..c).filter(|&s| s != i && room_of(s) == room_of(i)) {
                    let got = seen.from.get(&sender).map_or(&[][..], Vec::as_slice);
                    deliveries += got.len();
                    if got.iter().copied().ne(0..m) {
                        report.violations.push(format!(
                            "client {i} got sender {sender}'s lines as {:?} (expected 0..{m} in order)",
                            &got[..got.len().min(12)]
                        ));
                    }
                }
                if let Some(stray) = seen
                    .from
                    .keys()
                    .find(|&&s| s >= c || room_of(s) != room_of(i))
                {
                    report.violations.push(format!(
                        "client {i} got lines from sender {stray}, not in its room"
                    ));
                }
            }
            Ok(Err(e)) => report.violations.push(e),
            Err(e) => report.violations.push(e.to_string()),
        }
    }
    let expected: usize = (0..r)
        .map(|room| room_size(room) * (room_size(room).saturating_sub(1)) * m)
        .sum();
    report.lines.push(format!(
        "chat: {c} clients x {r} rooms x {m} lines: {deliveries} of {expected} deliveries checked ({done} clients done) in {:.2} s after the start ({:.2} s with joins)",
        said_at.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
}
