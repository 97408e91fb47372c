//! The chat server itself, separate from `main.rs` so the integration test
//! (`examples/chat_server/tests/chat_server.rs`) can run it in-process.
//!
//! # Threads
//!
//! - **accept**: takes TCP connections and gives each one a connection thread.
//! - **time**: broadcasts the server time to topic `time` every interval.
//! - per WebSocket connection, a **reader** (the connection thread: parses the client's
//!   JSON commands and calls the engine) and a **writer** (`select!`s over the client's
//!   channel of frames, direct messages, and the shutdown signal, and writes binary
//!   WebSocket messages).
//!
//! The shutdown signal is a `crossbeam_channel` receiver that nothing is ever sent on:
//! dropping its one `Sender` disconnects it, which wakes every `select!` that waits on
//! it at once — a broadcast "stop" for free.
//!
//! # Topics, moderators and the private room
//!
//! Room NAME is topic `room.NAME` (NATS-style tokens, the engine's default `.`
//! separator), so a room name may not contain `.`, `*` or `>`. Every connection is
//! subscribed to `time`. A connection that presents the moderator token
//! (`{"moderate":"TOKEN"}`, the server's `--moderator-token`) becomes a moderator and
//! opens the **console**: a subscription to the pattern `room.>`, so it receives every
//! room's messages and presence frames, and may join the private room `staff`
//! (topic `room.staff`).
//!
//! Who may subscribe to what is decided in one place, [`authorize`], the engine's
//! `can_subscribe` hook: `room.staff` and every wildcard pattern (`room.>`, `room.*`,
//! `*.staff`, …) are for moderators only — the hook sees a subscription as written, so
//! refusing the patterns is what keeps the private room private. A refused join or
//! console gets an `error` reply and changes nothing.
//!
//! # Protocol
//!
//! Client → server, JSON text messages: `{"name":"Alice"}` (your display name, 1 to
//! 32 printable characters; default `client N`), `{"join":"rust"}`, `{"leave":"rust"}`,
//! `{"say":"rust","text":"hi"}`, `{"moderate":"TOKEN"}`.
//!
//! Server → client, binary messages, one frame each (see `fanout::transport`):
//!
//! - **Presence frames** (kind 2) on `room.NAME`: a member joined (or renamed) or left
//!   the room; the metadata is the member's display name, UTF-8. The engine sends them
//!   from `track`/`untrack`, to the room's subscribers and to consoles. Member lists are
//!   built from these (with `members` as the starting point).
//! - **Push frames** (kind 1) whose payload is a JSON event with a `"type"`:
//!
//! | topic       | `type`     | when                                                         |
//! |-------------|------------|--------------------------------------------------------------|
//! | `welcome`   | `welcome`  | first frame on a connection: your ids and default name       |
//! | `members`   | `members`  | you joined a room: its members then (presence ids and names) |
//! | `console`   | `console`  | your console opened: every room's members then               |
//! | `name`      | `name`     | your display name changed                                    |
//! | `room.NAME` | `joined`   | someone (you included) joined room NAME                      |
//! | `room.NAME` | `left`     | someone left NAME, or disconnected while in it               |
//! | `room.NAME` | `message`  | someone else said something in NAME (never your own)         |
//! | `time`      | `time`     | every interval, to every connection                          |
//! | `error`     | `error`    | your last command was refused (nothing changed)              |
//!
//! `members` and `console` go straight to one connection and may overtake Presence
//! frames sent before them; a client that buffers a room's Presence frames until the
//! room's snapshot arrives, then replays them over it, ends with the exact list (each
//! frame sets or removes one member, and frames of a room arrive in order). The page
//! does that. Presence ids are engine-local (`presence_id` in `welcome`); with
//! `--redis`, member lists are per server, while chat lines (with the speaker's name)
//! reach every server.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use crossbeam_channel::{bounded, select, tick, Receiver, Sender};
use fanout::transport::{SerialiseError, Serialiser};
use fanout::{Bytes, Channel, ChannelConfig, ClientId, Denied, OverflowPolicy, PubSub, Topic};
use serde::{Deserialize, Serialize};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// The page `GET /` serves: plain HTML with inline JavaScript, no build step.
const INDEX_HTML: &str = include_str!("index.html");

