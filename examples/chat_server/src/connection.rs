//! One connection, one task: the HTTP head, then (for an upgrade) the WebSocket session
//! from the welcome to the close frame.
//!
//! # The session loop
//!
//! Each turn of the loop first empties the engine's queue for this client (an
//! [`AsyncChannel`] from `PubSub::register_async_with`: room messages, Presence frames,
//! the clock) into the connection's *outbox*, then waits, in one `tokio::select!`, for
//! whichever comes first:
//!
//! - **a frame from the engine** (`recv`: what wakes an idle connection);
//! - **the socket** — one future that first writes the outbox (taking a frame only when
//!   the WebSocket sink is ready for it, then flushing), then reads the client's next
//!   message: a JSON command, a pong, a close;
//! - **the write timer** — armed while something is waiting to be written;
//! - **the heartbeat** — every ping interval a ping goes out, and a client from which
//!   nothing (not even a pong) was heard for the idle timeout is closed.
//!
//! There is no shutdown branch: the server shuts its engine down, which disconnects
//! every connection's queue, and `recv` wakes with the reason (`Shutdown`).
//!
//! After each command the task lets the other tasks run before it reads the next line
//! (a line may have gone to a room whose members must drain it), and past a burst of
//! [`Config::burst`] lines it reads no more than [`Config::max_rate`] a second: the
//! client's further lines wait in its socket, TCP pushes back, nothing is dropped. It
//! keeps waiting on its queue meanwhile, so its own frames still wake it at once.
//! Without this, on a busy 2-core machine, a room of 20 clients each sending 50 lines
//! at once overflowed 64-frame queues of clients that were reading fine
//! (PERFORMANCE.md, "Chat server under load").
//!
//! Only this task writes to the socket, so a pong, a reply and a broadcast frame can
//! never interleave, and there is nothing to lock.
//!
//! # Slow readers
//!
//! The engine's queue for a connection is small ([`Config::queue`] frames): the task
//! moves frames from it to the outbox as soon as they arrive, so it only absorbs the
//! moments the task is not running. The outbox holds the engine's shared `Bytes` frames
//! (no copies) and is bounded in bytes ([`Config::max_backlog`]). A client that stops
//! reading is **too slow**, and is disconnected at once, when
//!
//! 1. what it was sent has not all reached the socket within [`Config::write_timeout`]
//!    of the moment there was something to send, or
//! 2. its unsent backlog passes `max_backlog`, or
//! 3. the engine cut it off for overflowing its queue (the task was not scheduled
//!    while `queue` frames piled up; the engine's disconnect policy).
//!
//! In every case the task leaves the client's rooms right then — the engine sends the
//! Presence leave, the task broadcasts `left` with `"reason":"too_slow"` — and then
//! tells the client (close 1008). The outbox is dropped, but the close frame still goes
//! out behind what the socket already holds, so the client gets
//! [`Config::write_timeout`] to read through to it, and [`Config::close_timeout`] more
//! to close its side (see `close`).
//!
//! # Close codes
//!
//! | code | when | reason, e.g. |
//! |------|------|--------------|
//! | 1001 | the server shuts down | `server shutting down` |
//! | 1001 | idle timeout | `idle: nothing heard for 60000 ms` |
//! | 1002 | a WebSocket protocol error | `protocol error: …` |
//! | 1003 | a binary message | `binary messages are not commands …` |
//! | 1007 | invalid UTF-8 in a text message | `invalid UTF-8 in a text message` |
//! | 1008 | too slow (above) | `too slow: not written within 5000 ms` |
//! | 1009 | a message over [`Config::max_message`] | `message too big: the limit is 65536 bytes` |
//! | 1011 | the engine refused the connection | `cannot register: …` |
//!
//! A client's own close is answered with its code, as the protocol says. After the
//! close frame the server half-closes the socket and discards what the client still
//! sends until it closes too, so the close frame is not lost to a TCP reset. A client
//! has [`Config::write_timeout`] to read through to its close frame and
//! [`Config::close_timeout`] more to close its side; at shutdown, and for a client
//! already lost, only the close timeout.
//!
//! [`Config::queue`]: crate::Config::queue
//! [`Config::burst`]: crate::Config::burst
//! [`Config::max_rate`]: crate::Config::max_rate
//! [`Config::max_backlog`]: crate::Config::max_backlog
//! [`Config::write_timeout`]: crate::Config::write_timeout
//! [`Config::close_timeout`]: crate::Config::close_timeout
//! [`Config::max_message`]: crate::Config::max_message

