//! The NATS bridge against a real cluster of three `nats-server`s on loopback (feature
//! `nats`). Engines in this process, and in child processes (this test binary run again
//! as `child_process_engine`), stand for hosts, each connected to its own server of the
//! cluster; each test starts its own cluster on free ports and kills it at the end.
#![cfg(feature = "nats")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::bridge::{Bridge, BridgeError, BridgeStats};
use fanout::transport::{encode_push, RawPayload};
use fanout::PubSub;

mod common;
#[path = "common/nats_server.rs"]
mod nats_server;

use common::{eventually, u64_payload, CountingSerialiser, Inbox};
use nats_server::NatsCluster;

const WAIT: Duration = Duration::from_secs(20);

/// A bridge with short timeouts, so tests notice failures and stop quickly.
fn bridge<M: ?Sized + 'static>(pubsub: &PubSub<M>, url: &str, namespace: &str) -> Bridge {
    Bridge::builder(url, namespace)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .ping_interval(Duration::from_millis(500))
        .queue_capacity(1 << 17)
        .attach(pubsub)
        .expect("attach")
}

fn wait_connected(bridges: &[&Bridge]) {
    assert!(
        eventually(WAIT, || bridges.iter().all(|b| b.stats().connected)),
        "bridges did not connect: {bridges:?}"
    );
}

/// Waits until `bridge` is connected and subscribed to `subjects` subjects.
fn wait_subjects(bridge: &Bridge, subjects: usize) {
    assert!(
        eventually(WAIT, || {
            let s = bridge.stats();
            s.connected && s.channels == subjects
        }),
        "not subscribed to {subjects} subjects: {bridge:?}"
    );
}

/// A client subscribed to `topic` (or pattern) on `pubsub`; returns its inbox.
fn subscriber<M: ?Sized>(pubsub: &PubSub<M>, topic: &str) -> Inbox {
    let inbox = Inbox::default();
    let id = pubsub.generate_client_id();
    pubsub.register(id, inbox.sink()).unwrap();
    pubsub.subscribe(id, topic).unwrap();
    inbox
}

/// Subscriptions spread between the servers of a cluster asynchronously: a node
/// subscribed on its server is not known to the others at once. Broadcasts probes on
/// `topic` from `from` until `inbox` has one, then forgets them.
fn wait_routed(from: &PubSub<str>, topic: &str, inbox: &Inbox) {
    assert!(
        eventually(WAIT, || {
            from.broadcast(topic, "probe", &RawPayload).unwrap();
            thread::sleep(Duration::from_millis(20));
            inbox.len() > 0
        }),
        "no frame crossed the cluster"
    );
    thread::sleep(Duration::from_millis(100));
    inbox.0.lock().unwrap().clear();
}

#[test]
fn cross_node_delivery_through_a_cluster_reaches_every_subscriber_once() {
    let cluster = NatsCluster::start(3);
    let nodes: Vec<PubSub<str>> = (0..3).map(|_| PubSub::new().unwrap()).collect();
    let bridges: Vec<Bridge> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| bridge(n, &cluster.url_of(i), "cross"))
        .collect();
    wait_connected(&bridges.iter().collect::<Vec<_>>());
    let inboxes: Vec<Vec<Inbox>> = nodes
        .iter()
        .map(|n| (0..2).map(|_| subscriber(n, "room")).collect())
        .collect();
    let other_topic = subscriber(&nodes[2], "elsewhere");
    for (bridge, subjects) in bridges.iter().zip([1, 1, 2]) {
        wait_subjects(bridge, subjects);
    }
    wait_routed(&nodes[1], "room", &inboxes[0][0]);
    wait_routed(&nodes[0], "room", &inboxes[1][0]);
    wait_routed(&nodes[0], "room", &inboxes[2][0]);
    for inbox in inboxes.iter().flatten() {
        inbox.0.lock().unwrap().clear();
    }
    let before: Vec<BridgeStats> = bridges.iter().map(Bridge::stats).collect();

    assert_eq!(nodes[0].broadcast("room", "hello", &RawPayload).unwrap(), 2);
    assert!(eventually(WAIT, || inboxes
        .iter()
        .flatten()
        .all(|i| i.len() == 1)));
    thread::sleep(Duration::from_millis(100)); // anything extra would arrive by now
    for inbox in inboxes.iter().flatten() {
        assert_eq!(inbox.decoded(), [("room".to_owned(), b"hello".to_vec())]);
    }
    assert_eq!(other_topic.len(), 0);
    assert_eq!(bridges[0].stats().sent - before[0].sent, 1);
    assert_eq!(bridges[1].stats().received - before[1].received, 1);
    assert_eq!(bridges[2].stats().received - before[2].received, 1);
    let s0 = bridges[0].stats();
    assert_eq!((s0.duplicates, s0.bad_envelopes), (0, 0));
}

