//! The ops: what an input encodes. Each input is a sequence of [`Op`]s, read through
//! `arbitrary`; [`encode`] writes ops back as bytes (for hand-made seeds and the replay
//! test's weighted random cases). Ops name clients by slot (`slot % SLOTS`) and topics
//! by index into the model's names ([`TopicSel`]), so every byte string is a valid run.
//!
//! Plain data only: what an op *means* is in the model (`model.rs`) and what it *calls*
//! is in the harness (`harness.rs`).

use arbitrary::{Arbitrary, Unstructured};

/// Client slots an op can name.
pub const SLOTS: usize = 4;
/// Ops run per input at most (the rest of the input is ignored).
pub const MAX_OPS: usize = 200;

/// How an op names its topic.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicSel {
    /// A valid name as `&str`.
    Str(u8),
    /// A valid name as `&String`.
    Owned(u8),
    /// A valid name pre-resolved with `PubSub::topic`.
    Resolved(u8),
    /// `""`.
    Empty,
    /// One byte over the limit.
    TooLong,
    /// A pre-resolved topic from an engine with a larger limit: over this one's.
    Foreign,
}

/// One mutation of a batch ([`Op::Apply`]): topics are pre-resolved; `topic % 9` is a
/// name's index, or 8 for the over-long foreign topic.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutationSel {
    Subscribe { slot: u8, topic: u8 },
    Unsubscribe { slot: u8, topic: u8 },
    Unregister { slot: u8 },
}

/// A payload: empty, or the op's index (4 bytes) followed by `len % 32 - 1` copies of
/// `fill`.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadSel {
    pub len: u8,
    pub fill: u8,
}

impl PayloadSel {
    /// The payload of op number `index` (the index makes every payload of a run unique).
    pub fn bytes(self, index: usize) -> Vec<u8> {
        let len = usize::from(self.len) % 32;
        if len == 0 {
            return Vec::new();
        }
        let mut v = (index as u32).to_be_bytes().to_vec();
        v.extend(std::iter::repeat(self.fill).take(len - 1));
        v
    }
}

/// The channel capacity [`Op::RegisterChannel`]'s `capacity` byte stands for.
pub fn channel_capacity(capacity: u8) -> usize {
    match capacity % 8 {
        c @ 0..=3 => usize::from(c),
        _ => 1024,
    }
}

/// A channel's overflow policy. `Block` uses a zero timeout: on one thread a full queue
/// never drains, so it behaves like `DropNewest` without stalling the run. `Conflate` is
/// a conflating channel keyed by topic (`register_conflating`).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySel {
    DropNewest,
    DropOldest,
    Disconnect,
    BlockZero,
    Conflate,
}

impl PolicySel {
    /// How many variants `arbitrary` chooses among.
    const COUNT: u64 = 5;
}

/// One operation.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `register` with a callback sink.
    Register {
        slot: u8,
    },
    /// `register_channel_with` (or `register_conflating` for [`PolicySel::Conflate`]);
    /// capacity `capacity % 8`, where 0 is refused and 4.. means 1024.
    RegisterChannel {
        slot: u8,
        capacity: u8,
        policy: PolicySel,
    },
    Subscribe {
        slot: u8,
        topic: TopicSel,
    },
    Unsubscribe {
        slot: u8,
        topic: TopicSel,
    },
    Unregister {
        slot: u8,
    },
    Broadcast {
        topic: TopicSel,
        payload: PayloadSel,
    },
    BroadcastFrom {
        slot: u8,
        topic: TopicSel,
        payload: PayloadSel,
    },
    /// `encode` a frame for topic `frame_topic % 6` (4: a garbage frame, 5: a frame with
    /// a trailing byte) and `broadcast_frame[_from]` it on `topic`.
    BroadcastFrame {
        from: Option<u8>,
        topic: TopicSel,
        frame_topic: u8,
        payload: PayloadSel,
    },
    /// A broadcast whose serialiser fails.
    BroadcastFailing {
        from: Option<u8>,
        topic: TopicSel,
    },
    /// Receive everything queued on the slot's channel.
    Drain {
        slot: u8,
    },
    /// Drop the slot's channel (an unsubscribe, applied asynchronously).
    DropChannel {
        slot: u8,
    },
    /// Give the slot a fresh id, leaving its registration (if any) alive and unreachable.
    NewId {
        slot: u8,
    },
    SubscriberCount {
        topic: TopicSel,
    },
    /// `shutdown`, if `guard < 8` (so most runs stay open for long).
    Shutdown {
        guard: u8,
    },
    /// `PubSub::apply` with the first `count % 4` mutations.
    Apply {
        mutations: [MutationSel; 3],
        count: u8,
    },
    /// `track` with metadata `[meta]` (empty when `meta % 4 == 0`). Only callback
    /// clients and unknown ids are tracked: a channel client can leave asynchronously
    /// (the janitor prunes a dropped channel), which this single-threaded model does
    /// not order against its other ops.
    Track {
        slot: u8,
        topic: TopicSel,
        meta: u8,
    },
    Untrack {
        slot: u8,
        topic: TopicSel,
    },
    /// `list` compared with the model's members.
    List {
        topic: TopicSel,
    },
}

