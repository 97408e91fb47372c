//! Engines in separate processes for the across-hosts presence tests, whatever the
//! backend (`tests/presence_cluster.rs` on Redis, `tests/presence_cluster_nats.rs` on a
//! NATS cluster).
//!
//! A test binary that includes this module is its own engine process: run with
//! [`ENV`] set, its `cluster_node` test calls [`serve`], which attaches a bridge to the
//! URL it was given and reads commands on stdin, answering on stdout (lines starting
//! `@ `). The tests drive such processes through [`Node`].
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fanout::bridge::{Bridge, ChannelLayout};
use fanout::transport::{decode_any, Frame, NodeId, PresenceEvent};
use fanout::{Bytes, PubSub};

use super::{eventually, CountingSerialiser};

/// Set in a node process: its configuration
/// (`URL LAYOUT DOWN_MS NAME MAX_MESSAGE_LEN BACKOFF_MS`).
pub const ENV: &str = "FANOUT_CLUSTER_NODE";

/// How long the driver waits for the nodes to agree.
pub const WAIT: Duration = Duration::from_secs(30);

/// What a node's watcher of "room" built from its presence events.
#[derive(Default)]
struct Seen {
    list: BTreeMap<(NodeId, u64), Vec<u8>>,
    /// Events that changed nothing (a join of a listed member with the same metadata,
    /// a leave of a member not listed).
    wrong: u64,
}

/// Whether this process is a node (then the driver tests return at once).
pub fn is_node() -> bool {
    std::env::var_os(ENV).is_some()
}

