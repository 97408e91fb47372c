//! The Redis bridge against a real `redis-server` (feature `redis`). Several engines in
//! this process stand for several hosts; each test starts its own server on a free
//! loopback port and kills it at the end.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::bridge::{Bridge, BridgeError, ChannelLayout};
use fanout::transport::{encode_push, RawPayload};
use fanout::PubSub;

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use common::{both_layouts, eventually, u64_payload, CountingSerialiser, Inbox};
use redis_server::{free_port, url_for, RedisServer};

const WAIT: Duration = Duration::from_secs(15);

/// A bridge with short timeouts, so tests notice failures and stop quickly.
fn bridge(pubsub: &PubSub<str>, url: &str, namespace: &str, layout: ChannelLayout) -> Bridge {
    Bridge::builder(url, namespace)
        .layout(layout)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .read_timeout(Duration::from_millis(20))
        .ping_interval(Duration::from_millis(200))
        .queue_capacity(1 << 17)
        .attach(pubsub)
        .expect("attach")
}

/// Waits until `bridge` is connected and subscribed for `topics` topics (under the
/// namespace layout, its one channel).
fn wait_serving(bridge: &Bridge, topics: usize) {
    let channels = match bridge.layout() {
        ChannelLayout::PerTopic => topics,
        _ => 1,
    };
    assert!(
        eventually(WAIT, || {
            let s = bridge.stats();
            s.connected && s.channels == channels
        }),
        "not serving {topics} topics: {bridge:?}"
    );
}

fn wait_connected(bridges: &[&Bridge]) {
    assert!(
        eventually(WAIT, || bridges.iter().all(|b| b.stats().connected)),
        "bridges did not connect: {bridges:?}"
    );
}

/// An engine with one callback client subscribed to `topic`; returns its inbox.
fn subscriber(pubsub: &PubSub<str>, topic: &str) -> Inbox {
    let inbox = Inbox::default();
    let id = pubsub.generate_client_id();
    pubsub.register(id, inbox.sink()).unwrap();
    pubsub.subscribe(id, topic).unwrap();
    inbox
}

fn cross_node_delivery_reaches_every_subscriber_once(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let nodes: Vec<PubSub<str>> = (0..3).map(|_| PubSub::new().unwrap()).collect();
    let bridges: Vec<Bridge> = nodes
        .iter()
        .map(|n| bridge(n, &redis.url(), "cross", layout))
        .collect();
    wait_connected(&bridges.iter().collect::<Vec<_>>());
    let inboxes: Vec<Vec<Inbox>> = nodes
        .iter()
        .map(|n| (0..2).map(|_| subscriber(n, "room")).collect())
        .collect();
    let other_topic = subscriber(&nodes[2], "elsewhere");
    for (bridge, topics) in bridges.iter().zip([1, 1, 2]) {
        wait_serving(bridge, topics);
    }

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
    assert_eq!(bridges[0].stats().sent, 1);
    assert_eq!(bridges[1].stats().received, 1);
    assert_eq!(bridges[2].stats().received, 1);
}
both_layouts!(cross_node_delivery_reaches_every_subscriber_once);

