//! Runs the `chat_server` example in-process on a free port and talks to it with real
//! WebSocket clients: rooms, no echo to the speaker, presence (Presence frames with
//! names, and `joined`/`left` events) on join, leave and disconnect, the moderator
//! console on `room.>`, the private room behind the `can_subscribe` hook, the periodic
//! time push, and the HTML page on `GET /`.
//!
//! Every read has a timeout, so a regression fails in seconds instead of hanging.

#[path = "../src/server.rs"]
mod server;

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use fanout::transport::{decode_any, Frame, PresenceEvent};
use fanout::PubSub;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use server::{ChatServer, Config};

/// Longest any single expected event may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// A Presence frame as a client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Presence {
    topic: String,
    join: bool,
    client: u64,
    name: String,
}

struct Client {
    ws: WebSocket<TcpStream>,
    /// Its id in `joined`, `left` and `message` events.
    id: u64,
    /// Its id in Presence frames and member lists.
    presence_id: u64,
    /// Push events read while looking for a Presence frame, and vice versa: each kind
    /// is read in order, whichever is looked for first.
    pushes: VecDeque<(String, Value)>,
    presences: VecDeque<Presence>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        let (ws, _response) =
            tungstenite::client(format!("ws://{addr}/"), stream).expect("WebSocket handshake");
        let mut client = Client {
            ws,
            id: 0,
            presence_id: 0,
            pushes: VecDeque::new(),
            presences: VecDeque::new(),
        };
        let (topic, welcome) = client.next_event();
        assert_eq!(topic, "welcome");
        assert_eq!(welcome["type"], "welcome");
        client.id = welcome["client"].as_u64().expect("client id");
        client.presence_id = welcome["presence_id"].as_u64().expect("presence id");
        assert_eq!(welcome["name"], format!("client {}", client.id));
        client
    }

    fn send(&mut self, command: Value) {
        self.ws.send(Message::Text(command.to_string())).unwrap();
    }

    /// Reads one frame off the socket into `pushes` or `presences`. Panics after the
    /// timeout.
    fn read_frame(&mut self) {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(frame)) => {
                    match decode_any(&frame).expect("a valid Push or Presence frame") {
                        Frame::Push(push) => {
                            let payload =
                                serde_json::from_slice(push.payload).expect("JSON payload");
                            self.pushes.push_back((push.topic.to_owned(), payload));
                        }
                        Frame::Presence(p) => self.presences.push_back(Presence {
                            topic: p.topic.to_owned(),
                            join: p.event == PresenceEvent::Join,
                            client: p.client,
                            name: String::from_utf8(p.meta.to_vec()).expect("UTF-8 name"),
                        }),
                    }
                    return;
                }
                Ok(Message::Text(text)) => panic!("server sent text, not a frame: {text}"),
                Ok(_) => continue, // ping/pong
                Err(e) => panic!("client {}: no frame within {READ_TIMEOUT:?}: {e}", self.id),
            }
        }
    }

    /// The next Push frame, decoded: (topic, JSON payload). Panics after the timeout.
    fn next_event(&mut self) -> (String, Value) {
        loop {
            if let Some(event) = self.pushes.pop_front() {
                return event;
            }
            self.read_frame();
        }
    }

    /// The next Presence frame. Panics after the timeout.
    fn next_presence(&mut self) -> Presence {
        loop {
            if let Some(presence) = self.presences.pop_front() {
                return presence;
            }
            self.read_frame();
        }
    }

    /// Reads until an event (other than a clock tick) matches `want`, returning every
    /// non-clock event seen before it.
    fn expect(&mut self, want: Value) -> Vec<Value> {
        self.expect_full(want).0
    }

    /// Like [`expect`](Self::expect), also returning the matching event.
    fn expect_full(&mut self, want: Value) -> (Vec<Value>, Value) {
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
                return (skipped, event);
            }
            skipped.push(event);
        }
    }

    /// Reads Presence frames until one matches, returning those seen before it.
    fn expect_presence(&mut self, want: &Presence) -> Vec<Presence> {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut skipped = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "client {} never got {want:?}; saw {skipped:?}",
                self.id
            );
            let presence = self.next_presence();
            if &presence == want {
                return skipped;
            }
            skipped.push(presence);
        }
    }

    /// Joins `room`; returns once the server confirmed it.
    fn join(&mut self, room: &str) {
        self.send(json!({ "join": room }));
        self.expect(json!({ "type": "joined", "room": room, "client": self.id }));
    }

    /// Sets the display name; returns once the server confirmed it.
    fn name(&mut self, name: &str) {
        self.send(json!({ "name": name }));
        self.expect(json!({ "type": "name", "name": name }));
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
    start_server_with_token(None)
}

fn start_server_with_token(moderator_token: Option<&str>) -> ChatServer {
    ChatServer::start(Config {
        port: 0,
        time_interval: Duration::from_millis(50),
        moderator_token: moderator_token.map(str::to_owned),
        ..Config::default()
    })
    .expect("server starts")
}

