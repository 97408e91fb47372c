//! The bridge envelope: version 1 of what one engine publishes to the broker (Redis or
//! NATS) for the others.
//!
//! A bridged engine (see `fanout::bridge`, features `redis` and `nats`) forwards every
//! broadcast to the other engines in a broker message (a Redis pub/sub message, a NATS
//! message on the topic's subject): a fixed 34-byte header in front of the unchanged
//! [Push frame](super::frame) the origin serialised (modes 0 and 1), or — when several
//! broadcasts for the same channel or subject were already waiting together — the same
//! header in front of all of them, each with its own sequence number (mode 3, a
//! *batch*). Receivers check the header, then hand each frame — a slice of the message,
//! not a copy — to their own subscribers. All integers are big-endian (network order);
//! there is no padding.
//!
//! | offset | size | field       | value                                                  |
//! |--------|------|-------------|--------------------------------------------------------|
//! | 0      | 1    | version     | `0x01` ([`ENVELOPE_VERSION`])                          |
//! | 1      | 1    | mode        | `0x00` everyone, `0x01` everyone but one client, `0x02` presence, `0x03` batch |
//! | 2      | 16   | origin      | `u128`: the sending engine's random node id            |
//! | 18     | 8    | sequence    | `u64`: per origin and topic, +1 per envelope           |
//! | 26     | 8    | client      | `u64`: the excluded client's id (mode 1), else `0`     |
//! | 34     | F    | body        | mode 0 and 1: exactly one [Push frame](super::frame); mode 2: one [presence sync message](super::presence_sync); mode 3: the batch body below |
//!
//! An envelope is exactly `34 + F` bytes, where the body's own length fields must
//! account for all `F` bytes: a decoder refuses trailing bytes, a mode-0 envelope with a
//! non-zero client, and a mode-2 or mode-3 envelope with a non-zero sequence or client,
//! so the encoding is canonical (`encode(decode(x)) == x`).
//!
//! - **mode 3 (batch).** `n` broadcasts of the origin in one message, in the order it
//!   broadcast them; the header's sequence and client are `0`, and the body is:
//!
//!   | offset (in the body) | size | field    | value                                          |
//!   |----------------------|------|----------|------------------------------------------------|
//!   | 0                    | 4    | count    | `u32`: `n`, at least 1                         |
//!   | 4                    | 8    | sequence | `u64`: the first frame's number in its (origin, topic) stream |
//!   | 12                   | 8    | client   | `u64`: the excluded client (as in mode 1), or `0`: everyone (mode 0) |
//!   | 20                   | 4    | length   | `u32`: `L`, the first frame's length in bytes  |
//!   | 24                   | L    | frame    | exactly one [Push frame](super::frame)        |
//!   | 24 + L               | …    | …        | the next frame's sequence, client, length and frame, `n` in all |
//!
//!   Each frame stands for one mode-0 or mode-1 envelope with the batch's origin and its
//!   own sequence and client: receivers check and count each alone (a frame that skips
//!   numbers is a gap, one that repeats is a duplicate). A batch whose count is 0 or
//!   does not match its frames, whose lengths run past its end, with bytes after its
//!   last frame, or with any frame that is not one Push frame is refused whole
//!   ([`decode_batch_envelope`]). A sender puts in one batch only broadcasts that go to
//!   the same channel or subject (under per-topic channels or NATS subjects: one topic)
//!   and that were already queued together: batching never holds a frame back. Mode 3
//!   is newer than modes 0–2: a receiver that predates it drops batches as
//!   [`UnknownMode(3)`](EnvelopeError::UnknownMode), so upgrade receivers before
//!   senders.
//!
//! - **mode 2 (presence).** What bridged engines tell each other about the members
//!   they track: deltas, heartbeats, whole states (or, too long for one message, state
//!   parts: kind `0x06`), requests, goodbyes (see [`presence_sync`]). Never delivered
//!   to subscribers as such;
//!   the receiving engine turns them into its list and its own Presence frames.
//!   [`decode_envelope`] reads broadcasts only and refuses mode 2 as
//!   [`UnknownMode(2)`](EnvelopeError::UnknownMode); [`decode_presence_envelope`] reads
//!   it.
//!
//! - **mode / client.** A client id means something only on the engine that made it
//!   ([`ClientId`] is a per-engine counter), so receivers deliver to *every* local
//!   subscriber whatever the mode: `broadcast_from` skips the sender on its own node
//!   only. The mode and id travel for observers and logs. A mode-1 client id is never
//!   `0` (no engine hands out id 0).
//! - **origin.** 128 random bits drawn when the bridge starts; a receiver drops
//!   envelopes carrying its own id (no echo).
//! - **sequence.** Numbers each (origin, topic) stream: it grows by one for every
//!   envelope on that topic the origin's publisher tries to send, sent or not, so a
//!   receiver that sees a stream jump from `n` to `m > n + 1` counts `m - n - 1` missed
//!   frames, and one that sees `m <= n` has a replay. A topic the origin has not
//!   numbered before starts at the origin's count of all its envelopes so far (not at
//!   1): a stream's numbers never go back, even when the origin forgets a topic. Per
//!   topic, not per origin, because a node that subscribes to some topics' channels
//!   only must not take the topics it skips for losses. Frames are never replayed.
//!
//! A receiver that sees a version it does not know must drop the envelope: a later
//! version may change everything after byte 0.
//!
//! Decoding in JavaScript (a Node.js `Buffer` from a Redis or NATS client):
//!
//! ```text
//! if (b[0] !== 1) return;                          // version
//! const mode = b[1];                               // 0 everyone, 1 everyone but `client`
//! const origin = b.subarray(2, 18).toString("hex");
//! const seq = b.readBigUInt64BE(18);
//! const client = b.readBigUInt64BE(26);
//! const frame = b.subarray(34);                    // a Push frame: see `frame`
//! ```
//!
//! and in Python: `version, mode = b[0], b[1]`, `origin = int.from_bytes(b[2:18], "big")`,
//! `seq, client = struct.unpack_from(">QQ", b, 18)`, `frame = b[34:]`. A batch (mode 3)
//! in Python:
//!
//! ```text
//! (n,) = struct.unpack_from(">I", b, 34)
//! at = 38
//! for _ in range(n):
//!     seq, client, length = struct.unpack_from(">QQI", b, at)
//!     frame = b[at + 20:at + 20 + length]            # a Push frame; client 0: everyone
//!     at += 20 + length
//! ```
//!
//! # Examples
//!
//! ```
//! use fanout::transport::{
//!     decode_batch_envelope, decode_envelope, encode_batch_envelope, encode_push, Audience,
//!     EnvelopeHeader, NodeId,
//! };
//!
//! let frame = encode_push("room/1", b"hi").unwrap();
//! let header = EnvelopeHeader { audience: Audience::Everyone, origin: NodeId(7), sequence: 1 };
//! let mut message = Vec::new();
//! header.encode_into(&frame, &mut message);
//! assert_eq!(message.len(), 34 + frame.len());
//!
//! let envelope = decode_envelope(&message).unwrap();
//! assert_eq!(envelope.header, header);
//! assert_eq!(envelope.push.topic, "room/1");
//! assert_eq!(envelope.frame, &frame[..]);
//!
//! // Two broadcasts in one batch (mode 3):
//! let second = EnvelopeHeader { sequence: 2, ..header };
//! let mut batch = Vec::new();
//! encode_batch_envelope(NodeId(7), &[(header.audience, 1, &frame[..]), (second.audience, 2, &frame[..])], &mut batch);
//! let frames: Vec<_> = decode_batch_envelope(&batch).unwrap().iter().collect();
//! assert_eq!(frames.len(), 2);
//! assert_eq!(frames[1].header, second);
//! assert_eq!(frames[1].push.payload, b"hi");
//! ```

