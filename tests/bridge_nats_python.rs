//! A client in another language reads and writes bridge envelopes from the docs alone:
//! Python's `nats-py` subscribes to `NAMESPACE.>` (the NATS subject layout in
//! `fanout::bridge`), decodes each envelope — plain, and a batch of frames queued
//! together — and its Push frames with `struct` exactly as `fanout::transport::envelope`
//! and `fanout::transport::frame` describe them, and publishes a plain envelope and a
//! batch of its own on a topic's subject, which an engine delivers.
//!
//! Runs when `python3` with `nats-py` is installed (`.ci/run` installs it with
//! `pip install nats-py`); otherwise it says so and passes, unless
//! `FANOUT_REQUIRE_PYTHON_CLIENTS` is set (as `.ci/run` sets it): then it fails. Needs
//! `nats-server`.
#![cfg(feature = "nats")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use fanout::bridge::Bridge;
use fanout::transport::RawPayload;
use fanout::{Bytes, PubSub};

mod common;
#[path = "common/nats_server.rs"]
mod nats_server;
#[path = "common/python_client.rs"]
mod python_client;

use common::{eventually, Inbox};
use nats_server::NatsCluster;
use python_client::python_can_import;

/// Written from the docs: the subject layout (bridge), the envelope and the Push frame
/// (transport), plain (modes 0 and 1) and batched (mode 3). Prints `ready`; after the
/// first three frames publishes a plain envelope and a batch of its own and prints
/// `published`; once it has `want` frames prints one line per frame read (`in=K`: the
/// message carried K frames).
const CLIENT: &str = r#"
import asyncio, struct, sys
import nats

def push(f):
    _, kind, t = struct.unpack_from(">BBH", f)
    assert kind == 1
    topic = f[4:4 + t].decode()
    (p,) = struct.unpack_from(">I", f, 4 + t)
    assert len(f) == 8 + t + p
    return topic, f[8 + t:].decode()

def frames(b):
    """(mode, origin, seq, client, frame) of every frame of one message."""
    if len(b) < 34 or b[0] != 1:                       # version 1, 34-byte header
        return []
    mode = b[1]
    origin = int.from_bytes(b[2:18], "big")
    if mode in (0, 1):
        seq, client = struct.unpack_from(">QQ", b, 18)
        return [(mode, origin, seq, client, b[34:])]
    if mode == 3:                                      # a batch
        (n,) = struct.unpack_from(">I", b, 34)
        out, at = [], 38
        for _ in range(n):
            seq, client, length = struct.unpack_from(">QQI", b, at)
            out.append((1 if client else 0, origin, seq, client, b[at + 20:at + 20 + length]))
            at += 20 + length
        assert at == len(b)
        return out
    return []                                          # presence (2): not frames

def plain(mode, origin, seq, client, frame):
    return bytes([1, mode]) + origin.to_bytes(16, "big") + struct.pack(">QQ", seq, client) + frame

def batch(origin, items):
    body = b"".join(struct.pack(">QQI", seq, client, len(f)) + f for seq, client, f in items)
    return bytes([1, 3]) + origin.to_bytes(16, "big") + bytes(16) + struct.pack(">I", len(items)) + body

def make_frame(topic, payload):
    return bytes([1, 1]) + struct.pack(">H", len(topic)) + topic + struct.pack(">I", len(payload)) + payload

async def main():
    url, ns, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
    nc = await nats.connect(url)
    got, three, done = [], asyncio.Event(), asyncio.Event()

    async def on_message(msg):
        found = frames(msg.data)
        if any(origin == 0xABC for _, origin, _, _, _ in found):
            return                                     # our own, echoed by the server
        for mode, origin, seq, client, f in found:
            topic, payload = push(f)
            got.append(f"subject={msg.subject}|in={len(found)}|mode={mode}|origin={origin:032x}|seq={seq}|client={client}|topic={topic}|payload={payload}")
        if len(got) >= 3:
            three.set()
        if len(got) >= want:
            done.set()

    await nc.subscribe(ns + ".>", cb=on_message)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.wait_for(three.wait(), 20)

    # Envelopes of our own: topic "from/python" under separator "/" is the subject
    # NS.from.python; origin 0xABC. A plain one (sequence 1, mode 0), then a batch of
    # two (sequences 2 and 3, the second for everyone but client 9).
    subject = ns + ".from.python"
    await nc.publish(subject, plain(0, 0xABC, 1, 0, make_frame(b"from/python", b"hello from python")))
    await nc.publish(subject, batch(0xABC, [
        (2, 0, make_frame(b"from/python", b"batched 1")),
        (3, 9, make_frame(b"from/python", b"batched 2")),
    ]))
    await nc.flush()
    print("published", flush=True)
    await asyncio.wait_for(done.wait(), 20)
    for line in got:
        print(line, flush=True)
    await nc.close()