#[test]
fn no_echo_serialise_once_and_broadcast_from_skips_the_sender_on_its_node_only() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (PubSub::<str>::new().unwrap(), PubSub::<str>::new().unwrap());
    // Without presence: b's heartbeats would reach a's connection (on the control
    // subject), and the check below counts every message the server sent a.
    let quiet = |pubsub: &PubSub<str>, url: &str| {
        Bridge::builder(url, "echo")
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            .ping_interval(Duration::from_millis(500))
            .without_presence()
            .attach(pubsub)
            .expect("attach")
    };
    let (bridge_a, bridge_b) = (quiet(&a, &cluster.url_of(0)), quiet(&b, &cluster.url_of(1)));
    wait_connected(&[&bridge_a, &bridge_b]);
    let (sender, peer) = (a.generate_client_id(), a.generate_client_id());
    let (sender_inbox, peer_inbox) = (Inbox::default(), Inbox::default());
    a.register(sender, sender_inbox.sink()).unwrap();
    a.register(peer, peer_inbox.sink()).unwrap();
    let twin = b.generate_client_id(); // the same id number as `sender`: ids are per engine
    assert_eq!(twin.as_u64(), sender.as_u64());
    let twin_inbox = Inbox::default();
    b.register(twin, twin_inbox.sink()).unwrap();
    for (engine, id) in [(&a, sender), (&a, peer), (&b, twin)] {
        engine.subscribe(id, "room").unwrap();
    }
    wait_subjects(&bridge_a, 1);
    wait_subjects(&bridge_b, 1);
    wait_routed(&a, "room", &twin_inbox);
    sender_inbox.0.lock().unwrap().clear();
    peer_inbox.0.lock().unwrap().clear();

    assert_eq!(
        a.broadcast_from(sender, "room", "hi", &RawPayload).unwrap(),
        1
    );
    assert!(eventually(WAIT, || twin_inbox.len() == 1));
    thread::sleep(Duration::from_millis(200));
    assert_eq!(peer_inbox.len(), 1);
    assert_eq!(sender_inbox.len(), 0);
    // a is subscribed to "room" itself, yet never got its own frames back from NATS:
    // the server sent its connection nothing (no_echo), not even to be dropped.
    let sa = bridge_a.stats();
    assert_eq!((sa.received, sa.duplicates), (0, 0), "{sa:?}");
    let name = format!("fanout-bridge-{}", bridge_a.node_id());
    assert_eq!(
        cluster.out_msgs(0, &name),
        Some(0),
        "the server echoed a's frames"
    );

    // A typed engine with no local subscriber still serialises once for the others.
    let typed = PubSub::<u64>::new().unwrap();
    let bridge_t = bridge(&typed, &cluster.url_of(2), "echo");
    wait_connected(&[&bridge_t]);
    let serialiser = CountingSerialiser::default();
    assert!(eventually(WAIT, || {
        typed.broadcast("room", &7, &serialiser).unwrap();
        thread::sleep(Duration::from_millis(20));
        twin_inbox.len() > 1
    }));
    assert_eq!(serialiser.calls() as u64, bridge_t.stats().sent);
}