use std::fmt;

use super::frame::{decode, DecodeError, PushFrame};
use super::presence_sync::{self, Message};
use crate::vocab::client::ClientId;

pub use crate::vocab::node::NodeId;

/// The only envelope version this crate writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes before the Push frame.
pub const ENVELOPE_HEADER_LEN: usize = 34;

/// Mode byte: every subscriber.
const MODE_EVERYONE: u8 = 0;
/// Mode byte: every subscriber but one client (on the origin).
const MODE_ALL_BUT: u8 = 1;
/// Mode byte: a presence sync message, not a broadcast.
pub const MODE_PRESENCE: u8 = 2;
/// Mode byte: a batch of broadcasts, each with its own sequence number and client.
pub const MODE_BATCH: u8 = 3;
/// Bytes of a batch before its first frame's fields: the header and the count.
pub const BATCH_HEADER_LEN: usize = ENVELOPE_HEADER_LEN + 4;
/// Bytes in front of each frame of a batch: sequence, client, length.
pub const BATCH_ITEM_HEADER_LEN: usize = 20;

/// Who a bridged broadcast was for, on its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every subscriber of the topic (`broadcast`).
    Everyone,
    /// Every subscriber but this client of the origin engine (`broadcast_from`).
    AllBut(ClientId),
}

