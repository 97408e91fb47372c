//! Fuzz target logic for `fanout::transport::decode_envelope`, shared by the cargo-fuzz
//! binary (`fuzz/fuzz_targets/envelope_decode.rs`) and the stable replay test
//! (`tests/envelope_replay.rs`). Depends only on `fanout`.
//!
//! For any input bytes:
//! - `decode_envelope` never panics, and its answer (envelope or exact `EnvelopeError`)
//!   equals that of an independent reference decoder written from the byte layout in
//!   the crate docs (the Push frame after the header is judged by `decode`, whose own
//!   reference lives in `frame_decode.rs`);
//! - a decoded envelope borrows its frame from the input at offset 34 and re-encodes
//!   byte for byte to the input;
//! - `decode_envelope` allocates nothing (checked through the caller's counter).
//!
//! The same bytes also drive a structured round trip: header fields and a (topic,
//! payload) pair cut from the input are encoded, decoded back, and every strict prefix
//! is refused.
//!
//! Presence envelopes (mode 2): `decode_presence_envelope` never panics, allocates no
//! more than a small multiple of the input's length, re-encodes a message it accepts
//! byte for byte, and a presence message built from the input round-trips with every
//! strict prefix refused.
//!
//! Batch envelopes (mode 3): `decode_batch_envelope` never panics, allocates nothing,
//! agrees with an independent reference decoder (frames, or the exact error), and a
//! batch it accepts re-encodes byte for byte; a batch built from the input round-trips
//! with every strict prefix and one extra byte refused.

use std::sync::Arc;

use fanout::transport::presence_sync::{Entry, Message, Op};
use fanout::transport::{
    decode, decode_batch_envelope, decode_envelope, decode_presence_envelope,
    encode_batch_envelope, encode_presence_envelope, encode_push, Audience, EnvelopeError,
    EnvelopeHeader, NodeId, ENVELOPE_HEADER_LEN, ENVELOPE_VERSION, MODE_BATCH, MODE_PRESENCE,
};
use fanout::Bytes;

