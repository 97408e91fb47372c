//! A client in another language reads and writes bridge envelopes from the docs alone:
//! Python's `nats-py` subscribes to `NAMESPACE.>` (the NATS subject layout in
//! `fanout::bridge`), decodes each envelope and its Push frame with `struct` exactly as
//! `fanout::transport::envelope` and `fanout::transport::frame` describe them, and
//! publishes one envelope of its own on a topic's subject, which an engine delivers.
//!
//! Runs when `python3` with `nats-py` is installed (`.ci/run` installs it with
//! `pip install nats-py`); otherwise it says so and passes. Needs `nats-server`.
#![cfg(feature = "nats")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use fanout::bridge::Bridge;
use fanout::transport::RawPayload;
use fanout::PubSub;

mod common;
#[path = "common/nats_server.rs"]
mod nats_server;

use common::{eventually, Inbox};
use nats_server::NatsCluster;

/// Written from the docs: the subject layout (bridge), the envelope and the Push frame
/// (transport). Prints `ready`, then one line per envelope read, then publishes one.
const CLIENT: &str = r#"
import asyncio, struct, sys
import nats

async def main():
    url, ns, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
    nc = await nats.connect(url)
    got, done = [], asyncio.Event()

    async def on_message(msg):
        b = msg.data
        if len(b) < 34 or b[0] != 1:                   # version 1, 34-byte header
            return
        mode = b[1]
        origin = int.from_bytes(b[2:18], "big")
        seq, client = struct.unpack_from(">QQ", b, 18)
        f = b[34:]                                     # the Push frame
        _, kind, t = struct.unpack_from(">BBH", f)
        if kind != 1:
            return
        topic = f[4:4 + t].decode()
        (p,) = struct.unpack_from(">I", f, 4 + t)
        payload = f[8 + t:8 + t + p].decode()
        got.append(f"subject={msg.subject}|mode={mode}|origin={origin:032x}|seq={seq}|client={client}|topic={topic}|payload={payload}")
        if len(got) == want:
            done.set()

    await nc.subscribe(ns + ".>", cb=on_message)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.wait_for(done.wait(), 20)
    for line in got:
        print(line, flush=True)

    # An envelope of our own: topic "from/python" under separator "/" is the subject
    # NS.from.python; origin 0xABC, sequence 1, mode 0 (everyone), client 0.
    topic, payload = b"from/python", b"hello from python"
    frame = bytes([1, 1]) + struct.pack(">H", len(topic)) + topic + struct.pack(">I", len(payload)) + payload
    envelope = bytes([1, 0]) + (0xABC).to_bytes(16, "big") + struct.pack(">QQ", 1, 0) + frame
    await nc.publish(ns + ".from.python", envelope)
    await nc.flush()
    print("published", flush=True)
    await nc.close()

asyncio.run(main())
"#;

fn python_with_nats() -> bool {
    Command::new("python3")
        .args(["-c", "import nats"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_python_client_reads_and_writes_envelopes_from_the_docs() {
    if !python_with_nats() {
        eprintln!("skipped: python3 with nats-py is not installed (pip install nats-py)");
        return;
    }
    let cluster = NatsCluster::start(3);
    let engine = PubSub::<str>::builder().separator('/').build().unwrap();
    let bridge = Bridge::attach(&engine, &cluster.url_of(0), "py.ns").unwrap();
    let inbox = Inbox::default();
    let id = engine.generate_client_id();
    engine.register(id, inbox.sink()).unwrap();
    engine.subscribe(id, "from/python").unwrap();
    assert!(eventually(Duration::from_secs(15), || {
        bridge.stats().connected && bridge.stats().channels == 1
    }));

    let script = std::env::temp_dir().join(format!("fanout-nats-{}.py", std::process::id()));
    std::fs::write(&script, CLIENT).unwrap();
    let mut python = Command::new("python3")
        .arg(&script)
        .args([cluster.url_of(1).as_str(), "py.ns", "3"])
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
    let node = bridge.node_id().to_string();
    let expected = [
        format!("subject=py.ns.room.1|mode=0|origin={node}|seq=1|client=0|topic=room/1|payload=hello"),
        format!(
            "subject=py.ns.a%20b.c%2Ed|mode=1|origin={node}|seq=2|client={}|topic=a b/c.d|payload=spaced",
            id.as_u64()
        ),
        format!("subject=py.ns.room.1|mode=0|origin={node}|seq=2|client=0|topic=room/1|payload=again"),
    ];
    for want in &expected {
        assert_eq!(&lines.next().unwrap().unwrap(), want);
    }
    assert_eq!(lines.next().unwrap().unwrap(), "published");
    assert!(python.wait().unwrap().success());
    let _ = std::fs::remove_file(&script);

    assert!(eventually(Duration::from_secs(15), || inbox.len() == 1));
    assert_eq!(
        inbox.decoded(),
        [("from/python".to_owned(), b"hello from python".to_vec())]
    );
    assert_eq!(bridge.stats().bad_envelopes, 0);
}