/// A client that matches topics only through a pattern gets remote frames (one NATS
/// wildcard subscription); the node's subscriptions follow its clients as they come
/// and go; a frame that matches two of a node's subscriptions is delivered once.
#[test]
fn pattern_subscribers_get_remote_frames_and_subscriptions_follow_interest() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (PubSub::<str>::new().unwrap(), PubSub::<str>::new().unwrap());
    let (bridge_a, bridge_b) = (
        bridge(&a, &cluster.url_of(0), "pat"),
        bridge(&b, &cluster.url_of(1), "pat"),
    );
    wait_connected(&[&bridge_a, &bridge_b]);
    wait_subjects(&bridge_b, 0);

    let id = b.generate_client_id();
    let inbox = Inbox::default();
    b.register(id, inbox.sink()).unwrap();
    b.subscribe(id, "prices.*").unwrap();
    wait_subjects(&bridge_b, 1);
    wait_routed(&a, "prices.probe", &inbox);
    for topic in ["prices.eur", "prices.usd", "news.eur", "prices.eur.old"] {
        a.broadcast(topic, topic, &RawPayload).unwrap();
    }
    assert!(eventually(WAIT, || inbox.len() == 2));
    thread::sleep(Duration::from_millis(200));
    let topics: Vec<String> = inbox.decoded().into_iter().map(|(t, _)| t).collect();
    assert_eq!(topics, ["prices.eur", "prices.usd"]);

    // The same client also subscribes to one of the topics by name: two subscriptions
    // match its frames, NATS sends them twice, the client still gets each once.
    b.subscribe(id, "prices.eur").unwrap();
    wait_subjects(&bridge_b, 2);
    thread::sleep(Duration::from_millis(200)); // the exact subscription reaches server 0
    inbox.0.lock().unwrap().clear();
    let received = bridge_b.stats().received;
    a.broadcast("prices.eur", "once", &RawPayload).unwrap();
    assert!(eventually(WAIT, || inbox.len() == 1));
    thread::sleep(Duration::from_millis(200));
    assert_eq!(inbox.len(), 1);
    assert_eq!(bridge_b.stats().received, received + 1);

    // The client goes: the node unsubscribes from both, and receives nothing more.
    b.unregister(id).unwrap();
    wait_subjects(&bridge_b, 0);
    thread::sleep(Duration::from_millis(200)); // the UNSUBs reach server 0
    let received = bridge_b.stats().received;
    a.broadcast("prices.eur", "gone", &RawPayload).unwrap();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(bridge_b.stats().received, received);

    // A pattern in use before the bridge is attached is followed too.
    let late = PubSub::<str>::new().unwrap();
    let on_late = subscriber(&late, "news.>");
    let late_bridge = bridge(&late, &cluster.url_of(2), "pat");
    wait_subjects(&late_bridge, 1);
    wait_routed(&a, "news.x.y", &on_late);
}

/// Engine separators other than `.`, and topic bytes NATS forbids in subjects, are
/// mapped (escaped), not refused: every topic reaches the other nodes, exactly, and a
/// pattern still matches across the mapping. A namespace NATS cannot carry is refused.
#[test]
fn separators_and_characters_nats_forbids_are_mapped() {
    let cluster = NatsCluster::start(3);
    let engine = || PubSub::<str>::builder().separator('/').build().unwrap();
    let (a, b) = (engine(), engine());
    let (bridge_a, bridge_b) = (
        bridge(&a, &cluster.url_of(0), "map.ns"),
        bridge(&b, &cluster.url_of(1), "map.ns"),
    );
    wait_connected(&[&bridge_a, &bridge_b]);
    let topics = [
        "prices/EUR.USD",
        "room with spaces/tab\there",
        "100%/a*b/>x",
        "a//b",
        "ünï/кот",
    ];
    let inboxes: Vec<Inbox> = topics.iter().map(|t| subscriber(&b, t)).collect();
    let pattern = subscriber(&b, "prices/*");
    wait_subjects(&bridge_b, topics.len() + 1);
    wait_routed(&a, topics[4], &inboxes[4]);

    // What NATS sees: a raw client on the namespace.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let subjects = runtime.block_on(async {
        let raw = async_nats::connect(cluster.url_of(2)).await.unwrap();
        let mut sub = raw.subscribe("map.ns.>").await.unwrap();
        raw.flush().await.unwrap();
        thread::sleep(Duration::from_millis(200)); // the SUB reaches server 0
        for t in topics {
            a.broadcast(t, t, &RawPayload).unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < topics.len() {
            let m = tokio::time::timeout(WAIT, futures_next(&mut sub))
                .await
                .expect("raw client got the frames")
                .unwrap();
            seen.push(m.subject.to_string());
        }
        seen
    });
    assert_eq!(
        subjects,
        [
            "map.ns.prices.EUR%2EUSD",
            "map.ns.room%20with%20spaces.tab%09here",
            "map.ns.100%25.a%2Ab.%3Ex",
            "map.ns.a.%.b",
            "map.ns.ünï.кот",
        ]
    );
    for (inbox, topic) in inboxes.iter().zip(topics) {
        assert!(eventually(WAIT, || inbox.len() == 1), "{topic:?}");
        assert_eq!(
            inbox.decoded(),
            [(topic.to_owned(), topic.as_bytes().to_vec())]
        );
    }
    // `prices/*` matched `prices/EUR.USD` (one token, its `.` escaped) and only it.
    assert!(eventually(WAIT, || pattern.len() == 1));
    assert_eq!(pattern.decoded()[0].0, "prices/EUR.USD");
    assert_eq!(bridge_b.stats().bad_envelopes, 0);

    for bad in ["with space", "a.*", "a..b", ">", "50%"] {
        assert!(
            matches!(
                Bridge::attach(&engine(), &cluster.url_of(0), bad),
                Err(BridgeError::InvalidConfig(_))
            ),
            "namespace {bad:?}"
        );
    }
}