/// Reads the ops an input encodes (at most [`MAX_OPS`]).
pub fn parse(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// Encodes ops as input bytes that [`parse`] reads back (for hand-made seeds). Mirrors
/// `arbitrary`'s derive: an enum variant is a little-endian `u32` scaled to the variant
/// count, an `Option` a bool byte, integers little-endian.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    fn variant(out: &mut Vec<u8>, index: u64, count: u64) {
        let v = (index << 32).div_ceil(count);
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    fn topic(out: &mut Vec<u8>, t: TopicSel) {
        match t {
            TopicSel::Str(i) => {
                variant(out, 0, 6);
                out.push(i)
            }
            TopicSel::Owned(i) => {
                variant(out, 1, 6);
                out.push(i)
            }
            TopicSel::Resolved(i) => {
                variant(out, 2, 6);
                out.push(i)
            }
            TopicSel::Empty => variant(out, 3, 6),
            TopicSel::TooLong => variant(out, 4, 6),
            TopicSel::Foreign => variant(out, 5, 6),
        }
    }
    fn mutation(out: &mut Vec<u8>, m: MutationSel) {
        match m {
            MutationSel::Subscribe { slot, topic } => {
                variant(out, 0, 3);
                out.extend_from_slice(&[slot, topic]);
            }
            MutationSel::Unsubscribe { slot, topic } => {
                variant(out, 1, 3);
                out.extend_from_slice(&[slot, topic]);
            }
            MutationSel::Unregister { slot } => {
                variant(out, 2, 3);
                out.push(slot);
            }
        }
    }
    fn payload(out: &mut Vec<u8>, p: PayloadSel) {
        out.push(p.len);
        out.push(p.fill);
    }
    fn from(out: &mut Vec<u8>, f: Option<u8>) {
        match f {
            Some(s) => out.extend_from_slice(&[1, s]),
            None => out.push(0),
        }
    }
    const N: u64 = 18;
    let mut out = Vec::new();
    for op in ops {
        let o = &mut out;
        match *op {
            Op::Register { slot } => {
                variant(o, 0, N);
                o.push(slot);
            }
            Op::RegisterChannel {
                slot,
                capacity,
                policy,
            } => {
                variant(o, 1, N);
                o.push(slot);
                o.push(capacity);
                variant(o, policy as u64, PolicySel::COUNT);
            }
            Op::Subscribe { slot, topic: t } => {
                variant(o, 2, N);
                o.push(slot);
                topic(o, t);
            }
            Op::Unsubscribe { slot, topic: t } => {
                variant(o, 3, N);
                o.push(slot);
                topic(o, t);
            }
            Op::Unregister { slot } => {
                variant(o, 4, N);
                o.push(slot);
            }
            Op::Broadcast {
                topic: t,
                payload: p,
            } => {
                variant(o, 5, N);
                topic(o, t);
                payload(o, p);
            }
            Op::BroadcastFrom {
                slot,
                topic: t,
                payload: p,
            } => {
                variant(o, 6, N);
                o.push(slot);
                topic(o, t);
                payload(o, p);
            }
            Op::BroadcastFrame {
                from: f,
                topic: t,
                frame_topic,
                payload: p,
            } => {
                variant(o, 7, N);
                from(o, f);
                topic(o, t);
                o.push(frame_topic);
                payload(o, p);
            }
            Op::BroadcastFailing { from: f, topic: t } => {
                variant(o, 8, N);
                from(o, f);
                topic(o, t);
            }
            Op::Drain { slot } => {
                variant(o, 9, N);
                o.push(slot);
            }
            Op::DropChannel { slot } => {
                variant(o, 10, N);
                o.push(slot);
            }
            Op::NewId { slot } => {
                variant(o, 11, N);
                o.push(slot);
            }
            Op::SubscriberCount { topic: t } => {
                variant(o, 12, N);
                topic(o, t);
            }
            Op::Shutdown { guard } => {
                variant(o, 13, N);
                o.push(guard);
            }
            Op::Apply { mutations, count } => {
                variant(o, 14, N);
                for m in mutations {
                    mutation(o, m);
                }
                o.push(count);
            }
            Op::Track {
                slot,
                topic: t,
                meta,
            } => {
                variant(o, 15, N);
                o.push(slot);
                topic(o, t);
                o.push(meta);
            }
            Op::Untrack { slot, topic: t } => {
                variant(o, 16, N);
                o.push(slot);
                topic(o, t);
            }
            Op::List { topic: t } => {
                variant(o, 17, N);
                topic(o, t);
            }
        }
    }
    out
}
