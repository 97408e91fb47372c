//! Runs the `chat_server` example in-process on a free port and talks to it with real
//! WebSocket clients: rooms, no echo to the speaker, presence on leave and disconnect,
//! the periodic time push, and the HTML page on `GET /`.
//!
//! Every read has a timeout, so a regression fails in seconds instead of hanging.

#[path = "../examples/chat_server/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use fanout::transport::decode;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use server::{ChatServer, Config};

/// Longest any single expected event may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

struct Client {
    ws: WebSocket<TcpStream>,
    id: u64,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        let (ws, _response) =
            tungstenite::client(format!("ws://{addr}/"), stream).expect("WebSocket handshake");
        let mut client = Client { ws, id: 0 };
        let (topic, welcome) = client.next_event();
        assert_eq!(topic, "welcome");
        assert_eq!(welcome["type"], "welcome");
        client.id = welcome["client"].as_u64().expect("client id");
        client
    }

    fn send(&mut self, command: Value) {
        self.ws.send(Message::Text(command.to_string())).unwrap();
    }

    /// The next Push frame, decoded: (topic, JSON payload). Panics after the timeout.
    fn next_event(&mut self) -> (String, Value) {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(frame)) => {
                    let push = decode(&frame).expect("a valid Push frame");
                    let payload = serde_json::from_slice(push.payload).expect("JSON payload");
                    return (push.topic.to_owned(), payload);
                }
                Ok(Message::Text(text)) => panic!("server sent text, not a Push frame: {text}"),
                Ok(_) => continue, // ping/pong
                Err(e) => panic!("client {}: no event within {READ_TIMEOUT:?}: {e}", self.id),
            }
        }
    }

    /// Reads until an event (other than a clock tick) matches `want`, returning every
    /// non-clock event seen before it.
    fn expect(&mut self, want: Value) -> Vec<Value> {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut skipped = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "client {} never got {want}; saw {skipped:?}",
                self.id
            );
            let (topic, event) = self.next_event();
            if topic == "time" {
                continue;
            }
            if matches_subset(&event, &want) {
                return skipped;
            }
            skipped.push(event);
        }
    }

    /// Joins `room`; returns once the server confirmed it.
    fn join(&mut self, room: &str) {
        self.send(json!({ "join": room }));
        self.expect(json!({ "type": "joined", "room": room, "client": self.id }));
    }

    /// A round trip through the server on this connection: every frame queued for this
    /// client before it is returned by this call (frames reach a client in order).
    /// Returns those non-clock events.
    fn sync(&mut self, marker: &str) -> Vec<Value> {
        let room = format!("sync-{}-{marker}", self.id);
        self.send(json!({ "join": room }));
        let seen = self.expect(json!({ "type": "joined", "room": room, "client": self.id }));
        self.send(json!({ "leave": room }));
        seen
    }
}

/// Whether every field of `want` is in `event` with the same value.
fn matches_subset(event: &Value, want: &Value) -> bool {
    want.as_object()
        .unwrap()
        .iter()
        .all(|(key, value)| event.get(key) == Some(value))
}

fn start_server() -> ChatServer {
    ChatServer::start(Config {
        port: 0,
        time_interval: Duration::from_millis(50),
        ..Config::default()
    })
    .expect("server starts")
}

