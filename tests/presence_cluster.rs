//! Engines in separate processes on a real `redis-server` (feature `redis`): presence
//! and the bridge's counts across hosts, with `kill -9` of an engine and of Redis.
//!
//! The test binary is its own engine process: run with `FANOUT_CLUSTER_NODE` set, the
//! `cluster_node` test becomes a node that reads commands on stdin and answers on stdout
//! (lines starting `@ `). The other tests start three or four such processes and drive
//! them. Every figure they print (`--nocapture`) is a measurement of this run, not a
//! limit: the checks are on what the nodes list and count.
#![cfg(feature = "redis")]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fanout::bridge::{Bridge, ChannelLayout};
use fanout::transport::{decode_any, Frame, NodeId, PresenceEvent};
use fanout::{Bytes, PubSub};

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use common::{eventually, CountingSerialiser};
use redis_server::RedisServer;

const WAIT: Duration = Duration::from_secs(30);
const ENV: &str = "FANOUT_CLUSTER_NODE";

// ---------------------------------------------------------------------------------
// The node: one engine process.

/// What a node's watcher of "room" built from its presence events.
#[derive(Default)]
struct Seen {
    list: BTreeMap<(NodeId, u64), Vec<u8>>,
    /// Events that changed nothing (a join of a listed member with the same metadata,
    /// a leave of a member not listed).
    wrong: u64,
}