/// The envelope's fields before the Push frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// Mode and excluded client.
    pub audience: Audience,
    /// The engine that broadcast the frame.
    pub origin: NodeId,
    /// This envelope's number in the origin's stream for its topic.
    pub sequence: u64,
}

impl EnvelopeHeader {
    /// Appends this header and then `frame` to `out`: one envelope. `frame` is taken as
    /// given (the caller vouches it is one Push frame; a bridge forwards only frames its
    /// engine built or checked).
    pub fn encode_into(&self, frame: &[u8], out: &mut Vec<u8>) {
        let (mode, client) = match self.audience {
            Audience::Everyone => (MODE_EVERYONE, 0),
            Audience::AllBut(id) => (MODE_ALL_BUT, id.as_u64()),
        };
        out.reserve(ENVELOPE_HEADER_LEN + frame.len());
        out.push(ENVELOPE_VERSION);
        out.push(mode);
        out.extend_from_slice(&self.origin.0.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&client.to_be_bytes());
        out.extend_from_slice(frame);
    }
}

/// A decoded envelope, borrowing from the buffer it was decoded from (the decoder
/// allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The header fields.
    pub header: EnvelopeHeader,
    /// The Push frame's bytes: `&message[ENVELOPE_HEADER_LEN..]`.
    pub frame: &'a [u8],
    /// The Push frame, decoded.
    pub push: PushFrame<'a>,
}

/// Why a buffer is not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The buffer is shorter than the 34-byte header.
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes the buffer has.
        got: usize,
    },
    /// The version byte is not [`ENVELOPE_VERSION`].
    UnsupportedVersion(u8),
    /// The mode byte is not one the decoder reads (0 or 1 for [`decode_envelope`], 2 for
    /// [`decode_presence_envelope`], 3 for [`decode_batch_envelope`]).
    UnknownMode(u8),
    /// Mode 0 with a non-zero client, or mode 1 with client 0.
    BadClient(u64),
    /// The bytes after the header are not exactly one Push frame.
    Frame(DecodeError),
    /// A presence envelope (mode 2) with a non-zero sequence or client.
    BadPresenceHeader,
    /// The bytes after a presence envelope's header are not exactly one presence sync
    /// message.
    Presence(DecodeError),
    /// A batch envelope (mode 3) with a non-zero sequence or client in its header.
    BadBatchHeader,
    /// A batch envelope whose count is 0.
    EmptyBatch,
    /// A batch envelope that ends inside its `count`-th frame or its fields.
    BatchTruncated {
        /// Bytes the batch needs at least, given what was read so far.
        needed: usize,
        /// Bytes the message has.
        got: usize,
    },
    /// A batch envelope with bytes after its last frame.
    BatchTrailingBytes {
        /// How many bytes follow the last frame.
        extra: usize,
    },
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Truncated { needed, got } => {
                write!(f, "envelope truncated: needs {needed} bytes, has {got}")
            }
            EnvelopeError::UnsupportedVersion(v) => write!(f, "unsupported envelope version {v}"),
            EnvelopeError::UnknownMode(m) => write!(f, "unknown envelope mode {m}"),
            EnvelopeError::BadClient(c) => write!(f, "client {c} does not fit the envelope mode"),
            EnvelopeError::Frame(e) => write!(f, "envelope frame: {e}"),
            EnvelopeError::BadPresenceHeader => {
                f.write_str("presence envelope with a sequence or client")
            }
            EnvelopeError::Presence(e) => write!(f, "presence envelope body: {e}"),
            EnvelopeError::BadBatchHeader => {
                f.write_str("batch envelope with a sequence or client")
            }
            EnvelopeError::EmptyBatch => f.write_str("batch envelope with no frame"),
            EnvelopeError::BatchTruncated { needed, got } => {
                write!(
                    f,
                    "batch envelope truncated: needs {needed} bytes, has {got}"
                )
            }
            EnvelopeError::BatchTrailingBytes { extra } => {
                write!(f, "batch envelope with {extra} bytes after its last frame")
            }
        }
    }
}

