//! Presence sync: what bridged engines tell each other about their members.
//!
//! With a bridge attached, each engine owns the members it tracks and tells the others
//! about them with these messages (the replicated state they feed is described in
//! `fanout::presence`). Each travels in a [bridge envelope](super::envelope) of mode
//! `0x02` (presence), whose 34-byte header carries the sender's node id; the message
//! follows the header to the end of the envelope. All integers are big-endian; there is
//! no padding.
//!
//! | offset | size | field | value                                                        |
//! |--------|------|-------|--------------------------------------------------------------|
//! | 0      | 1    | kind  | `0x01` delta, `0x02` state, `0x03` heartbeat, `0x04` request, `0x05` goodbye, `0x06` state part |
//!
//! then, by kind:
//!
//! - **delta** (`0x01`): the sender's changes `base + 1 ..= base + N`, in order. The
//!   sender's *version* counts its changes; a receiver at version `base` applies them,
//!   one that is behind asks for the state.
//!
//!   | size | field                                                              |
//!   |------|--------------------------------------------------------------------|
//!   | 8    | base: `u64`, the sender's version before the first change         |
//!   | 4    | N: `u32`, changes                                                  |
//!   | …    | N changes, each: op `u8` (`0x01` join, `0x02` leave), topic length `u16` (1 ..= 65,535), topic (UTF-8), client `u64`, and for a join only: meta length `u32`, meta |
//!
//! - **state** (`0x02`): everything the sender tracks, at its version.
//!
//!   | size | field                                                              |
//!   |------|--------------------------------------------------------------------|
//!   | 8    | version: `u64`                                                     |
//!   | 4    | N: `u32`, entries                                                  |
//!   | …    | N entries, each: topic length `u16` (1 ..= 65,535), topic (UTF-8), client `u64`, meta length `u32`, meta |
//!
//! - **state part** (`0x06`): a slice of a state too long for one message (see
//!   [Splitting](#splitting)): entries `offset .. offset + N` of the `total` entries the
//!   sender tracks at `version`, in the sender's order (by topic bytes, then client).
//!
//!   | size | field                                                              |
//!   |------|--------------------------------------------------------------------|
//!   | 8    | version: `u64`                                                     |
//!   | 4    | total: `u32`, entries of the whole state (≥ 1)                     |
//!   | 4    | offset: `u32`, index of this part's first entry in the whole state |
//!   | 4    | N: `u32`, entries in this part (≥ 1; `offset + N ≤ total`, else the message is refused) |
//!   | …    | N entries, each as in a state                                      |
//!
//! - **heartbeat** (`0x03`): version `u64` — the sender is alive and at this version.
//! - **request** (`0x04`): N `u32`, then N node ids (`u128` each) whose states the sender
//!   asks for; N = 0 asks every node (an engine that just attached).
//! - **goodbye** (`0x05`): nothing more — the sender is leaving; its members leave now.
//!
//! # Splitting
//!
//! A message must fit the broker's and the receivers' limits (the bridge's
//! `max_message_len`, a NATS server's `max_payload`: 1 MiB by default), and an engine
//! with many members has a long state. [`split`] cuts a message to fit a body length:
//!
//! - a **delta** becomes consecutive deltas (`base`, `base + n₁`, …): no new kind, and a
//!   receiver applies them one after the other as it would one delta;
//! - a **state** that does not fit becomes **state parts**: each carries the version, the
//!   entry count of the whole state, and where its entries start in it. A receiver
//!   collects the parts of one (version, total) in any order, duplicates included, and
//!   replaces the sender's entries only once the parts it holds cover every entry: a
//!   partial state never removes a member that is in a part still to come. A part of a
//!   newer version drops the parts of an older one; a lost part leaves the receiver
//!   behind, so it asks again (a heartbeat ahead of it). Offsets index the whole state,
//!   not a part number, so parts cut for different limits (a cluster whose servers
//!   differ) still assemble correctly.
//!
//! A state that fits goes out whole, as kind `0x02`, exactly as before parts existed,
//! and the envelope's version stays `0x01`: a node that predates parts takes kind `0x06`
//! as an unknown kind — bad input, counted and skipped — and still gets every state that
//! fits one message. An
//! entry too long for any part on its own (a metadata of about the limit) is left out of
//! split states: receivers list every other member rather than none.
//!
//! A message is exactly as long as its fields say: a decoder refuses trailing bytes, so
//! the encoding is canonical. A client id is the sender's own
//! ([`ClientId::as_u64`](crate::ClientId::as_u64)): a member is named by (node, client).
//!
//! Decoding in Python, after the envelope header (`m = envelope[34:]`):
//!
//! ```text
//! kind = m[0]
//! if kind == 3: (version,) = struct.unpack_from(">Q", m, 1)
//! if kind == 2:
//!     version, n = struct.unpack_from(">QI", m, 1); at = 13
//!     for _ in range(n):
//!         (t,) = struct.unpack_from(">H", m, at); topic = m[at+2:at+2+t].decode(); at += 2 + t
//!         client, ml = struct.unpack_from(">QI", m, at); meta = m[at+12:at+12+ml]; at += 12 + ml
//! ```
//!
//! # Examples
//!
//! ```
//! use fanout::transport::presence_sync::{decode, encode_into, Message};
//! use fanout::transport::NodeId;
//!
//! let beat = Message::Heartbeat { origin: NodeId(7), version: 42 };
//! let mut body = Vec::new();
//! encode_into(&beat, &mut body);
//! assert_eq!(body, [3, 0, 0, 0, 0, 0, 0, 0, 42]);
//! assert_eq!(decode(NodeId(7), &body).unwrap(), beat);
//! ```

