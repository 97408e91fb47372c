//! The Push frame: version 1 of `fanout`'s wire format.
//!
//! Every frame a [`PubSub`](crate::PubSub) broadcast produces has this layout. All
//! integers are big-endian (network order); there is no padding.
//!
//! | offset      | size | field          | value                                         |
//! |-------------|------|----------------|-----------------------------------------------|
//! | 0           | 1    | version        | `0x01` ([`FRAME_VERSION`])                    |
//! | 1           | 1    | kind           | `0x01` = Push ([`FRAME_KIND_PUSH`])           |
//! | 2           | 2    | topic length T | `u16`, 1 ..= 65,535                           |
//! | 4           | T    | topic          | UTF-8, not NUL-terminated                     |
//! | 4 + T       | 4    | payload length P | `u32`                                       |
//! | 8 + T       | P    | payload        | whatever the [`Serialiser`](super::Serialiser) wrote |
//!
//! A frame is exactly `8 + T + P` bytes: a decoder must refuse trailing bytes, which makes
//! the encoding canonical (`encode(decode(x)) == x`). The length prefixes let a stream
//! transport (TCP) find frame boundaries; over a message transport (WebSocket) one
//! message carries one frame.
//!
//! A receiver that sees a version it does not know must drop the frame: a later version
//! may change everything after byte 0. Kind 2 is the [Presence frame](super::presence);
//! other kinds are reserved.
//!
//! Decoding in JavaScript, for a WebSocket with `binaryType = "arraybuffer"`:
//!
//! ```text
//! const v = new DataView(buf);
//! if (v.getUint8(0) !== 1 || v.getUint8(1) !== 1) return;        // version, kind
//! const t = v.getUint16(2);                                       // topic length
//! const topic = new TextDecoder().decode(new Uint8Array(buf, 4, t));
//! const p = v.getUint32(4 + t);                                   // payload length
//! const payload = new Uint8Array(buf, 8 + t, p);
//! ```
//!
//! and in Python: `_, _, t = struct.unpack_from(">BBH", b)`, `topic = b[4:4+t].decode()`,
//! `(p,) = struct.unpack_from(">I", b, 4+t)`, `payload = b[8+t:8+t+p]`.
//!
//! # Examples
//!
//! ```
//! use fanout::transport::{decode, encode_push};
//!
//! let frame = encode_push("prices/EURUSD", b"1.0842").unwrap();
//! assert_eq!(&frame[..4], &[1, 1, 0, 13]);
//! let push = decode(&frame).unwrap();
//! assert_eq!(push.topic, "prices/EURUSD");
//! assert_eq!(push.payload, b"1.0842");
//! ```

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::serialiser::SerialiseError;

/// The only wire-format version this crate writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// The frame kind byte of a Push frame.
pub const FRAME_KIND_PUSH: u8 = 1;
/// The frame kind byte of a Presence frame.
pub const FRAME_KIND_PRESENCE: u8 = 2;

/// Bytes before the topic: version, kind, topic length.
const PREFIX_LEN: usize = 4;
/// Bytes of the payload length field.
const PAYLOAD_LEN_LEN: usize = 4;

/// A decoded Push frame, borrowing from the buffer it was decoded from (the decoder
/// allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushFrame<'a> {
    /// The topic the frame was broadcast on.
    pub topic: &'a str,
    /// The serialised message.
    pub payload: &'a [u8],
}

impl PushFrame<'_> {
    /// Encodes this frame again; byte-for-byte the buffer it was decoded from.
    pub fn encode(&self) -> Result<Bytes, SerialiseError> {
        encode_push(self.topic, self.payload)
    }
}