use std::collections::{BTreeSet, VecDeque};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use crossbeam_channel::TryRecvError;
use fanout::{AsyncChannel, Bytes, ChannelConfig, ClientId, DisconnectReason, OverflowPolicy};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, timeout_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::http::{self, Request};
use crate::operating;
use crate::protocol::{
    check_display_name, check_room_name, check_text, preview, room_topic, same_secret, Command,
    Event, Json, LeaveReason, CONSOLE_PATTERN,
};
use crate::server::{stopped, Shared};

type Ws = WebSocketStream<TcpStream>;

/// Serves one accepted TCP connection to the end.
pub(crate) async fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if let Some(size) = shared.config.send_buffer {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
    }
    let mut stop = shared.shutdown.clone();
    let request = tokio::select! {
        request = http::read_request(&mut stream, shared.config.handshake_timeout) => request,
        _ = stopped(&mut stop) => None,
    };
    match request {
        None => {}
        Some(Request::Respond(response)) => {
            http::respond(stream, &response, shared.config.close_timeout).await;
        }
        Some(Request::Metrics { head_only }) => {
            operating::serve_metrics(&shared, stream, head_only).await;
        }
        Some(Request::Upgrade { key, rest }) => {
            let accept = http::switching_protocols(&key);
            let written = timeout(shared.config.write_timeout, stream.write_all(&accept)).await;
            if !matches!(written, Ok(Ok(()))) {
                return;
            }
            let ws = WebSocketStream::from_partially_read(
                stream,
                rest,
                Role::Server,
                Some(shared.ws_config),
            )
            .await;
            Session::run(shared, ws).await;
        }
    }
}

/// Why a session ended, and so what the client is told.
#[derive(Debug)]
enum End {
    /// The server is shutting down.
    Shutdown,
    /// The client sent a close frame (tungstenite queued the reply).
    ClosedByClient,
    /// The socket failed or the client vanished without a close frame.
    Lost,
    /// The client does not take its frames fast enough; why.
    TooSlow(String),
    /// Nothing heard for the idle timeout.
    Idle,
    /// A message over the size limit.
    TooBig,
    /// A protocol error; tungstenite's description.
    Protocol(String),
    /// A text message that is not UTF-8.
    BadUtf8,
    /// A binary message.
    Binary,
    /// The engine would not have it, or dropped it for a reason other than overflow.
    Engine(String),
}

impl End {
    /// The close frame the client is sent, if any.
    fn close_frame(&self, shared: &Shared) -> Option<CloseFrame> {
        let config = &shared.config;
        let (code, reason) = match self {
            End::ClosedByClient | End::Lost => return None,
            End::Shutdown => (CloseCode::Away, "server shutting down".to_owned()),
            End::Idle => (
                CloseCode::Away,
                format!(
                    "idle: nothing heard for {} ms",
                    config.idle_timeout.as_millis()
                ),
            ),
            End::TooSlow(why) => (CloseCode::Policy, format!("too slow: {why}")),
            End::TooBig => (
                CloseCode::Size,
                format!("message too big: the limit is {} bytes", config.max_message),
            ),
            End::Protocol(why) => (CloseCode::Protocol, format!("protocol error: {why}")),
            End::BadUtf8 => (
                CloseCode::Invalid,
                "invalid UTF-8 in a text message".to_owned(),
            ),
            End::Binary => (
                CloseCode::Unsupported,
                "binary messages are not commands: send JSON text".to_owned(),
            ),
            End::Engine(why) => (CloseCode::Error, why.clone()),
        };
        Some(CloseFrame {
            code,
            reason: close_reason(reason).into(),
        })
    }

