//! The server: its settings, the state every connection shares, the accept loop, the
//! clock, and the `can_subscribe` hook.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fanout::{ClientId, Denied, PubSub, Topic};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{interval, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::connection;
use crate::operating::Operating;
use crate::protocol::{room_topic, Event, Json, MemberInfo, STAFF_ROOM};

/// Server settings. [`Config::default`] is what `chat_server` runs with when given no
/// flags; the integration test shrinks the timeouts.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP port on 127.0.0.1; 0 picks a free one (see [`ChatServer::local_addr`]).
    pub port: u16,
    /// How often the server time is pushed to topic `time`.
    pub time_interval: Duration,
    /// A broker URL: share rooms with every chat server bridged to the same broker.
    /// `redis://host:6379/` needs the crate feature `redis`, `nats://host:4222` (or a
    /// cluster's servers, comma-separated) the feature `nats`. Chat lines and member
    /// lists span every server on both.
    pub bridge: Option<String>,
    /// The token a connection sends (`{"moderate":"TOKEN"}`) to become a moderator.
    /// `None`: nobody can.
    pub moderator_token: Option<String>,
    /// The largest message (and frame) a client may send, in bytes; a larger one gets
    /// close 1009 and is never parsed, let alone broadcast. Default 64 KiB.
    pub max_message: usize,
    /// How long what a client was sent may wait for its socket before the client is
    /// disconnected as too slow. Default 5 s.
    pub write_timeout: Duration,
    /// How often a ping goes to every client. Default 20 s.
    pub ping_interval: Duration,
    /// A client from which nothing (no message, no pong) was heard for this long is
    /// closed; checked at each ping. Default 60 s.
    pub idle_timeout: Duration,
    /// How long a new connection may take to send its HTTP request head. Default 5 s.
    pub handshake_timeout: Duration,
    /// How long a closing client may take to close its side once it has read its close
    /// frame (it has [`write_timeout`](Self::write_timeout) before that to read through
    /// to the frame, behind what it was sent before); at shutdown, the whole close.
    /// Default 1 s.
    pub close_timeout: Duration,
    /// Frames the engine queues for one connection while its task is not running; one
    /// more and the engine disconnects it. Default 128 (5 KiB per connection: the
    /// engine preallocates the slots).
    pub queue: usize,
    /// Lines (text messages) a client may send per second once its burst is spent;
    /// past it the server reads its socket no faster (TCP pushes back on the client;
    /// nothing is dropped). 0: unlimited. Default 20.
    pub max_rate: u32,
    /// Lines a client may send at once before `max_rate` applies. Default 5.
    pub burst: u32,
    /// Bytes that may wait to be written to one client; past that it is too slow.
    /// Default 1 MiB.
    pub max_backlog: usize,
    /// The kernel send buffer of each accepted socket (`SO_SNDBUF`), or `None` for the
    /// system's (autotuned) default.
    pub send_buffer: Option<usize>,
    /// Runtime worker threads; 0: one per core.
    pub worker_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 8080,
            time_interval: Duration::from_secs(1),
            bridge: None,
            moderator_token: None,
            max_message: 64 * 1024,
            write_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(1),
            queue: 128,
            max_rate: 20,
            burst: 5,
            max_backlog: 1024 * 1024,
            send_buffer: None,
            worker_threads: 0,
        }
    }
}

impl Config {
    /// tungstenite's settings for every connection: small buffers (most clients are
    /// idle most of the time) and the message size limit on both messages and frames.
    pub fn websocket(&self) -> WebSocketConfig {
        let mut ws = WebSocketConfig::default();
        // Allocated per connection up front and zero-filled as it is read into: 2 KiB
        // holds any command; a larger message grows it for as long as it takes.
        ws.read_buffer_size = 2 * 1024;
        // Frames gather up to 8 KiB before a write; a flush writes whatever is there.
        ws.write_buffer_size = 8 * 1024;
        // Never reached: the session hands tungstenite one frame at a time and only
        // when it is ready (see `connection`), so its buffer holds at most the write
        // buffer and one frame. A backstop, not the slow-reader policy.
        ws.max_write_buffer_size = 64 * 1024 * 1024;
        ws.max_message_size = Some(self.max_message);
        ws.max_frame_size = Some(self.max_message);
        ws
    }
}

/// The bridge namespace chat servers share rooms in (a Redis channel prefix, or the
/// first token of every NATS subject).
#[cfg(any(feature = "redis", feature = "nats"))]
pub const BRIDGE_NAMESPACE: &str = "fanout-chat";