#[test]
fn rooms_no_echo_presence_and_time() {
    let server = start_server();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let mut alice = Client::connect(addr);
    let mut bob = Client::connect(addr);
    let mut carol = Client::connect(addr);
    assert!(alice.id != bob.id && bob.id != carol.id && alice.id != carol.id);

    // Rooms and presence: bob sees alice join "rust".
    bob.join("rust");
    alice.join("rust");
    bob.expect(json!({ "type": "joined", "room": "rust", "client": alice.id, "members": 2 }));
    carol.join("go");
    alice.join("go");
    carol.expect(json!({ "type": "joined", "room": "go", "client": alice.id }));

    // A chat line reaches the room, not the speaker, not other rooms.
    alice.send(json!({ "say": "rust", "text": "hello rustaceans" }));
    bob.expect(
        json!({ "type": "message", "room": "rust", "from": alice.id, "text": "hello rustaceans" }),
    );
    let alice_saw = alice.sync("no-echo");
    assert!(
        alice_saw.iter().all(|e| e["type"] != "message"),
        "the speaker got its own message back: {alice_saw:?}"
    );
    let carol_saw = carol.sync("other-room");
    assert!(
        carol_saw.iter().all(|e| e["type"] != "message"),
        "a message leaked into another room: {carol_saw:?}"
    );

    // Speaking in a room one is not in is refused with an error frame.
    carol.send(json!({ "say": "rust", "text": "let me in" }));
    carol.expect(json!({ "type": "error" }));
    carol.send(json!({ "dance": true }));
    carol.expect(json!({ "type": "error" }));

    // Leaving is announced to the others.
    bob.join("go");
    carol.expect(json!({ "type": "joined", "room": "go", "client": bob.id }));
    bob.send(json!({ "leave": "go" }));
    carol.expect(json!({ "type": "left", "room": "go", "client": bob.id }));

    // Every connection gets the clock.
    for client in [&mut alice, &mut bob, &mut carol] {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "no time push");
            let (topic, event) = client.next_event();
            if topic == "time" {
                assert_eq!(event["type"], "time");
                assert!(event["unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
                assert_eq!(event["utc"].as_str().unwrap().len(), 8);
                break;
            }
        }
    }

    // Pings are answered (by the writer thread: the reader never writes).
    bob.ws
        .send(Message::Ping(b"are you there".to_vec()))
        .unwrap();
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no pong");
        match bob.ws.read().expect("a pong before the timeout") {
            Message::Pong(payload) => {
                assert_eq!(payload, b"are you there");
                break;
            }
            _ => continue,
        }
    }

    // Alice vanishes without a goodbye: every room she was in hears she left.
    let alice_id = alice.id;
    drop(alice);
    bob.expect(json!({ "type": "left", "room": "rust", "client": alice_id, "members": 1 }));
    carol.expect(json!({ "type": "left", "room": "go", "client": alice_id, "members": 1 }));

    // A clean close works the same way.
    carol.join("rust");
    bob.expect(json!({ "type": "joined", "room": "rust", "client": carol.id }));
    let carol_id = carol.id;
    carol.ws.close(None).unwrap();
    bob.expect(json!({ "type": "left", "room": "rust", "client": carol_id }));

    // Shutdown closes the remaining connection and returns promptly.
    let started = Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "bob's connection stayed open");
        match bob.ws.read() {
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue, // frames still in flight
        }
    }
}

#[test]
fn serves_the_page_over_plain_http() {
    let server = start_server();
    let get = |path: &str| -> String {
        let mut stream = TcpStream::connect(server.local_addr()).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };

    let page = get("/");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html"));
    assert!(page.contains("<html"));
    assert!(page.contains("new WebSocket"));
    assert!(page.contains("function decodePush"));

    assert!(get("/nope").starts_with("HTTP/1.1 404"));
    server.shutdown();
}

/// Two servers bridged through one Redis (feature `redis`): a line said in a room on
/// one reaches the room's members on the other, and nobody's own line comes back.
#[cfg(feature = "redis")]
#[test]
fn two_servers_share_rooms_through_redis() {
    #[path = "common/redis_server.rs"]
    mod redis_server;

    let redis = redis_server::RedisServer::start();
    let start = || {
        ChatServer::start(Config {
            port: 0,
            time_interval: Duration::from_secs(3600),
            redis: Some(redis.url()),
        })
        .expect("bridged server starts")
    };
    let (one, two) = (start(), start());
    let mut alice = Client::connect(one.local_addr());
    let mut bob = Client::connect(two.local_addr());
    assert_ne!(
        alice.id, bob.id,
        "ids shown to clients differ across servers"
    );
    alice.join("rust");
    bob.join("rust");
    // Bob's join is announced on Alice's server too, once both bridges are up; until
    // then, say it again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        alice.send(json!({ "say": "rust", "text": "across hosts" }));
        bob.ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let got = (0..3).any(|_| match bob.ws.read() {
            Ok(Message::Binary(frame)) => {
                let push = decode(&frame).unwrap();
                let event: Value = serde_json::from_slice(push.payload).unwrap();
                matches_subset(
                    &event,
                    &json!({ "type": "message", "room": "rust", "from": alice.id, "text": "across hosts" }),
                )
            }
            _ => false,
        });
        if got {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Bob never got Alice's line across servers"
        );
    }
    bob.ws
        .get_ref()
        .set_read_timeout(Some(READ_TIMEOUT))
        .unwrap();
    bob.send(json!({ "say": "rust", "text": "back to you" }));
    let skipped = alice.expect(json!({ "type": "message", "from": bob.id, "text": "back to you" }));
    assert!(
        skipped.iter().all(|e| e["type"] != "message"),
        "Alice saw her own line come back: {skipped:?}"
    );
    drop((one, two));
}