    /// What the rooms the client was in are told.
    fn leave_reason(&self) -> LeaveReason {
        match self {
            End::Shutdown => LeaveReason::Shutdown,
            End::ClosedByClient => LeaveReason::Closed,
            End::Lost | End::Engine(_) => LeaveReason::Lost,
            End::TooSlow(_) => LeaveReason::TooSlow,
            End::Idle => LeaveReason::Idle,
            End::TooBig | End::Protocol(_) | End::BadUtf8 | End::Binary => LeaveReason::Refused,
        }
    }

    /// A read error from tungstenite.
    fn from_read_error(error: WsError) -> End {
        match error {
            WsError::Capacity(CapacityError::MessageTooLong { .. }) => End::TooBig,
            WsError::Capacity(other) => End::Protocol(other.to_string()),
            // A TCP close without a close frame: the client vanished, it broke nothing.
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Lost,
            WsError::Protocol(e) => End::Protocol(e.to_string()),
            WsError::Utf8(_) => End::BadUtf8,
            _ => End::Lost,
        }
    }
}

/// A close frame's reason is at most 123 bytes; cut at a character boundary.
fn close_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut cut = MAX;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

/// Frames waiting for the socket: the engine's shared frames and this client's own
/// replies, in order, with their total size.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Message>,
    bytes: usize,
}

impl Outbox {
    fn push(&mut self, message: Message) {
        self.bytes += message.len();
        self.queue.push_back(message);
    }

    fn pop(&mut self) -> Option<Message> {
        let message = self.queue.pop_front()?;
        self.bytes -= message.len();
        if self.queue.is_empty() && self.queue.capacity() > 64 {
            self.queue = VecDeque::new(); // a burst is over: give its memory back
        }
        Some(message)
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn clear(&mut self) {
        *self = Outbox::default();
    }
}

/// What the socket future reports.
enum Io {
    /// A message from the client (`None`: the stream ended).
    Incoming(Option<Result<Message, WsError>>),
    /// Everything queued is written and flushed.
    Flushed,
    /// Writing failed: the client is gone.
    WriteFailed,
}

/// Writes the outbox, then reads: see the [module docs](self).
fn poll_io(
    ws: &mut Ws,
    outbox: &mut Outbox,
    writing: bool,
    reading: bool,
    cx: &mut Context<'_>,
) -> Poll<Io> {
    if writing {
        match poll_write(ws, outbox, cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Io::Flushed),
            Poll::Ready(Err(_)) => return Poll::Ready(Io::WriteFailed),
            Poll::Pending => {}
        }
    }
    if !reading {
        return Poll::Pending; // paused (flood control): the pause's timer wakes the task
    }
    ws.poll_next_unpin(cx).map(Io::Incoming)
}

/// Hands the outbox to the WebSocket sink one frame at a time, each only once the sink
/// is ready for it (so tungstenite's own buffer never holds more than its write buffer
/// size and one frame), then flushes. Cancel-safe: what is not taken stays queued.
fn poll_write(ws: &mut Ws, outbox: &mut Outbox, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
    while !outbox.is_empty() {
        ready!(ws.poll_ready_unpin(cx))?;
        if let Some(message) = outbox.pop() {
            ws.start_send_unpin(message)?;
        }
    }
    ws.poll_flush_unpin(cx)
}