/// `next()` on a subscription without pulling in `futures`.
async fn futures_next(sub: &mut async_nats::Subscriber) -> Option<async_nats::Message> {
    use futures_core::Stream;
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *sub).poll_next(cx)).await
}

#[test]
fn malformed_and_foreign_messages_are_counted_and_skipped() {
    let cluster = NatsCluster::start(3);
    let b = PubSub::<str>::new().unwrap();
    let bridge_b = Bridge::builder(&cluster.url_of(1), "bad")
        .max_message_len(1024)
        .attach(&b)
        .unwrap();
    let inbox = subscriber(&b, "t");
    let by_pattern = subscriber(&b, "p.*");
    wait_subjects(&bridge_b, 2);

    let envelope = |version: u8, mode: u8, client: u64, sequence: u64, frame: &[u8]| {
        let mut m = vec![version, mode];
        m.extend_from_slice(&0xF0F0u128.to_be_bytes());
        m.extend_from_slice(&sequence.to_be_bytes());
        m.extend_from_slice(&client.to_be_bytes());
        m.extend_from_slice(frame);
        m
    };
    let frame = encode_push("t", b"foreign").unwrap();
    let good = envelope(1, 0, 0, 2, &frame);
    let long_topic = encode_push(&"x".repeat(300), b"p").unwrap(); // over b's 256-byte limit
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("bad.t", b"hello, I am not an envelope".to_vec()),
        ("bad.t", Vec::new()),
        ("bad.t", good[..20].to_vec()),
        ("bad.t", good[..good.len() - 1].to_vec()),
        ("bad.t", envelope(2, 0, 0, 1, &frame)),
        ("bad.t", envelope(1, 7, 0, 1, &frame)),
        ("bad.t", envelope(1, 0, 9, 1, &frame)),
        ("bad.t", envelope(1, 0, 0, 1, b"\x01\x01\x00")),
        (
            "bad.t",
            envelope(1, 0, 0, 1, &encode_push("u", b"p").unwrap()),
        ), // not t's subject
        (
            "bad.p.x",
            envelope(1, 0, 0, 1, &encode_push("p.y", b"p").unwrap()),
        ), // nor p.x's
        ("bad.p.x", vec![0u8; 2000]), // over 1024 bytes
        ("bad.p.x", envelope(1, 0, 0, 1, &long_topic)),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let raw = async_nats::connect(cluster.url_of(0)).await.unwrap();
        // The receiver's interest reaches server 0 asynchronously: probe with a
        // well-formed foreign envelope on the pattern until it arrives.
        let mut sequence = 1;
        while by_pattern.len() == 0 {
            let probe = envelope(1, 0, 0, sequence, &encode_push("p.x", b"probe").unwrap());
            raw.publish("bad.p.x", probe.into()).await.unwrap();
            raw.flush().await.unwrap();
            sequence += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (subject, m) in &bad {
            raw.publish(*subject, m.clone().into()).await.unwrap();
        }
        // A well-formed envelope from a foreign origin is delivered; its replay is not.
        raw.publish("bad.t", good.clone().into()).await.unwrap();
        raw.publish("bad.t", good.clone().into()).await.unwrap();
        raw.flush().await.unwrap();
    });
    assert!(eventually(WAIT, || inbox.len() == 1
        && bridge_b.stats().bad_envelopes == bad.len() as u64));
    thread::sleep(Duration::from_millis(200));
    let sb = bridge_b.stats();
    assert_eq!(sb.bad_envelopes, bad.len() as u64, "{sb:?}");
    assert_eq!(sb.duplicates, 1);
    assert_eq!(inbox.payloads(), [b"foreign".to_vec()]);
    assert!(sb.connected, "bad input does not stop the bridge");
}