fn no_echo_and_serialise_once_without_local_subscribers(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let (a, b) = (PubSub::<u64>::new().unwrap(), PubSub::<str>::new().unwrap());
    let bridge_a = Bridge::builder(&redis.url(), "echo")
        .layout(layout)
        .read_timeout(Duration::from_millis(20))
        .attach(&a)
        .unwrap();
    let bridge_b = bridge(&b, &redis.url(), "echo", layout);
    wait_connected(&[&bridge_a, &bridge_b]);
    let remote = subscriber(&b, "t");
    wait_serving(&bridge_b, 1);

    // No local subscriber on `a`: the serialiser still runs, once, for the remote one.
    let serialiser = CountingSerialiser::default();
    for i in 0..10 {
        assert_eq!(a.broadcast("t", &i, &serialiser).unwrap(), 0);
    }
    assert_eq!(serialiser.calls(), 10);
    let local = Inbox::default();
    let id = a.generate_client_id();
    a.register(id, local.sink()).unwrap();
    a.subscribe(id, "t").unwrap();
    for i in 10..20 {
        assert_eq!(a.broadcast("t", &i, &serialiser).unwrap(), 1);
    }
    assert!(eventually(WAIT, || remote.len() == 20));
    // `a`'s subscriber thread has read its own 20 envelopes by now, or soon: none of
    // them may be delivered again.
    assert!(eventually(WAIT, || bridge_b.stats().received == 20));
    thread::sleep(Duration::from_millis(200));
    let values: Vec<u64> = local.payloads().iter().map(|p| u64_payload(p)).collect();
    assert_eq!(values, (10..20).collect::<Vec<_>>());
    assert_eq!(bridge_a.stats().received, 0);
    assert_eq!(bridge_a.stats().bad_envelopes, 0);
}
both_layouts!(no_echo_and_serialise_once_without_local_subscribers);

fn broadcast_from_skips_the_sender_on_its_own_node_only(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let (a, b) = (PubSub::<str>::new().unwrap(), PubSub::<str>::new().unwrap());
    let (bridge_a, bridge_b) = (
        bridge(&a, &redis.url(), "from", layout),
        bridge(&b, &redis.url(), "from", layout),
    );
    wait_connected(&[&bridge_a, &bridge_b]);

    let (sender, peer) = (a.generate_client_id(), a.generate_client_id());
    let (sender_inbox, peer_inbox) = (Inbox::default(), Inbox::default());
    a.register(sender, sender_inbox.sink()).unwrap();
    a.register(peer, peer_inbox.sink()).unwrap();
    // On `b`, a client with the same id number as `sender`: ids are per engine.
    let twin = b.generate_client_id();
    assert_eq!(twin.as_u64(), sender.as_u64());
    let twin_inbox = Inbox::default();
    b.register(twin, twin_inbox.sink()).unwrap();
    for (engine, id) in [(&a, sender), (&a, peer), (&b, twin)] {
        engine.subscribe(id, "room").unwrap();
    }
    wait_serving(&bridge_b, 1);

    assert_eq!(
        a.broadcast_from(sender, "room", "hi", &RawPayload).unwrap(),
        1
    );
    assert!(eventually(WAIT, || twin_inbox.len() == 1));
    assert_eq!(peer_inbox.len(), 1);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(sender_inbox.len(), 0);
    // And the pre-encoded form is bridged the same way.
    let frame = encode_push("room", b"again").unwrap();
    assert_eq!(a.broadcast_frame_from(sender, "room", &frame).unwrap(), 1);
    assert!(eventually(WAIT, || twin_inbox.len() == 2));
    assert_eq!(sender_inbox.len(), 0);
}
both_layouts!(broadcast_from_skips_the_sender_on_its_own_node_only);

fn per_publisher_order_over_100k_frames(layout: ChannelLayout) {
    const N: u64 = 100_000;
    let redis = RedisServer::start();
    let (a, b) = (PubSub::<u64>::new().unwrap(), PubSub::<str>::new().unwrap());
    let bridge_a = Bridge::builder(&redis.url(), "order")
        .layout(layout)
        .queue_capacity(N as usize)
        .attach(&a)
        .unwrap();
    let bridge_b = bridge(&b, &redis.url(), "order", layout);
    wait_connected(&[&bridge_a, &bridge_b]);
    let inbox = subscriber(&b, "ticks");
    wait_serving(&bridge_b, 1);

    let serialiser = CountingSerialiser::default();
    let start = Instant::now();
    for i in 0..N {
        a.broadcast("ticks", &i, &serialiser).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(60), || inbox.len() as u64 == N),
        "received {} of {N}; {:?} {:?}",
        inbox.len(),
        bridge_a.stats(),
        bridge_b.stats()
    );
    eprintln!("100k frames across in {:?}", start.elapsed());
    let values: Vec<u64> = inbox.payloads().iter().map(|p| u64_payload(p)).collect();
    assert!(values.iter().copied().eq(0..N), "frames out of order");
    let (sa, sb) = (bridge_a.stats(), bridge_b.stats());
    assert_eq!((sa.sent, sa.dropped), (N, 0));
    assert_eq!((sb.received, sb.gaps, sb.duplicates), (N, 0, 0));
}
both_layouts!(per_publisher_order_over_100k_frames);