impl std::error::Error for EnvelopeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnvelopeError::Frame(e) | EnvelopeError::Presence(e) => Some(e),
            _ => None,
        }
    }
}

/// Decodes one envelope. Takes any bytes; never panics and never allocates.
///
/// Checks in this order: length of the header, version, mode, client, then the Push
/// frame (with [`decode`]'s own order).
pub fn decode_envelope(message: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    if message.len() < ENVELOPE_HEADER_LEN {
        return Err(EnvelopeError::Truncated {
            needed: ENVELOPE_HEADER_LEN,
            got: message.len(),
        });
    }
    let (header, frame) = message.split_at(ENVELOPE_HEADER_LEN);
    if header[0] != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(header[0]));
    }
    let mode = header[1];
    let origin = u128::from_be_bytes(field(header, 2));
    let sequence = u64::from_be_bytes(field(header, 18));
    let client = u64::from_be_bytes(field(header, 26));
    let audience = match (mode, client) {
        (MODE_EVERYONE, 0) => Audience::Everyone,
        (MODE_ALL_BUT, c) if c != 0 => Audience::AllBut(ClientId::from_raw(c)),
        (MODE_EVERYONE | MODE_ALL_BUT, c) => return Err(EnvelopeError::BadClient(c)),
        (m, _) => return Err(EnvelopeError::UnknownMode(m)),
    };
    let push = decode(frame).map_err(EnvelopeError::Frame)?;
    Ok(Envelope {
        header: EnvelopeHeader {
            audience,
            origin: NodeId(origin),
            sequence,
        },
        frame,
        push,
    })
}

/// Appends a presence envelope carrying `message` (from its origin) to `out`.
pub fn encode_presence_envelope(message: &Message, out: &mut Vec<u8>) {
    out.push(ENVELOPE_VERSION);
    out.push(MODE_PRESENCE);
    out.extend_from_slice(&message.origin().0.to_be_bytes());
    out.extend_from_slice(&[0; 16]); // sequence and client: unused
    presence_sync::encode_into(message, out);
}

/// Decodes a presence envelope (mode 2). Takes any bytes and never panics; allocates
/// what the message holds, never more than the input's length suggests.
///
/// Checks in this order: length of the header, version, mode (anything but 2 is
/// [`EnvelopeError::UnknownMode`]), zero sequence and client, then the message.
pub fn decode_presence_envelope(message: &[u8]) -> Result<Message, EnvelopeError> {
    if message.len() < ENVELOPE_HEADER_LEN {
        return Err(EnvelopeError::Truncated {
            needed: ENVELOPE_HEADER_LEN,
            got: message.len(),
        });
    }
    let (header, body) = message.split_at(ENVELOPE_HEADER_LEN);
    if header[0] != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(header[0]));
    }
    if header[1] != MODE_PRESENCE {
        return Err(EnvelopeError::UnknownMode(header[1]));
    }
    if header[18..].iter().any(|&b| b != 0) {
        return Err(EnvelopeError::BadPresenceHeader);
    }
    let origin = NodeId(u128::from_be_bytes(field(header, 2)));
    presence_sync::decode(origin, body).map_err(EnvelopeError::Presence)
}

/// Appends a batch envelope (mode 3) from `origin` carrying `frames`, each an (audience,
/// sequence, Push frame), in order. The frames are taken as given (the caller vouches
/// each is one Push frame). An empty `frames` writes an envelope receivers refuse.
pub fn encode_batch_envelope(origin: NodeId, frames: &[(Audience, u64, &[u8])], out: &mut Vec<u8>) {
    let start = out.len();
    begin_batch(origin, out);
    for &(audience, sequence, frame) in frames {
        push_batch_frame(audience, sequence, frame, out);
    }
    set_batch_count(&mut out[start..], frames.len() as u32);
}