#[test]
fn attach_refuses_bad_settings_and_shutdown_while_disconnected_is_prompt() {
    let pubsub = PubSub::<str>::new().unwrap();
    let nobody = format!("nats://127.0.0.1:{}", nats_server::free_port());
    assert!(matches!(
        Bridge::attach(&pubsub, "nats://127.0.0.1:notaport", "ns"),
        Err(BridgeError::InvalidUrl(_))
    ));
    assert!(matches!(
        Bridge::attach(&pubsub, "gopher://x", "ns"),
        Err(BridgeError::InvalidUrl(_))
    ));
    let first = Bridge::builder(&nobody, "gone")
        .backoff(Duration::from_secs(5), Duration::from_secs(30))
        .attach(&pubsub)
        .unwrap();
    assert!(matches!(
        Bridge::attach(&pubsub.clone(), &nobody, "ns"),
        Err(BridgeError::AlreadyBridged)
    ));
    // Nobody listens: local delivery goes on, frames are dropped and counted.
    let local = subscriber(&pubsub, "t");
    assert_eq!(pubsub.broadcast("t", "x", &RawPayload).unwrap(), 1);
    assert_eq!(local.len(), 1);
    assert!(eventually(WAIT, || first.stats().dropped == 1));
    assert!(!first.stats().connected);
    let start = Instant::now();
    first.shutdown();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    // Detached: bridged anew.
    Bridge::attach(&pubsub, &nobody, "again")
        .unwrap()
        .shutdown();
}

/// The child side of the multi-process tests: runs only when started by a test below
/// with `FANOUT_NATS_CHILD` set. Publishes `u64`s (0, 1, …) on topic `stream` at about
/// `FANOUT_NATS_RATE` per second until it reads a line on stdin, timing every
/// broadcast; then, on a second line, a slow tail of 50 more (a receiver counts a lost
/// frame as a gap only when a later one arrives: a tail sent once the receiver has
/// caught up reveals losses at the very end); then prints one line of results.
#[test]
fn child_process_engine() {
    let Ok(url) = std::env::var("FANOUT_NATS_CHILD") else {
        return;
    };
    let rate: u64 = std::env::var("FANOUT_NATS_RATE").unwrap().parse().unwrap();
    let engine = PubSub::<u64>::new().unwrap();
    let bridge = bridge(&engine, &url, "multi");
    wait_connected(&[&bridge]);
    let (stop, tail) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    {
        let (stop, tail) = (Arc::clone(&stop), Arc::clone(&tail));
        thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line); // EOF or a line: stop
            stop.store(true, Ordering::Relaxed);
            let _ = std::io::stdin().read_line(&mut line); // then the tail
            tail.store(true, Ordering::Relaxed);
        });
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let serialiser = CountingSerialiser::default();
    let (mut published, mut slowest) = (0u64, Duration::ZERO);
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let call = Instant::now();
        engine.broadcast("stream", &published, &serialiser).unwrap();
        slowest = slowest.max(call.elapsed());
        published += 1;
        // Pace to `rate`: sleep when ahead.
        let due = Duration::from_micros(published * 1_000_000 / rate);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            thread::sleep(ahead);
        }
    }
    while !tail.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..50 {
        engine.broadcast("stream", &published, &serialiser).unwrap();
        published += 1;
        thread::sleep(Duration::from_millis(2));
    }
    assert!(eventually(WAIT, || {
        let s = bridge.stats();
        s.sent + s.dropped == published
    }));
    let s = bridge.stats();
    println!(
        "published={published} sent={} dropped={} reconnects={} slowest_us={}",
        s.sent,
        s.dropped,
        s.reconnects,
        slowest.as_micros()
    );
    std::io::stdout().flush().unwrap();
    bridge.shutdown();
}

/// A publishing engine in a child process.
struct ChildPublisher {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl ChildPublisher {
    fn start(url: &str, rate: u64) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_engine",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FANOUT_NATS_CHILD", url)
            .env("FANOUT_NATS_RATE", rate.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child engine");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The harness prints `test child_process_engine ... ` first, on the same line.
        while !line.trim_end().ends_with("ready") {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "child ended");
        }
        Self { child, stdout }
    }

    /// Stops publishing, waits until `receiver` has taken in what was sent (its counts
    /// stop moving), has the child send its tail; returns the child's counts by name.
    fn finish(mut self, receiver: &Bridge) -> std::collections::HashMap<String, u64> {
        let mut stdin = self.child.stdin.take().unwrap();
        writeln!(stdin, "stop").unwrap();
        let mut last = receiver.stats();
        loop {
            thread::sleep(Duration::from_millis(500));
            let now = receiver.stats();
            if now == last {
                break;
            }
            last = now;
        }
        drop(stdin); // EOF: the tail
        let mut line = String::new();
        while !line.contains("published=") {
            line.clear();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "child ended");
        }
        let _ = self.child.wait();
        line[line.find("published=").unwrap()..]
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect()
    }
}

