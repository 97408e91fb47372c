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
//! | 0      | 1    | kind  | `0x01` delta, `0x02` state, `0x03` heartbeat, `0x04` request, `0x05` goodbye |
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
//! - **heartbeat** (`0x03`): version `u64` — the sender is alive and at this version.
//! - **request** (`0x04`): N `u32`, then N node ids (`u128` each) whose states the sender
//!   asks for; N = 0 asks every node (an engine that just attached).
//! - **goodbye** (`0x05`): nothing more — the sender is leaving; its members leave now.
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
/// Op byte: a join.
const OP_JOIN: u8 = 1;
/// Op byte: a leave.
const OP_LEAVE: u8 = 2;
/// Fewest bytes a delta's change takes (a leave with a 1-byte topic).
const MIN_OP_LEN: usize = 1 + 2 + 1 + 8;
/// Fewest bytes a state's entry takes (a 1-byte topic, empty meta).
const MIN_ENTRY_LEN: usize = 2 + 1 + 8 + 4;

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
            let n = at.count(MIN_ENTRY_LEN)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let (topic, client) = at.member()?;
                let meta = at.meta()?;
                entries.push(Entry {
                    topic,
                    client,
                    meta,
                });
            }
            Message::State {
                origin,
                version,
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
}