/// Appends a batch envelope's header with a count of 0 (set by [`set_batch_count`]).
pub(crate) fn begin_batch(origin: NodeId, out: &mut Vec<u8>) {
    out.push(ENVELOPE_VERSION);
    out.push(MODE_BATCH);
    out.extend_from_slice(&origin.0.to_be_bytes());
    out.extend_from_slice(&[0; 16]); // sequence and client: per frame
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Appends one frame of a batch begun with [`begin_batch`].
pub(crate) fn push_batch_frame(audience: Audience, sequence: u64, frame: &[u8], out: &mut Vec<u8>) {
    let client = match audience {
        Audience::Everyone => 0,
        Audience::AllBut(id) => id.as_u64(),
    };
    out.reserve(BATCH_ITEM_HEADER_LEN + frame.len());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&client.to_be_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(frame);
}

/// Writes `count` into the batch envelope that starts `envelope`.
pub(crate) fn set_batch_count(envelope: &mut [u8], count: u32) {
    envelope[ENVELOPE_HEADER_LEN..BATCH_HEADER_LEN].copy_from_slice(&count.to_be_bytes());
}

/// A decoded batch envelope (mode 3), borrowing from its message: every frame was
/// checked; [`iter`](Self::iter) hands them out in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEnvelope<'a> {
    /// The engine that broadcast the frames.
    pub origin: NodeId,
    /// How many frames it carries (at least 1).
    pub count: u32,
    /// The frames' fields and bytes, after the count.
    body: &'a [u8],
    /// Where `body` starts in the message (for offsets in errors).
    at: usize,
}

impl<'a> BatchEnvelope<'a> {
    /// Each frame as the envelope it stands for (its header names the batch's origin).
    pub fn iter(&self) -> BatchFrames<'a> {
        BatchFrames {
            origin: self.origin,
            rest: self.body,
            at: self.at,
        }
    }
}

/// The frames of a [`BatchEnvelope`], in order.
#[derive(Debug, Clone)]
pub struct BatchFrames<'a> {
    origin: NodeId,
    rest: &'a [u8],
    /// Offset of `rest` in the message.
    at: usize,
}

impl<'a> BatchFrames<'a> {
    /// The next frame, or why it is not one; `None` at the end.
    fn next_checked(&mut self) -> Option<Result<Envelope<'a>, EnvelopeError>> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.at + self.rest.len();
        if self.rest.len() < BATCH_ITEM_HEADER_LEN {
            self.rest = &[];
            return Some(Err(EnvelopeError::BatchTruncated {
                needed: self.at + BATCH_ITEM_HEADER_LEN,
                got: end,
            }));
        }
        let sequence = u64::from_be_bytes(field(self.rest, 0));
        let client = u64::from_be_bytes(field(self.rest, 8));
        let len = u32::from_be_bytes(field(self.rest, 16)) as usize;
        let after = &self.rest[BATCH_ITEM_HEADER_LEN..];
        if after.len() < len {
            self.rest = &[];
            return Some(Err(EnvelopeError::BatchTruncated {
                needed: self.at + BATCH_ITEM_HEADER_LEN + len,
                got: end,
            }));
        }
        let (frame, rest) = after.split_at(len);
        self.rest = rest;
        self.at += BATCH_ITEM_HEADER_LEN + len;
        let audience = match client {
            0 => Audience::Everyone,
            c => Audience::AllBut(ClientId::from_raw(c)),
        };
        Some(match decode(frame) {
            Ok(push) => Ok(Envelope {
                header: EnvelopeHeader {
                    audience,
                    origin: self.origin,
                    sequence,
                },
                frame,
                push,
            }),
            Err(e) => Err(EnvelopeError::Frame(e)),
        })
    }
}

impl<'a> Iterator for BatchFrames<'a> {
    type Item = Envelope<'a>;

