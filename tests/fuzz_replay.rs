//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) through the fuzz targets' checks,
//! then runs a few thousand deterministic pseudo-random cases, on stable Rust in plain
//! `cargo test`. The checks themselves live in `fuzz/targets_common/`, shared with the
//! cargo-fuzz binaries (`fuzz/run.sh` runs those).

use std::path::PathBuf;

mod common;

#[path = "../fuzz/targets_common/frame_decode.rs"]
mod frame_decode;
#[path = "../fuzz/targets_common/ops_vs_model.rs"]
mod ops_vs_model;
#[path = "../fuzz/targets_common/thread_alloc_counter.rs"]
mod thread_alloc_counter;

use common::Rng;
use thread_alloc_counter::allocated;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    files.sort();
    files
}

/// Runs `check` on `data`, naming the input if it fails.
fn replay(name: &str, data: &[u8], check: impl FnOnce(&[u8]) + std::panic::UnwindSafe) {
    let data_copy = data.to_vec();
    if let Err(panic) = std::panic::catch_unwind(move || check(&data_copy)) {
        eprintln!("failing input {name}: {data:02x?}");
        std::panic::resume_unwind(panic);
    }
}

/// Runs the ops target on `data`, printing the input and its ops if it fails.
fn replay_ops(name: &str, data: &[u8]) -> ops_vs_model::Summary {
    std::panic::catch_unwind(|| ops_vs_model::run(data)).unwrap_or_else(|panic| {
        eprintln!("failing input {name}: {data:02x?}");
        for (i, op) in ops_vs_model::parse(data).iter().enumerate() {
            eprintln!("  op {i}: {op:?}");
        }
        std::panic::resume_unwind(panic)
    })
}

#[test]
fn allocation_counter_counts() {
    let before = allocated();
    let v = std::hint::black_box(vec![0u8; 100]);
    assert!(allocated() - before >= 100);
    drop(v);
}

#[test]
fn frame_decode_corpus() {
    let files = corpus("frame_decode");
    assert!(!files.is_empty(), "the frame_decode corpus is empty");
    for (path, data) in &files {
        replay(&path.display().to_string(), data, |d| {
            frame_decode::run(d, allocated)
        });
    }
}

#[test]
fn frame_decode_random() {
    let mut rng = Rng(0x5EED_F4A3_0001);
    let mut valid = 0;
    for case in 0..20_000 {
        let data = match case % 4 {
            // Arbitrary bytes, short and long.
            0 => {
                let len = rng.below(64);
                rng.bytes(len)
            }
            // A valid header over random lengths and contents.
            1 => {
                let len = rng.below(48);
                let mut d = rng.bytes(len);
                if d.len() >= 2 {
                    d[0] = 1;
                    d[1] = 1;
                }
                d
            }
            // A valid frame, then maybe one mutation.
            _ => {
                let topic_len = 1 + rng.below(20);
                let topic: String = (0..topic_len)
                    .map(|_| char::from(b'a' + rng.below(26) as u8))
                    .collect();
                let payload_len = rng.below(40);
                let payload = rng.bytes(payload_len);
                let mut d = fanout::transport::encode_push(&topic, &payload)
                    .unwrap()
                    .to_vec();
                match rng.below(6) {
                    0 => {}
                    1 => {
                        let cut = rng.below(d.len());
                        d.truncate(cut);
                    }
                    2 => d.push(rng.next() as u8),
                    3 => {
                        let i = rng.below(d.len());
                        d[i] ^= 1 << rng.below(8);
                    }
                    4 => {
                        let i = 4 + rng.below(topic_len);
                        d[i] = 0x80 | rng.next() as u8; // likely not UTF-8
                    }
                    _ => {
                        let i = rng.below(8.min(d.len()));
                        d[i] = rng.next() as u8;
                    }
                }
                d
            }
        };
        if fanout::transport::decode(&data).is_ok() {
            valid += 1;
        }
        replay(&format!("random case {case}"), &data, |d| {
            frame_decode::run(d, allocated)
        });
    }
    assert!(valid > 2_000, "only {valid} random cases were valid frames");
}

#[test]
fn ops_vs_model_corpus() {
    let files = corpus("ops_vs_model");
    assert!(!files.is_empty(), "the ops_vs_model corpus is empty");
    for (path, data) in &files {
        replay_ops(&path.display().to_string(), data);
    }
}

#[test]
fn ops_vs_model_random() {
    let mut rng = Rng(0x5EED_0905_0002);
    let mut total = ops_vs_model::Summary::default();
    let mut shut_down = 0;
    for case in 0..2_000 {
        // Half raw bytes (what a fuzzer starts from), half encoded op sequences drawn
        // with weights that make clients register, subscribe and overflow often.
        let data = if case % 2 == 0 {
            let len = rng.below(320);
            rng.bytes(len)
        } else {
            ops_vs_model::encode(&random_ops(&mut rng))
        };
        let summary = replay_ops(&format!("random case {case}"), &data);
        total.ops += summary.ops;
        total.broadcasts += summary.broadcasts;
        total.deliveries += summary.deliveries;
        total.dropped += summary.dropped;
        total.conflated += summary.conflated;
        total.disconnects += summary.disconnects;
        total.zombies += summary.zombies;
        shut_down += usize::from(summary.shut_down);
    }
    eprintln!("ops_vs_model_random: {total:?}, {shut_down} runs shut down early");
    // The cases exercise what they are meant to.
    assert!(total.broadcasts > 1_000, "{total:?}");
    assert!(total.deliveries > 1_000, "{total:?}");
    assert!(total.dropped > 50, "{total:?}");
    assert!(total.conflated > 50, "{total:?}");
    assert!(total.disconnects > 10, "{total:?}");
    assert!(total.zombies > 50, "{total:?}");
}