use std::sync::Arc;

use bytes::Bytes;

use super::frame::DecodeError;
use crate::vocab::node::NodeId;

/// Kind byte: a delta.
const KIND_DELTA: u8 = 1;
/// Kind byte: a state.
const KIND_STATE: u8 = 2;
/// Kind byte: a heartbeat.
const KIND_HEARTBEAT: u8 = 3;
/// Kind byte: a request for states.
const KIND_REQUEST: u8 = 4;
/// Kind byte: a goodbye.
const KIND_GOODBYE: u8 = 5;
/// Kind byte: a part of a state.
const KIND_STATE_PART: u8 = 6;
/// Op byte: a join.
const OP_JOIN: u8 = 1;
/// Op byte: a leave.
const OP_LEAVE: u8 = 2;
/// Fewest bytes a delta's change takes (a leave with a 1-byte topic).
const MIN_OP_LEN: usize = 1 + 2 + 1 + 8;
/// Fewest bytes a state's entry takes (a 1-byte topic, empty meta).
const MIN_ENTRY_LEN: usize = 2 + 1 + 8 + 4;
/// Bytes before a delta's ops: kind, base, count.
const DELTA_HEAD_LEN: usize = 1 + 8 + 4;
/// Bytes before a state's entries: kind, version, count.
const STATE_HEAD_LEN: usize = 1 + 8 + 4;
/// Bytes before a state part's entries: kind, version, total, offset, count.
const PART_HEAD_LEN: usize = 1 + 8 + 4 + 4 + 4;

/// One change a node made to its own entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `client` is tracked in `topic` with `meta` (new, or new metadata).
    Join {
        /// The topic.
        topic: Arc<str>,
        /// The client, as its own node numbers it.
        client: u64,
        /// Its metadata.
        meta: Bytes,
    },
    /// `client` is no longer tracked in `topic`.
    Leave {
        /// The topic.
        topic: Arc<str>,
        /// The client, as its own node numbers it.
        client: u64,
    },
}

/// One entry of a node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The topic.
    pub topic: Arc<str>,
    /// The client, as its own node numbers it.
    pub client: u64,
    /// Its metadata.
    pub meta: Bytes,
}

/// What nodes tell each other about their entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Changes `base + 1 ..= base + ops.len()` of `origin`, in order.
    Delta {
        /// The sender.
        origin: NodeId,
        /// The sender's version before the first op.
        base: u64,
        /// The changes, one version each.
        ops: Vec<Op>,
    },
    /// Everything `origin` tracks, at `version`.
    State {
        /// The sender.
        origin: NodeId,
        /// The sender's version.
        version: u64,
        /// Its entries.
        entries: Vec<Entry>,
    },
    /// Entries `offset .. offset + entries.len()` of the `total` entries `origin`
    /// tracks at `version`: one part of a state too long for one message (see
    /// [Splitting](self#splitting)).
    StatePart {
        /// The sender.
        origin: NodeId,
        /// The sender's version.
        version: u64,
        /// Entries in the whole state.
        total: u32,
        /// Index of the first entry of this part in the whole state.
        offset: u32,
        /// This part's entries (at least one).
        entries: Vec<Entry>,
    },
    /// `origin` is alive and at `version`.
    Heartbeat {
        /// The sender.
        origin: NodeId,
        /// The sender's version.
        version: u64,
    },
    /// `origin` asks the nodes in `of` (every node if empty) for their states.
    Request {
        /// The sender.
        origin: NodeId,
        /// Whose states it wants.
        of: Vec<NodeId>,
    },
    /// `origin` is leaving: its members leave now.
    Goodbye {
        /// The sender.
        origin: NodeId,
    },
}