    fn next(&mut self) -> Option<Envelope<'a>> {
        // Every frame was checked by `decode_batch_envelope`: never an error here.
        self.next_checked()?.ok()
    }
}

/// Decodes a batch envelope (mode 3) and checks every frame in it. Takes any bytes;
/// never panics and never allocates.
///
/// Checks in this order: length of the header and count, version, mode (anything but 3
/// is [`EnvelopeError::UnknownMode`]), zero sequence and client, a count of at least 1,
/// then each frame in order (its fields, its length, the Push frame with [`decode`]'s
/// own order), then that nothing follows the `count`-th frame.
pub fn decode_batch_envelope(message: &[u8]) -> Result<BatchEnvelope<'_>, EnvelopeError> {
    if message.len() < BATCH_HEADER_LEN {
        return Err(EnvelopeError::Truncated {
            needed: BATCH_HEADER_LEN,
            got: message.len(),
        });
    }
    if message[0] != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(message[0]));
    }
    if message[1] != MODE_BATCH {
        return Err(EnvelopeError::UnknownMode(message[1]));
    }
    if message[18..ENVELOPE_HEADER_LEN].iter().any(|&b| b != 0) {
        return Err(EnvelopeError::BadBatchHeader);
    }
    let count = u32::from_be_bytes(field(message, ENVELOPE_HEADER_LEN));
    if count == 0 {
        return Err(EnvelopeError::EmptyBatch);
    }
    let batch = BatchEnvelope {
        origin: NodeId(u128::from_be_bytes(field(message, 2))),
        count,
        body: &message[BATCH_HEADER_LEN..],
        at: BATCH_HEADER_LEN,
    };
    let mut frames = batch.iter();
    for _ in 0..count {
        match frames.next_checked() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None => {
                return Err(EnvelopeError::BatchTruncated {
                    needed: message.len() + BATCH_ITEM_HEADER_LEN,
                    got: message.len(),
                })
            }
        }
    }
    if !frames.rest.is_empty() {
        return Err(EnvelopeError::BatchTrailingBytes {
            extra: frames.rest.len(),
        });
    }
    Ok(batch)
}