fn redis_down_at_start_then_up(layout: ChannelLayout) {
    let port = free_port();
    let (a, b) = (PubSub::<str>::new().unwrap(), PubSub::<str>::new().unwrap());
    let (bridge_a, bridge_b) = (
        bridge(&a, &url_for(port), "late", layout),
        bridge(&b, &url_for(port), "late", layout),
    );
    let local = subscriber(&a, "t");
    let remote = subscriber(&b, "t");

    // Local delivery is unaffected; the frame cannot be sent and is counted.
    assert_eq!(a.broadcast("t", "while down", &RawPayload).unwrap(), 1);
    assert_eq!(local.len(), 1);
    assert!(eventually(WAIT, || bridge_a.stats().dropped == 1));
    assert!(!bridge_a.stats().connected);

    let _redis = RedisServer::start_on(port);
    wait_connected(&[&bridge_a, &bridge_b]);
    wait_serving(&bridge_b, 1);
    assert_eq!(a.broadcast("t", "now up", &RawPayload).unwrap(), 1);
    assert!(eventually(WAIT, || remote.len() == 1));
    assert_eq!(remote.payloads(), [b"now up".to_vec()]);
    // `b` never heard from `a` before: the frame lost while down cannot be a gap to it
    // (it could have started later), only a drop on `a`.
    assert_eq!(bridge_b.stats().gaps, 0);
    assert_eq!(bridge_a.stats().dropped, 1);
}
both_layouts!(redis_down_at_start_then_up);

fn redis_restarted_mid_stream_recovers_without_duplicates(layout: ChannelLayout) {
    let mut redis = RedisServer::start();
    let (a, b) = (PubSub::<u64>::new().unwrap(), PubSub::<str>::new().unwrap());
    let bridge_a = Bridge::builder(&redis.url(), "restart")
        .layout(layout)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .queue_capacity(1 << 20)
        .attach(&a)
        .unwrap();
    let bridge_b = bridge(&b, &redis.url(), "restart", layout);
    wait_connected(&[&bridge_a, &bridge_b]);
    let inbox = subscriber(&b, "stream");
    wait_serving(&bridge_b, 1);

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (a, stop) = (a.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let serialiser = CountingSerialiser::default();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                a.broadcast("stream", &i, &serialiser).unwrap();
                i += 1;
                thread::sleep(Duration::from_micros(200));
            }
            i
        })
    };
    assert!(eventually(WAIT, || inbox.len() > 500));
    redis.restart();
    assert!(eventually(WAIT, || bridge_a.stats().reconnects >= 1
        && bridge_b.stats().reconnects >= 1
        && bridge_a.stats().connected
        && bridge_b.stats().connected));
    let after = inbox.len();
    assert!(
        eventually(WAIT, || inbox.len() > after + 500),
        "no frames after the restart"
    );
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().unwrap();
    // Every frame published is sent, dropped or of unknown fate at `a`, and then every
    // sequence number is received or a gap at `b` (the last frames were sent after the
    // reconnect).
    assert!(eventually(WAIT, || {
        let sa = bridge_a.stats();
        sa.sent + sa.dropped + sa.unknown == published
    }));
    assert!(eventually(WAIT, || {
        let sb = bridge_b.stats();
        sb.received + sb.gaps == published
    }));
    let (sa, sb) = (bridge_a.stats(), bridge_b.stats());
    let sb_final = sb;

    let values: Vec<u64> = inbox.payloads().iter().map(|p| u64_payload(p)).collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "a frame arrived twice or out of order"
    );
    let first = values[0];
    let last = *values.last().unwrap();
    assert_eq!(last + 1, published, "the last frame arrives");
    assert_eq!(sb_final.received, values.len() as u64);
    // Every frame between the first and last received is either received or a gap.
    assert_eq!(last - first + 1, sb_final.received + sb_final.gaps);
    assert!(
        sb_final.gaps > 0 || sa.dropped > 0,
        "the restart lost nothing? {sa:?} {sb:?}"
    );
    assert_eq!(sb_final.duplicates, 0);
    let sa_final = bridge_a.stats();
    assert_eq!(
        sa_final.sent + sa_final.dropped + sa_final.unknown,
        published
    );
}
both_layouts!(redis_restarted_mid_stream_recovers_without_duplicates);