asyncio.run(main())
"#;

#[test]
fn a_python_client_reads_and_writes_envelopes_from_the_docs() {
    if !python_can_import("nats", "nats-py") {
        return;
    }
    let cluster = NatsCluster::start(3);
    let engine = PubSub::<str>::builder().separator('/').build().unwrap();
    let bridge = Bridge::attach(&engine, &cluster.url_of(0), "py.ns").unwrap();
    // The subscriber's callback runs on the bridge's io thread: holding the first frame
    // from Python there keeps that thread from draining the queue, so the broadcasts
    // made meanwhile are queued together and leave as one batch.
    let inbox = Inbox::default();
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, gate) = mpsc::channel::<()>();
    let (entered_tx, gate) = (Mutex::new(Some(entered_tx)), Mutex::new(gate));
    let id = engine.generate_client_id();
    let sink = inbox.sink();
    engine
        .register(id, move |frame: &Bytes| {
            if let Some(entered) = entered_tx.lock().unwrap().take() {
                entered.send(()).unwrap();
                let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(20));
            }
            sink(frame);
        })
        .unwrap();
    engine.subscribe(id, "from/python").unwrap();
    assert!(eventually(Duration::from_secs(15), || {
        bridge.stats().connected && bridge.stats().channels == 1
    }));

    let script = std::env::temp_dir().join(format!("fanout-nats-{}.py", std::process::id()));
    std::fs::write(&script, CLIENT).unwrap();
    let mut python = Command::new("python3")
        .arg(&script)
        .args([cluster.url_of(1).as_str(), "py.ns", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // Python's subscription reaches server 0 through the cluster asynchronously.
    std::thread::sleep(Duration::from_millis(300));
    engine.broadcast("room/1", "hello", &RawPayload).unwrap();
    engine
        .broadcast_from(id, "a b/c.d", "spaced", &RawPayload)
        .unwrap();
    engine.broadcast("room/1", "again", &RawPayload).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "published");
    // The io thread is now held in the callback: five broadcasts queue up together.
    entered.recv_timeout(Duration::from_secs(20)).unwrap();
    for i in 1..=4 {
        engine
            .broadcast("burst", format!("b{i}").as_str(), &RawPayload)
            .unwrap();
    }
    engine
        .broadcast_from(id, "burst", "b5", &RawPayload)
        .unwrap();
    release.send(()).unwrap();

    let node = bridge.node_id().to_string();
    let mut expected = vec![
        format!("subject=py.ns.room.1|in=1|mode=0|origin={node}|seq=1|client=0|topic=room/1|payload=hello"),
        format!(
            "subject=py.ns.a%20b.c%2Ed|in=1|mode=1|origin={node}|seq=2|client={}|topic=a b/c.d|payload=spaced",
            id.as_u64()
        ),
        format!("subject=py.ns.room.1|in=1|mode=0|origin={node}|seq=2|client=0|topic=room/1|payload=again"),
    ];
    // A topic new to the origin starts at its count of all envelopes so far (3).
    for (seq, i) in (4..).zip(1..=4) {
        expected.push(format!(
            "subject=py.ns.burst|in=5|mode=0|origin={node}|seq={seq}|client=0|topic=burst|payload=b{i}"
        ));
    }
    expected.push(format!(
        "subject=py.ns.burst|in=5|mode=1|origin={node}|seq=8|client={}|topic=burst|payload=b5",
        id.as_u64()
    ));
    for want in &expected {
        assert_eq!(&lines.next().unwrap().unwrap(), want);
    }
    assert!(python.wait().unwrap().success());
    let _ = std::fs::remove_file(&script);

    assert!(eventually(Duration::from_secs(15), || inbox.len() == 3));
    assert_eq!(
        inbox.decoded(),
        [
            ("from/python".to_owned(), b"hello from python".to_vec()),
            ("from/python".to_owned(), b"batched 1".to_vec()),
            ("from/python".to_owned(), b"batched 2".to_vec()),
        ]
    );
    let stats = bridge.stats();
    assert_eq!((stats.bad_envelopes, stats.gaps, stats.received), (0, 0, 3));
}
