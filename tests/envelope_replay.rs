//! Replays the `envelope_decode` fuzz corpus (`fuzz/corpus/envelope_decode/`) through the
//! fuzz target's checks, then a few thousand deterministic pseudo-random cases, on
//! stable Rust in plain `cargo test`. The checks live in
//! `fuzz/targets_common/envelope_decode.rs`, shared with the cargo-fuzz binary.

use std::path::PathBuf;

mod common;

#[path = "../fuzz/targets_common/envelope_decode.rs"]
mod envelope_decode;
#[path = "../fuzz/targets_common/thread_alloc_counter.rs"]
mod thread_alloc_counter;

use common::Rng;
use fanout::transport::{decode_envelope, encode_push};
use thread_alloc_counter::allocated;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/envelope_decode")
}

/// Runs the target on `data`, naming the input if it fails.
fn replay(name: &str, data: &[u8]) {
    let data_copy = data.to_vec();
    if let Err(panic) =
        std::panic::catch_unwind(move || envelope_decode::run(&data_copy, allocated))
    {
        eprintln!("failing input {name}: {data:02x?}");
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn envelope_decode_corpus() {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("the envelope_decode corpus")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the envelope_decode corpus is empty");
    for path in files {
        replay(&path.display().to_string(), &std::fs::read(&path).unwrap());
    }
}

#[test]
fn envelope_decode_seeds() {
    for (name, data) in envelope_decode::seeds() {
        replay(name, &data);
    }
}

#[test]
fn envelope_decode_random() {
    let mut rng = Rng(0x5EED_E4E1_0001);
    let mut valid = 0;
    for case in 0..20_000 {
        let data = match case % 4 {
            // Arbitrary bytes, short and long.
            0 => {
                let len = rng.below(80);
                rng.bytes(len)
            }
            // A valid envelope, then maybe one mutation.
            _ => {
                let topic_len = 1 + rng.below(16);
                let topic: String = (0..topic_len)
                    .map(|_| char::from(b'a' + rng.below(26) as u8))
                    .collect();
                let payload_len = rng.below(40);
                let payload = rng.bytes(payload_len);
                let mode = rng.below(2) as u8;
                let mut d = vec![1, mode];
                d.extend_from_slice(&rng.bytes(24));
                let client = if mode == 0 {
                    0
                } else {
                    1 + rng.below(1000) as u64
                };
                d.extend_from_slice(&client.to_be_bytes());
                d.extend_from_slice(&encode_push(&topic, &payload).unwrap());
                match rng.below(6) {
                    0 | 1 => {}
                    2 => {
                        let cut = rng.below(d.len());
                        d.truncate(cut);
                    }
                    3 => d.push(rng.next() as u8),
                    4 => {
                        let i = rng.below(d.len());
                        d[i] ^= 1 << rng.below(8);
                    }
                    _ => {
                        let i = [0, 1, 26, 33, 34, 35][rng.below(6)];
                        d[i] = rng.next() as u8;
                    }
                }
                d
            }
        };
        if decode_envelope(&data).is_ok() {
            valid += 1;
        }
        replay(&format!("random case {case}"), &data);
    }
    assert!(
        valid > 5_000,
        "only {valid} random cases were valid envelopes"
    );
}

/// Presence envelopes (mode 2): valid messages of every kind, then maybe one mutation,
/// through every check of the target.
#[test]
fn presence_envelope_random() {
    use fanout::transport::presence_sync::{Entry, Message, Op};
    use fanout::transport::{decode_presence_envelope, encode_presence_envelope, NodeId};
    use fanout::Bytes;
    use std::sync::Arc;

    let mut rng = Rng(0x5EED_E4E1_0002);
    let mut valid = 0;
    for case in 0..5_000 {
        let origin = NodeId(u128::from(rng.next()) << 64 | u128::from(rng.next()));
        let member = |rng: &mut Rng| {
            let topic: String = (0..1 + rng.below(8))
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect();
            let meta_len = rng.below(12);
            (
                Arc::<str>::from(topic),
                rng.next(),
                Bytes::from(rng.bytes(meta_len)),
            )
        };
        let n = rng.below(5);
        let message = match case % 6 {
            0 => Message::Delta {
                origin,
                base: rng.next(),
                ops: (0..n)
                    .map(|_| {
                        let (topic, client, meta) = member(&mut rng);
                        if rng.below(2) == 0 {
                            Op::Join {
                                topic,
                                client,
                                meta,
                            }
                        } else {
                            Op::Leave { topic, client }
                        }
                    })
                    .collect(),
            },
            1 => Message::State {
                origin,
                version: rng.next(),
                entries: (0..n)
                    .map(|_| {
                        let (topic, client, meta) = member(&mut rng);
                        Entry {
                            topic,
                            client,
                            meta,
                        }
                    })
                    .collect(),
            },
            2 => Message::Heartbeat {
                origin,
                version: rng.next(),
            },
            3 => Message::Request {
                origin,
                of: (0..n).map(|_| NodeId(u128::from(rng.next()))).collect(),
            },
            4 => {
                let offset = rng.below(1000) as u32;
                Message::StatePart {
                    origin,
                    version: rng.next(),
                    total: offset + n as u32 + 1 + rng.below(3) as u32,
                    offset,
                    entries: (0..n + 1)
                        .map(|_| {
                            let (topic, client, meta) = member(&mut rng);
                            Entry {
                                topic,
                                client,
                                meta,
                            }
                        })
                        .collect(),
                }
            }
            _ => Message::Goodbye { origin },
        };
        let mut data = Vec::new();
        encode_presence_envelope(&message, &mut data);
        match rng.below(6) {
            0 | 1 => {}
            2 => {
                let cut = rng.below(data.len());
                data.truncate(cut);
            }
            3 => data.push(rng.next() as u8),
            4 => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            _ => {
                let i = 34 + rng.below(data.len() - 34);
                data[i] = rng.next() as u8;
            }
        }
        if decode_presence_envelope(&data).is_ok() {
            valid += 1;
        }
        replay(&format!("presence case {case}"), &data);
    }
    assert!(valid > 1_200, "only {valid} presence cases were valid");
}

/// Batch envelopes (mode 3): valid batches of 1–5 frames, then maybe one mutation
/// (a cut, an extra byte, a flipped bit, the count or a length overwritten), through
/// every check of the target.
#[test]
fn batch_envelope_random() {
    use fanout::transport::decode_batch_envelope;

    let mut rng = Rng(0x5EED_E4E1_0003);
    let mut valid = 0;
    for case in 0..5_000 {
        let n = 1 + rng.below(5);
        let mut data = vec![1, 3];
        data.extend_from_slice(&rng.bytes(16));
        data.extend_from_slice(&[0; 16]);
        data.extend_from_slice(&(n as u32).to_be_bytes());
        let mut lengths = Vec::new();
        for _ in 0..n {
            let topic: String = (0..1 + rng.below(8))
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect();
            let payload_len = rng.below(24);
            let frame = encode_push(&topic, &rng.bytes(payload_len)).unwrap();
            data.extend_from_slice(&rng.next().to_be_bytes());
            let client = if rng.below(2) == 0 { 0 } else { rng.next() };
            data.extend_from_slice(&client.to_be_bytes());
            lengths.push(data.len());
            data.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            data.extend_from_slice(&frame);
        }
        match rng.below(7) {
            0 | 1 => {}
            2 => {
                let cut = rng.below(data.len());
                data.truncate(cut);
            }
            3 => data.push(rng.next() as u8),
            4 => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            5 => data[37] = rng.next() as u8,
            _ => {
                let at = lengths[rng.below(lengths.len())];
                data[at + 3] = rng.next() as u8;
            }
        }
        if decode_batch_envelope(&data).is_ok() {
            valid += 1;
        }
        replay(&format!("batch case {case}"), &data);
    }
    assert!(valid > 1_200, "only {valid} batch cases were valid");
}

/// `FANOUT_WRITE_SEEDS=1 cargo test --test envelope_replay write_seeds` rewrites the
/// hand-made seeds into `fuzz/corpus/envelope_decode/` (names start with `seed-`).
#[test]
fn write_seeds() {
    if std::env::var_os("FANOUT_WRITE_SEEDS").is_none() {
        return;
    }
    for (name, data) in envelope_decode::seeds() {
        std::fs::write(corpus_dir().join(format!("seed-{name}")), data).unwrap();
    }
}
