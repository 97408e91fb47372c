//! `GET /metrics` checked with a real Prometheus text parser: Python's
//! `prometheus_client` (`text_string_to_metric_families`), the client library
//! Prometheus's own docs point to. Install it with `pip install prometheus-client`.
//! Without it the test says so on stderr and passes — `cargo test` on a fresh machine has
//! only the Rust toolchain — unless `FANOUT_REQUIRE_PYTHON_CLIENTS` is set, as `.ci/run`
//! sets it once it has installed the clients: then a missing parser is a failure.
//!
//! Two clients chat in a room, then the test scrapes the server, has the parser read
//! the whole body, and checks the families it found against what happened.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use fanout_chat_server::{ChatServer, Config};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

#[path = "../../../tests/common/python_client.rs"]
mod python_client;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Parses Prometheus text from stdin with `prometheus_client` and prints every family
/// as JSON: `{name: {"type": .., "samples": [[sample name, labels, value], ..]}}`.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = {
        "type": family.type,
        "help": family.documentation,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
print(json.dumps(families))
"#;

fn connect(addr: SocketAddr) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).unwrap();
    ws
}

fn send(ws: &mut WebSocket<TcpStream>, command: Value) {
    ws.send(Message::Text(command.to_string().into())).unwrap();
}

/// Reads frames until a Push frame whose JSON payload has `"type": kind`.
fn wait_for(ws: &mut WebSocket<TcpStream>, kind: &str) {
    loop {
        match ws.read().expect("a frame before the timeout") {
            Message::Binary(frame) => {
                if let Ok(fanout::transport::Frame::Push(push)) =
                    fanout::transport::decode_any(&frame)
                {
                    let event: Value = serde_json::from_slice(push.payload).unwrap();
                    if event["type"] == kind {
                        return;
                    }
                }
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// `method /metrics`: (status line, headers, body).
fn scrape(addr: SocketAddr, method: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(stream, "{method} /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete head");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

/// The families `prometheus_client` reads from `text`; panics with the parser's error.
fn parse(text: &str) -> Value {
    let mut python = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with `pip install prometheus-client`)");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse the scrape (is it installed? \
         `pip install prometheus-client`):\n{}\n--- the scrape:\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` with exactly `labels`.
fn sample(families: &Value, family: &str, name: &str, labels: Value) -> f64 {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family} in {families}"));
    samples
        .iter()
        .find(|s| s[0] == name && s[1] == labels)
        .and_then(|s| s[2].as_f64())
        .unwrap_or_else(|| panic!("no {name} {labels} in {samples:?}"))
}

#[test]
fn metrics_parse_with_prometheus_client_and_count_what_happened() {
    if !python_client::python_can_import("prometheus_client", "prometheus-client") {
        return;
    }
    let server = ChatServer::start(Config {
        port: 0,
        ..Config::default()
    })
    .unwrap();
    let addr = server.local_addr();
    let (mut alice, mut bob) = (connect(addr), connect(addr));
    for ws in [&mut alice, &mut bob] {
        send(ws, json!({ "join": "ops" }));
        wait_for(ws, "members");
    }
    send(
        &mut alice,
        json!({ "say": "ops", "text": "is the bridge up?" }),
    );
    wait_for(&mut bob, "message");

    let (status, headers, body) = scrape(addr, "GET");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("Content-Type: text/plain; version=0.0.4"),
        "{headers}"
    );
    let families = parse(&body);

    let chat = json!({ "engine": "chat" });
    let with = |key: &str, value: &str| json!({ "engine": "chat", key: value });
    // prometheus_client names a counter's family without `_total`; its sample keeps it.
    for (family, kind) in [
        ("fanout_broadcasts", "counter"),
        ("fanout_deliveries", "counter"),
        ("fanout_dropped", "counter"),
        ("fanout_disconnects", "counter"),
        ("fanout_panics", "counter"),
        ("fanout_denied", "counter"),
        ("fanout_conflated", "counter"),
        ("fanout_clients", "gauge"),
        ("fanout_topics", "gauge"),
        ("fanout_subscriptions", "gauge"),
        ("fanout_presence_members", "gauge"),
    ] {
        assert_eq!(families[family]["type"], kind, "{family} in {families}");
        assert!(
            families[family]["help"]
                .as_str()
                .is_some_and(|h| !h.is_empty()),
            "{family} has no HELP"
        );
    }
    // Two connections, each subscribed to `time`, `welcome`-style topics and the room.
    assert_eq!(
        sample(&families, "fanout_clients", "fanout_clients", chat.clone()),
        2.0
    );
    assert_eq!(
        sample(
            &families,
            "fanout_presence_members",
            "fanout_presence_members",
            chat.clone()
        ),
        2.0
    );
    // The chat line, the joins and the presence frames were broadcast: at least the line.
    let broadcasts = sample(
        &families,
        "fanout_broadcasts",
        "fanout_broadcasts_total",
        chat.clone(),
    );
    let deliveries = sample(
        &families,
        "fanout_deliveries",
        "fanout_deliveries_total",
        chat.clone(),
    );
    assert!(
        broadcasts >= 1.0 && deliveries >= broadcasts,
        "{broadcasts} {deliveries}"
    );
    for policy in [
        "drop_newest",
        "drop_oldest",
        "disconnect",
        "block",
        "conflating",
    ] {
        assert_eq!(
            sample(
                &families,
                "fanout_dropped",
                "fanout_dropped_total",
                with("policy", policy)
            ),
            0.0
        );
    }
    for reason in ["overflow", "panic"] {
        sample(
            &families,
            "fanout_disconnects",
            "fanout_disconnects_total",
            with("reason", reason),
        );
    }
    assert!(
        sample(
            &families,
            "fanout_subscriptions",
            "fanout_subscriptions",
            with("kind", "topic")
        ) >= 4.0
    );

    // The numbers are read when scraped: one more line shows in the next scrape.
    send(&mut alice, json!({ "say": "ops", "text": "yes" }));
    wait_for(&mut bob, "message");
    let again = parse(&scrape(addr, "GET").2);
    assert!(
        sample(
            &again,
            "fanout_broadcasts",
            "fanout_broadcasts_total",
            chat.clone()
        ) > broadcasts
    );

    // HEAD: the head only.
    let (status, _, body) = scrape(addr, "HEAD");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    server.shutdown();
}