/// Why a buffer is not a valid Push frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends before the field that starts at `needed - 1` is complete.
    Truncated {
        /// How many bytes the frame needs at least, given what was read so far.
        needed: usize,
        /// How many bytes the buffer has.
        got: usize,
    },
    /// The version byte is not [`FRAME_VERSION`].
    UnsupportedVersion(u8),
    /// The kind byte is not [`FRAME_KIND_PUSH`].
    UnknownKind(u8),
    /// The topic length is zero.
    EmptyTopic,
    /// The topic bytes are not UTF-8.
    TopicNotUtf8,
    /// The buffer continues past the end of the payload.
    TrailingBytes {
        /// How many bytes follow the frame.
        extra: usize,
    },
    /// A Presence frame's event byte is neither join nor leave.
    UnknownEvent(u8),
    /// A presence state part with no entries, or with entries past the state's total.
    PartOutOfRange,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, got } => {
                write!(f, "frame truncated: needs {needed} bytes, has {got}")
            }
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported frame version {v}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            DecodeError::EmptyTopic => f.write_str("frame has an empty topic"),
            DecodeError::TopicNotUtf8 => f.write_str("frame topic is not UTF-8"),
            DecodeError::TrailingBytes { extra } => {
                write!(f, "{extra} bytes follow the end of the frame")
            }
            DecodeError::UnknownEvent(e) => write!(f, "unknown presence event {e}"),
            DecodeError::PartOutOfRange => {
                f.write_str("presence state part with no entries or entries past its total")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one Push frame. Takes any bytes; never panics and never allocates.
pub fn decode(frame: &[u8]) -> Result<PushFrame<'_>, DecodeError> {
    let (topic, len_field, body_start) = split_header(frame, FRAME_KIND_PUSH, PAYLOAD_LEN_LEN)?;
    let payload_len = u32::from_be_bytes([len_field[0], len_field[1], len_field[2], len_field[3]]);
    let payload = body(frame, body_start, payload_len)?;
    let topic = std::str::from_utf8(topic).map_err(|_| DecodeError::TopicNotUtf8)?;
    Ok(PushFrame { topic, payload })
}

/// The part every frame kind shares, in the order of the checks every decoder makes:
/// version, `kind`, a non-empty topic length, then the topic and the kind's `fixed`
/// bytes of its own fields (`Truncated` if the buffer ends first). Returns the topic
/// bytes (UTF-8 not yet checked), those fixed fields, and where the body starts.
pub(crate) fn split_header(
    frame: &[u8],
    kind: u8,
    fixed: usize,
) -> Result<(&[u8], &[u8], usize), DecodeError> {
    let truncated = |needed: usize| DecodeError::Truncated {
        needed,
        got: frame.len(),
    };
    let prefix = frame.get(..PREFIX_LEN).ok_or(truncated(PREFIX_LEN))?;
    if prefix[0] != FRAME_VERSION {
        return Err(DecodeError::UnsupportedVersion(prefix[0]));
    }
    if prefix[1] != kind {
        return Err(DecodeError::UnknownKind(prefix[1]));
    }
    let topic_len = usize::from(u16::from_be_bytes([prefix[2], prefix[3]]));
    if topic_len == 0 {
        return Err(DecodeError::EmptyTopic);
    }
    let topic_end = PREFIX_LEN + topic_len;
    let body_start = topic_end + fixed;
    let topic = frame
        .get(PREFIX_LEN..topic_end)
        .ok_or(truncated(body_start))?;
    let fields = frame
        .get(topic_end..body_start)
        .ok_or(truncated(body_start))?;
    Ok((topic, fields, body_start))
}

/// The `len` bytes of body at `start`, which must end the frame exactly (`Truncated`
/// if the buffer is shorter, `TrailingBytes` if longer).
pub(crate) fn body(frame: &[u8], start: usize, len: u32) -> Result<&[u8], DecodeError> {
    // `usize` is at least 32 bits on every target this crate builds for, and `start` is
    // at most 65,552, so this cannot overflow on 64-bit targets; saturate anyway so a
    // 32-bit target reports truncation instead of wrapping.
    let end = start.saturating_add(len as usize);
    let body = frame.get(start..end).ok_or(DecodeError::Truncated {
        needed: end,
        got: frame.len(),
    })?;
    if frame.len() > end {
        return Err(DecodeError::TrailingBytes {
            extra: frame.len() - end,
        });
    }
    Ok(body)
}

