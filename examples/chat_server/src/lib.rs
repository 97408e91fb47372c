//! A WebSocket chat server on `fanout`: rooms, presence, a moderator console, a private
//! room and a server clock, one tokio task per connection.
//!
//! Run it (`cargo run --release --bin chat_server -- --help` for every flag), then open
//! <http://127.0.0.1:8080/> in two browser tabs:
//!
//! ```text
//! cargo run --release --bin chat_server -- --moderator-token s3cret
//! ```
//!
//! # What it shows
//!
//! - **One async channel sink per connection**
//!   ([`PubSub::register_async_with`](fanout::PubSub::register_async_with), the engine's
//!   feature `async`): the engine queues each frame for the connection's task and wakes
//!   it; publishers never await, and a connection whose queue overflows is cut off by
//!   the engine's `Disconnect` policy.
//! - **Rooms** as topics `room.NAME`: joining and leaving are `subscribe`/`unsubscribe`,
//!   a chat line goes out with `broadcast_from` (everyone in the room but the speaker),
//!   serialised once by a JSON [`Serialiser`](fanout::transport::Serialiser) however
//!   many members the room has.
//! - **Presence**: a member is `track`ed in its room with its display name as metadata
//!   and `untrack`ed when it leaves; the engine sends Presence frames (kind 2) to the
//!   room, `list` gives a newcomer the members, and the page's member lists are built
//!   from them.
//! - **Wildcards and authorization**: a moderator's console subscribes to `room.>` and
//!   sees every room; the `can_subscribe` hook ([`authorize`]) keeps the private room
//!   `staff` and every pattern for moderators.
//! - **A server clock** pushed to topic `time` through a pre-resolved `Topic`, stamped
//!   with its send time so a client can measure push → receipt latency (`chat_load`
//!   does).
//! - **A browser page** (`GET /`) that decodes the binary Push and Presence frames per
//!   the documented wire format, reconnects with backoff and rejoins its rooms.
//! - **Operable**: `GET /metrics` serves the engine's (and the bridge's) numbers in the
//!   Prometheus text format through the official exporter, read from `stats()` when
//!   scraped; the engine's events (bridge lost and reconnected, a connection cut off)
//!   are logged to stderr through `tracing-subscriber` (`operating.rs`).
//! - **A server that survives its clients**: every limit a real server needs, each
//!   with a flag and a close code (below).
//!
//! # How it is built
//!
//! | file | what is in it |
//! |------|---------------|
//! | `server.rs` | [`Config`], [`ChatServer`] (its own tokio runtime), the accept loop, the clock, the [`authorize`] hook |
//! | `connection.rs` | one connection's task: HTTP head, upgrade, the session loop, the close |
//! | `http.rs` | the request head read and parsed as bytes (`httparse`), the page, the upgrade answer |
//! | `protocol.rs` | the JSON commands and [`Event`]s, input checks, bounded error previews |
//! | `operating.rs` | `GET /metrics` (Prometheus text, the engine's and the bridge's numbers) and logging through `tracing-subscriber` |
//! | `main.rs` | the `chat_server` command line |
//! | `bin/chat_load.rs` | the load client: 10,000 connections, push latency, chat exactness |
//!
//! A connection is one task from accept to close. It reads the HTTP head (at most
//! 8 KiB, within the handshake timeout), then either answers it (the page, 404, 400, …)
//! or answers the WebSocket upgrade itself and runs the **session loop**: one
//! `tokio::select!` over the engine's queue for this client, the socket (write what is
//! queued, then read the next command), the write timer and the heartbeat. Only this
//! task writes to the socket, so nothing needs a lock. See `connection.rs` for the
//! loop in detail.
//!
//! Memory per connection is small on purpose: tungstenite's read buffer is 2 KiB and its
//! write buffer 8 KiB (both set in [`Config::websocket`]), the engine queue holds
//! [`Config::queue`] frames, and frames waiting for a slow socket are the engine's
//! shared `Bytes`, not copies. `chat_load` measured 12.7 KiB per idle connection
//! (PERFORMANCE.md, "Chat server under load").
//!
//! Besides `cargo test` (`tests/chat_server.rs` with real WebSocket clients,
//! `tests/page_in_chromium.rs` with the page in headless Chromium when one is
//! installed), two scripts drive the built server with real clients, outside CI:
//! `browser_check.py` (two Chromium tabs through a server restart, and a 420 px
//! screen) and `slow_reader_check.py` (Python `websockets` readers cut off for their
//! backlog: do they still get close 1008?).
//!
//! # Limits, and what a client that breaks them sees
//!
//! | finding | limit (flag) | what happens |
//! |---------|--------------|--------------|
//! | a client stops reading | [`Config::write_timeout`] (`--write-timeout-ms`), [`Config::max_backlog`], [`Config::queue`] | disconnected as soon as any is passed; its rooms get `left` with `"reason":"too_slow"` at that moment; close 1008, behind what it was sent before (it has the write timeout to read through to it) |
//! | a name or room with a bidi override, a zero-width or other format character, a control character | [`unfit_for_names`] | an `error` naming the code point; nothing changes |
//! | a huge message | [`Config::max_message`] (`--max-message`, 64 KiB) | refused from its header, never parsed or broadcast; close 1009 |
//! | a bad frame, bad UTF-8, a binary message | — | close 1002, 1007, 1003 with the reason |
//! | garbage commands | — | an `error` reply quoting at most 32 characters, escaped |
//! | a flood of lines | [`Config::max_rate`] and [`Config::burst`] | read no faster: TCP pushes back, nothing dropped |
//! | a client that goes quiet (a half-sent frame) | [`Config::ping_interval`], [`Config::idle_timeout`] | pinged; closed with 1001 when nothing (not even a pong) was heard for the idle timeout |
//! | a slow or huge HTTP head, odd bytes in it | [`Config::handshake_timeout`], 8 KiB | 408 / 431; a non-UTF-8 header value still gets the page, a non-UTF-8 request line a 400 |
//! | the server stops | — | every connection gets close 1001 `server shutting down` |
//!
//! # Protocol
//!
//! Client → server, JSON text messages: `{"name":"Alice"}` (your display name, 1 to
//! 32 characters, no control or format characters: [`unfit_for_names`]; default
//! `client N`), `{"join":"rust"}`, `{"leave":"rust"}`,
//! `{"say":"rust","text":"hi"}`, `{"moderate":"TOKEN"}`.
//!
//! Server → client, binary messages, one frame each (see `fanout::transport`):
//!
//! - **Presence frames** (kind 2) on `room.NAME`: a member joined (or renamed) or left
//!   the room; the metadata is the member's display name, UTF-8. The engine sends them
//!   from `track`/`untrack`, to the room's subscribers and to consoles.
//! - **Push frames** (kind 1) whose payload is a JSON [`Event`] with a `"type"`:
//!
//! | topic       | `type`     | when                                                         |
//! |-------------|------------|--------------------------------------------------------------|
//! | `welcome`   | `welcome`  | first frame on a connection: your ids, default name, the message size limit |
//! | `members`   | `members`  | you joined a room: its members then (presence ids and names) |
//! | `console`   | `console`  | your console opened: every room's members then               |
//! | `name`      | `name`     | your display name changed                                    |
//! | `room.NAME` | `joined`   | someone (you included) joined room NAME                      |
//! | `already_joined` | `already_joined` | you asked to join a room you are in: nothing changed, nobody else hears of it |
//! | `room.NAME` | `left`     | someone left NAME, or their connection ended (`reason`)      |
//! | `room.NAME` | `message`  | someone else said something in NAME (never your own)         |
//! | `time`      | `time`     | every interval, to every connection (`sent_us`: the send time) |
//! | `error`     | `error`    | your last command was refused (nothing changed)              |
//!
//! `members` and `console` go straight to one connection and may overtake Presence
//! frames sent before them; a client that buffers a room's Presence frames until the
//! room's snapshot arrives, then replays them over it, ends with the exact list (each
//! frame sets or removes one member, and frames of a room arrive in order). The page
//! does that. Presence ids are engine-local (`presence_id` in `welcome`), so a member
//! is named by its node and presence id together.
//!
//! With `--bridge URL` chat lines (with the speaker's name) reach every server bridged
//! to the same broker, and the member lists span every server, over Redis and over
//! NATS alike:
//!
//! ```text
//! cargo run --release --features redis --bin chat_server -- --port 8080 --bridge redis://127.0.0.1:6379/
//! cargo run --release --features redis --bin chat_server -- --port 8081 --bridge redis://127.0.0.1:6379/
//!
//! nats-server -a 127.0.0.1 -p 4222 &
//! cargo run --release --features nats --bin chat_server -- --port 8080 --bridge nats://127.0.0.1:4222
//! cargo run --release --features nats --bin chat_server -- --port 8081 --bridge nats://127.0.0.1:4222
//! ```

mod connection;
mod http;
mod operating;
mod protocol;
mod server;

pub use operating::init_logging;
pub use protocol::{
    check_display_name, check_room_name, check_text, is_format, preview, room_topic,
    unfit_for_names, Command, Event, Json, LeaveReason, MemberInfo, CONSOLE_PATTERN,
    FORMAT_CHARACTERS, MAX_NAME_CHARS, MAX_ROOM_LEN, PREVIEW_CHARS, STAFF_ROOM,
};
#[cfg(any(feature = "redis", feature = "nats"))]
pub use server::BRIDGE_NAMESPACE;
pub use server::{authorize, ChatServer, Config, Moderators};