fn bad_envelopes_from_a_raw_client_are_counted_and_skipped(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let (a, b) = (PubSub::<str>::new().unwrap(), PubSub::<str>::new().unwrap());
    let (bridge_a, bridge_b) = (
        bridge(&a, &redis.url(), "bad", layout),
        bridge(&b, &redis.url(), "bad", layout),
    );
    wait_connected(&[&bridge_a, &bridge_b]);
    let inbox = subscriber(&b, "t");
    wait_serving(&bridge_b, 1);

    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let frame = encode_push("t", b"foreign").unwrap();
    let envelope = |version: u8, mode: u8, client: u64, sequence: u64, frame: &[u8]| {
        let mut m = vec![version, mode];
        m.extend_from_slice(&0xF0F0u128.to_be_bytes());
        m.extend_from_slice(&sequence.to_be_bytes());
        m.extend_from_slice(&client.to_be_bytes());
        m.extend_from_slice(frame);
        m
    };
    let good = envelope(1, 0, 0, 2, &frame);
    let long_topic = encode_push(&"x".repeat(300), b"p").unwrap(); // over b's 256-byte limit
    let mut bad: Vec<Vec<u8>> = vec![
        b"hello, I am not an envelope".to_vec(),
        Vec::new(),
        good[..20].to_vec(),
        good[..good.len() - 1].to_vec(),
        envelope(2, 0, 0, 1, &frame),
        envelope(1, 7, 0, 1, &frame),
        envelope(1, 0, 9, 1, &frame),
        envelope(1, 0, 0, 1, b"\x01\x01\x00"),
        envelope(1, 0, 0, 1, &long_topic),
    ];
    let channel = match layout {
        ChannelLayout::PerTopic => {
            // A frame for topic `u` on topic `t`'s channel.
            bad.push(envelope(1, 0, 0, 1, &encode_push("u", b"p").unwrap()));
            "bad:t:t"
        }
        _ => "bad",
    };
    let publish = |raw: &mut redis::Connection, m: &[u8]| {
        redis::cmd("PUBLISH").arg(channel).arg(m).exec(raw).unwrap();
    };
    for m in &bad {
        publish(&mut raw, m);
    }
    // A well-formed envelope from a foreign origin is delivered; its replay is not. (The
    // long-topic one above was a real envelope, sequence 1, refused only by this
    // engine's topic limit: no gap.)
    publish(&mut raw, &good);
    publish(&mut raw, &good);
    a.broadcast("t", "real", &RawPayload).unwrap();
    assert!(eventually(WAIT, || inbox.len() == 2));
    let (_, sb) = (bridge_a.stats(), bridge_b.stats());
    // `a` serves no topic `t`: under per-topic channels it does not even see them.
    let a_sees = if layout == ChannelLayout::PerTopic {
        0
    } else {
        bad.len() as u64
    };
    assert!(eventually(WAIT, || bridge_a.stats().bad_envelopes == a_sees));
    assert_eq!(sb.bad_envelopes, bad.len() as u64);
    assert_eq!(sb.duplicates, 1);
    assert_eq!(sb.gaps, 0);
    assert_eq!(inbox.payloads(), [b"foreign".to_vec(), b"real".to_vec()]);
    assert!(sb.connected, "bad input does not stop the bridge");
}
both_layouts!(bad_envelopes_from_a_raw_client_are_counted_and_skipped);

