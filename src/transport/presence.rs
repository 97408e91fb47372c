//! The Presence frame: a member joined or left a topic (version 1, kind 2).
//!
//! [`PubSub::track`](crate::PubSub::track) and everything that ends a tracked client
//! send these to the topic's subscribers, beside the Push frames of ordinary broadcasts.
//! The first two bytes and the topic are laid out as in the [Push frame](super::frame),
//! so a receiver reads version, kind and topic the same way and switches on the kind.
//! All integers are big-endian; there is no padding.
//!
//! | offset  | size | field           | value                                            |
//! |---------|------|-----------------|--------------------------------------------------|
//! | 0       | 1    | version         | `0x01` ([`FRAME_VERSION`])  |
//! | 1       | 1    | kind            | `0x02` = Presence ([`FRAME_KIND_PRESENCE`])      |
//! | 2       | 2    | topic length T  | `u16`, 1 ..= 65,535                              |
//! | 4       | T    | topic           | UTF-8                                            |
//! | 4 + T   | 1    | event           | `0x01` join, `0x02` leave                        |
//! | 5 + T   | 16   | node            | `u128`: the member's engine ([`NodeId`]; `0` on an engine without a bridge) |
//! | 21 + T  | 8    | client id       | `u64`: the member's client, as its engine numbers it |
//! | 29 + T  | 4    | meta length M   | `u32`                                            |
//! | 33 + T  | M    | meta            | the bytes given to `track` (a leave carries the member's last metadata) |
//!
//! A frame is exactly `33 + T + M` bytes; trailing bytes are an error. A member is the
//! pair (node, client): client ids are per engine, so with a bridge attached two
//! engines' members may share a client id, never a node. A join for a member already
//! listed replaces its metadata (tracking again with new metadata).
//!
//! Decoding in JavaScript (after the version and kind checks of the Push frame, with
//! `kind === 2`):
//!
//! ```text
//! const t = v.getUint16(2);
//! const topic = new TextDecoder().decode(new Uint8Array(buf, 4, t));
//! const event = v.getUint8(4 + t) === 1 ? "join" : "leave";
//! const node = (v.getBigUint64(5 + t) << 64n) | v.getBigUint64(13 + t);
//! const client = v.getBigUint64(21 + t);
//! const m = v.getUint32(29 + t);
//! const meta = new Uint8Array(buf, 33 + t, m);
//! ```
//!
//! and in Python: `_, kind, t = struct.unpack_from(">BBH", b)`; for `kind == 2`:
//! `topic = b[4:4+t].decode()`, `event = b[4+t]`,
//! `node = int.from_bytes(b[5+t:21+t], "big")`,
//! `client, m = struct.unpack_from(">QI", b, 21+t)`, `meta = b[33+t:33+t+m]`.
//!
//! # Examples
//!
//! ```
//! use fanout::transport::{decode_any, encode_presence, Frame, NodeId, PresenceEvent};
//!
//! let frame = encode_presence("room.rust", PresenceEvent::Join, NodeId(3), 7, b"alice").unwrap();
//! match decode_any(&frame).unwrap() {
//!     Frame::Presence(p) => {
//!         assert_eq!((p.topic, p.event, p.node, p.client), ("room.rust", PresenceEvent::Join, NodeId(3), 7));
//!         assert_eq!(p.meta, b"alice");
//!     }
//!     Frame::Push(_) => unreachable!(),
//! }
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::FRAME_VERSION;
use super::frame::{body, decode, split_header, DecodeError, PushFrame, FRAME_KIND_PUSH};
use super::serialiser::SerialiseError;
use crate::vocab::node::NodeId;

pub use super::frame::FRAME_KIND_PRESENCE;

/// Bytes before the topic: version, kind, topic length.
const PREFIX_LEN: usize = 4;
/// Bytes between the topic and the metadata: event, node, client id, meta length.
const FIXED_AFTER_TOPIC: usize = 1 + 16 + 8 + 4;

/// What happened to the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PresenceEvent {
    /// It was tracked (or its metadata changed).
    Join = 1,
    /// It was untracked, or its client went away.
    Leave = 2,
}

/// A decoded Presence frame, borrowing from its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceFrame<'a> {
    /// The topic the member joined or left.
    pub topic: &'a str,
    /// Join or leave.
    pub event: PresenceEvent,
    /// The member's engine: its bridge's node id (`NodeId(0)` on an engine without a
    /// bridge). When a bridge attaches or detaches, the engine's members are renamed: a
    /// leave under the old id, then a join under the new one.
    pub node: NodeId,
    /// The member's client id ([`ClientId::as_u64`](crate::ClientId::as_u64)).
    pub client: u64,
    /// The member's metadata.
    pub meta: &'a [u8],
}