/// Whether `frame` is a Push frame for `topic`, exactly as [`decode`] would find it
/// (`decode(frame)` is `Ok` with this topic) but cheaper: the topic bytes are compared
/// with `topic` instead of being checked as UTF-8 (bytes equal to a `str` are UTF-8), and
/// the version, kind and topic length are one 4-byte compare. `broadcast_frame` runs it
/// on every call: `decode` and the compare after it were ~90 of the ~370 instructions of
/// a pre-encoded broadcast to one channel (`floor_callgrind e2e_pubsub_frame 1`).
#[inline]
pub(crate) fn is_push_for(frame: &[u8], topic: &str) -> bool {
    let Ok(topic_len @ 1..) = u16::try_from(topic.len()) else {
        return false;
    };
    let topic_end = PREFIX_LEN + topic.len();
    let header_len = topic_end + PAYLOAD_LEN_LEN;
    let Some(header) = frame.get(..header_len) else {
        return false;
    };
    let [len_high, len_low] = topic_len.to_be_bytes();
    let prefix = [FRAME_VERSION, FRAME_KIND_PUSH, len_high, len_low];
    let len_field = [
        header[topic_end],
        header[topic_end + 1],
        header[topic_end + 2],
        header[topic_end + 3],
    ];
    header[..PREFIX_LEN] == prefix
        && frame.len() - header_len == u32::from_be_bytes(len_field) as usize
        && same_bytes(&header[PREFIX_LEN..topic_end], topic.as_bytes())
}

/// `a == b` for two slices of the same length, without a call to `memcmp` for 8 to 16
/// bytes (most topic names: `user.000123`, `market/eurusd`): two overlapping 8-byte
/// words cover them. Saves ~8 instructions per `broadcast_frame`.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len == b.len() && (8..=16).contains(&len) {
        let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap());
        return word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8);
    }
    a == b
}

/// A conflating client's key for a frame the engine built or checked, as a slice
/// sharing its buffer: the kind byte and the topic for a Push frame (one pending frame
/// per topic); for a Presence frame also its event, node and client, so a member's join is
/// never replaced by another member's leave (only a member's own repeated event is). A
/// frame too short to hold its header (never one a broadcast delivers) is its own key.
pub(crate) fn conflation_key(frame: &Bytes) -> Bytes {
    if let Some(&[_, kind, hi, lo]) = frame.get(..PREFIX_LEN) {
        let topic_end = PREFIX_LEN + usize::from(u16::from_be_bytes([hi, lo]));
        let end = if kind == FRAME_KIND_PRESENCE {
            topic_end + 1 + 16 + 8 // event, node, client
        } else {
            topic_end
        };
        if end <= frame.len() {
            return frame.slice(1..end);
        }
    }
    frame.clone()
}

/// Encodes a Push frame around an already-serialised payload: one allocation of exactly
/// the frame's size, written once.
///
/// Fails only if the topic is empty or longer than [`MAX_TOPIC_LEN`](crate::MAX_TOPIC_LEN),
/// or the payload is 4 GiB or more.
pub fn encode_push(topic: &str, payload: &[u8]) -> Result<Bytes, SerialiseError> {
    let topic_len = checked_topic_len(topic)?;
    let payload_len = u32::try_from(payload.len())
        .map_err(|_| SerialiseError::new("payload is 4 GiB or larger"))?;
    let mut frame = Vec::with_capacity(PREFIX_LEN + topic.len() + PAYLOAD_LEN_LEN + payload.len());
    write_header(&mut frame, topic_len, topic);
    frame.extend_from_slice(&payload_len.to_be_bytes());
    frame.extend_from_slice(payload);
    // Length equals capacity: `Bytes` takes the allocation over as it is (no second
    // allocation for a shared header, which a `Vec` with spare capacity would need).
    Ok(Bytes::from(frame))
}