/// Runs a node when started by a driver; a no-op otherwise.
pub fn serve() {
    let Ok(config) = std::env::var(ENV) else {
        return;
    };
    let parts: Vec<&str> = config.split(' ').collect();
    let (url, layout, down_ms, name, max_message_len) =
        (parts[0], parts[1], parts[2], parts[3], parts[4]);
    let backoff = Duration::from_millis(parts[5].parse().unwrap());
    let layout = match layout {
        "per_topic" => ChannelLayout::PerTopic,
        _ => ChannelLayout::Namespace,
    };
    let down = Duration::from_millis(down_ms.parse().unwrap());
    let pubsub = PubSub::<u64>::new().unwrap();
    let bridge = Bridge::builder(url, "cluster")
        .layout(layout)
        .read_timeout(Duration::from_millis(20))
        .ping_interval(Duration::from_millis(200))
        .backoff(backoff, backoff * 4)
        .queue_capacity(1 << 16)
        .max_message_len(max_message_len.parse().unwrap())
        .presence(Duration::from_millis(200), down, down * 10)
        .attach(&pubsub)
        .unwrap();

    // The watcher: presence events of "room", replayed.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watcher = pubsub.generate_client_id();
    {
        let seen = Arc::clone(&seen);
        pubsub
            .register(watcher, move |frame: &Bytes| {
                let Ok(Frame::Presence(p)) = decode_any(frame) else {
                    return;
                };
                let mut seen = seen.lock().unwrap();
                let key = (p.node, p.client);
                let changed = match p.event {
                    PresenceEvent::Join => {
                        seen.list.insert(key, p.meta.to_vec()).as_deref() != Some(p.meta)
                    }
                    PresenceEvent::Leave => seen.list.remove(&key).is_some(),
                };
                if !changed {
                    seen.wrong += 1;
                }
            })
            .unwrap();
    }
    pubsub.subscribe(watcher, "room").unwrap();
    // A subscriber of "t" so that per-topic channels (and NATS subjects) carry it here.
    let counter = pubsub.generate_client_id();
    pubsub.register(counter, |_| {}).unwrap();
    pubsub.subscribe(counter, "t").unwrap();

    let published = Arc::new(AtomicU64::new(0));
    let mut out = std::io::stdout();
    writeln!(out, "@ node {}", bridge.node_id().0).unwrap();
    let mut members = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split(' ').collect();
        let answer = match words[0] {
            "join" => {
                for _ in 0..words[1].parse::<usize>().unwrap() {
                    let id = pubsub.generate_client_id();
                    pubsub.register(id, |_| {}).unwrap();
                    let meta = format!("{name}-{}", members.len());
                    pubsub.track(id, "room", Bytes::from(meta)).unwrap();
                    members.push(id);
                }
                "ok".to_owned()
            }
            "leave" => {
                for _ in 0..words[1].parse::<usize>().unwrap() {
                    if let Some(id) = members.pop() {
                        pubsub.untrack(id, "room").unwrap();
                    }
                }
                "ok".to_owned()
            }
            "count" => pubsub.count_members("room").unwrap().to_string(),
            "list" => {
                let list: BTreeMap<(NodeId, u64), Vec<u8>> = pubsub
                    .list("room")
                    .unwrap()
                    .into_iter()
                    .map(|m| ((m.node, m.client.as_u64()), m.meta.to_vec()))
                    .collect();
                let seen = seen.lock().unwrap();
                // FNV-1a over the sorted list: equal on nodes that list the same members.
                let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
                for ((node, client), meta) in &list {
                    let bytes = node.0.to_be_bytes().into_iter().chain(client.to_be_bytes());
                    for byte in bytes.chain(meta.iter().copied()) {
                        digest = (digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
                format!(
                    "{} {} {} {} {digest}",
                    pubsub.count_members("room").unwrap(),
                    list.len(),
                    u8::from(seen.list == list),
                    seen.wrong
                )
            }
            "pub" => {
                // pub N: N frames on "t", paced over about N/10 ms, in a thread.
                let n: u64 = words[1].parse().unwrap();
                let (pubsub, published) = (pubsub.clone(), Arc::clone(&published));
                std::thread::spawn(move || {
                    let serialiser = CountingSerialiser::default();
                    for i in 0..n {
                        pubsub.broadcast("t", &i, &serialiser).unwrap();
                        published.fetch_add(1, Ordering::SeqCst);
                        if i % 10 == 9 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                });
                "ok".to_owned()
            }
            "stats" => {
                let s = bridge.stats();
                format!(
                    "{} {} {} {} {} {} {} {} {} {}",
                    published.load(Ordering::SeqCst),
                    s.sent,
                    s.dropped,
                    s.unknown,
                    s.untracked,
                    s.received,
                    s.gaps,
                    u8::from(s.connected),
                    s.reconnects,
                    s.bad_envelopes,
                )
            }
            "quit" => break,
            other => format!("unknown command {other}"),
        };
        writeln!(out, "@ {answer}").unwrap();
    }
    bridge.shutdown();
    writeln!(out, "@ bye").unwrap();
}

/// A node process and its pipes.
pub struct Node {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub id: NodeId,
}

/// How a driver starts its nodes.
#[derive(Clone)]
pub struct Config {
    /// Broker URLs: the `i`-th node started (a, b, c, d) gets `urls[i % urls.len()]`.
    pub urls: Vec<String>,
    /// `namespace` or `per_topic` (Redis; NATS ignores it).
    pub layout: &'static str,
    pub down: Duration,
    pub max_message_len: usize,
    /// The least delay before a reconnection attempt (the largest is 4 times it).
    pub backoff: Duration,
}

impl Config {
    pub fn new(url: &str, layout: &'static str, down: Duration) -> Self {
        Self {
            urls: vec![url.to_owned()],
            layout,
            down,
            max_message_len: 16 << 20,
            backoff: Duration::from_millis(20),
        }
    }

    /// The URL node `name` (`a`, `b`, …) connects to.
    fn url_for(&self, name: &str) -> &str {
        let i = usize::from(name.as_bytes()[0].saturating_sub(b'a'));
        &self.urls[i % self.urls.len()]
    }
}

impl Node {
    /// Starts a node process (this test binary, running its `cluster_node` test).
    pub fn start(config: &Config, name: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["cluster_node", "--exact", "--nocapture", "--test-threads=1"])
            .env(
                ENV,
                format!(
                    "{} {} {} {name} {} {}",
                    config.url_for(name),
                    config.layout,
                    config.down.as_millis(),
                    config.max_message_len,
                    config.backoff.as_millis()
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a node process");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut node = Self {
            child,
            stdin,
            stdout,
            id: NodeId(0),
        };
        let hello = node.answer();
        node.id = NodeId(hello.strip_prefix("node ").unwrap().parse().unwrap());
        node
    }

    /// What follows `@ ` on the next line that has it (the test harness prints
    /// `test cluster_node ... ` before the first, on the same line).
    fn answer(&mut self) -> String {
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "a node died");
            if let Some(at) = line.find("@ ") {
                return line[at + 2..].trim_end().to_owned();
            }
        }
    }

    pub fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.answer()
    }

    /// (count_members, list length, events add up to the list, wrong events, a digest
    /// of the list).
    pub fn list(&mut self) -> (usize, usize, bool, u64, u64) {
        let answer = self.ask("list");
        let w: Vec<u64> = answer.split(' ').map(|w| w.parse().unwrap()).collect();
        (w[0] as usize, w[1] as usize, w[2] == 1, w[3], w[4])
    }

    /// How many members it lists (cheap: no list is built).
    pub fn count(&mut self) -> usize {
        self.ask("count").parse().unwrap()
    }

    /// The digest of the node's list if it lists `n` members, its events agree, and
    /// none was wrong.
    pub fn lists(&mut self, n: usize) -> Option<u64> {
        let (count, len, agree, wrong, digest) = self.list();
        assert_eq!(wrong, 0, "a join or leave that changed nothing");
        (count == n && len == n && agree).then_some(digest)
    }

    pub fn stats(&mut self) -> HashMap<&'static str, u64> {
        let answer = self.ask("stats");
        let names = [
            "published",
            "sent",
            "dropped",
            "unknown",
            "untracked",
            "received",
            "gaps",
            "connected",
            "reconnects",
            "bad_envelopes",
        ];
        names
            .into_iter()
            .zip(answer.split(' ').map(|w| w.parse().unwrap()))
            .collect()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn quit(mut self) {
        assert_eq!(self.ask("quit"), "bye");
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    /// A failed test leaves no process behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every node lists the same `n` members, with events that agree; how
/// long it took.
pub fn converge(nodes: &mut [&mut Node], n: usize) -> Duration {
    converge_within(nodes, n, WAIT)
}

/// As [`converge`], with its own deadline.
pub fn converge_within(nodes: &mut [&mut Node], n: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    let same = |nodes: &mut [&mut Node]| {
        let digests: Vec<Option<u64>> = nodes.iter_mut().map(|node| node.lists(n)).collect();
        digests[0].is_some() && digests.iter().all(|d| *d == digests[0])
    };
    assert!(
        eventually(limit, || same(nodes)),
        "the nodes did not converge to {n} members within {limit:?}: {:?}",
        nodes.iter_mut().map(|node| node.list()).collect::<Vec<_>>()
    );
    start.elapsed()
}

/// The lifecycle every backend must give presence, on three node processes started with
/// `config`: one list everywhere; each change once; `outage` (the backend's: a broker
/// killed) and convergence after it; `kill -9` of an engine → its members leave
/// everywhere after the down period; a graceful quit → at once; a late joiner
/// converges. Prints what it measures (prefixed `[label]`). `outage` gets nodes a, b and
/// c listing 140 members and leaves them to list 140 again.
pub fn presence_lifecycle(
    config: &Config,
    label: &str,
    outage: impl FnOnce(&mut Node, &mut Node, &mut Node),
) {
    let down = config.down;
    let mut a = Node::start(config, "a");
    let mut b = Node::start(config, "b");
    let mut c = Node::start(config, "c");
    assert!(eventually(WAIT, || [&mut a, &mut b, &mut c]
        .into_iter()
        .all(|n| n.stats()["connected"] == 1)));

    // One list everywhere: 50 members on each.
    for node in [&mut a, &mut b, &mut c] {
        assert_eq!(node.ask("join 50"), "ok");
    }
    let took = converge(&mut [&mut a, &mut b, &mut c], 150);
    eprintln!("[{label}] 3 processes x 50 members converged in {took:?}");
    // Each change once: 10 leave on b.
    assert_eq!(b.ask("leave 10"), "ok");
    let took = converge(&mut [&mut a, &mut b, &mut c], 140);
    eprintln!("[{label}] 10 leaves on one node seen everywhere in {took:?}");

    outage(&mut a, &mut b, &mut c);
    let took = converge(&mut [&mut a, &mut b, &mut c], 140);
    eprintln!("[{label}] presence came through the outage: converged {took:?} after it");

    // kill -9 of an engine: its members leave everywhere after the down period.
    c.kill9();
    let killed = Instant::now();
    converge(&mut [&mut a, &mut b], 90);
    eprintln!(
        "[{label}] kill -9 of an engine: its members left the others after {:?} (down period {down:?}, heartbeat 200 ms)",
        killed.elapsed()
    );

    // A graceful quit: at once (measured; the deadline is generous).
    let quit = Instant::now();
    a.quit();
    converge_within(&mut [&mut b], 40, Duration::from_secs(10));
    eprintln!(
        "[{label}] a graceful shutdown reached the others in {:?}",
        quit.elapsed()
    );

    // A late joiner converges.
    let joined = Instant::now();
    let mut d = Node::start(config, "d");
    let attached = Instant::now();
    assert!(eventually(WAIT, || d.stats()["connected"] == 1));
    let connected = attached.elapsed();
    let took = converge(&mut [&mut b, &mut d], 40);
    eprintln!(
        "[{label}] a late joiner listed the 40 others {took:?} after it was connected ({connected:?} to connect after attaching, {:?} in all with the process start)",
        joined.elapsed()
    );
    assert_eq!(d.ask("join 50"), "ok");
    let took = converge(&mut [&mut b, &mut d], 90);
    eprintln!("[{label}] its 50 joins seen everywhere in {took:?}");
    b.quit();
    d.quit();
}

/// Bytes through the broker per join: three engines, one tracks 10,000 members (each
/// delta a batch of joins), the two others list them. `bytes()` reads the broker's
/// (read, written) byte counters; heartbeats over the period are included. `echo`: the
/// broker sends a node its own messages too (Redis), so three engines receive, not two.
/// Prints and returns (in per join, out per join per receiving engine).
pub fn bytes_per_join(
    config: &Config,
    label: &str,
    echo: bool,
    bytes: impl Fn() -> (u64, u64),
) -> (f64, f64) {
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|name| Node::start(config, name))
        .collect();
    assert!(eventually(WAIT, || nodes
        .iter_mut()
        .all(|n| n.stats()["connected"] == 1)));
    {
        let mut all: Vec<&mut Node> = nodes.iter_mut().collect();
        converge(&mut all, 0);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (in0, out0) = bytes();
    let start = Instant::now();
    assert_eq!(nodes[0].ask("join 10000"), "ok");
    {
        let mut all: Vec<&mut Node> = nodes.iter_mut().collect();
        converge(&mut all, 10_000);
    }
    let (in1, out1) = bytes();
    let receivers = if echo { 3.0 } else { 2.0 };
    let per_join = (
        (in1 - in0) as f64 / 10_000.0,
        (out1 - out0) as f64 / 10_000.0 / receivers,
    );
    eprintln!(
        "[{label}] bytes through the broker per join: {:.1} in (engines to the broker), {:.1} out per receiving engine ({receivers} receivers), over {:?}, heartbeats included",
        per_join.0,
        per_join.1,
        start.elapsed()
    );
    for node in nodes {
        node.quit();
    }
    per_join
}