impl Message {
    /// The node that sent it.
    pub fn origin(&self) -> NodeId {
        match self {
            Message::Delta { origin, .. }
            | Message::State { origin, .. }
            | Message::StatePart { origin, .. }
            | Message::Heartbeat { origin, .. }
            | Message::Request { origin, .. }
            | Message::Goodbye { origin } => *origin,
        }
    }
}

/// Appends `message`'s body (everything after the envelope header) to `out`. Topics
/// longer than 65,535 bytes or metadata of 4 GiB or more cannot be tracked, so every
/// message a [`PubSub`](crate::PubSub) makes fits the layout.
pub fn encode_into(message: &Message, out: &mut Vec<u8>) {
    match message {
        Message::Delta { base, ops, .. } => {
            out.push(KIND_DELTA);
            out.extend_from_slice(&base.to_be_bytes());
            put_count(out, ops.len());
            for op in ops {
                match op {
                    Op::Join {
                        topic,
                        client,
                        meta,
                    } => {
                        out.push(OP_JOIN);
                        put_member(out, topic, *client);
                        put_meta(out, meta);
                    }
                    Op::Leave { topic, client } => {
                        out.push(OP_LEAVE);
                        put_member(out, topic, *client);
                    }
                }
            }
        }
        Message::State {
            version, entries, ..
        } => {
            out.push(KIND_STATE);
            out.extend_from_slice(&version.to_be_bytes());
            put_count(out, entries.len());
            for entry in entries {
                put_member(out, &entry.topic, entry.client);
                put_meta(out, &entry.meta);
            }
        }
        Message::StatePart {
            version,
            total,
            offset,
            entries,
            ..
        } => {
            out.push(KIND_STATE_PART);
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            put_count(out, entries.len());
            for entry in entries {
                put_member(out, &entry.topic, entry.client);
                put_meta(out, &entry.meta);
            }
        }
        Message::Heartbeat { version, .. } => {
            out.push(KIND_HEARTBEAT);
            out.extend_from_slice(&version.to_be_bytes());
        }
        Message::Request { of, .. } => {
            out.push(KIND_REQUEST);
            put_count(out, of.len());
            for node in of {
                out.extend_from_slice(&node.0.to_be_bytes());
            }
        }
        Message::Goodbye { .. } => out.push(KIND_GOODBYE),
    }
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_member(out: &mut Vec<u8>, topic: &str, client: u64) {
    out.extend_from_slice(&u16::try_from(topic.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(&client.to_be_bytes());
}

fn put_meta(out: &mut Vec<u8>, meta: &[u8]) {
    put_count(out, meta.len());
    out.extend_from_slice(meta);
}

/// Decodes a message body sent by `origin`. Takes any bytes and never panics; it
/// allocates what the message holds (its topics, metadata and lists), never more than
/// the input's length suggests.
pub fn decode(origin: NodeId, body: &[u8]) -> Result<Message, DecodeError> {
    let mut at = Cursor { body, at: 0 };
    let message = match at.u8()? {
        KIND_DELTA => {
            let base = at.u64()?;
            let n = at.count(MIN_OP_LEN)?;
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                ops.push(match at.u8()? {
                    OP_JOIN => {
                        let (topic, client) = at.member()?;
                        let meta = at.meta()?;
                        Op::Join {
                            topic,
                            client,
                            meta,
                        }
                    }
                    OP_LEAVE => {
                        let (topic, client) = at.member()?;
                        Op::Leave { topic, client }
                    }
                    other => return Err(DecodeError::UnknownEvent(other)),
                });
            }
            Message::Delta { origin, base, ops }
        }
        KIND_STATE => {
            let version = at.u64()?;
            let entries = at.entries()?;
            Message::State {
                origin,
                version,
                entries,
            }
        }
        KIND_STATE_PART => {
            let version = at.u64()?;
            let total = at.u32()?;
            let offset = at.u32()?;
            let entries = at.entries()?;
            let end = u64::from(offset) + entries.len() as u64;
            if entries.is_empty() || end > u64::from(total) {
                return Err(DecodeError::PartOutOfRange);
            }
            Message::StatePart {
                origin,
                version,
                total,
                offset,
                entries,
            }
        }
        KIND_HEARTBEAT => Message::Heartbeat {
            origin,
            version: at.u64()?,
        },
        KIND_REQUEST => {
            let n = at.count(16)?;
            let mut of = Vec::with_capacity(n);
            for _ in 0..n {
                of.push(NodeId(u128::from_be_bytes(at.array()?)));
            }
            Message::Request { origin, of }
        }
        KIND_GOODBYE => Message::Goodbye { origin },
        other => return Err(DecodeError::UnknownKind(other)),
    };
    if at.at < body.len() {
        return Err(DecodeError::TrailingBytes {
            extra: body.len() - at.at,
        });
    }
    Ok(message)
}

/// Reads fields front to back, refusing to read past the end.
struct Cursor<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.saturating_add(n);
        let bytes = self.body.get(self.at..end).ok_or(DecodeError::Truncated {
            needed: end,
            got: self.body.len(),
        })?;
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A count of items of at least `min_len` bytes each: refused as truncated if the
    /// rest of the body cannot hold them, so nothing is allocated for a count the input
    /// does not back.
    fn count(&mut self, min_len: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        let needed = self.at.saturating_add(n.saturating_mul(min_len));
        if needed > self.body.len() {
            return Err(DecodeError::Truncated {
                needed,
                got: self.body.len(),
            });
        }
        Ok(n)
    }

    /// Topic length, topic, client.
    fn member(&mut self) -> Result<(Arc<str>, u64), DecodeError> {
        let len = usize::from(u16::from_be_bytes(self.array()?));
        if len == 0 {
            return Err(DecodeError::EmptyTopic);
        }
        let topic = std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::TopicNotUtf8)?;
        let topic = Arc::from(topic);
        Ok((topic, self.u64()?))
    }

    /// Meta length, meta.
    fn meta(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()? as usize;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    /// A count, then that many state entries.
    fn entries(&mut self) -> Result<Vec<Entry>, DecodeError> {
        let n = self.count(MIN_ENTRY_LEN)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let (topic, client) = self.member()?;
            let meta = self.meta()?;
            entries.push(Entry {
                topic,
                client,
                meta,
            });
        }
        Ok(entries)
    }
}