/// Longest room name accepted, in bytes.
const MAX_ROOM_LEN: usize = 64;

/// Longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// The private room: only moderators may join it (see [`authorize`]).
pub const STAFF_ROOM: &str = "staff";

/// What a moderator's console subscribes to: every room.
pub const CONSOLE_PATTERN: &str = "room.>";

/// How long a new connection may take to send its HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a write to a client may block before the client is considered gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP port on 127.0.0.1; 0 picks a free one (see [`ChatServer::local_addr`]).
    pub port: u16,
    /// How often the server time is pushed to topic `time`.
    pub time_interval: Duration,
    /// A Redis URL: share rooms with every chat server bridged to the same Redis
    /// (needs the crate feature `redis`).
    pub redis: Option<String>,
    /// The token a connection sends (`{"moderate":"TOKEN"}`) to become a moderator.
    /// `None`: nobody can.
    pub moderator_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 8080,
            time_interval: Duration::from_secs(1),
            redis: None,
            moderator_token: None,
        }
    }
}

/// The Redis namespace chat servers share rooms in.
#[cfg(feature = "redis")]
pub const REDIS_NAMESPACE: &str = "fanout-chat";

/// A room member as `members` and `console` list it.
#[derive(Debug, Serialize)]
pub struct MemberInfo {
    /// Its presence id: the client id Presence frames carry.
    pub client: u64,
    /// Its display name (the presence metadata).
    pub name: String,
}

/// What the server pushes to clients: the JSON payload of every Push frame.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first frame on a connection.
    Welcome {
        /// Your id in `joined`, `left` and `message` events.
        client: u64,
        /// Your id in Presence frames and member lists (equal to `client` on a lone
        /// server; engine-local with `--redis`).
        presence_id: u64,
        /// Your display name until you send `{"name": ...}`.
        name: String,
    },
    /// Your display name is now `name`.
    Name { name: String },
    /// You joined `room`; these were its members then (you included).
    Members {
        room: String,
        members: Vec<MemberInfo>,
    },
    /// Your moderator console opened (subscribed to `pattern`); every room's members.
    Console {
        pattern: String,
        rooms: BTreeMap<String, Vec<MemberInfo>>,
    },
    /// `client` (`name`) joined `room`, which now has `members` members.
    Joined {
        room: String,
        client: u64,
        name: String,
        members: usize,
    },
    /// `client` (`name`) left `room` (or disconnected), which now has `members` members.
    Left {
        room: String,
        client: u64,
        name: String,
        members: usize,
    },
    /// `from` (`name`) said `text` in `room`.
    Message {
        room: String,
        from: u64,
        name: String,
        text: String,
    },
    /// The periodic server time.
    Time { unix_ms: u64, utc: String },
    /// The client's last command was refused.
    Error { error: String },
}

/// What clients send, as JSON text messages. `untagged`: the fields present decide.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Command {
    Say { say: String, text: String },
    Join { join: String },
    Leave { leave: String },
    Name { name: String },
    Moderate { moderate: String },
}

/// A [`Serialiser`] writing any `serde` type as JSON straight into the frame's buffer.
/// The engine runs it once per broadcast, however many clients are in the room.
struct Json;

impl<T: Serialize> Serialiser<T> for Json {
    fn serialise(&self, message: &T, out: &mut BytesMut) -> Result<(), SerialiseError> {
        serde_json::to_writer(out.writer(), message).map_err(SerialiseError::new)
    }
}

/// The connections that presented the moderator token: what [`authorize`] consults.
pub type Moderators = RwLock<HashSet<ClientId>>;

/// The `can_subscribe` hook: may `client` subscribe to `subscription` (as written)?
///
/// - `time`: everyone (every connection is subscribed to the clock).
/// - a wildcard pattern (a `*` or `>` token): moderators only, and only under `room.`
///   — this is what refuses `room.>`, `room.*` and `*.staff` to everyone else, since
///   the engine checks a pattern as written, not per topic it would cover;
/// - `room.staff`: moderators only;
/// - any other `room.NAME`: everyone; anything else: nobody.
pub fn authorize(
    moderators: &Moderators,
    client: ClientId,
    subscription: &str,
) -> Result<(), Denied> {
    if subscription == "time" {
        return Ok(());
    }
    let moderator = || {
        moderators
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&client)
    };
    let Some(room) = subscription.strip_prefix("room.") else {
        return Err(Denied::new("only rooms (room.NAME) can be joined"));
    };
    let is_pattern = subscription.split('.').any(|t| t == "*" || t == ">");
    if is_pattern && !moderator() {
        Err(Denied::new(
            "wildcard subscriptions (the console) are for moderators",
        ))
    } else if room == STAFF_ROOM && !moderator() {
        Err(Denied::new("room staff is for moderators"))
    } else {
        Ok(())
    }
}

