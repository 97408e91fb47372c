//! Fuzz target logic for `fanout::transport::decode`, shared by the cargo-fuzz binary
//! (`fuzz/fuzz_targets/frame_decode.rs`) and the stable replay test
//! (`tests/fuzz_replay.rs`). Depends only on `fanout`.
//!
//! For any input bytes:
//! - `decode` never panics, and its answer (frame or exact `DecodeError`) equals that of
//!   an independent reference decoder written from the byte layout in the crate docs;
//! - a decoded frame borrows from the input (topic at offset 4, payload at 8 + T) and
//!   re-encodes byte for byte to the input (`PushFrame::encode`, `encode_push`);
//! - `decode` allocates nothing (checked through the caller's allocation counter).
//!
//! The same checks run for the Presence frame (`decode_presence`, kind 2) against its
//! own reference decoder, and `decode_any` must agree with whichever decoder the kind
//! byte selects.
//!
//! The same bytes also drive a structured round trip: a (topic, payload) pair cut from
//! the input is encoded, decoded back, every strict prefix is `Truncated`, and one extra
//! byte is `TrailingBytes`.

use fanout::transport::{
    decode, decode_any, decode_presence, encode_presence, encode_push, DecodeError, Frame,
    PresenceEvent, FRAME_KIND_PRESENCE, FRAME_KIND_PUSH, FRAME_VERSION,
};

/// What the reference decoder expects for a buffer.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// A frame: topic range and payload range in the input.
    Frame {
        topic: std::ops::Range<usize>,
        payload: std::ops::Range<usize>,
    },
    Error(DecodeError),
}

/// The byte layout, decoded independently of the crate (and in the order the crate
/// documents its checks: header, lengths, trailing bytes, then UTF-8).
fn reference(data: &[u8]) -> Expected {
    let truncated = |needed: usize| {
        Expected::Error(DecodeError::Truncated {
            needed,
            got: data.len(),
        })
    };
    if data.len() < 4 {
        return truncated(4);
    }
    if data[0] != FRAME_VERSION {
        return Expected::Error(DecodeError::UnsupportedVersion(data[0]));
    }
    if data[1] != FRAME_KIND_PUSH {
        return Expected::Error(DecodeError::UnknownKind(data[1]));
    }
    let t = (usize::from(data[2]) << 8) | usize::from(data[3]);
    if t == 0 {
        return Expected::Error(DecodeError::EmptyTopic);
    }
    if data.len() < 8 + t {
        return truncated(8 + t);
    }
    let p = data[4 + t..8 + t]
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let end = 8 + t as u64 + p;
    if (data.len() as u64) < end {
        return truncated(end as usize);
    }
    let end = end as usize;
    if data.len() > end {
        return Expected::Error(DecodeError::TrailingBytes {
            extra: data.len() - end,
        });
    }
    if std::str::from_utf8(&data[4..4 + t]).is_err() {
        return Expected::Error(DecodeError::TopicNotUtf8);
    }
    Expected::Frame {
        topic: 4..4 + t,
        payload: 8 + t..end,
    }
}

/// Checks `decode` on `data`. `allocated` reads a per-thread count of bytes allocated so
/// far (a counting global allocator in the caller), or returns 0 to skip that check.
pub fn check_decode(data: &[u8], allocated: fn() -> u64) {
    let before = allocated();
    let decoded = decode(data);
    let after = allocated();
    assert_eq!(
        after - before,
        0,
        "decode allocated {} bytes",
        after - before
    );

    match (decoded, reference(data)) {
        (Ok(push), Expected::Frame { topic, payload }) => {
            // Borrowed from the input, at the documented offsets.
            assert_eq!(push.topic.as_ptr(), data[topic.clone()].as_ptr());
            assert_eq!(push.topic.len(), topic.len());
            assert_eq!(push.payload.as_ptr(), data[payload.clone()].as_ptr());
            assert_eq!(push.payload.len(), payload.len());
            // Canonical: encoding the decoded frame gives the input back exactly.
            let again = push.encode().expect("a decoded frame re-encodes");
            assert_eq!(&again[..], data);
            let again = encode_push(push.topic, push.payload).expect("encode_push");
            assert_eq!(&again[..], data);
            assert_eq!(decode(&again), Ok(push));
        }
        (Err(e), Expected::Error(want)) => {
            assert_eq!(e, want, "decode error differs from the reference");
            // Display never panics.
            let _ = e.to_string();
        }
        (got, want) => panic!("decode returned {got:?}, the reference expects {want:?}"),
    }
    check_decode_presence(data, allocated);
}

/// The Presence layout, decoded independently: `Ok((topic range, event, node, client,
/// meta range))` or the error, in the documented order of checks.
#[allow(clippy::type_complexity)]
fn reference_presence(
    data: &[u8],
) -> Result<
    (
        std::ops::Range<usize>,
        u8,
        u128,
        u64,
        std::ops::Range<usize>,
    ),
    DecodeError,