impl PresenceFrame<'_> {
    /// Encodes this frame again; byte-for-byte the buffer it was decoded from.
    pub fn encode(&self) -> Result<Bytes, SerialiseError> {
        encode_presence(self.topic, self.event, self.node, self.client, self.meta)
    }
}

/// Any frame a [`PubSub`](crate::PubSub) sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A broadcast.
    Push(PushFrame<'a>),
    /// A presence change.
    Presence(PresenceFrame<'a>),
}

/// Decodes a Push or a Presence frame. Takes any bytes; never panics, never allocates.
pub fn decode_any(frame: &[u8]) -> Result<Frame<'_>, DecodeError> {
    match frame.get(1) {
        Some(&FRAME_KIND_PRESENCE) if frame[0] == FRAME_VERSION => {
            decode_presence(frame).map(Frame::Presence)
        }
        Some(&FRAME_KIND_PUSH) | None | Some(_) => decode(frame).map(Frame::Push),
    }
}

/// Decodes one Presence frame. Takes any bytes; never panics, never allocates.
pub fn decode_presence(frame: &[u8]) -> Result<PresenceFrame<'_>, DecodeError> {
    let (topic, fixed, meta_start) = split_header(frame, FRAME_KIND_PRESENCE, FIXED_AFTER_TOPIC)?;
    let event = match fixed[0] {
        1 => PresenceEvent::Join,
        2 => PresenceEvent::Leave,
        other => return Err(DecodeError::UnknownEvent(other)),
    };
    let node = NodeId(u128::from_be_bytes(
        fixed[1..17].try_into().expect("16 bytes"),
    ));
    let client = u64::from_be_bytes(fixed[17..25].try_into().expect("8 bytes"));
    let meta_len = u32::from_be_bytes(fixed[25..29].try_into().expect("4 bytes"));
    let meta = body(frame, meta_start, meta_len)?;
    let topic = std::str::from_utf8(topic).map_err(|_| DecodeError::TopicNotUtf8)?;
    Ok(PresenceFrame {
        topic,
        event,
        node,
        client,
        meta,
    })
}

/// Encodes a Presence frame. Fails only if the topic is empty or longer than
/// [`MAX_TOPIC_LEN`](crate::MAX_TOPIC_LEN), or the metadata is 4 GiB or more.
pub fn encode_presence(
    topic: &str,
    event: PresenceEvent,
    node: NodeId,
    client: u64,
    meta: &[u8],
) -> Result<Bytes, SerialiseError> {
    let topic_len = u16::try_from(topic.len())
        .map_err(|_| SerialiseError::new("topic longer than 65,535 bytes"))?;
    if topic_len == 0 {
        return Err(SerialiseError::new("topic is empty"));
    }
    let meta_len = u32::try_from(meta.len())
        .map_err(|_| SerialiseError::new("metadata is 4 GiB or larger"))?;
    let mut out =
        BytesMut::with_capacity(PREFIX_LEN + topic.len() + FIXED_AFTER_TOPIC + meta.len());
    out.put_u8(FRAME_VERSION);
    out.put_u8(FRAME_KIND_PRESENCE);
    out.put_u16(topic_len);
    out.put_slice(topic.as_bytes());
    out.put_u8(event as u8);
    out.put_u128(node.0);
    out.put_u64(client);
    out.put_u32(meta_len);
    out.put_slice(meta);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_byte_exact() {
        let frame = encode_presence("ab", PresenceEvent::Leave, NodeId(3), 0x0102, b"m").unwrap();
        let mut expected = vec![1, 2, 0, 2, b'a', b'b', 2];
        expected.extend_from_slice(&3u128.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1, b'm']);
        assert_eq!(&frame[..], &expected[..]);
    }

    #[test]
    fn every_prefix_is_truncated_and_bad_events_are_refused() {
        let frame = encode_presence("topic", PresenceEvent::Join, NodeId(1), 9, b"meta").unwrap();
        for cut in 0..frame.len() {
            assert!(
                matches!(
                    decode_presence(&frame[..cut]),
                    Err(DecodeError::Truncated { .. })
                ),
                "prefix of {cut} bytes"
            );
        }
        let mut bad = frame.to_vec();
        bad[4 + 5] = 3;
        assert_eq!(decode_presence(&bad), Err(DecodeError::UnknownEvent(3)));
        // A Push decoder refuses a Presence frame by kind, and vice versa.
        assert_eq!(decode(&frame), Err(DecodeError::UnknownKind(2)));
    }
}