/// State every server thread shares.
struct Shared {
    pubsub: PubSub<Event>,
    /// Topic `time`, resolved once: every connection subscribes to it.
    time_topic: Topic,
    /// Disconnected (never sent on) when the server shuts down.
    shutdown: Receiver<()>,
    /// Added to every client id shown to clients: 0 on a lone server; with `--redis`,
    /// 16 random bits above bit 32, so ids from two servers (each counting from 1) do
    /// not collide in a shared room.
    id_base: u64,
    /// `--moderator-token`.
    moderator_token: Option<String>,
    /// Shared with the `can_subscribe` hook.
    moderators: Arc<Moderators>,
    /// Every room with a member on this server, and how many: what a console lists
    /// when it opens (the engine lists a topic's members, not the topics).
    rooms: Mutex<BTreeMap<String, usize>>,
}

impl Shared {
    /// The id clients see for `id`.
    fn public_id(&self, id: ClientId) -> u64 {
        self.id_base | id.as_u64()
    }

    /// The members of `room` now, as `members` and `console` list them.
    fn members(&self, room: &str) -> Vec<MemberInfo> {
        let members = self.pubsub.list(room_topic(room)).unwrap_or_default();
        members
            .into_iter()
            .map(|m| MemberInfo {
                client: m.client.as_u64(),
                name: String::from_utf8_lossy(&m.meta).into_owned(),
            })
            .collect()
    }
}

/// One WebSocket connection's state, owned by its reader thread.
struct Connection {
    id: ClientId,
    /// Its display name: the presence metadata in every room it is in.
    name: String,
    rooms: BTreeSet<String>,
    /// Whether its console (`room.>`) is open.
    console: bool,
}

/// A running chat server. Dropping it (or [`shutdown`](Self::shutdown)) stops it.
pub struct ChatServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping this sender disconnects `Shared::shutdown`: the stop signal.
    stop: Option<Sender<()>>,
    /// The accept and time threads (the accept thread joins the connections).
    threads: Vec<JoinHandle<()>>,
    /// The Redis bridge, with `--redis`.
    #[cfg(feature = "redis")]
    bridge: Option<fanout::bridge::Bridge>,
}

impl ChatServer {
    /// Binds 127.0.0.1:`config.port` and starts serving.
    pub fn start(config: Config) -> io::Result<ChatServer> {
        let listener = TcpListener::bind(("127.0.0.1", config.port))?;
        let addr = listener.local_addr()?;
        // Non-blocking, so the accept loop can also watch the shutdown signal.
        listener.set_nonblocking(true)?;

        let moderators = Arc::new(Moderators::default());
        let hook_moderators = Arc::clone(&moderators);
        let pubsub = PubSub::<Event>::builder()
            .thread_name("chat-registry")
            // Every subscription, the console's pattern included, is checked here.
            .can_subscribe(move |client, subscription| {
                authorize(&hook_moderators, client, subscription)
            })
            // A chat client that cannot keep up is cut off (it can reconnect) rather
            // than silently missing messages.
            .default_channel(ChannelConfig::new(256, OverflowPolicy::Disconnect))
            .build()
            .map_err(io::Error::other)?;
        let time_topic = pubsub.topic("time").map_err(io::Error::other)?;
        #[cfg(feature = "redis")]
        let bridge = match &config.redis {
            Some(url) => Some(
                fanout::bridge::Bridge::attach(&pubsub, url, REDIS_NAMESPACE)
                    .map_err(io::Error::other)?,
            ),
            None => None,
        };
        #[cfg(feature = "redis")]
        let id_base = bridge
            .as_ref()
            .map_or(0, |b| ((b.node_id().0 as u64) & 0xFFFF) << 32);
        #[cfg(not(feature = "redis"))]
        let id_base = match config.redis {
            Some(_) => {
                return Err(io::Error::other(
                    "--redis needs the crate feature `redis` (cargo run --features redis ...)",
                ))
            }
            None => 0,
        };
        let (stop, shutdown) = bounded::<()>(0);
        let shared = Arc::new(Shared {
            pubsub,
            time_topic,
            shutdown,
            id_base,
            moderator_token: config.moderator_token.filter(|t| !t.is_empty()),
            moderators,
            rooms: Mutex::default(),
        });

        let accept = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("chat-accept".into())
                .spawn(move || accept_loop(&shared, listener))?
        };
        let time = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("chat-time".into())
                .spawn(move || time_loop(&shared, config.time_interval))?
        };
        Ok(ChatServer {
            addr,
            shared,
            stop: Some(stop),
            threads: vec![accept, time],
            #[cfg(feature = "redis")]
            bridge,
        })
    }

    /// The address the server listens on (the real port when started with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection (each one's rooms see it leave), joins
    /// every thread and shuts the engine down.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        // Disconnect the shutdown channel: every select! waiting on it wakes up.
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        #[cfg(feature = "redis")]
        drop(self.bridge.take()); // joins the bridge's threads
        self.shared.pubsub.shutdown();
    }
}