/// Every frame the child published is received or counted as a gap, exactly once, in
/// order, once the stream has ended and the last frames arrived.
fn check_accounting(inbox: &Inbox, receiver: &Bridge, published: u64) {
    assert!(
        eventually(WAIT, || {
            let s = receiver.stats();
            s.received + s.gaps == published
        }),
        "received + gaps != published ({published}): {:?}, last received {:?}",
        receiver.stats(),
        inbox.payloads().last().map(|p| u64_payload(p))
    );
    let values: Vec<u64> = inbox.payloads().iter().map(|p| u64_payload(p)).collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "a frame arrived twice or out of order"
    );
    assert_eq!(
        *values.last().unwrap() + 1,
        published,
        "the last frame arrives"
    );
    let s = receiver.stats();
    assert_eq!(s.received, values.len() as u64);
    assert_eq!(s.duplicates, 0);
}

/// `kill -9` of the server the publishing node (another process) is connected to: the
/// node moves to another server of the cluster; the frames in between are gaps at the
/// receiver, none replayed; no broadcast blocks.
#[test]
fn kill_9_of_the_publishers_server_mid_stream() {
    let mut cluster = NatsCluster::start(3);
    let receiver = PubSub::<u64>::new().unwrap();
    let receiver_bridge = bridge(&receiver, &cluster.url_of(1), "multi");
    let inbox = subscriber(&receiver, "stream");
    wait_subjects(&receiver_bridge, 1);
    thread::sleep(Duration::from_millis(200)); // the SUB reaches server 0
                                               // The child knows only server 0; it learns the others from the cluster.
    let child = ChildPublisher::start(&cluster.url_of(0), 5000);
    assert!(eventually(WAIT, || inbox.len() > 1000));
    cluster.kill(0);
    let at_kill = inbox.len();
    assert!(
        eventually(WAIT, || inbox.len() > at_kill + 2000),
        "no frames after the kill: {receiver_bridge:?}"
    );
    let counts = child.finish(&receiver_bridge);
    let published = counts["published"];
    eprintln!(
        "kill -9 of the publisher's server: {counts:?}, receiver {:?}, slowest broadcast {} us",
        receiver_bridge.stats(),
        counts["slowest_us"]
    );
    assert!(counts["reconnects"] >= 1, "{counts:?}");
    assert_eq!(counts["sent"] + counts["dropped"], published);
    check_accounting(&inbox, &receiver_bridge, published);
    assert!(
        receiver_bridge.stats().gaps > 0 || counts["dropped"] == 0,
        "frames dropped on the origin must show as gaps"
    );
}

/// `kill -9` of the server the receiving node is connected to: it moves to another
/// server and subscribes again; what it missed meanwhile is counted as gaps.
#[test]
fn kill_9_of_the_receivers_server_mid_stream() {
    let mut cluster = NatsCluster::start(3);
    let receiver = PubSub::<u64>::new().unwrap();
    let receiver_bridge = bridge(&receiver, &cluster.url_of(1), "multi");
    let inbox = subscriber(&receiver, "stream");
    wait_subjects(&receiver_bridge, 1);
    thread::sleep(Duration::from_millis(200));
    let child = ChildPublisher::start(&cluster.url_of(0), 5000);
    assert!(eventually(WAIT, || inbox.len() > 1000));
    cluster.kill(1);
    assert!(eventually(WAIT, || receiver_bridge.stats().reconnects >= 1));
    let after = inbox.len();
    assert!(
        eventually(WAIT, || inbox.len() > after + 2000),
        "no frames after resubscribing: {receiver_bridge:?}"
    );
    let counts = child.finish(&receiver_bridge);
    eprintln!(
        "kill -9 of the receiver's server: {counts:?}, receiver {:?}",
        receiver_bridge.stats()
    );
    check_accounting(&inbox, &receiver_bridge, counts["published"]);
    assert!(receiver_bridge.stats().gaps > 0, "the outage lost nothing?");
}