/// Encodes a Push frame whose payload `write_payload` appends to the buffer it is given.
///
/// `size_hint` is the expected payload size (reserved up front; a wrong hint costs a
/// reallocation, never correctness).
#[inline]
pub(crate) fn encode_with(
    topic: &str,
    size_hint: usize,
    write_payload: impl FnOnce(&mut BytesMut) -> Result<(), SerialiseError>,
) -> Result<Bytes, SerialiseError> {
    let topic_len = checked_topic_len(topic)?;
    let header_len = PREFIX_LEN + topic.len() + PAYLOAD_LEN_LEN;
    let mut out = BytesMut::with_capacity(header_len.saturating_add(size_hint));
    write_header(&mut out, topic_len, topic);
    out.put_slice(&[0; PAYLOAD_LEN_LEN]); // payload length, patched below
    write_payload(&mut out)?;
    let payload_len = u32::try_from(out.len() - header_len)
        .map_err(|_| SerialiseError::new("payload is 4 GiB or larger"))?;
    out[header_len - PAYLOAD_LEN_LEN..header_len].copy_from_slice(&payload_len.to_be_bytes());
    Ok(out.freeze())
}

/// The topic's length as the header's `u16`: 1 ..= 65,535 bytes.
#[inline(always)]
fn checked_topic_len(topic: &str) -> Result<u16, SerialiseError> {
    let topic_len = u16::try_from(topic.len())
        .map_err(|_| SerialiseError::new("topic longer than 65,535 bytes"))?;
    if topic_len == 0 {
        return Err(SerialiseError::new("topic is empty"));
    }
    Ok(topic_len)
}

/// Version, kind, topic length and topic: two writes (each `put` checks the capacity and
/// moves the length).
#[inline(always)]
fn write_header(out: &mut impl BufMut, topic_len: u16, topic: &str) {
    let [len_high, len_low] = topic_len.to_be_bytes();
    out.put_slice(&[FRAME_VERSION, FRAME_KIND_PUSH, len_high, len_low]);
    out.put_slice(topic.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_byte_exact() {
        let frame = encode_push("ab", b"xyz").unwrap();
        assert_eq!(
            &frame[..],
            &[1, 1, 0, 2, b'a', b'b', 0, 0, 0, 3, b'x', b'y', b'z']
        );
    }

    #[test]
    fn both_encoders_write_the_same_frame() {
        // `encode_push` (an exact allocation, for payloads already in bytes) and
        // `encode_with` (a serialiser writing into a growable buffer), whatever the hint.
        for payload in [&b""[..], b"xyz", &[9; 300]] {
            let exact = encode_push("ab", payload).unwrap();
            for hint in [0, 3, 64, 1000] {
                let written = encode_with("ab", hint, |out| {
                    out.put_slice(payload);
                    Ok(())
                })
                .unwrap();
                assert_eq!(exact, written, "hint {hint}");
            }
            assert_eq!(decode(&exact).unwrap().payload, payload);
        }
    }

    #[test]
    fn is_push_for_agrees_with_decode() {
        // Names of under 8, 8 to 16 (compared as two words) and over 16 bytes.
        for name in ["room/a", "market/eurusd", "market/eurusd/spot/top"] {
            let frame = encode_push(name, b"payload").unwrap();
            assert!(is_push_for(&frame, name));
            // Every byte changed, every prefix, one byte more: the check says what
            // `decode` and a topic compare say.
            let agrees = |bytes: &[u8], topic: &str| {
                let decoded = matches!(decode(bytes), Ok(push) if push.topic == topic);
                assert_eq!(
                    is_push_for(bytes, topic),
                    decoded,
                    "{bytes:?} for {topic:?}"
                );
            };
            for at in 0..frame.len() {
                for delta in [1u8, 0x80, 0xff] {
                    let mut bent = frame.to_vec();
                    bent[at] = bent[at].wrapping_add(delta);
                    agrees(&bent, name);
                }
                agrees(&frame[..at], name);
            }
            let mut longer = frame.to_vec();
            longer.push(0);
            agrees(&longer, name);
            let last = name.len() - 1;
            let other_last = format!("{}x", &name[..last]);
            let other_first = format!("x{}", &name[1..]);
            for topic in [
                &name[..last],
                &format!("{name}a"),
                &other_last,
                &other_first,
                "r",
                "",
            ] {
                agrees(&frame, topic);
            }
        }
    }

    #[test]
    fn every_prefix_of_a_frame_is_truncated() {
        let frame = encode_push("topic", b"payload").unwrap();
        for cut in 0..frame.len() {
            assert!(
                matches!(decode(&frame[..cut]), Err(DecodeError::Truncated { .. })),
                "prefix of {cut} bytes"
            );
        }
    }
}