/// Runs a node when started by a test below; a no-op otherwise.
#[test]
fn cluster_node() {
    let Ok(config) = std::env::var(ENV) else {
        return;
    };
    // URL LAYOUT DOWN_MS NAME
    let parts: Vec<&str> = config.split(' ').collect();
    let (url, layout, down_ms, name) = (parts[0], parts[1], parts[2], parts[3]);
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
        .queue_capacity(1 << 16)
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
    // A subscriber of "t" so that per-topic channels carry it here.
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
            "list" => {
                let list: BTreeMap<(NodeId, u64), Vec<u8>> = pubsub
                    .list("room")
                    .unwrap()
                    .into_iter()
                    .map(|m| ((m.node, m.client.as_u64()), m.meta.to_vec()))
                    .collect();
                let seen = seen.lock().unwrap();
                format!(
                    "{} {} {} {}",
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
                    "{} {} {} {} {} {} {} {}",
                    published.load(Ordering::SeqCst),
                    s.sent,
                    s.dropped,
                    s.unknown,
                    s.untracked,
                    s.received,
                    s.gaps,
                    u8::from(s.connected)
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

// ---------------------------------------------------------------------------------
// The driver.

/// A node process and its pipes.
struct Node {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    id: NodeId,
}

impl Node {
    fn start(url: &str, layout: &str, down: Duration, name: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["cluster_node", "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV, format!("{url} {layout} {} {name}", down.as_millis()))
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

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.answer()
    }

    /// (count_members, list length, events add up to the list, wrong events).
    fn list(&mut self) -> (usize, usize, bool, u64) {
        let answer = self.ask("list");
        let w: Vec<u64> = answer.split(' ').map(|w| w.parse().unwrap()).collect();
        (w[0] as usize, w[1] as usize, w[2] == 1, w[3])
    }

    /// Whether the node lists `n` members, its events agree, and none was wrong.
    fn lists(&mut self, n: usize) -> bool {
        let (count, len, agree, wrong) = self.list();
        assert_eq!(wrong, 0, "a join or leave that changed nothing");
        count == n && len == n && agree
    }

    fn stats(&mut self) -> HashMap<&'static str, u64> {
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
        ];
        names
            .into_iter()
            .zip(answer.split(' ').map(|w| w.parse().unwrap()))
            .collect()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn quit(mut self) {
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

fn converge(nodes: &mut [&mut Node], n: usize) -> Duration {
    let start = Instant::now();
    assert!(
        eventually(WAIT, || nodes.iter_mut().all(|node| node.lists(n))),
        "the nodes did not converge to {n} members: {:?}",
        nodes.iter_mut().map(|node| node.list()).collect::<Vec<_>>()
    );
    start.elapsed()
}

fn presence_and_counts_across_processes(layout: ChannelLayout) {
    let layout = match layout {
        ChannelLayout::PerTopic => "per_topic",
        _ => "namespace",
    };
    let mut redis = RedisServer::start();
    let down = Duration::from_secs(2);
    let url = redis.url();
    let mut a = Node::start(&url, layout, down, "a");
    let mut b = Node::start(&url, layout, down, "b");
    let mut c = Node::start(&url, layout, down, "c");

    // One list everywhere: 50 members on each.
    for node in [&mut a, &mut b, &mut c] {
        assert_eq!(node.ask("join 50"), "ok");
    }
    let took = converge(&mut [&mut a, &mut b, &mut c], 150);
    eprintln!("[{layout}] 3 processes x 50 members converged in {took:?}");

    // The counts: every stream's first frame arrives, then 20,000 frames from each
    // node while Redis is killed and restarted, then a last frame each.
    for node in [&mut a, &mut b, &mut c] {
        assert_eq!(node.ask("pub 1"), "ok");
    }
    assert!(eventually(WAIT, || [&mut a, &mut b, &mut c]
        .into_iter()
        .all(|n| n.stats()["received"] == 2)));
    for node in [&mut a, &mut b, &mut c] {
        assert_eq!(node.ask("pub 20000"), "ok");
    }
    std::thread::sleep(Duration::from_millis(500));
    redis.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    redis.restart();
    let restarted = Instant::now();
    assert!(eventually(WAIT, || [&mut a, &mut b, &mut c]
        .into_iter()
        .all(|n| n.stats()["connected"] == 1)));
    eprintln!(
        "[{layout}] Redis down for {:?}; all reconnected {:?} after it returned",
        restarted - killed,
        restarted.elapsed()
    );
    assert!(eventually(WAIT, || [&mut a, &mut b, &mut c]
        .into_iter()
        .all(|n| n.stats()["published"] == 20_001)));
    std::thread::sleep(Duration::from_millis(300));
    for node in [&mut a, &mut b, &mut c] {
        assert_eq!(node.ask("pub 1"), "ok");
    }
    // Published by the others − received here = gaps counted here, on every node.
    assert!(eventually(WAIT, || {
        let stats: Vec<_> = [&mut a, &mut b, &mut c]
            .into_iter()
            .map(|n| n.stats())
            .collect();
        let total: u64 = stats.iter().map(|s| s["published"]).sum();
        stats.iter().all(|s| {
            total - s["published"] - s["received"] == s["gaps"] && s["published"] == 20_002
        })
    }));
    for (name, node) in [("a", &mut a), ("b", &mut b), ("c", &mut c)] {
        let s = node.stats();
        eprintln!(
            "[{layout}] {name}: published {} sent {} dropped {} unknown {} untracked {} | received {} gaps {}",
            s["published"], s["sent"], s["dropped"], s["unknown"], s["untracked"], s["received"], s["gaps"]
        );
        assert_eq!(s["untracked"], 0);
    }
    // Presence came through the outage.
    converge(&mut [&mut a, &mut b, &mut c], 150);

    // kill -9 of an engine: its members leave everywhere after the down period.
    c.kill9();
    let killed = Instant::now();
    converge(&mut [&mut a, &mut b], 100);
    eprintln!(
        "[{layout}] kill -9 of an engine: its members left the others after {:?} (down period {down:?}, heartbeat 200 ms)",
        killed.elapsed()
    );

    // A graceful quit: at once.
    let quit = Instant::now();
    a.quit();
    converge(&mut [&mut b], 50);
    eprintln!(
        "[{layout}] a graceful shutdown reached the others in {:?}",
        quit.elapsed()
    );

    // A late joiner converges.
    let joined = Instant::now();
    let mut d = Node::start(&url, layout, down, "d");
    assert_eq!(d.ask("join 50"), "ok");
    let took = converge(&mut [&mut b, &mut d], 100);
    eprintln!(
        "[{layout}] a late joiner converged in {took:?} ({:?} from its start)",
        joined.elapsed()
    );
    b.quit();
    d.quit();
}

#[test]
fn namespace_layout() {
    if std::env::var_os(ENV).is_some() {
        return;
    }
    presence_and_counts_across_processes(ChannelLayout::Namespace);
}

#[test]
fn per_topic_layout() {
    if std::env::var_os(ENV).is_some() {
        return;
    }
    presence_and_counts_across_processes(ChannelLayout::PerTopic);
}