/// Batch envelopes (mode 3) from a raw client: a malformed batch is one bad envelope and
/// delivers nothing — not even its good frames, whose numbers would otherwise move the
/// stream — and a good one is checked frame by frame (gaps, duplicates) like plain
/// envelopes.
fn batch_envelopes_from_a_raw_client_are_checked_whole(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let b = PubSub::<str>::new().unwrap();
    let bridge_b = bridge(&b, &redis.url(), "batch", layout);
    wait_connected(&[&bridge_b]);
    let inbox = subscriber(&b, "t");
    wait_serving(&bridge_b, 1);

    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    // (sequence, client, frame) items behind a batch header from origin 0xF0F1.
    let batch = |count: u32, items: &[(u64, u64, Vec<u8>)]| {
        let mut m = vec![1, 3];
        m.extend_from_slice(&0xF0F1u128.to_be_bytes());
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&count.to_be_bytes());
        for (sequence, client, frame) in items {
            m.extend_from_slice(&sequence.to_be_bytes());
            m.extend_from_slice(&client.to_be_bytes());
            m.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            m.extend_from_slice(frame);
        }
        m
    };
    let push = |payload: &str| encode_push("t", payload.as_bytes()).unwrap().to_vec();
    let early = (100, 0, push("never"));
    let mut with_sequence = batch(1, &[(1, 0, push("never"))]);
    with_sequence[25] = 1;
    let mut trailing = batch(1, &[(1, 0, push("never"))]);
    trailing.push(0);
    let mut bad = vec![
        batch(0, &[]),
        batch(2, std::slice::from_ref(&early)),
        batch(1, &[early.clone(), (101, 0, push("never"))]),
        batch(2, &[early.clone(), (101, 0, b"\x01\x01\x00".to_vec())]),
        with_sequence,
        trailing,
    ];
    let channel = match layout {
        ChannelLayout::PerTopic => {
            // A good frame for topic `t`, then one for `u`, on topic `t`'s channel.
            let other = encode_push("u", b"p").unwrap().to_vec();
            bad.push(batch(2, &[early.clone(), (101, 0, other)]));
            "batch:t:t"
        }
        _ => "batch",
    };
    let publish = |raw: &mut redis::Connection, m: &[u8]| {
        redis::cmd("PUBLISH").arg(channel).arg(m).exec(raw).unwrap();
    };
    for m in &bad {
        publish(&mut raw, m);
    }
    let good = batch(
        4,
        &[
            (5, 0, push("b1")),
            (6, 3, push("b2")),
            (9, 0, push("b3")),    // 7 and 8 missed
            (9, 0, push("again")), // a replay
        ],
    );
    publish(&mut raw, &good);
    assert!(eventually(WAIT, || bridge_b.stats().received == 3));
    let stats = bridge_b.stats();
    assert_eq!(stats.bad_envelopes, bad.len() as u64);
    assert_eq!((stats.gaps, stats.duplicates), (2, 1));
    assert_eq!(
        inbox.payloads(),
        [b"b1".to_vec(), b"b2".to_vec(), b"b3".to_vec()]
    );
}
both_layouts!(batch_envelopes_from_a_raw_client_are_checked_whole);