fn presence(room: &str, join: bool, client: &Client, name: &str) -> Presence {
    Presence {
        topic: format!("room.{room}"),
        join,
        client: client.presence_id,
        name: name.to_owned(),
    }
}

/// The error the last command got; asserts it is short (no echo of long input).
fn expect_error(client: &mut Client) -> String {
    let (_, event) = client.expect_full(json!({ "type": "error" }));
    let error = event["error"].as_str().expect("an error text").to_owned();
    assert!(error.len() < 300, "error too long: {error}");
    error
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
fn presence_frames_carry_names_on_join_rename_leave_and_disconnect() {
    let server = start_server();
    let addr = server.local_addr();
    let mut alice = Client::connect(addr);
    alice.name("Alice");
    alice.join("rust");
    alice.expect_presence(&presence("rust", true, &alice, "Alice"));

    // Bob joins: his snapshot lists both, Alice gets his Presence join with his name.
    let mut bob = Client::connect(addr);
    bob.name("Bob");
    bob.send(json!({ "join": "rust" }));
    let (_, members) = bob.expect_full(json!({ "type": "members", "room": "rust" }));
    assert_eq!(
        members["members"],
        json!([
            { "client": alice.presence_id, "name": "Alice" },
            { "client": bob.presence_id, "name": "Bob" },
        ])
    );
    alice.expect_presence(&presence("rust", true, &bob, "Bob"));
    alice.expect(
        json!({ "type": "joined", "room": "rust", "client": bob.id, "name": "Bob", "members": 2 }),
    );

    // A new name is a Presence join carrying it, in every room he is in.
    bob.name("Robert");
    alice.expect_presence(&presence("rust", true, &bob, "Robert"));
    // Lines carry the speaker's name.
    bob.send(json!({ "say": "rust", "text": "call me Robert" }));
    alice.expect(json!({ "type": "message", "from": bob.id, "name": "Robert" }));

    // Leaving: a Presence leave with his last name, and the JSON event.
    bob.send(json!({ "leave": "rust" }));
    alice.expect_presence(&presence("rust", false, &bob, "Robert"));
    alice.expect(json!({ "type": "left", "room": "rust", "client": bob.id, "members": 1 }));

    // Disconnecting without a goodbye leaves too.
    let mut carol = Client::connect(addr);
    carol.name("Carol");
    carol.join("rust");
    alice.expect_presence(&presence("rust", true, &carol, "Carol"));
    let gone = presence("rust", false, &carol, "Carol");
    drop(carol);
    alice.expect_presence(&gone);

    // Bad names and room names are refused, briefly, and change nothing.
    let long = "x".repeat(10_000);
    for bad in ["", " Alice", &"n".repeat(33), "tab\there", "bell\u{7}"] {
        alice.send(json!({ "name": bad }));
        assert!(
            expect_error(&mut alice).contains("a name is 1 to 32"),
            "{bad:?}"
        );
    }
    for bad in ["a.b", "*", ">", "room.>", "", &format!("{long}.")] {
        alice.send(json!({ "join": bad }));
        let error = expect_error(&mut alice);
        assert!(error.contains("a room name is 1 to 64 bytes"), "{error}");
    }
    alice.send(json!({ "say": long, "text": "hi" }));
    assert!(expect_error(&mut alice).contains("before speaking"));
    alice.send(json!({ "nonsense": long }));
    assert!(expect_error(&mut alice).contains("not a command"));
    // Still named Alice, still the only member of rust.
    let mut dave = Client::connect(addr);
    dave.send(json!({ "join": "rust" }));
    let (_, members) = dave.expect_full(json!({ "type": "members", "room": "rust" }));
    assert_eq!(
        members["members"],
        json!([
            { "client": alice.presence_id, "name": "Alice" },
            { "client": dave.presence_id, "name": format!("client {}", dave.id) },
        ])
    );
    server.shutdown();
}

#[test]
fn the_console_sees_every_room_and_only_moderators_get_staff() {
    let server = start_server_with_token(Some("sesame"));
    let addr = server.local_addr();

    // Alice in rust and Bob in go, before any console is open.
    let mut alice = Client::connect(addr);
    alice.name("Alice");
    alice.join("rust");
    let mut bob = Client::connect(addr);
    bob.name("Bob");
    bob.join("go");

    // Mallory is no moderator: neither the private room nor the console, by name, by
    // pattern, or with a wrong token.
    let mut mallory = Client::connect(addr);
    mallory.name("Mallory");
    mallory.send(json!({ "join": "staff" }));
    let error = expect_error(&mut mallory);
    assert!(
        error.contains("denied") && error.contains("staff is for moderators"),
        "{error}"
    );
    mallory.send(json!({ "moderate": "open sesame" }));
    let error = expect_error(&mut mallory);
    assert!(
        error.contains("wrong moderator token") && error.contains("denied"),
        "{error}"
    );
    mallory.send(json!({ "say": "staff", "text": "am I in?" }));
    assert!(expect_error(&mut mallory).contains("before speaking"));

    // The moderator's console opens with every room's members.
    let mut moderator = Client::connect(addr);
    moderator.name("Mod");
    moderator.send(json!({ "moderate": "sesame" }));
    let (_, console) = moderator.expect_full(json!({ "type": "console", "pattern": "room.>" }));
    assert_eq!(
        console["rooms"],
        json!({
            "go": [{ "client": bob.presence_id, "name": "Bob" }],
            "rust": [{ "client": alice.presence_id, "name": "Alice" }],
        }),
        "Mallory's refused join must not show"
    );

    // It gets lines from two rooms it never joined, and their presence.
    alice.send(json!({ "say": "rust", "text": "hello from rust" }));
    bob.send(json!({ "say": "go", "text": "hello from go" }));
    let from_rust =
        json!({ "type": "message", "room": "rust", "name": "Alice", "text": "hello from rust" });
    let from_go =
        json!({ "type": "message", "room": "go", "name": "Bob", "text": "hello from go" });
    // Two speakers on two connections: either line may come first.
    let before = moderator.expect(from_rust.clone());
    if !before.iter().any(|e| matches_subset(e, &from_go)) {
        moderator.expect(from_go);
    }
    bob.join("rust");
    moderator.expect_presence(&presence("rust", true, &bob, "Bob"));

    // It may join the private room; Mallory still may not, and hears nothing of it.
    moderator.send(json!({ "join": "staff" }));
    let (_, members) = moderator.expect_full(json!({ "type": "members", "room": "staff" }));
    assert_eq!(
        members["members"],
        json!([{ "client": moderator.presence_id, "name": "Mod" }])
    );
    moderator.expect_presence(&presence("staff", true, &moderator, "Mod"));
    mallory.send(json!({ "join": "staff" }));
    assert!(expect_error(&mut mallory).contains("staff is for moderators"));
    moderator.send(json!({ "say": "staff", "text": "staff only" }));
    moderator.sync("said"); // the line has gone out to whoever was to get it
    let saw = mallory.sync("after-staff");
    assert!(
        saw.iter()
            .all(|e| e["type"] != "message" && e["room"] != "staff"),
        "Mallory heard the private room: {saw:?}"
    );
    let heard: Vec<_> = mallory
        .presences
        .iter()
        .filter(|p| !p.topic.starts_with("room.sync-"))
        .collect();
    assert!(
        heard.is_empty(),
        "Mallory saw presence outside her rooms: {heard:?}"
    );

    // A server without a token has no moderators.
    let plain = start_server();
    let mut someone = Client::connect(plain.local_addr());
    someone.send(json!({ "moderate": "" }));
    assert!(expect_error(&mut someone).contains("no moderator token"));
    drop(someone);
    plain.shutdown();
    server.shutdown();
}

/// The `can_subscribe` hook sees subscriptions as written: the patterns that would
/// cover the private room must be refused, not only its name.
#[test]
fn the_hook_refuses_the_private_room_and_every_pattern_to_non_moderators() {
    let ids = PubSub::<str>::new().unwrap();
    let (moderator, member) = (ids.generate_client_id(), ids.generate_client_id());
    let moderators: server::Moderators = RwLock::new(HashSet::from([moderator]));
    // (subscription, a moderator may, a member may)
    let table = [
        ("time", true, true),
        ("room.rust", true, true),
        ("room.staff", true, false),
        ("room.>", true, false),
        ("room.*", true, false),
        ("room.staff.>", true, false),
        ("room.*.x", true, false),
        ("*.staff", false, false),
        (">", false, false),
        ("staff", false, false),
        ("welcome", false, false),
    ];
    for (subscription, moderator_may, member_may) in table {
        let may = |client| server::authorize(&moderators, client, subscription).is_ok();
        assert_eq!(may(moderator), moderator_may, "moderator, {subscription}");
        assert_eq!(may(member), member_may, "member, {subscription}");
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
    assert!(page.contains("function decodePresence"));

    assert!(get("/nope").starts_with("HTTP/1.1 404"));
    server.shutdown();
}

/// Two servers bridged through one Redis (feature `redis`): a line said in a room on
/// one reaches the room's members on the other, and nobody's own line comes back.
#[cfg(feature = "redis")]
#[test]
fn two_servers_share_rooms_through_redis() {
    #[path = "../../../tests/common/redis_server.rs"]
    mod redis_server;

    let redis = redis_server::RedisServer::start();
    let start = || {
        ChatServer::start(Config {
            port: 0,
            time_interval: Duration::from_secs(3600),
            redis: Some(redis.url()),
            moderator_token: None,
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
                let push = fanout::transport::decode(&frame).unwrap();
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