/// A token bucket for the lines a client may send: `burst` at once, then `rate` a
/// second (0: unlimited).
struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: u32, burst: u32) -> Pacer {
        let burst = f64::from(burst.max(1));
        Pacer {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes a token for the line just read; returns when the next may be read
    /// (`None`: at once).
    fn next_line(&mut self) -> Option<Instant> {
        if self.rate == 0.0 {
            return None;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst) - 1.0;
        self.last = now;
        (self.tokens < 1.0).then(|| now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
    }
}

/// Why the engine's queue ended: overflow (too slow), shutdown, or something else.
fn disconnected(frames: &AsyncChannel<Bytes>, config: &crate::Config) -> End {
    match frames.disconnect_reason() {
        Some(DisconnectReason::Overflow) => End::TooSlow(format!(
            "more than {} frames queued ({} dropped)",
            config.queue,
            frames.dropped()
        )),
        Some(DisconnectReason::Shutdown) => End::Shutdown,
        other => End::Engine(format!("dropped by the engine: {other:?}")),
    }
}

/// One WebSocket client's state, owned by its task.
struct Session {
    shared: Arc<Shared>,
    id: ClientId,
    /// Its display name: the presence metadata in every room it is in.
    name: String,
    rooms: BTreeSet<String>,
    /// Whether its console (`room.>`) is open.
    console: bool,
    outbox: Outbox,
}

impl Session {
    async fn run(shared: Arc<Shared>, mut ws: Ws) {
        let pubsub = shared.pubsub.clone();
        let id = pubsub.generate_client_id();
        let mut session = Session {
            name: format!("client {}", shared.public_id(id)),
            shared: Arc::clone(&shared),
            id,
            rooms: BTreeSet::new(),
            console: false,
            outbox: Outbox::default(),
        };
        // A small queue under the disconnect policy: see "Slow readers" above.
        let queue = ChannelConfig::new(shared.config.queue, OverflowPolicy::Disconnect);
        let frames = match pubsub.register_async_with(id, queue) {
            Ok(frames) => frames,
            Err(e) => {
                let end = End::Engine(format!("cannot register: {e}"));
                return close(&shared, ws, &end).await;
            }
        };
        // The welcome is the first frame on the connection: nothing else is queued yet.
        session.direct(
            "welcome",
            &Event::Welcome {
                client: shared.public_id(id),
                presence_id: id.as_u64(),
                presence_node: pubsub.node_id().0.to_string(),
                name: session.name.clone(),
                max_message: shared.config.max_message,
            },
        );
        if let Err(e) = pubsub.subscribe(id, &shared.time_topic) {
            let end = End::Engine(format!("cannot subscribe to the clock: {e}"));
            return close(&shared, ws, &end).await;
        }

        let end = session.serve(&mut ws, &frames).await;

        // Gone, whatever the reason: leave every room now, so the people still there
        // hear it at once, then unregister, then tell the client (if it can be told).
        session.leave_all(end.leave_reason());
        drop(frames);
        session.outbox.clear();
        close(&shared, ws, &end).await;
    }

    /// The session loop (see the module docs). Returns why it ended.
    async fn serve(&mut self, ws: &mut Ws, frames: &AsyncChannel<Bytes>) -> End {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        // When the outbox last went from empty to not: the write timeout runs from here.
        // (The welcome is waiting.)
        let mut sending_since: Option<Instant> = Some(Instant::now());
        // Re-armed lazily (see its branch), so a busy connection does not touch the
        // timer wheel per frame.
        let mut timer_at = Instant::now() + config.write_timeout;
        let write_timer = sleep_until(timer_at);
        tokio::pin!(write_timer);
        let mut pings: u64 = 0;
        let mut pacer = Pacer::new(config.max_rate, config.burst);
        // While set, the client's next line is not read (flood control).
        let mut paused_until: Option<Instant> = None;

        loop {
            // Whatever woke the task, the engine's queue is emptied into the outbox
            // first: a queue of `config.queue` frames then only has to cover the time
            // between two turns of this loop, not the time a random branch order might
            // leave it unread.
            loop {
                match frames.try_recv() {
                    Ok(frame) => self.outbox.push(Message::Binary(frame)),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return disconnected(frames, config),
                }
            }
            let writing = sending_since.is_some() || !self.outbox.is_empty();
            if writing && sending_since.is_none() {
                let now = Instant::now();
                sending_since = Some(now);
                // A timer still set for later fires then and is moved on to the right
                // deadline (its branch); only an expired one is reset here. So a
                // connection with a frame a second touches the timer wheel about once
                // per write timeout, not once per frame.
                if timer_at <= now {
                    timer_at = now + config.write_timeout;
                    write_timer.as_mut().reset(timer_at);
                }
            }
            if self.outbox.bytes > config.max_backlog {
                return End::TooSlow(format!("more than {} bytes unsent", config.max_backlog));
            }
            tokio::select! {
                // Only to wake the task: the frame goes where the others went.
                frame = frames.recv() => match frame {
                    Ok(frame) => self.outbox.push(Message::Binary(frame)),
                    Err(_) => return disconnected(frames, config),
                },

                io = poll_fn(|cx| poll_io(ws, &mut self.outbox, writing, paused_until.is_none(), cx)) => match io {
                    Io::Flushed => sending_since = None,
                    Io::WriteFailed => return End::Lost,
                    Io::Incoming(None) => return End::Lost,
                    Io::Incoming(Some(Err(e))) => return End::from_read_error(e),
                    Io::Incoming(Some(Ok(message))) => {
                        last_heard = Instant::now();
                        match message {
                            Message::Text(text) => {
                                if let Err(error) = self.command(text.as_str()) {
                                    self.direct("error", &Event::Error { error });
                                }
                                // Flood control: past the burst, the next line is
                                // read no sooner than `max_rate` allows (the socket
                                // is still written meanwhile; see `paused_until`).
                                paused_until = pacer.next_line();
                                // Fairness: let the other tasks run before the next
                                // line (this one may have gone to a room whose
                                // members must drain it), still waiting on the queue
                                // so this client's own frames wake it at once.
                                tokio::select! {
                                    biased;
                                    frame = frames.recv() => {
                                        if let Ok(frame) = frame {
                                            self.outbox.push(Message::Binary(frame));
                                        } // Err: seen at the top of the loop
                                    }
                                    () = tokio::task::yield_now() => {}
                                }
                            }
                            Message::Binary(_) => return End::Binary,
                            Message::Close(_) => return End::ClosedByClient,
                            // tungstenite answers pings itself (on this task's next write).
                            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                        }
                    }
                },

                _ = &mut write_timer, if writing => {
                    let deadline = sending_since.map(|since| since + config.write_timeout);
                    match deadline {
                        Some(deadline) if deadline <= Instant::now() => {
                            return End::TooSlow(format!(
                                "not written within {} ms",
                                config.write_timeout.as_millis()
                            ));
                        }
                        Some(deadline) => {
                            timer_at = deadline;
                            write_timer.as_mut().reset(deadline);
                        }
                        None => {}
                    }
                },

                _ = sleep_until(paused_until.unwrap_or_else(Instant::now)), if paused_until.is_some() => {
                    paused_until = None;
                },

                _ = heartbeat.tick() => {
                    if last_heard.elapsed() >= config.idle_timeout {
                        return End::Idle;
                    }
                    pings += 1;
                    self.outbox.push(Message::Ping(Bytes::from(pings.to_be_bytes().to_vec())));
                },
            }
        }
    }

    /// Queues a Push frame for this client only, ahead of nothing and behind everything
    /// already queued.
    fn direct(&mut self, topic: &str, event: &Event) {
        if let Ok(frame) = self.shared.pubsub.encode(topic, event, &Json) {
            self.outbox.push(Message::Binary(frame));
        }
    }

    /// Applies one client command. `Err` is a (short) message for the client.
    fn command(&mut self, text: &str) -> Result<(), String> {
        match Command::parse(text)? {
            Command::Join { join } => self.join(join),
            Command::Leave { leave } => {
                if self.rooms.remove(&leave) {
                    self.leave(&leave, LeaveReason::Left);
                }
                Ok(())
            }
            Command::Say { say, text } => self.say(say, text),
            Command::Name { name } => self.rename(name),
            Command::Moderate { moderate } => self.moderate(&moderate),
        }
    }

    fn join(&mut self, room: String) -> Result<(), String> {
        check_room_name(&room)?;
        if self.rooms.contains(&room) {
            // Already a member: the room hears nothing (no second `joined`, no second
            // Presence join); only the joiner is told.
            self.direct("already_joined", &Event::AlreadyJoined { room });
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let pubsub = &shared.pubsub;
        let topic = room_topic(&room);
        // The hook refuses `room.staff` to non-moderators: nothing changes then.
        pubsub
            .subscribe(self.id, &topic)
            .map_err(|e| format!("cannot join {room}: {e}"))?;
        self.rooms.insert(room.clone());
        shared.room_joined(&room);
        // Presence: the room's subscribers (and every console) get a Presence frame
        // with the name.
        pubsub
            .track(self.id, &topic, Bytes::from(self.name.clone()))
            .map_err(|e| e.to_string())?;
        // Taken after subscribing, so every change since reaches this client as a
        // Presence frame too (see the crate docs on replaying them).
        let members = shared.members(&room);
        let count = members.len();
        self.direct(
            "members",
            &Event::Members {
                room: room.clone(),
                members,
            },
        );
        // Everyone in the room, the newcomer included (that is its confirmation).
        let event = Event::Joined {
            room,
            client: shared.public_id(self.id),
            name: self.name.clone(),
            members: count,
        };
        pubsub
            .broadcast(&topic, &event, &Json)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn say(&mut self, room: String, text: String) -> Result<(), String> {
        if !self.rooms.contains(&room) {
            return Err(format!("join {} before speaking in it", preview(&room)));
        }
        check_text(&text)?;
        let event = Event::Message {
            room: room.clone(),
            from: self.shared.public_id(self.id),
            name: self.name.clone(),
            text,
        };
        // Everyone in the room but the speaker: their client shows it locally.
        self.shared
            .pubsub
            .broadcast_from(self.id, room_topic(&room), &event, &Json)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn rename(&mut self, name: String) -> Result<(), String> {
        check_display_name(&name)?;
        self.name = name;
        // Tracking again with new metadata is a presence join carrying it.
        for room in &self.rooms {
            let meta = Bytes::from(self.name.clone());
            let _ = self.shared.pubsub.track(self.id, room_topic(room), meta);
        }
        let event = Event::Name {
            name: self.name.clone(),
        };
        self.direct("name", &event);
        Ok(())
    }

    fn moderate(&mut self, token: &str) -> Result<(), String> {
        let shared = Arc::clone(&self.shared);
        let token_ok = shared
            .moderator_token
            .as_deref()
            .is_some_and(|expected| same_secret(expected, token));
        if token_ok {
            shared.add_moderator(self.id);
        }
        if self.console {
            return Ok(());
        }
        // The hook decides: with a wrong token this is a non-moderator asking for
        // `room.>`, and it is refused like any other.
        shared
            .pubsub
            .subscribe(self.id, CONSOLE_PATTERN)
            .map_err(|e| {
                let why = match &shared.moderator_token {
                    None => "this server has no moderator token (--moderator-token)",
                    Some(_) => "wrong moderator token",
                };
                format!("cannot open the console ({why}): {e}")
            })?;
        self.console = true;
        // As for `members`: taken after subscribing.
        let rooms = shared
            .room_names()
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
        self.direct("console", &event);
        Ok(())
    }

    /// Takes this client out of `room` (its presence leave goes out) and tells the
    /// members left behind.
    fn leave(&self, room: &str, reason: LeaveReason) {
        let pubsub = &self.shared.pubsub;
        let topic = room_topic(room);
        let _ = pubsub.unsubscribe(self.id, &topic);
        let _ = pubsub.untrack(self.id, &topic);
        self.shared.room_left(room);
        let members = pubsub.list(&topic).map_or(0, |m| m.len());
        let event = Event::Left {
            room: room.to_owned(),
            client: self.shared.public_id(self.id),
            name: self.name.clone(),
            members,
            reason,
        };
        let _ = pubsub.broadcast(&topic, &event, &Json);
    }

    /// The connection is over: leave every room, drop moderator rights.
    fn leave_all(&mut self, reason: LeaveReason) {
        for room in std::mem::take(&mut self.rooms) {
            self.leave(&room, reason);
        }
        self.shared.remove_moderator(self.id);
    }
}

/// Ends a WebSocket connection: writes the close frame for `end` (or the reply to the
/// client's close, which tungstenite has queued), half-closes, and waits for the client
/// to close its side, reading and discarding whatever it sends meanwhile.
///
/// The close frame goes out behind everything already handed to the socket — the
/// kernel's send buffer (megabytes on loopback) and the frame tungstenite was writing —
/// and no byte of that can be taken back. A client cut off for being too slow therefore
/// sees its close frame only once it has read all of that. So the client gets the
/// patience any frame gets, [`Config::write_timeout`], to read through to it, and
/// [`Config::close_timeout`] more to close its side; a server shutting down and a client
/// already lost get only the close timeout. With the close timeout alone covering both,
/// a slow reader that resumed reading later than that found its stream ending without
/// a close frame (1006): Python `websockets` readers cut for a 64 KiB backlog that read
/// on 1.5 s later got 1008 in 0 of 10 runs, and in 10 of 10 with this patience (about
/// 4.6 MB of frames to read first, on loopback).
///
/// The client is read (and what it sends discarded) all the while: a client blocked
/// writing its own lines to a server that stopped reading them may never get to read
/// its close frame; and closing a socket with unread input makes the kernel send a
/// reset, which throws away whatever still waits in the send buffer, the close frame
/// included.
///
/// [`Config::write_timeout`]: crate::Config::write_timeout
/// [`Config::close_timeout`]: crate::Config::close_timeout
async fn close(shared: &Shared, mut ws: Ws, end: &End) {
    let config = &shared.config;
    let patience = match end {
        End::Shutdown | End::Lost => Duration::ZERO,
        _ => config.write_timeout,
    };
    let deadline = Instant::now() + patience + config.close_timeout;
    let mut discard = Discard {
        left: config.max_message + 64 * 1024,
        done: false,
    };
    let mut frame = end.close_frame(shared).map(|f| Message::Close(Some(f)));
    let written = timeout_at(
        deadline,
        poll_fn(|cx| {
            if let Poll::Ready(Err(_)) = discard.poll(ws.get_mut(), cx) {
                return Poll::Ready(false); // reset: the client is gone
            }
            if frame.is_some() {
                if !matches!(ready!(ws.poll_ready_unpin(cx)), Ok(())) {
                    return Poll::Ready(false);
                }
                let message = frame.take().expect("checked above");
                if ws.start_send_unpin(message).is_err() {
                    return Poll::Ready(false);
                }
            }
            ws.poll_flush_unpin(cx).map(|r| r.is_ok())
        }),
    )
    .await;
    if written != Ok(true) {
        return; // the client is gone, or did not read through to the close frame in time
    }
    let stream = ws.get_mut();
    let _ = stream.shutdown().await;
    let _ = timeout_at(deadline, poll_fn(|cx| discard.poll(stream, cx))).await;
}

/// Reads and discards what a closing client still sends, up to a byte budget.
struct Discard {
    /// Bytes it may still send before the server stops reading.
    left: usize,
    /// The client closed its side, or spent the budget: nothing more is read.
    done: bool,
}

impl Discard {
    /// Reads until the socket has nothing more for now (`Pending`, the task is woken
    /// when it has), or until it is done: `Ready(Ok)` once the client closed its side or
    /// spent the budget (and from then on), `Ready(Err)` if the socket failed.
    fn poll(&mut self, stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sink = [0u8; 1024];
        while !self.done {
            let mut buf = ReadBuf::new(&mut sink[..self.left.min(1024)]);
            ready!(Pin::new(&mut *stream).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            self.left -= n;
            self.done = n == 0 || self.left == 0;
        }
        Poll::Ready(Ok(()))
    }
}