#[test]
fn shutdown_while_disconnected_is_prompt_and_joins() {
    let port = free_port(); // nobody listens
    let pubsub = PubSub::<str>::new().unwrap();
    let bridge_1 = Bridge::builder(&url_for(port), "gone")
        .backoff(Duration::from_secs(5), Duration::from_secs(30))
        .attach(&pubsub)
        .unwrap();
    thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    bridge_1.shutdown();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );

    // Lost mid-connection: kill the server under a connected bridge, then detach.
    let mut redis = RedisServer::start();
    let bridge_2 = bridge(&pubsub, &redis.url(), "gone", ChannelLayout::PerTopic);
    wait_connected(&[&bridge_2]);
    redis.kill();
    assert!(eventually(WAIT, || !bridge_2.stats().connected
        || pubsub.broadcast("t", "x", &RawPayload).is_ok()
            && !bridge_2.stats().connected));
    let start = Instant::now();
    drop(bridge_2);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    // Detached: the engine is a plain engine again, and can be bridged anew.
    let local = subscriber(&pubsub, "t");
    assert_eq!(pubsub.broadcast("t", "local", &RawPayload).unwrap(), 1);
    assert_eq!(local.len(), 1);
    Bridge::attach(&pubsub, &url_for(port), "again")
        .unwrap()
        .shutdown();
}

#[test]
fn attach_refuses_bad_settings_and_a_second_bridge() {
    let pubsub = PubSub::<str>::new().unwrap();
    let url = url_for(free_port());
    assert!(matches!(
        Bridge::attach(&pubsub, "not a url", "ns"),
        Err(BridgeError::InvalidUrl(_))
    ));
    assert!(matches!(
        Bridge::attach(&pubsub, &url, ""),
        Err(BridgeError::InvalidConfig(_))
    ));
    assert!(matches!(
        Bridge::builder(&url, "ns")
            .queue_capacity(0)
            .attach(&pubsub),
        Err(BridgeError::InvalidConfig(_))
    ));
    let first = Bridge::attach(&pubsub, &url, "ns").unwrap();
    assert!(matches!(
        Bridge::attach(&pubsub.clone(), &url, "ns"),
        Err(BridgeError::AlreadyBridged)
    ));
    drop(first);
    pubsub.shutdown();
    assert!(matches!(
        Bridge::attach(&pubsub, &url, "ns"),
        Err(BridgeError::Closed)
    ));
}

#[test]
fn a_bridge_does_not_keep_its_engine_alive() {
    let redis = RedisServer::start();
    let pubsub = PubSub::<str>::new().unwrap();
    let weak = pubsub.downgrade();
    let bridge = bridge(&pubsub, &redis.url(), "life", ChannelLayout::PerTopic);
    wait_connected(&[&bridge]);
    drop(pubsub);
    assert!(weak.upgrade().is_none());
    bridge.shutdown();
}

fn a_full_queue_drops_and_counts_without_blocking(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let (a, b) = (PubSub::<str>::new().unwrap(), PubSub::<str>::new().unwrap());
    let bridge_a = Bridge::builder(&redis.url(), "full")
        .layout(layout)
        .queue_capacity(1)
        .attach(&a)
        .unwrap();
    let bridge_b = bridge(&b, &redis.url(), "full", layout);
    wait_connected(&[&bridge_a, &bridge_b]);
    let remote = subscriber(&b, "t");
    wait_serving(&bridge_b, 1);
    // The stream's first frame, so that `b` counts every later loss.
    a.broadcast("t", "first", &RawPayload).unwrap();
    assert!(eventually(WAIT, || remote.len() == 1));

    let start = Instant::now();
    for _ in 0..10_000 {
        a.broadcast("t", "burst", &RawPayload).unwrap();
    }
    let burst = start.elapsed();
    assert!(eventually(WAIT, || {
        let s = bridge_a.stats();
        s.sent + s.dropped + s.unknown == 10_001
    }));
    let sa = bridge_a.stats();
    assert!(
        sa.dropped > 0,
        "a one-frame queue kept up with a 10k burst? {sa:?}"
    );
    assert_eq!((sa.unknown, sa.untracked), (0, 0));
    // A loss shows when the stream's next frame arrives: one more, with the queue empty.
    a.broadcast("t", "last", &RawPayload).unwrap();
    assert!(eventually(WAIT, || remote.len() as u64 == sa.sent + 1));
    eprintln!(
        "10k broadcasts in {burst:?}: {} sent, {} dropped",
        sa.sent, sa.dropped
    );
    // Frames the full queue refused were numbered all the same: `b` counts each as a gap.
    let sb = bridge_b.stats();
    assert_eq!(sb.gaps, sa.dropped, "{sa:?} {sb:?}");
    assert_eq!(sb.received + sb.gaps, 10_002);
}
both_layouts!(a_full_queue_drops_and_counts_without_blocking);