> {
    let truncated = |needed: usize| DecodeError::Truncated {
        needed,
        got: data.len(),
    };
    if data.len() < 4 {
        return Err(truncated(4));
    }
    if data[0] != FRAME_VERSION {
        return Err(DecodeError::UnsupportedVersion(data[0]));
    }
    if data[1] != FRAME_KIND_PRESENCE {
        return Err(DecodeError::UnknownKind(data[1]));
    }
    let t = (usize::from(data[2]) << 8) | usize::from(data[3]);
    if t == 0 {
        return Err(DecodeError::EmptyTopic);
    }
    if data.len() < 33 + t {
        return Err(truncated(33 + t));
    }
    let event = data[4 + t];
    if event != 1 && event != 2 {
        return Err(DecodeError::UnknownEvent(event));
    }
    let be = |bytes: &[u8]| {
        bytes
            .iter()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
    };
    let node = be(&data[5 + t..21 + t]);
    let client = be(&data[21 + t..29 + t]) as u64;
    let m = be(&data[29 + t..33 + t]) as u64;
    let end = 33 + t as u64 + m;
    if (data.len() as u64) < end {
        return Err(truncated(end as usize));
    }
    let end = end as usize;
    if data.len() > end {
        return Err(DecodeError::TrailingBytes {
            extra: data.len() - end,
        });
    }
    if std::str::from_utf8(&data[4..4 + t]).is_err() {
        return Err(DecodeError::TopicNotUtf8);
    }
    Ok((4..4 + t, event, node, client, 33 + t..end))
}

/// Checks `decode_presence` and `decode_any` on `data`, as `check_decode` does `decode`.
fn check_decode_presence(data: &[u8], allocated: fn() -> u64) {
    let before = allocated();
    let decoded = decode_presence(data);
    let any = decode_any(data);
    assert_eq!(
        allocated() - before,
        0,
        "decode_presence or decode_any allocated"
    );
    match (decoded, reference_presence(data)) {
        (Ok(p), Ok((topic, event, node, client, meta))) => {
            assert_eq!(p.topic.as_ptr(), data[topic.clone()].as_ptr());
            assert_eq!(p.topic.len(), topic.len());
            assert_eq!(p.meta.as_ptr(), data[meta.clone()].as_ptr());
            assert_eq!(p.meta.len(), meta.len());
            let want_event = if event == 1 {
                PresenceEvent::Join
            } else {
                PresenceEvent::Leave
            };
            assert_eq!((p.event, p.node.0, p.client), (want_event, node, client));
            let again = p.encode().expect("a decoded presence frame re-encodes");
            assert_eq!(&again[..], data);
            let again = encode_presence(p.topic, p.event, p.node, p.client, p.meta).unwrap();
            assert_eq!(&again[..], data);
        }
        (Err(e), Err(want)) => {
            assert_eq!(e, want, "decode_presence error differs from the reference");
            let _ = e.to_string();
        }
        (got, want) => panic!("decode_presence returned {got:?}, the reference expects {want:?}"),
    }
    // `decode_any` is whichever decoder the kind byte picks.
    let is_presence = data.len() >= 2 && data[0] == FRAME_VERSION && data[1] == FRAME_KIND_PRESENCE;
    if is_presence {
        assert_eq!(any, decode_presence(data).map(Frame::Presence));
    } else {
        assert_eq!(any, decode(data).map(Frame::Push));
    }
}

/// Encodes a (topic, payload) pair cut from `data` and checks it decodes back; every
/// strict prefix is `Truncated` and one extra byte is `TrailingBytes { extra: 1 }`.
pub fn check_round_trip(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(cut).min(rest.len());
    let topic = String::from_utf8_lossy(&rest[..split]);
    let payload = &rest[split..];
    let frame = match encode_push(&topic, payload) {
        Ok(frame) => frame,
        Err(_) => {
            assert!(topic.is_empty(), "encode_push refused a valid topic");
            return;
        }
    };
    assert_eq!(frame.len(), 8 + topic.len() + payload.len());
    let push = decode(&frame).expect("an encoded frame decodes");
    assert_eq!(push.topic, &*topic);
    assert_eq!(push.payload, payload);
    for len in [0, 1, 3, 4, 5, frame.len() / 2, frame.len() - 1] {
        if len < frame.len() {
            assert!(
                matches!(decode(&frame[..len]), Err(DecodeError::Truncated { got, needed }) if got == len && needed > len),
                "prefix of {len} bytes"
            );
        }
    }
    let mut longer = frame.to_vec();
    longer.push(cut);
    assert_eq!(
        decode(&longer),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
}

/// The whole target: both checks.
pub fn run(data: &[u8], allocated: fn() -> u64) {
    check_decode(data, allocated);
    check_round_trip(data);
}

/// Hand-made seeds: (name, bytes). Written by `tests/fuzz_replay.rs`.
#[allow(dead_code)]
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let frame = |topic: &str, payload: &[u8]| encode_push(topic, payload).unwrap().to_vec();
    let mut trailing = frame("t", b"p");
    trailing.push(0);
    let mut not_utf8 = frame("ab", b"x");
    not_utf8[4] = 0xff;
    vec![
        ("valid", frame("prices/EURUSD", b"1.0842")),
        ("empty-payload", frame("a", b"")),
        ("unicode-topic", frame("room/ü", b"hi")),
        ("long-topic", frame(&"t".repeat(300), b"xyz")),
        ("empty-input", Vec::new()),
        ("short-header", vec![1, 1, 0]),
        ("bad-version", vec![2, 1, 0, 1, b'a', 0, 0, 0, 0]),
        ("bad-kind", vec![1, 2, 0, 1, b'a', 0, 0, 0, 0]),
        ("empty-topic", vec![1, 1, 0, 0, 0, 0, 0, 0]),
        ("topic-truncated", vec![1, 1, 0, 5, b'a']),
        (
            "huge-payload-len",
            vec![1, 1, 0, 1, b'a', 0xff, 0xff, 0xff, 0xff, 1],
        ),
        ("max-topic-len", vec![1, 1, 0xff, 0xff, b'a', b'b']),
        ("trailing", trailing),
        ("not-utf8", not_utf8),
    ]
}