/// Every server down: broadcasts go on locally, never block, the queue stays bounded
/// and what cannot be sent is counted; delivery resumes when one server returns.
#[test]
fn all_servers_down_then_one_returns() {
    let mut cluster = NatsCluster::start(3);
    let (a, b) = (PubSub::<str>::new().unwrap(), PubSub::<str>::new().unwrap());
    let bridge_a = Bridge::builder(&cluster.url(), "down")
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .queue_capacity(64)
        .attach(&a)
        .unwrap();
    let bridge_b = bridge(&b, &cluster.url(), "down");
    let remote = subscriber(&b, "t");
    wait_subjects(&bridge_b, 1);
    wait_routed(&a, "t", &remote);
    for i in 0..3 {
        cluster.kill(i);
    }
    assert!(eventually(WAIT, || !bridge_a.stats().connected));
    let local = subscriber(&a, "t");
    let before = bridge_a.stats();
    let mut slowest = Duration::ZERO;
    for _ in 0..10_000 {
        let call = Instant::now();
        assert_eq!(a.broadcast("t", "while down", &RawPayload).unwrap(), 1);
        slowest = slowest.max(call.elapsed());
    }
    assert_eq!(local.len(), 10_000);
    assert!(eventually(WAIT, || bridge_a.stats().dropped
        - before.dropped
        == 10_000));
    assert_eq!(bridge_a.stats().sent, before.sent);
    eprintln!("10k broadcasts with every server down: slowest {slowest:?}");

    cluster.restart(1);
    wait_connected(&[&bridge_a, &bridge_b]);
    remote.0.lock().unwrap().clear();
    wait_routed(&a, "t", &remote);
    a.broadcast("t", "back", &RawPayload).unwrap();
    assert!(eventually(WAIT, || remote.payloads().last() == Some(&b"back".to_vec())));
    assert!(bridge_a.stats().reconnects >= 1 && bridge_b.stats().reconnects >= 1);
}

/// A server cuts a node that reads too slowly (its sinks blocked the io thread): the
/// node notices the lost connection, reconnects and subscribes again; the frames the
/// server dropped are counted as gaps; nothing is delivered twice.
#[test]
fn a_server_cutting_a_slow_consumer() {
    let cluster = NatsCluster::start_with(
        3,
        "max_payload: 65536\nmax_pending: 262144\nwrite_deadline: \"500ms\"",
    );
    let receiver = PubSub::<u64>::new().unwrap();
    let receiver_bridge = bridge(&receiver, &cluster.url_of(1), "multi");
    // A client whose sink blocks while `stall` is set: the io thread stops reading its
    // socket, the server's buffer for it fills.
    let inbox = Inbox::default();
    let stall = Arc::new(AtomicBool::new(false));
    let id = receiver.generate_client_id();
    {
        let (sink, stall) = (inbox.sink(), Arc::clone(&stall));
        receiver
            .register(id, move |frame: &bytes::Bytes| {
                while stall.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(1));
                }
                sink(frame);
            })
            .unwrap();
    }
    receiver.subscribe(id, "stream").unwrap();
    wait_subjects(&receiver_bridge, 1);
    thread::sleep(Duration::from_millis(200));
    let child = ChildPublisher::start(&cluster.url_of(0), 50_000);
    assert!(eventually(WAIT, || inbox.len() > 1000));
    stall.store(true, Ordering::Relaxed);
    // The stalled node cannot see the cut yet; its server can.
    assert!(
        eventually(WAIT, || cluster.connections(1) == Some(0)),
        "the server did not cut the stalled node: {:?} connections",
        cluster.connections(1)
    );
    stall.store(false, Ordering::Relaxed);
    assert!(eventually(WAIT, || receiver_bridge.stats().reconnects >= 1));
    let after = inbox.len();
    assert!(eventually(WAIT, || inbox.len() > after + 1000));
    let counts = child.finish(&receiver_bridge);
    eprintln!(
        "slow consumer cut: {counts:?}, receiver {:?}",
        receiver_bridge.stats()
    );
    // The publisher's server stays up: whatever the child dropped, it dropped on a full
    // queue, before numbering — receivers cannot see those (yet).
    check_accounting(
        &inbox,
        &receiver_bridge,
        counts["published"] - counts["dropped"],
    );
    assert!(receiver_bridge.stats().gaps > 0);
}