fn after_detach_broadcasts_stay_local(layout: ChannelLayout) {
    let redis = RedisServer::start();
    let (a, b) = (PubSub::<str>::new().unwrap(), PubSub::<str>::new().unwrap());
    let (bridge_a, bridge_b) = (
        bridge(&a, &redis.url(), "detach", layout),
        bridge(&b, &redis.url(), "detach", layout),
    );
    wait_connected(&[&bridge_a, &bridge_b]);
    let remote = subscriber(&b, "t");
    wait_serving(&bridge_b, 1);
    a.broadcast("t", "bridged", &RawPayload).unwrap();
    assert!(eventually(WAIT, || remote.len() == 1));
    bridge_a.shutdown();
    let local = subscriber(&a, "t");
    assert_eq!(a.broadcast("t", "local only", &RawPayload).unwrap(), 1);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(remote.len(), 1);
    assert_eq!(local.len(), 1);
    // Nor does anything from `b` reach `a`: it has no bridge any more.
    b.broadcast("t", "from b", &RawPayload).unwrap();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(local.len(), 1);
}
both_layouts!(after_detach_broadcasts_stay_local);

/// Per-topic channels: a node receives only the topics it serves, from the moment its
/// first local subscriber's SUBSCRIBE is confirmed, and stops when its last one leaves.
#[test]
fn per_topic_channels_follow_local_subscribers() {
    let redis = RedisServer::start();
    let nodes: Vec<PubSub<str>> = (0..3).map(|_| PubSub::new().unwrap()).collect();
    let bridges: Vec<Bridge> = nodes
        .iter()
        .map(|n| bridge(n, &redis.url(), "follow", ChannelLayout::PerTopic))
        .collect();
    wait_connected(&bridges.iter().collect::<Vec<_>>());
    // Node 1 serves "a" (subscribed before attaching would work too: see below), node 2
    // serves nothing yet.
    let on_1 = subscriber(&nodes[1], "a");
    wait_serving(&bridges[1], 1);
    wait_serving(&bridges[2], 0);
    nodes[0].broadcast("a", "one", &RawPayload).unwrap();
    assert!(eventually(WAIT, || on_1.len() == 1));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(bridges[2].stats().received, 0, "node 2 serves no topic");

    // Node 2 opens "a": it is subscribed in about a round trip (the publisher wakes the
    // subscriber thread), well inside its 20 ms read timeout.
    let on_2 = subscriber(&nodes[2], "a");
    let start = Instant::now();
    wait_serving(&bridges[2], 1);
    eprintln!("topic opened -> node subscribed in {:?}", start.elapsed());
    nodes[0].broadcast("a", "two", &RawPayload).unwrap();
    assert!(eventually(WAIT, || on_1.len() == 2 && on_2.len() == 1));

    // Node 1 opens "b" and closes it again (its only subscriber goes): subscribed, then
    // unsubscribed.
    let id = nodes[1].generate_client_id();
    nodes[1].register(id, |_| {}).unwrap();
    nodes[1].subscribe(id, "b").unwrap();
    wait_serving(&bridges[1], 2);
    nodes[1].unregister(id).unwrap();
    wait_serving(&bridges[1], 1);

    // A topic that had local subscribers before the bridge was attached is served too.
    let late = PubSub::<str>::new().unwrap();
    let on_late = subscriber(&late, "a");
    let late_bridge = bridge(&late, &redis.url(), "follow", ChannelLayout::PerTopic);
    wait_serving(&late_bridge, 1);
    nodes[0].broadcast("a", "three", &RawPayload).unwrap();
    assert!(eventually(WAIT, || on_late.len() == 1));
    assert_eq!(on_late.payloads(), [b"three".to_vec()]);
}