/// Checks that this build has the backend `url` names (its scheme picks it), so that a
/// URL the build cannot serve is refused with the feature to build with.
fn check_bridge_url(url: &str) -> io::Result<()> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    let (feature, built) = match scheme {
        "redis" | "rediss" | "unix" | "redis+unix" => ("redis", cfg!(feature = "redis")),
        "nats" => ("nats", cfg!(feature = "nats")),
        _ => {
            return Err(io::Error::other(format!(
                "--bridge {url:?}: not a redis://... or nats://... URL"
            )))
        }
    };
    if built {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "--bridge {url:?} needs the crate feature `{feature}` \
             (cargo run --features {feature} --bin chat_server ...)"
        )))
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

/// State every task shares.
pub(crate) struct Shared {
    pub(crate) pubsub: PubSub<Event>,
    /// Topic `time`, resolved once: every connection subscribes to it.
    pub(crate) time_topic: Topic,
    pub(crate) config: Config,
    /// `config.websocket()`, computed once.
    pub(crate) ws_config: WebSocketConfig,
    /// Becomes `true` when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Added to every client id shown to clients: 0 on a lone server; with `--bridge`,
    /// 16 random bits above bit 32, so ids from two servers (each counting from 1) do
    /// not collide in a shared room.
    id_base: u64,
    /// `--moderator-token`.
    pub(crate) moderator_token: Option<String>,
    /// Shared with the `can_subscribe` hook.
    moderators: Arc<Moderators>,
    /// Every room with a member on this server, and how many: what a console lists
    /// when it opens (the engine lists a topic's members, not the topics).
    rooms: Mutex<BTreeMap<String, usize>>,
    /// `GET /metrics` (and the bridge, which it reads).
    pub(crate) operating: Operating,
}

impl Shared {
    /// The id clients see for `id`.
    pub(crate) fn public_id(&self, id: ClientId) -> u64 {
        self.id_base | id.as_u64()
    }

    /// The members of `room` now, as `members` and `console` list them.
    pub(crate) fn members(&self, room: &str) -> Vec<MemberInfo> {
        let members = self.pubsub.list(room_topic(room)).unwrap_or_default();
        members
            .into_iter()
            .map(|m| MemberInfo {
                node: m.node.0.to_string(),
                client: m.client.as_u64(),
                name: String::from_utf8_lossy(&m.meta).into_owned(),
            })
            .collect()
    }

    /// Every room with a member on this server.
    pub(crate) fn room_names(&self) -> Vec<String> {
        lock(&self.rooms).keys().cloned().collect()
    }

    pub(crate) fn room_joined(&self, room: &str) {
        *lock(&self.rooms).entry(room.to_owned()).or_default() += 1;
    }

    pub(crate) fn room_left(&self, room: &str) {
        let mut rooms = lock(&self.rooms);
        if let Some(count) = rooms.get_mut(room) {
            *count -= 1;
            if *count == 0 {
                rooms.remove(room);
            }
        }
    }

    pub(crate) fn add_moderator(&self, id: ClientId) {
        write_lock(&self.moderators).insert(id);
    }