/// Accepts connections until shutdown, one thread each; then joins them all.
fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                connections.retain(|c| !c.is_finished());
                let shared = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("chat-conn".into())
                    .spawn(move || serve_connection(&shared, stream));
                match spawned {
                    Ok(handle) => connections.push(handle),
                    Err(e) => eprintln!("chat: cannot spawn a connection thread: {e}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Nothing to accept: wait a little, or stop if the server is shutting down.
                select! {
                    recv(shared.shutdown) -> _ => break,
                    default(Duration::from_millis(20)) => {}
                }
            }
            Err(e) => eprintln!("chat: accept failed: {e}"),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Pushes the server time to topic `time` every `interval` until shutdown.
fn time_loop(shared: &Shared, interval: Duration) {
    let ticker = tick(interval);
    loop {
        select! {
            recv(ticker) -> _ => {
                let event = time_event();
                // Ok(0) when nobody is connected: then nothing is even serialised.
                if let Err(e) = shared.pubsub.broadcast(&shared.time_topic, &event, &Json) {
                    eprintln!("chat: time broadcast failed: {e}");
                    return;
                }
            }
            recv(shared.shutdown) -> _ => return,
        }
    }
}

fn time_event() -> Event {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let secs_today = (unix_ms / 1000) % 86_400;
    let utc = format!(
        "{:02}:{:02}:{:02}",
        secs_today / 3600,
        secs_today / 60 % 60,
        secs_today % 60
    );
    Event::Time { unix_ms, utc }
}

/// A new TCP connection: a WebSocket upgrade, or a plain HTTP request for the page.
fn serve_connection(shared: &Shared, stream: TcpStream) {
    // Accepted sockets may inherit the listener's non-blocking mode on some platforms.
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(REQUEST_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if setup.is_err() {
        return;
    }
    match peek_request_head(&stream) {
        Ok(Some(head)) if is_websocket_upgrade(&head) => serve_websocket(shared, stream),
        Ok(Some(head)) => serve_http(stream, &head),
        Ok(None) | Err(_) => {} // closed, timed out or garbage: just drop it
    }
}

/// Peeks (without consuming) until the request line and headers are in, so a WebSocket
/// upgrade can be handed to tungstenite untouched. `None` if the client closed early or
/// the head does not fit in 8 KiB.
fn peek_request_head(stream: &TcpStream) -> io::Result<Option<String>> {
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let n = stream.peek(&mut buf)?; // blocks until data, up to the read timeout
        if n == 0 {
            return Ok(None);
        }
        if let Some(end) = find(&buf[..n], b"\r\n\r\n") {
            return Ok(Some(String::from_utf8_lossy(&buf[..end + 4]).into_owned()));
        }
        if n == buf.len() || Instant::now() > deadline {
            return Ok(None);
        }
        // Part of the head is in; peek returns at once now, so wait for the rest.
        thread::sleep(Duration::from_millis(5));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_websocket_upgrade(head: &str) -> bool {
    head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("upgrade:") && line.contains("websocket")
    })
}

/// Answers one plain HTTP request: the page for `GET /`, 404 or 405 otherwise.
fn serve_http(mut stream: TcpStream, head: &str) {
    // Consume the head we peeked at (a GET has no body).
    let mut consumed = vec![0u8; head.len()];
    if stream.read_exact(&mut consumed).is_err() {
        return;
    }
    let mut request_line = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (request_line.next(), request_line.next());
    let (status, content_type, body) = match (method, path) {
        (Some("GET"), Some("/" | "/index.html")) => {
            ("200 OK", "text/html; charset=utf-8", INDEX_HTML)
        }
        (Some("GET"), _) => ("404 Not Found", "text/plain", "not found\n"),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// A WebSocket client: register it with the engine, start its writer thread, then read
/// its commands on this thread until it goes away.
fn serve_websocket(shared: &Shared, stream: TcpStream) {
    let mut writer = match tungstenite::accept(stream) {
        Ok(ws) => ws,
        Err(e) => return eprintln!("chat: WebSocket handshake failed: {e}"),
    };
    // The handshake is done: from here on reads block until the client sends something
    // or the socket is shut down.
    let read_half = match writer.get_ref().try_clone() {
        Ok(tcp) if tcp.set_read_timeout(None).is_ok() => tcp,
        _ => return,
    };
    // Two WebSocket objects over one socket: `writer` (moved to the writer thread) only
    // writes, `reader` (this thread) only reads. See `ReadOnly` for why that is safe.
    let mut reader = WebSocket::from_raw_socket(ReadOnly(read_half), Role::Server, None);

    let pubsub = &shared.pubsub;
    let id = pubsub.generate_client_id();
    let mut conn = Connection {
        id,
        name: format!("client {}", shared.public_id(id)),
        rooms: BTreeSet::new(),
        console: false,
    };
    // The welcome goes out first, straight from this thread, before the client can be
    // sent anything else.
    let welcome = Event::Welcome {
        client: shared.public_id(id),
        presence_id: id.as_u64(),
        name: conn.name.clone(),
    };
    let Ok(frame) = pubsub.encode("welcome", &welcome, &Json) else {
        return;
    };
    if writer.send(Message::Binary(frame.to_vec())).is_err() {
        return;
    }
    let frames = match pubsub.register_channel(id) {
        Ok(frames) => frames,
        Err(e) => return eprintln!("chat: cannot register {id}: {e}"),
    };
    if pubsub.subscribe(id, &shared.time_topic).is_err() {
        return;
    }

    // Frames for this client only (errors, snapshots, pongs) go to the writer thread
    // directly.
    let (direct, direct_rx) = bounded::<Message>(64);
    let shutdown = shared.shutdown.clone();
    let writer_thread = thread::Builder::new()
        .name("chat-writer".into())
        .spawn(move || write_loop(writer, frames, direct_rx, shutdown));
    let Ok(writer_thread) = writer_thread else {
        return; // `frames` was dropped with the closure: the client is unregistered
    };

    loop {
        match reader.read() {
            Ok(Message::Text(text)) => {
                if let Err(error) = handle_command(shared, &mut conn, &direct, &text) {
                    send_direct(pubsub, &direct, "error", &Event::Error { error });
                }
            }
            Ok(Message::Ping(payload)) => {
                let _ = direct.try_send(Message::Pong(payload));
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {} // binary messages and pongs: ignored
        }
    }

    // Gone (closed, dropped, or the server is stopping): leave every room, so the
    // people still there see it, then unregister (which would also untrack it).
    for room in std::mem::take(&mut conn.rooms) {
        leave(shared, &conn, &room);
    }
    write_lock(&shared.moderators).remove(&id);
    let _ = pubsub.unregister(id);
    drop(direct); // tells the writer this connection is over
    let _ = writer_thread.join();
}

/// Applies one client command. `Err` is a message for the client.
fn handle_command(
    shared: &Shared,
    conn: &mut Connection,
    direct: &Sender<Message>,
    text: &str,
) -> Result<(), String> {
    let pubsub = &shared.pubsub;
    let id = conn.id;
    let command: Command = serde_json::from_str(text).map_err(|_| {
        format!(
            r#"not a command: {} (try {{"name":"Alice"}}, {{"join":"rust"}}, {{"leave":"rust"}}, {{"say":"rust","text":"hi"}} or {{"moderate":"TOKEN"}})"#,
            preview(text)
        )
    })?;
    match command {
        Command::Join { join: room } => {
            check_room_name(&room)?;
            let topic = room_topic(&room);
            // The hook refuses `room.staff` to non-moderators: nothing changes then.
            pubsub
                .subscribe(id, &topic)
                .map_err(|e| format!("cannot join {room}: {e}"))?;
            if conn.rooms.insert(room.clone()) {
                *lock(&shared.rooms).entry(room.clone()).or_default() += 1;
            }
            // Presence: the room's subscribers (and every console) get a Presence
            // frame with the name.
            pubsub
                .track(id, &topic, Bytes::from(conn.name.clone()))
                .map_err(|e| e.to_string())?;
            // Taken after subscribing, so every change since reaches this client as a
            // Presence frame too (see the module docs on replaying them).
            let members = shared.members(&room);
            let count = members.len();
            let snapshot = Event::Members {
                room: room.clone(),
                members,
            };
            send_direct_blocking(pubsub, direct, "members", &snapshot);
            // Everyone in the room, the newcomer included (that is its confirmation).
            let event = Event::Joined {
                room,
                client: shared.public_id(id),
                name: conn.name.clone(),
                members: count,
            };
            pubsub
                .broadcast(&topic, &event, &Json)
                .map_err(|e| e.to_string())?;
        }
        Command::Leave { leave: room } => {
            if conn.rooms.remove(&room) {
                leave(shared, conn, &room);
            }
        }
        Command::Say { say: room, text } => {
            if !conn.rooms.contains(&room) {
                return Err(format!("join {} before speaking in it", preview(&room)));
            }
            let event = Event::Message {
                room: room.clone(),
                from: shared.public_id(id),
                name: conn.name.clone(),
                text,
            };
            // Everyone in the room but the speaker: their client shows it locally.
            pubsub
                .broadcast_from(id, room_topic(&room), &event, &Json)
                .map_err(|e| e.to_string())?;
        }
        Command::Name { name } => {
            check_display_name(&name)?;
            conn.name = name;
            // Tracking again with new metadata is a presence join carrying it.
            for room in &conn.rooms {
                let _ = pubsub.track(id, room_topic(room), Bytes::from(conn.name.clone()));
            }
            let event = Event::Name {
                name: conn.name.clone(),
            };
            send_direct_blocking(pubsub, direct, "name", &event);
        }
        Command::Moderate { moderate: token } => {
            let token_ok = shared
                .moderator_token
                .as_deref()
                .is_some_and(|expected| same_secret(expected, &token));
            if token_ok {
                write_lock(&shared.moderators).insert(id);
            }
            if conn.console {
                return Ok(());
            }
            // The hook decides: with a wrong token this is a non-moderator asking for
            // `room.>`, and it is refused like any other.
            pubsub.subscribe(id, CONSOLE_PATTERN).map_err(|e| {
                let why = match &shared.moderator_token {
                    None => "this server has no moderator token (--moderator-token)",
                    Some(_) => "wrong moderator token",
                };
                format!("cannot open the console ({why}): {e}")
            })?;
            conn.console = true;
            // As for `members`: taken after subscribing.
            let names: Vec<String> = lock(&shared.rooms).keys().cloned().collect();
            let rooms = names
                .into_iter()
                .map(|room| {
                    let members = shared.members(&room);
                    (room, members)
                })
                .collect();
            let event = Event::Console {
                pattern: CONSOLE_PATTERN.to_owned(),
                rooms,
            };
            send_direct_blocking(pubsub, direct, "console", &event);
        }
    }
    Ok(())
}

/// Takes `conn` out of `room` (its presence leave goes out) and tells the members left
/// behind.
fn leave(shared: &Shared, conn: &Connection, room: &str) {
    let pubsub = &shared.pubsub;
    let topic = room_topic(room);
    let _ = pubsub.unsubscribe(conn.id, &topic);
    let _ = pubsub.untrack(conn.id, &topic);
    {
        let mut rooms = lock(&shared.rooms);
        if let Some(count) = rooms.get_mut(room) {
            *count -= 1;
            if *count == 0 {
                rooms.remove(room);
            }
        }
    }
    let members = pubsub.list(&topic).map_or(0, |m| m.len());
    let event = Event::Left {
        room: room.to_owned(),
        client: shared.public_id(conn.id),
        name: conn.name.clone(),
        members,
    };
    let _ = pubsub.broadcast(&topic, &event, &Json);
}

fn check_room_name(room: &str) -> Result<(), String> {
    let bad = |c: char| matches!(c, '.' | '*' | '>') || c.is_control();
    if room.is_empty() || room.len() > MAX_ROOM_LEN || room.contains(bad) {
        return Err(format!(
            "a room name is 1 to {MAX_ROOM_LEN} bytes, without '.', '*', '>' or control characters"
        ));
    }
    Ok(())
}

fn check_display_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0
        || chars > MAX_NAME_CHARS
        || name.trim() != name
        || name.chars().any(|c| c.is_control())
    {
        return Err(format!(
            "a name is 1 to {MAX_NAME_CHARS} printable characters, without leading or trailing spaces"
        ));
    }
    Ok(())
}

/// At most 32 characters of untrusted input, for error messages.
fn preview(input: &str) -> String {
    const SHOWN: usize = 32;
    let mut shown: String = input.chars().take(SHOWN).collect();
    if input.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Compares a presented token with the expected one without stopping at the first
/// differing byte (the time it takes reveals only the lengths).
fn same_secret(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_lock<T>(rw: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    rw.write().unwrap_or_else(PoisonError::into_inner)
}

/// Room NAME is topic `room.NAME`: `room.>` covers every room, and a room called
/// `time` is not the clock topic.
fn room_topic(room: &str) -> String {
    format!("room.{room}")
}

/// Queues a frame a client must not miss (a snapshot, a confirmation) for it alone,
/// waiting while its writer is busy (bounded by the writer's write timeout).
fn send_direct_blocking(
    pubsub: &PubSub<Event>,
    direct: &Sender<Message>,
    topic: &str,
    event: &Event,
) {
    if let Ok(frame) = pubsub.encode(topic, event, &Json) {
        let _ = direct.send(Message::Binary(frame.to_vec())); // Err: the writer is gone
    }
}

/// Queues a Push frame for one client only, bypassing the engine's topics.
fn send_direct(pubsub: &PubSub<Event>, direct: &Sender<Message>, topic: &str, event: &Event) {
    if let Ok(frame) = pubsub.encode(topic, event, &Json) {
        // A client that lets 64 direct frames pile up loses the next ones.
        let _ = direct.try_send(Message::Binary(frame.to_vec()));
    }
}

/// The writer thread: forwards this client's frames to its socket until the client is
/// unregistered or cut off, the reader is done, or the server shuts down.
fn write_loop(
    mut ws: WebSocket<TcpStream>,
    frames: Channel<Bytes>,
    direct: Receiver<Message>,
    shutdown: Receiver<()>,
) {
    loop {
        let message = select! {
            // A broadcast Push frame. tungstenite 0.24 wants an owned Vec, so this is
            // where the shared frame is copied (tungstenite 0.26+ takes `Bytes`).
            recv(frames.receiver()) -> frame => match frame {
                Ok(frame) => Message::Binary(frame.to_vec()),
                Err(_) => break, // unregistered, or cut off for falling behind
            },
            recv(direct) -> message => match message {
                Ok(message) => message,
                Err(_) => break, // the reader finished
            },
            recv(shutdown) -> _ => break,
        };
        if ws.send(message).is_err() {
            break; // the client is gone or stopped reading
        }
    }
    // Say goodbye, then shut the socket down: that also wakes the reader thread.
    let _ = ws.close(None);
    let _ = ws.flush();
    let _ = ws.get_ref().shutdown(Shutdown::Both);
}

/// The reading half of a connection's socket.
///
/// tungstenite answers pings and closes by writing from inside `read`; if the reader
/// thread wrote to the socket while the writer thread was in the middle of a frame, the
/// two frames' bytes could interleave. So the reader's writes go nowhere, and the reader
/// forwards what needs answering (pongs) to the writer thread instead, which owns every
/// byte written to the socket.
struct ReadOnly(TcpStream);

impl Read for ReadOnly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ReadOnly {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len()) // discarded: see above
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