/// Big-endian integer from bytes (at most 16).
fn be(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

/// The byte layout, decoded independently of the crate: `Ok(header)` or the error.
fn reference(data: &[u8]) -> Result<EnvelopeHeader, EnvelopeError> {
    if data.len() < 34 {
        return Err(EnvelopeError::Truncated {
            needed: 34,
            got: data.len(),
        });
    }
    if data[0] != 1 {
        return Err(EnvelopeError::UnsupportedVersion(data[0]));
    }
    let client = be(&data[26..34]) as u64;
    let audience = match data[1] {
        0 if client == 0 => Audience::Everyone,
        1 if client != 0 => {
            // `ClientId` has no public constructor: take it from the crate's answer,
            // checked below to carry this number.
            match decode_envelope(data) {
                Ok(e) => e.header.audience,
                Err(EnvelopeError::Frame(f)) => return Err(EnvelopeError::Frame(f)),
                Err(other) => panic!("mode 1, client {client}: crate said {other:?}"),
            }
        }
        0 | 1 => return Err(EnvelopeError::BadClient(client)),
        m => return Err(EnvelopeError::UnknownMode(m)),
    };
    if let Err(e) = decode(&data[34..]) {
        return Err(EnvelopeError::Frame(e));
    }
    Ok(EnvelopeHeader {
        audience,
        origin: NodeId(be(&data[2..18])),
        sequence: be(&data[18..26]) as u64,
    })
}

/// Checks `decode_envelope` on `data`. `allocated` reads a per-thread count of bytes
/// allocated so far, or returns 0 to skip that check.
pub fn check_decode(data: &[u8], allocated: fn() -> u64) {
    let before = allocated();
    let decoded = decode_envelope(data);
    let after = allocated();
    assert_eq!(
        after - before,
        0,
        "decode_envelope allocated {} bytes",
        after - before
    );

    match (decoded, reference(data)) {
        (Ok(envelope), Ok(header)) => {
            assert_eq!(envelope.header, header);
            if let Audience::AllBut(id) = header.audience {
                assert_eq!(id.as_u64(), be(&data[26..34]) as u64);
            }
            assert_eq!(
                envelope.frame.as_ptr(),
                data[ENVELOPE_HEADER_LEN..].as_ptr()
            );
            assert_eq!(envelope.frame.len(), data.len() - ENVELOPE_HEADER_LEN);
            assert_eq!(decode(envelope.frame), Ok(envelope.push));
            let mut again = Vec::new();
            envelope.header.encode_into(envelope.frame, &mut again);
            assert_eq!(again, data, "an envelope re-encodes to its input");
        }
        (Err(e), Err(want)) => {
            assert_eq!(e, want, "decode_envelope error differs from the reference");
            let _ = e.to_string();
        }
        (got, want) => panic!("decode_envelope returned {got:?}, the reference expects {want:?}"),
    }
}

/// Builds an envelope from fields cut out of `data`, decodes it back, and refuses every
/// strict prefix and one extra byte.
pub fn check_round_trip(data: &[u8]) {
    if data.len() < 26 {
        return;
    }
    let origin = NodeId(be(&data[0..16]));
    let sequence = be(&data[16..24]) as u64;
    let everyone = data[24] & 1 == 0;
    let split = usize::from(data[25]).min(data.len() - 26);
    let topic = String::from_utf8_lossy(&data[26..26 + split]);
    let payload = &data[26 + split..];
    let Ok(frame) = encode_push(&topic, payload) else {
        assert!(topic.is_empty(), "encode_push refused a valid topic");
        return;
    };
    // A mode-1 envelope needs a client id, which only the crate can make: take one from
    // a decoded envelope whose client field is the sequence (or 1).
    let audience = if everyone {
        Audience::Everyone
    } else {
        let mut probe = vec![ENVELOPE_VERSION, 1];
        probe.extend_from_slice(&[0; 24]);
        probe.extend_from_slice(&sequence.max(1).to_be_bytes());
        probe.extend_from_slice(&frame);
        decode_envelope(&probe)
            .expect("a mode-1 probe decodes")
            .header
            .audience
    };
    let header = EnvelopeHeader {
        audience,
        origin,
        sequence,
    };
    let mut message = Vec::new();
    header.encode_into(&frame, &mut message);
    assert_eq!(message.len(), ENVELOPE_HEADER_LEN + frame.len());
    let envelope = decode_envelope(&message).expect("an encoded envelope decodes");
    assert_eq!(envelope.header, header);
    assert_eq!(envelope.push.topic, &*topic);
    assert_eq!(envelope.push.payload, payload);
    for len in 0..message.len() {
        assert!(
            decode_envelope(&message[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
    message.push(0);
    assert!(matches!(
        decode_envelope(&message),
        Err(EnvelopeError::Frame(_))
    ));
}

/// Checks `decode_presence_envelope` on `data`, and on `data` behind a valid presence
/// header (so the body decoder sees every input, not only those starting `01 02`).
pub fn check_presence_decode(data: &[u8], allocated: fn() -> u64) {
    let mut framed = vec![ENVELOPE_VERSION, MODE_PRESENCE];
    framed.extend_from_slice(&data.get(..16).map_or([0; 16], |d| d.try_into().unwrap()));
    framed.extend_from_slice(&[0; 16]);
    framed.extend_from_slice(data);
    for input in [data, &framed[..]] {
        let before = allocated();
        let decoded = decode_presence_envelope(input);
        let spent = allocated() - before;
        assert!(
            spent <= 16 * input.len() as u64 + 64,
            "decode_presence_envelope allocated {spent} bytes for {} input bytes",
            input.len()
        );
        match decoded {
            Ok(message) => {
                let mut again = Vec::new();
                encode_presence_envelope(&message, &mut again);
                assert_eq!(again, input, "a presence envelope re-encodes to its input");
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

/// Builds a presence message from `data`, encodes it, decodes it back, and refuses
/// every strict prefix and one extra byte.
pub fn check_presence_round_trip(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let origin = NodeId(be(rest.get(..16).unwrap_or(rest)));
    // Cut members out of the input: a topic of 1 + (b % 8) bytes, a client, a meta.
    let mut members = Vec::new();
    // At most four: enough for every layout, and the prefix checks below stay cheap.
    for chunk in rest.chunks(11).take(4) {
        let (head, tail) = chunk.split_at(chunk.len().min(1 + usize::from(chunk[0] % 8)));
        let topic: Arc<str> = Arc::from(format!("t{}", String::from_utf8_lossy(head)).as_str());
        members.push((topic, be(tail) as u64, Bytes::copy_from_slice(tail)));
    }
    let version = be(rest.get(16..24).unwrap_or(&[])) as u64;
    let message = match kind % 6 {
        0 => Message::Delta {
            origin,
            base: version,
            ops: members
                .into_iter()
                .enumerate()
                .map(|(i, (topic, client, meta))| {
                    if i % 3 == 2 {
                        Op::Leave { topic, client }
                    } else {
                        Op::Join {
                            topic,
                            client,
                            meta,
                        }
                    }
                })
                .collect(),
        },
        1 => Message::State {
            origin,
            version,
            entries: members
                .into_iter()
                .map(|(topic, client, meta)| Entry {
                    topic,
                    client,
                    meta,
                })
                .collect(),
        },
        2 => Message::Heartbeat { origin, version },
        3 => Message::Request {
            origin,
            of: rest.chunks(16).take(4).map(|c| NodeId(be(c))).collect(),
        },
        4 if !members.is_empty() => {
            // A part somewhere inside a state of at least its own length.
            let n = members.len() as u32;
            let offset = ((version >> 40) as u32).min(u32::MAX - n - 7);
            let total = offset + n + (version & 7) as u32;
            Message::StatePart {
                origin,
                version,
                total,
                offset,
                entries: members
                    .into_iter()
                    .map(|(topic, client, meta)| Entry {
                        topic,
                        client,
                        meta,
                    })
                    .collect(),
            }
        }
        _ => Message::Goodbye { origin },
    };
    let mut envelope = Vec::new();
    encode_presence_envelope(&message, &mut envelope);
    assert_eq!(decode_presence_envelope(&envelope), Ok(message));
    assert_eq!(
        decode_envelope(&envelope).map(|_| ()),
        Err(EnvelopeError::UnknownMode(MODE_PRESENCE)),
        "a broadcast decoder refuses a presence envelope"
    );
    for len in 0..envelope.len() {
        assert!(
            decode_presence_envelope(&envelope[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
    envelope.push(0);
    assert!(matches!(
        decode_presence_envelope(&envelope),
        Err(EnvelopeError::Presence(_))
    ));
}

/// One frame of a batch as the reference reads it: sequence, client, the frame's range.
type RefFrame = (u64, u64, std::ops::Range<usize>);

/// The batch layout (mode 3), decoded independently of the crate: the frames or the
/// error, in the documented order of checks.
fn batch_reference(data: &[u8]) -> Result<(u128, Vec<RefFrame>), EnvelopeError> {
    if data.len() < 38 {
        return Err(EnvelopeError::Truncated {
            needed: 38,
            got: data.len(),
        });
    }
    if data[0] != 1 {
        return Err(EnvelopeError::UnsupportedVersion(data[0]));
    }
    if data[1] != 3 {
        return Err(EnvelopeError::UnknownMode(data[1]));
    }
    if data[18..34].iter().any(|&b| b != 0) {
        return Err(EnvelopeError::BadBatchHeader);
    }
    let count = be(&data[34..38]) as u64;
    if count == 0 {
        return Err(EnvelopeError::EmptyBatch);
    }
    let mut frames = Vec::new();
    let mut at = 38;
    for _ in 0..count {
        if data.len() - at < 20 {
            return Err(EnvelopeError::BatchTruncated {
                needed: at + 20,
                got: data.len(),
            });
        }
        let sequence = be(&data[at..at + 8]) as u64;
        let client = be(&data[at + 8..at + 16]) as u64;
        let len = be(&data[at + 16..at + 20]) as usize;
        if data.len() - at - 20 < len {
            return Err(EnvelopeError::BatchTruncated {
                needed: at + 20 + len,
                got: data.len(),
            });
        }
        let frame = at + 20..at + 20 + len;
        if let Err(e) = decode(&data[frame.clone()]) {
            return Err(EnvelopeError::Frame(e));
        }
        frames.push((sequence, client, frame));
        at += 20 + len;
    }
    if at != data.len() {
        return Err(EnvelopeError::BatchTrailingBytes {
            extra: data.len() - at,
        });
    }
    Ok((be(&data[2..18]), frames))
}

/// Checks `decode_batch_envelope` on `data`, and on `data` behind a valid batch header
/// whose count is taken from the input (so the frame walker sees every input).
pub fn check_batch_decode(data: &[u8], allocated: fn() -> u64) {
    let mut framed = vec![ENVELOPE_VERSION, MODE_BATCH];
    framed.extend_from_slice(&data.get(..16).map_or([0; 16], |d| d.try_into().unwrap()));
    framed.extend_from_slice(&[0; 16]);
    let count = data.first().map_or(1, |&b| u32::from(b % 4));
    framed.extend_from_slice(&count.to_be_bytes());
    framed.extend_from_slice(data.get(1..).unwrap_or(&[]));
    for input in [data, &framed[..]] {
        let before = allocated();
        let decoded = decode_batch_envelope(input);
        let after = allocated();
        assert_eq!(after - before, 0, "decode_batch_envelope allocated");
        match (decoded, batch_reference(input)) {
            (Ok(batch), Ok((origin, frames))) => {
                assert_eq!(batch.origin, NodeId(origin));
                assert_eq!(batch.count as usize, frames.len());
                let got: Vec<_> = batch.iter().collect();
                assert_eq!(got.len(), frames.len());
                let mut parts = Vec::new();
                for (envelope, (sequence, client, range)) in got.iter().zip(&frames) {
                    assert_eq!(envelope.header.origin, NodeId(origin));
                    assert_eq!(envelope.header.sequence, *sequence);
                    let raw_client = match envelope.header.audience {
                        Audience::Everyone => 0,
                        Audience::AllBut(id) => id.as_u64(),
                    };
                    assert_eq!(raw_client, *client);
                    assert_eq!(envelope.frame.as_ptr(), input[range.clone()].as_ptr());
                    assert_eq!(envelope.frame.len(), range.len());
                    assert_eq!(decode(envelope.frame), Ok(envelope.push));
                    parts.push((envelope.header.audience, *sequence, envelope.frame));
                }
                let mut again = Vec::new();
                encode_batch_envelope(batch.origin, &parts, &mut again);
                assert_eq!(again, input, "a batch re-encodes to its input");
            }
            (Err(e), Err(want)) => {
                assert_eq!(
                    e, want,
                    "decode_batch_envelope error differs from the reference"
                );
                let _ = e.to_string();
            }
            (got, want) => {
                panic!("decode_batch_envelope returned {got:?}, the reference expects {want:?}")
            }
        }
    }
}

/// Builds a batch of up to four frames from fields cut out of `data`, decodes it back,
/// and refuses every strict prefix and one extra byte.
pub fn check_batch_round_trip(data: &[u8]) {
    if data.len() < 17 {
        return;
    }
    let origin = NodeId(be(&data[0..16]));
    let rest = &data[16..];
    // A client id only the crate can make: take one from a decoded mode-1 probe.
    let client = |raw: u64| {
        let frame = encode_push("t", b"").unwrap();
        let mut probe = vec![ENVELOPE_VERSION, 1];
        probe.extend_from_slice(&[0; 24]);
        probe.extend_from_slice(&raw.max(1).to_be_bytes());
        probe.extend_from_slice(&frame);
        decode_envelope(&probe)
            .expect("a mode-1 probe decodes")
            .header
            .audience
    };
    let mut frames = Vec::new();
    for (i, chunk) in rest.chunks(9).take(4).enumerate() {
        let split = usize::from(chunk[0] % 4).min(chunk.len() - 1);
        let topic = format!("t{}", String::from_utf8_lossy(&chunk[1..1 + split]));
        let payload = &chunk[1 + split..];
        let audience = if chunk[0] & 0x80 == 0 {
            Audience::Everyone
        } else {
            client(be(payload) as u64)
        };
        let sequence = (be(chunk) as u64).wrapping_add(i as u64);
        frames.push((
            audience,
            sequence,
            encode_push(&topic, payload).unwrap(),
            topic,
        ));
    }
    let parts: Vec<(Audience, u64, &[u8])> = frames
        .iter()
        .map(|(audience, sequence, frame, _)| (*audience, *sequence, &frame[..]))
        .collect();
    let mut message = Vec::new();
    encode_batch_envelope(origin, &parts, &mut message);
    let batch = decode_batch_envelope(&message).expect("an encoded batch decodes");
    assert_eq!(batch.origin, origin);
    let got: Vec<_> = batch.iter().collect();
    assert_eq!(got.len(), frames.len());
    for (envelope, (audience, sequence, frame, topic)) in got.iter().zip(&frames) {
        assert_eq!(envelope.header.audience, *audience);
        assert_eq!(envelope.header.sequence, *sequence);
        assert_eq!(envelope.frame, &frame[..]);
        assert_eq!(envelope.push.topic, topic.as_str());
    }
    assert_eq!(
        decode_envelope(&message).map(|_| ()),
        Err(EnvelopeError::UnknownMode(MODE_BATCH)),
        "a plain envelope decoder refuses a batch"
    );
    for len in 0..message.len() {
        assert!(
            decode_batch_envelope(&message[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
    message.push(0);
    assert_eq!(
        decode_batch_envelope(&message).map(|_| ()),
        Err(EnvelopeError::BatchTrailingBytes { extra: 1 })
    );
}

/// The whole target: every check.
pub fn run(data: &[u8], allocated: fn() -> u64) {
    check_decode(data, allocated);
    check_round_trip(data);
    check_presence_decode(data, allocated);
    check_presence_round_trip(data);
    check_batch_decode(data, allocated);
    check_batch_round_trip(data);
}

/// Hand-made seeds: (name, bytes). Written by `tests/envelope_replay.rs`.
#[allow(dead_code)]
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let envelope = |mode: u8, client: u64, topic: &str, payload: &[u8]| {
        let mut m = vec![ENVELOPE_VERSION, mode];
        m.extend_from_slice(&0x0123_4567_89ab_cdef_0011_2233_4455_6677u128.to_be_bytes());
        m.extend_from_slice(&42u64.to_be_bytes());
        m.extend_from_slice(&client.to_be_bytes());
        m.extend_from_slice(&encode_push(topic, payload).unwrap());
        m
    };
    let mut trailing = envelope(0, 0, "t", b"p");
    trailing.push(9);
    let mut bad_version = envelope(0, 0, "t", b"p");
    bad_version[0] = 2;
    let mut bad_frame = envelope(0, 0, "t", b"p");
    bad_frame[34] = 7;
    let mut short_frame = envelope(0, 0, "topic", b"payload");
    short_frame.truncate(40);
    let presence = |message: Message| {
        let mut m = Vec::new();
        encode_presence_envelope(&message, &mut m);
        m
    };
    let origin = NodeId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    let delta = presence(Message::Delta {
        origin,
        base: 7,
        ops: vec![
            Op::Join {
                topic: Arc::from("room/1"),
                client: 3,
                meta: Bytes::from_static(b"Alice"),
            },
            Op::Leave {
                topic: Arc::from("room/2"),
                client: 4,
            },
        ],
    });
    let state = presence(Message::State {
        origin,
        version: 9,
        entries: vec![Entry {
            topic: Arc::from("room/1"),
            client: 3,
            meta: Bytes::from_static(b"Alice"),
        }],
    });
    let mut huge_count = presence(Message::State {
        origin,
        version: 9,
        entries: Vec::new(),
    });
    huge_count[43..47].copy_from_slice(&[0xff; 4]);
    let batch = |frames: &[(u64, u64, &str, &[u8])]| {
        let mut m = vec![ENVELOPE_VERSION, MODE_BATCH];
        m.extend_from_slice(&0x0123_4567_89ab_cdef_0011_2233_4455_6677u128.to_be_bytes());
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&(frames.len() as u32).to_be_bytes());
        for &(sequence, client, topic, payload) in frames {
            let frame = encode_push(topic, payload).unwrap();
            m.extend_from_slice(&sequence.to_be_bytes());
            m.extend_from_slice(&client.to_be_bytes());
            m.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            m.extend_from_slice(&frame);
        }
        m
    };
    let two = batch(&[(7, 0, "room/1", b"hello"), (8, 5, "room/1", b"again")]);
    let mut batch_count_high = two.clone();
    batch_count_high[37] = 3;
    let mut batch_count_low = two.clone();
    batch_count_low[37] = 1;
    let mut batch_with_sequence = two.clone();
    batch_with_sequence[25] = 1;
    let mut batch_bad_frame = two.clone();
    batch_bad_frame[38 + 20] = 9;
    let mut batch_long_length = two.clone();
    batch_long_length[38 + 19] = 0xff;
    let state_part = presence(Message::StatePart {
        origin,
        version: 9,
        total: 3,
        offset: 1,
        entries: vec![Entry {
            topic: Arc::from("room/1"),
            client: 3,
            meta: Bytes::from_static(b"Alice"),
        }],
    });
    // The same part claiming to start at entry 3 of 3: past the total.
    let mut part_past_total = state_part.clone();
    part_past_total[34 + 13..34 + 17].copy_from_slice(&3u32.to_be_bytes());
    vec![
        ("batch-two", two),
        (
            "batch-mixed-topics",
            batch(&[(1, 0, "a", b"x"), (1, 0, "b", b"y"), (2, 3, "a", b"")]),
        ),
        ("batch-one", batch(&[(42, 0, "t", b"p")])),
        ("batch-empty", batch(&[])),
        ("batch-count-high", batch_count_high),
        ("batch-count-low", batch_count_low),
        ("batch-with-sequence", batch_with_sequence),
        ("batch-bad-frame", batch_bad_frame),
        ("batch-long-length", batch_long_length),
        ("everyone", envelope(0, 0, "room/1", b"hello")),
        ("all-but", envelope(1, 5, "room/1", b"hello")),
        ("empty-payload", envelope(0, 0, "a", b"")),
        ("unicode-topic", envelope(0, 0, "room/ü", b"hi")),
        ("header-only", envelope(0, 0, "a", b"")[..34].to_vec()),
        ("short-header", vec![1, 0, 0, 0]),
        ("empty-input", Vec::new()),
        ("bad-version", bad_version),
        ("unknown-mode", envelope(2, 0, "t", b"p")),
        ("client-in-mode-0", envelope(0, 3, "t", b"p")),
        ("no-client-in-mode-1", envelope(1, 0, "t", b"p")),
        ("bad-frame-version", bad_frame),
        ("frame-truncated", short_frame),
        ("trailing", trailing),
        ("presence-delta", delta),
        ("presence-state", state),
        ("presence-huge-count", huge_count),
        ("presence-state-part", state_part),
        ("presence-part-past-total", part_past_total),
        (
            "presence-heartbeat",
            presence(Message::Heartbeat { origin, version: 1 }),
        ),
        (
            "presence-request-all",
            presence(Message::Request {
                origin,
                of: Vec::new(),
            }),
        ),
        ("presence-goodbye", presence(Message::Goodbye { origin })),
        (
            "foreign-text",
            b"hello from another publisher, not an envelope".to_vec(),
        ),
    ]
}