/// Bytes `entry` takes in a state or state part.
fn entry_len(entry: &Entry) -> usize {
    2 + entry.topic.len() + 8 + 4 + entry.meta.len()
}

/// Bytes `op` takes in a delta.
fn op_len(op: &Op) -> usize {
    match op {
        Op::Join { topic, meta, .. } => 1 + 2 + topic.len() + 8 + 4 + meta.len(),
        Op::Leave { topic, .. } => 1 + 2 + topic.len() + 8,
    }
}

/// Cuts `message` into messages whose bodies are at most `max_body` bytes each (see
/// [Splitting](self#splitting)), in the order they are to be sent: a delta into
/// consecutive deltas, a state into state parts (or one state, if it fits). Other
/// messages, and messages that fit, come back as they are. A delta op longer than
/// `max_body` on its own goes alone in a delta (longer than `max_body`: a receiver that
/// refuses it sees a gap and asks for the state); a state entry too long for a part on
/// its own is left out of a split state.
pub fn split(message: Message, max_body: usize) -> Vec<Message> {
    match message {
        Message::Delta { origin, base, ops }
            if DELTA_HEAD_LEN + ops.iter().map(op_len).sum::<usize>() > max_body =>
        {
            let mut out = Vec::new();
            let mut base = base;
            let mut part: Vec<Op> = Vec::new();
            let mut len = DELTA_HEAD_LEN;
            for op in ops {
                let op_bytes = op_len(&op);
                if !part.is_empty() && len + op_bytes > max_body {
                    let n = part.len() as u64;
                    out.push(Message::Delta {
                        origin,
                        base,
                        ops: std::mem::take(&mut part),
                    });
                    base += n;
                    len = DELTA_HEAD_LEN;
                }
                len += op_bytes;
                part.push(op);
            }
            if !part.is_empty() {
                out.push(Message::Delta {
                    origin,
                    base,
                    ops: part,
                });
            }
            out
        }
        Message::State {
            origin,
            version,
            entries,
        } if STATE_HEAD_LEN + entries.iter().map(entry_len).sum::<usize>() > max_body => {
            let room = max_body.saturating_sub(PART_HEAD_LEN);
            let kept: Vec<Entry> = entries
                .into_iter()
                .filter(|entry| entry_len(entry) <= room)
                .collect();
            if STATE_HEAD_LEN + kept.iter().map(entry_len).sum::<usize>() <= max_body {
                // Only the entries too long for any part made it too long.
                return vec![Message::State {
                    origin,
                    version,
                    entries: kept,
                }];
            }
            let total = u32::try_from(kept.len()).unwrap_or(u32::MAX);
            let mut out = Vec::new();
            let mut offset = 0u32;
            let mut part: Vec<Entry> = Vec::new();
            let mut len = 0;
            for entry in kept.into_iter().take(total as usize) {
                let entry_bytes = entry_len(&entry);
                if !part.is_empty() && len + entry_bytes > room {
                    let n = part.len() as u32;
                    out.push(Message::StatePart {
                        origin,
                        version,
                        total,
                        offset,
                        entries: std::mem::take(&mut part),
                    });
                    offset += n;
                    len = 0;
                }
                len += entry_bytes;
                part.push(entry);
            }
            if !part.is_empty() {
                out.push(Message::StatePart {
                    origin,
                    version,
                    total,
                    offset,
                    entries: part,
                });
            }
            out
        }
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: &Message) -> Vec<u8> {
        let mut body = Vec::new();
        encode_into(message, &mut body);
        assert_eq!(&decode(message.origin(), &body).unwrap(), message);
        for cut in 0..body.len() {
            assert!(
                matches!(
                    decode(message.origin(), &body[..cut]),
                    Err(DecodeError::Truncated { .. })
                ),
                "a prefix of {cut} bytes is refused"
            );
        }
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(
            decode(message.origin(), &longer),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        body
    }

    #[test]
    fn layout_is_byte_exact() {
        let origin = NodeId(1);
        let delta = Message::Delta {
            origin,
            base: 2,
            ops: vec![
                Op::Join {
                    topic: Arc::from("t"),
                    client: 3,
                    meta: Bytes::from_static(b"m"),
                },
                Op::Leave {
                    topic: Arc::from("u"),
                    client: 4,
                },
            ],
        };
        let body = round_trip(&delta);
        let mut expected = vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2];
        expected.extend_from_slice(&[1, 0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, b'm']);
        expected.extend_from_slice(&[2, 0, 1, b'u', 0, 0, 0, 0, 0, 0, 0, 4]);
        assert_eq!(body, expected);

        let state = Message::State {
            origin,
            version: 5,
            entries: vec![Entry {
                topic: Arc::from("t"),
                client: 3,
                meta: Bytes::new(),
            }],
        };
        let body = round_trip(&state);
        let mut expected = vec![2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1];
        expected.extend_from_slice(&[0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(body, expected);

        let request = Message::Request {
            origin,
            of: vec![NodeId(0x0102)],
        };
        let body = round_trip(&request);
        let mut expected = vec![4, 0, 0, 0, 1];
        expected.extend_from_slice(&0x0102_u128.to_be_bytes());
        assert_eq!(body, expected);
        assert_eq!(round_trip(&Message::Goodbye { origin }), [5]);
    }

    #[test]
    fn bad_bytes_are_refused_without_allocating_for_them() {
        let origin = NodeId(1);
        assert_eq!(decode(origin, &[9]), Err(DecodeError::UnknownKind(9)));
        // A state claiming 4 billion entries in 13 bytes: refused before any allocation.
        let huge = [2, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode(origin, &huge),
            Err(DecodeError::Truncated { .. })
        ));
        let bad_op = [
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7, 0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(decode(origin, &bad_op), Err(DecodeError::UnknownEvent(7)));
        let empty_topic = [
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
        ];
        assert_eq!(decode(origin, &empty_topic), Err(DecodeError::EmptyTopic));
        let not_utf8 = [
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(decode(origin, &not_utf8), Err(DecodeError::TopicNotUtf8));
    }

    fn entry(topic: &str, client: u64, meta: &'static [u8]) -> Entry {
        Entry {
            topic: Arc::from(topic),
            client,
            meta: Bytes::from_static(meta),
        }
    }

    #[test]
    fn a_state_part_is_byte_exact_and_checked() {
        let part = Message::StatePart {
            origin: NodeId(1),
            version: 5,
            total: 3,
            offset: 2,
            entries: vec![entry("t", 3, b"")],
        };
        let body = round_trip(&part);
        let mut expected = vec![
            6, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1,
        ];
        expected.extend_from_slice(&[0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(body, expected);
        // Entries past the total, or none: refused.
        let mut past = body.clone();
        past[16] = 3; // offset 3 of 3
        assert_eq!(decode(NodeId(1), &past), Err(DecodeError::PartOutOfRange));
        let empty = [
            6, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(decode(NodeId(1), &empty), Err(DecodeError::PartOutOfRange));
        let mut overflow = body;
        overflow[13..17].copy_from_slice(&[0xff; 4]); // offset u32::MAX: no overflow
        assert_eq!(
            decode(NodeId(1), &overflow),
            Err(DecodeError::PartOutOfRange)
        );
    }

    fn body_len(message: &Message) -> usize {
        let mut body = Vec::new();
        encode_into(message, &mut body);
        body.len()
    }

    #[test]
    fn split_cuts_deltas_into_consecutive_deltas_that_fit() {
        let origin = NodeId(1);
        let ops: Vec<Op> = (0..100)
            .map(|i| Op::Join {
                topic: Arc::from(format!("room/{i}").as_str()),
                client: i,
                meta: Bytes::from(vec![b'm'; i as usize]),
            })
            .collect();
        let delta = Message::Delta {
            origin,
            base: 40,
            ops: ops.clone(),
        };
        assert_eq!(
            split(delta.clone(), usize::MAX),
            std::slice::from_ref(&delta)
        );
        let parts = split(delta, 300);
        assert!(parts.len() > 10);
        let mut next = 40;
        let mut all = Vec::new();
        for part in &parts {
            assert!(body_len(part) <= 300, "{}", body_len(part));
            let Message::Delta { base, ops, .. } = part else {
                panic!("a delta splits into deltas");
            };
            assert_eq!(*base, next);
            next += ops.len() as u64;
            all.extend(ops.iter().cloned());
        }
        assert_eq!(all, ops);
        // An op longer than the limit goes alone.
        let long = Message::Delta {
            origin,
            base: 0,
            ops: vec![ops[1].clone(), ops[99].clone(), ops[2].clone()],
        };
        let parts = split(long, 100);
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn split_cuts_states_into_parts_that_fit_and_cover_it() {
        let origin = NodeId(1);
        let entries: Vec<Entry> = (0..1000)
            .map(|i| Entry {
                topic: Arc::from(format!("room/{}", i % 7).as_str()),
                client: i,
                meta: Bytes::from(vec![b'm'; (i % 50) as usize]),
            })
            .collect();
        let state = Message::State {
            origin,
            version: 9,
            entries: entries.clone(),
        };
        assert_eq!(
            split(state.clone(), body_len(&state)),
            std::slice::from_ref(&state)
        );
        let parts = split(state, 1000);
        assert!(parts.len() > 20);
        let mut all = Vec::new();
        for part in &parts {
            assert!(body_len(part) <= 1000);
            let Message::StatePart {
                version,
                total,
                offset,
                entries,
                ..
            } = part
            else {
                panic!("a long state splits into parts");
            };
            assert_eq!((*version, *total, *offset as usize), (9, 1000, all.len()));
            all.extend(entries.iter().cloned());
        }
        assert_eq!(all, entries);
        // An entry too long for any part is left out; the rest still arrives.
        let with_huge = Message::State {
            origin,
            version: 9,
            entries: vec![
                entry("a", 1, b"x"),
                Entry {
                    topic: Arc::from("b"),
                    client: 2,
                    meta: Bytes::from(vec![0; 200]),
                },
                entry("c", 3, b"y"),
            ],
        };
        let parts = split(with_huge, 60);
        let kept: Vec<u64> = parts
            .iter()
            .flat_map(|p| match p {
                Message::State { entries, .. } | Message::StatePart { entries, .. } => {
                    entries.iter().map(|e| e.client).collect::<Vec<_>>()
                }
                _ => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(kept, [1, 3]);
    }
}