/// The `N` header bytes from `at`.
fn field<const N: usize>(header: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&header[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::encode_push;

    #[test]
    fn layout_is_byte_exact() {
        let frame = encode_push("t", b"p").unwrap();
        let header = EnvelopeHeader {
            audience: Audience::AllBut(ClientId::from_raw(0x0102)),
            origin: NodeId(0x1112_1314_1516_1718_191a_1b1c_1d1e_1f20),
            sequence: 0x0a0b,
        };
        let mut out = Vec::new();
        header.encode_into(&frame, &mut out);
        let mut expected = vec![1, 1];
        expected.extend_from_slice(&[
            0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e,
            0x1f, 0x20,
        ]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x01, 0x02]);
        expected.extend_from_slice(&frame);
        assert_eq!(out, expected);
        let back = decode_envelope(&out).unwrap();
        assert_eq!(back.header, header);
        assert_eq!(back.push.payload, b"p");
    }

    #[test]
    fn every_prefix_is_refused() {
        let frame = encode_push("topic", b"payload").unwrap();
        let header = EnvelopeHeader {
            audience: Audience::Everyone,
            origin: NodeId(1),
            sequence: 1,
        };
        let mut out = Vec::new();
        header.encode_into(&frame, &mut out);
        for cut in 0..out.len() {
            let refused = decode_envelope(&out[..cut]);
            if cut < ENVELOPE_HEADER_LEN {
                assert!(matches!(refused, Err(EnvelopeError::Truncated { .. })));
            } else {
                assert!(matches!(
                    refused,
                    Err(EnvelopeError::Frame(DecodeError::Truncated { .. }))
                ));
            }
        }
    }

    #[test]
    fn mode_and_client_must_agree() {
        let frame = encode_push("t", b"").unwrap();
        let mut out = Vec::new();
        EnvelopeHeader {
            audience: Audience::Everyone,
            origin: NodeId(1),
            sequence: 1,
        }
        .encode_into(&frame, &mut out);
        out[33] = 5; // a client in mode 0
        assert_eq!(decode_envelope(&out), Err(EnvelopeError::BadClient(5)));
        out[1] = 1;
        assert!(decode_envelope(&out).is_ok());
        out[33] = 0; // mode 1 without a client
        assert_eq!(decode_envelope(&out), Err(EnvelopeError::BadClient(0)));
        out[1] = 2;
        assert_eq!(decode_envelope(&out), Err(EnvelopeError::UnknownMode(2)));
        out[0] = 9;
        assert_eq!(
            decode_envelope(&out),
            Err(EnvelopeError::UnsupportedVersion(9))
        );
    }

    #[test]
    fn batch_layout_is_byte_exact() {
        let (a, b) = (
            encode_push("t", b"p").unwrap(),
            encode_push("u", b"").unwrap(),
        );
        let origin = NodeId(0x1112_1314_1516_1718_191a_1b1c_1d1e_1f20);
        let mut out = Vec::new();
        encode_batch_envelope(
            origin,
            &[
                (Audience::Everyone, 0x0a0b, &a[..]),
                (Audience::AllBut(ClientId::from_raw(0x0102)), 0x0c, &b[..]),
            ],
            &mut out,
        );
        let mut expected = vec![1, 3];
        expected.extend_from_slice(&origin.0.to_be_bytes());
        expected.extend_from_slice(&[0; 16]);
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        expected.extend_from_slice(&[0; 8]);
        expected.extend_from_slice(&(a.len() as u32).to_be_bytes());
        expected.extend_from_slice(&a);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x0c]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x01, 0x02]);
        expected.extend_from_slice(&(b.len() as u32).to_be_bytes());
        expected.extend_from_slice(&b);
        assert_eq!(out, expected);
        let batch = decode_batch_envelope(&out).unwrap();
        assert_eq!((batch.origin, batch.count), (origin, 2));
        let frames: Vec<_> = batch.iter().collect();
        assert_eq!(frames[0].header.sequence, 0x0a0b);
        assert_eq!(frames[0].header.audience, Audience::Everyone);
        assert_eq!(frames[0].push.topic, "t");
        assert_eq!(frames[1].header.origin, origin);
        assert_eq!(
            frames[1].header.audience,
            Audience::AllBut(ClientId::from_raw(0x0102))
        );
        assert_eq!(frames[1].frame, &b[..]);
        assert_eq!(decode_envelope(&out), Err(EnvelopeError::UnknownMode(3)));
    }

    #[test]
    fn a_malformed_batch_is_refused_whole() {
        let frame = encode_push("t", b"p").unwrap();
        let mut out = Vec::new();
        let one = [(Audience::Everyone, 1, &frame[..])];
        encode_batch_envelope(NodeId(1), &one, &mut out);
        let end = out.len();
        for cut in 0..end {
            assert!(decode_batch_envelope(&out[..cut]).is_err(), "cut at {cut}");
        }
        out.push(0);
        assert_eq!(
            decode_batch_envelope(&out),
            Err(EnvelopeError::BatchTrailingBytes { extra: 1 })
        );
        out.pop();
        out[37] = 2; // two frames announced, one there
        assert_eq!(
            decode_batch_envelope(&out),
            Err(EnvelopeError::BatchTruncated {
                needed: end + BATCH_ITEM_HEADER_LEN,
                got: end
            })
        );
        out[37] = 0;
        assert_eq!(decode_batch_envelope(&out), Err(EnvelopeError::EmptyBatch));
        out[37] = 1;
        out[20] = 1; // a sequence in the header
        assert_eq!(
            decode_batch_envelope(&out),
            Err(EnvelopeError::BadBatchHeader)
        );
        out[20] = 0;
        out[BATCH_HEADER_LEN + 19] += 1; // a frame length one past the end
        assert_eq!(
            decode_batch_envelope(&out),
            Err(EnvelopeError::BatchTruncated {
                needed: end + 1,
                got: end
            })
        );
        out[BATCH_HEADER_LEN + 19] -= 1;
        out[BATCH_HEADER_LEN + BATCH_ITEM_HEADER_LEN] = 9; // the frame's version
        assert_eq!(
            decode_batch_envelope(&out),
            Err(EnvelopeError::Frame(DecodeError::UnsupportedVersion(9)))
        );
    }
}