    pub(crate) fn remove_moderator(&self, id: ClientId) {
        write_lock(&self.moderators).remove(&id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_lock<T>(rw: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    rw.write().unwrap_or_else(PoisonError::into_inner)
}

/// A running chat server. Dropping it (or [`shutdown`](Self::shutdown)) stops it.
///
/// It owns its tokio runtime, so it can be started and stopped from plain synchronous
/// code (`main`, the integration test). Do not drop it inside an async context.
pub struct ChatServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<Runtime>,
    /// Sending `true` is the stop signal.
    stop: watch::Sender<bool>,
    /// The accept loop, which ends once every connection has closed.
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl ChatServer {
    /// Binds 127.0.0.1:`config.port` and starts serving.
    pub fn start(config: Config) -> io::Result<ChatServer> {
        let listener = listen(config.port)?;
        let addr = listener.local_addr()?;

        let moderators = Arc::new(Moderators::default());
        let hook_moderators = Arc::clone(&moderators);
        let pubsub = PubSub::<Event>::builder()
            .thread_name("chat-registry")
            // Every subscription, the console's pattern included, is checked here.
            .can_subscribe(move |client, subscription| {
                authorize(&hook_moderators, client, subscription)
            })
            .build()
            .map_err(io::Error::other)?;
        let time_topic = pubsub.topic("time").map_err(io::Error::other)?;
        if let Some(url) = &config.bridge {
            check_bridge_url(url)?;
        }
        #[cfg(any(feature = "redis", feature = "nats"))]
        let bridge = match &config.bridge {
            Some(url) => Some(
                fanout::bridge::Bridge::attach(&pubsub, url, BRIDGE_NAMESPACE)
                    .map_err(io::Error::other)?,
            ),
            None => None,
        };
        #[cfg(any(feature = "redis", feature = "nats"))]
        let id_base = bridge
            .as_ref()
            .map_or(0, |b| ((b.node_id().0 as u64) & 0xFFFF) << 32);
        // Without either feature `check_bridge_url` refused any URL above.
        #[cfg(not(any(feature = "redis", feature = "nats")))]
        let id_base = 0;

        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        runtime.thread_name("chat-worker").enable_all();
        if config.worker_threads > 0 {
            runtime.worker_threads(config.worker_threads);
        }
        let runtime = runtime.build()?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            pubsub,
            time_topic,
            ws_config: config.websocket(),
            shutdown,
            id_base,
            moderator_token: config.moderator_token.clone().filter(|t| !t.is_empty()),
            moderators,
            rooms: Mutex::default(),
            config,
            operating: Operating::new(
                #[cfg(any(feature = "redis", feature = "nats"))]
                bridge,
            ),
        });
        let accept = runtime.spawn(accept_loop(Arc::clone(&shared), listener));
        runtime.spawn(time_loop(Arc::clone(&shared)));
        Ok(ChatServer {
            addr,
            shared,
            runtime: Some(runtime),
            stop,
            accept: Some(accept),
        })
    }

    /// The address the server listens on (the real port when started with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's engine: to broadcast to its rooms from the embedding program.
    pub fn pubsub(&self) -> &PubSub<Event> {
        &self.shared.pubsub
    }

    /// Runs `future` to completion on the server's runtime (from synchronous code).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .block_on(future)
    }

    /// Stops accepting, closes every connection with 1001 (each one's rooms hear it
    /// leave), waits for them (at most the close timeout and a second), and shuts the
    /// engine down.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        // Stop accepting (and end the requests still being read)...
        let _ = self.stop.send(true);
        #[cfg(any(feature = "redis", feature = "nats"))]
        {
            // Taken out first: a scrape must not wait on the lock while threads join.
            let bridge = lock(&self.shared.operating.bridge).take();
            drop(bridge); // joins the bridge's threads
        }
        // ...and disconnect every session's queue: each wakes, sees `Shutdown` and
        // closes with 1001.
        self.shared.pubsub.shutdown();
        if let (Some(runtime), Some(accept)) = (self.runtime.take(), self.accept.take()) {
            let _ = runtime.block_on(accept); // waits for the sessions to close
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Connections waiting to be accepted: std's default (128) makes a burst of new
/// clients (a reconnect storm, `chat_load`) wait a second for a SYN retry.
const ACCEPT_BACKLOG: i32 = 1024;

/// A non-blocking listener on 127.0.0.1:`port` with [`ACCEPT_BACKLOG`].
fn listen(port: u16) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Resolves once the server is shutting down (`true` was sent, or the sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held by the caller's future.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Accepts connections until shutdown, one task each; then waits for them all.
async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    let mut stop = shared.shutdown.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(connection::serve(Arc::clone(&shared), stream));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    eprintln!("chat: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Every session saw the signal too and is closing (1001); give them the time that
    // takes, then stop the stragglers.
    let grace = shared.config.close_timeout + Duration::from_secs(1);
    let _ = timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
}

/// Pushes the server time to topic `time` every interval until shutdown.
async fn time_loop(shared: Arc<Shared>) {
    let mut ticker = interval(shared.config.time_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut stop = shared.shutdown.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = ticker.tick() => {
                // Ok(0) when nobody is connected: then nothing is even serialised.
                if let Err(e) = shared.pubsub.broadcast(&shared.time_topic, &time_event(), &Json) {
                    eprintln!("chat: time broadcast failed: {e}");
                    return;
                }
            }
        }
    }
}

/// The clock event, stamped now.
fn time_event() -> Event {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let unix_ms = now.as_millis() as u64;
    let secs_today = (unix_ms / 1000) % 86_400;
    let utc = format!(
        "{:02}:{:02}:{:02}",
        secs_today / 3600,
        secs_today / 60 % 60,
        secs_today % 60
    );
    Event::Time {
        unix_ms,
        utc,
        sent_us: now.as_micros() as u64,
    }
}