/// A weighted random op sequence: every slot registered first, then mostly subscribes,
/// broadcasts and drains, with small channel capacities.
fn random_ops(rng: &mut Rng) -> Vec<ops_vs_model::Op> {
    use ops_vs_model::{MutationSel, Op, PayloadSel, PolicySel, TopicSel};
    let slot = |rng: &mut Rng| rng.below(ops_vs_model::SLOTS) as u8;
    let topic = |rng: &mut Rng| match rng.below(21) {
        20 => TopicSel::Foreign,
        0 => TopicSel::Empty,
        1 => TopicSel::TooLong,
        2..=7 => TopicSel::Owned(rng.below(4) as u8),
        8..=13 => TopicSel::Resolved(rng.below(4) as u8),
        _ => TopicSel::Str(rng.below(4) as u8),
    };
    let policy = |rng: &mut Rng| match rng.below(5) {
        0 => PolicySel::DropNewest,
        1 => PolicySel::DropOldest,
        2 => PolicySel::Disconnect,
        3 => PolicySel::BlockZero,
        _ => PolicySel::Conflate,
    };
    let payload = |rng: &mut Rng| PayloadSel {
        len: rng.next() as u8,
        fill: rng.next() as u8,
    };
    let capacity = |rng: &mut Rng| [1, 2, 3, 7, 0][rng.below(5)];
    let from = |rng: &mut Rng| (rng.below(3) != 0).then(|| rng.below(4) as u8);
    let mut ops = Vec::new();
    for s in 0..ops_vs_model::SLOTS as u8 {
        ops.push(if rng.below(2) == 0 {
            Op::Register { slot: s }
        } else {
            Op::RegisterChannel {
                slot: s,
                capacity: capacity(rng),
                policy: policy(rng),
            }
        });
    }
    let len = 10 + rng.below(70);
    while ops.len() < len {
        let op = match rng.below(100) {
            0..=19 => Op::Subscribe {
                slot: slot(rng),
                topic: topic(rng),
            },
            20..=25 => Op::Unsubscribe {
                slot: slot(rng),
                topic: topic(rng),
            },
            26..=45 => Op::Broadcast {
                topic: topic(rng),
                payload: payload(rng),
            },
            46..=53 => Op::BroadcastFrom {
                slot: slot(rng),
                topic: topic(rng),
                payload: payload(rng),
            },
            54..=59 => Op::BroadcastFrame {
                from: from(rng),
                topic: topic(rng),
                frame_topic: rng.below(7) as u8,
                payload: payload(rng),
            },
            60..=62 => Op::BroadcastFailing {
                from: from(rng),
                topic: topic(rng),
            },
            63..=71 => Op::Drain { slot: slot(rng) },
            72..=75 => Op::DropChannel { slot: slot(rng) },
            76..=79 => Op::Register { slot: slot(rng) },
            80..=85 => Op::RegisterChannel {
                slot: slot(rng),
                capacity: capacity(rng),
                policy: policy(rng),
            },
            86..=89 => Op::Unregister { slot: slot(rng) },
            90..=92 => Op::NewId { slot: slot(rng) },
            93..=96 => Op::SubscriberCount { topic: topic(rng) },
            98 => Op::Shutdown {
                guard: rng.next() as u8,
            },
            _ => {
                let mut mutation = || match rng.below(5) {
                    0 | 1 => MutationSel::Subscribe {
                        slot: rng.below(4) as u8,
                        topic: rng.below(5) as u8,
                    },
                    2 | 3 => MutationSel::Unsubscribe {
                        slot: rng.below(4) as u8,
                        topic: rng.below(5) as u8,
                    },
                    _ => MutationSel::Unregister {
                        slot: rng.below(4) as u8,
                    },
                };
                Op::Apply {
                    mutations: [mutation(), mutation(), mutation()],
                    count: rng.next() as u8,
                }
            }
        };
        ops.push(op);
    }
    ops
}

#[test]
fn ops_vs_model_seeds_encode_their_ops() {
    for (name, ops) in ops_vs_model::seeds() {
        let data = ops_vs_model::encode(&ops);
        assert_eq!(ops_vs_model::parse(&data), ops, "seed {name}");
        replay_ops(name, &data);
    }
}

/// `FANOUT_WRITE_SEEDS=1 cargo test --test fuzz_replay write_seeds` rewrites the
/// hand-made seeds into `fuzz/corpus/` (names start with `seed-`).
#[test]
fn write_seeds() {
    if std::env::var_os("FANOUT_WRITE_SEEDS").is_none() {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, ops) in ops_vs_model::seeds() {
        let path = root.join("ops_vs_model").join(format!("seed-{name}"));
        std::fs::write(path, ops_vs_model::encode(&ops)).unwrap();
    }
    for (name, data) in frame_decode::seeds() {
        let path = root.join("frame_decode").join(format!("seed-{name}"));
        std::fs::write(path, data).unwrap();
    }
}
