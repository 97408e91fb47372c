//! Fuzz target logic: random operation sequences against `PubSub<[u8]>` and a plain
//! single-threaded reference model. Shared by the cargo-fuzz binary
//! (`fuzz/fuzz_targets/ops_vs_model.rs`) and the stable replay test
//! (`tests/fuzz_replay.rs`). Depends only on `fanout`, `bytes` and `arbitrary`.
//!
//! The input bytes are read as a sequence of [`Op`]s (through `arbitrary`) over
//! [`SLOTS`] client slots and a few topic names. After every op the engine's answer
//! (delivered count or exact error) and its `stats()` are compared with the model; at the
//! end every sink's exact frame sequence is compared, frames of one broadcast must be
//! one shared buffer, every sink must be freed by `shutdown`.
//!
//! Topic names include wildcard patterns (`*`, `b.*`, `>`, `room.>`): subscribing to one
//! is a pattern subscription, and the model decides who a broadcast reaches by matching
//! every subscription of every client with its own NATS matcher ([`covers`]), each
//! client at most once.
//!
//! Presence: `track` / `untrack` / `list` of callback clients, with the model's own
//! member table; every join and leave (untrack, unregister) is a Presence frame in the
//! exact frame sequence of every sink the topic's broadcasts reach.
//!
//! Channel clients use any overflow policy, or conflate by topic
//! ([`PubSub::register_conflating`]): the model keeps one queue per channel either way,
//! where a conflating channel replaces a queued frame of the same topic in place.
//!
//! Dropped channels and channels cut off by the `Disconnect` policy are removed by the
//! writer asynchronously: the model keeps them as *zombies* — closed (they receive
//! nothing more), maybe still counted in the registry — and never reuses their ids
//! (the slot gets a fresh id). Sizes are then checked as ranges; before the end the
//! harness waits (bounded) until every zombie is gone and checks sizes exactly.

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::{BufMut, Bytes, BytesMut};
use fanout::transport::{decode_any, encode_push, Frame, PresenceEvent, SerialiseError};
use fanout::{
    Channel, ChannelConfig, ClientId, ConflatingChannel, DisconnectReason, Error, Mutation,
    OverflowPolicy, PubSub, Topic, TopicError,
};

/// Client slots an op can name.
pub const SLOTS: usize = 4;
/// Ops run per input at most (the rest of the input is ignored).
pub const MAX_OPS: usize = 200;
/// The engine's default topic length limit.
const MAX_TOPIC_LEN: usize = 256;

/// Length of [`foreign_topic`].
const FOREIGN_TOPIC_LEN: usize = MAX_TOPIC_LEN + 44;

/// A `Topic` longer than the default limit, made once by an engine with a larger one.
fn foreign_topic() -> Topic {
    static FOREIGN: std::sync::OnceLock<Topic> = std::sync::OnceLock::new();
    FOREIGN
        .get_or_init(|| {
            let big = PubSub::<[u8]>::builder()
                .max_topic_len(1024)
                .build()
                .expect("engine starts");
            let topic = big.topic(&"f".repeat(FOREIGN_TOPIC_LEN)).unwrap();
            big.shutdown();
            topic
        })
        .clone()
}

/// Valid topic names — short, two tokens, non-ASCII, exactly at the length limit — then
/// wildcard patterns over them (subscribing to one is a pattern subscription;
/// broadcasting to one is a broadcast to that literal name, which patterns can match).
fn topic_names() -> [String; NAMES] {
    [
        "a".to_owned(),
        "b.c".to_owned(),
        "room.ü".to_owned(),
        "t".repeat(MAX_TOPIC_LEN),
        "*".to_owned(),
        "b.*".to_owned(),
        ">".to_owned(),
        "room.>".to_owned(),
    ]
}

/// How many names [`topic_names`] gives.
const NAMES: usize = 8;

/// Whether a subscription name is a wildcard pattern (a `*` or `>` token).
fn is_pattern(name: &str) -> bool {
    name.split('.').any(|token| token == "*" || token == ">")
}

/// Whether subscription `sub` reaches a broadcast on `topic`: NATS matching, written
/// independently of the engine's (an exact name matches only itself).
fn covers(sub: &str, topic: &str) -> bool {
    fn go(p: &[&str], t: &[&str]) -> bool {
        match (p.split_first(), t.split_first()) {
            (None, None) => true,
            (Some((&">", _)), Some(_)) => true,
            (Some((&"*", p)), Some((_, t))) => go(p, t),
            (Some((a, p)), Some((b, t))) if a == b => go(p, t),
            _ => false,
        }
    }
    let p: Vec<&str> = sub.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    go(&p, &t)
}

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

/// One mutation of a batch ([`Op::Apply`]): topics are pre-resolved, `topic % 5 == 4`
/// is the over-long foreign topic.
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

    /// The engine's policy, or `None` for a conflating channel.
    fn overflow_policy(self) -> Option<OverflowPolicy> {
        match self {
            PolicySel::DropNewest => Some(OverflowPolicy::DropNewest),
            PolicySel::DropOldest => Some(OverflowPolicy::DropOldest),
            PolicySel::Disconnect => Some(OverflowPolicy::Disconnect),
            PolicySel::BlockZero => Some(OverflowPolicy::Block(Duration::ZERO)),
            PolicySel::Conflate => None,
        }
    }
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

/// A call's result, comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok(usize),
    Closed,
    UnknownClient(ClientId),
    DuplicateClient(ClientId),
    TopicEmpty,
    TopicTooLong { len: usize, max: usize },
    Serialise,
    FrameMismatch,
    InvalidConfig,
    Other(String),
}

fn outcome_of_error(e: Error) -> Outcome {
    match e {
        Error::Closed => Outcome::Closed,
        Error::UnknownClient(id) => Outcome::UnknownClient(id),
        Error::DuplicateClient(id) => Outcome::DuplicateClient(id),
        Error::InvalidTopic(TopicError::Empty) => Outcome::TopicEmpty,
        Error::InvalidTopic(TopicError::TooLong { len, max }) => Outcome::TopicTooLong { len, max },
        Error::Serialise(_) => Outcome::Serialise,
        Error::FrameMismatch => Outcome::FrameMismatch,
        Error::InvalidConfig(_) => Outcome::InvalidConfig,
        other => Outcome::Other(other.to_string()),
    }
}

fn outcome<T>(result: Result<T, Error>, count: impl FnOnce(T) -> usize) -> Outcome {
    match result {
        Ok(v) => Outcome::Ok(count(v)),
        Err(e) => outcome_of_error(e),
    }
}

/// A frame a sink should receive: which broadcast, on which topic, with what payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    broadcast: u64,
    /// The frame kind: 1 Push, 2 Presence.
    kind: u8,
    topic: String,
    /// A Push frame's payload; for a Presence frame its event byte, client id (8 bytes,
    /// big-endian) and metadata.
    payload: Vec<u8>,
}

impl Expected {
    /// What a conflating channel keys it by: the topic for a Push frame; topic, event and
    /// member for a Presence frame.
    fn conflation_key(&self) -> (u8, &str, &[u8]) {
        let member = if self.kind == 2 {
            &self.payload[..9]
        } else {
            &[][..]
        };
        (self.kind, &self.topic, member)
    }

    /// A delivered frame in the same form.
    fn of_frame(frame: &[u8]) -> (u8, String, Vec<u8>) {
        match decode_any(frame).expect("a delivered frame decodes") {
            Frame::Push(push) => (1, push.topic.to_owned(), push.payload.to_vec()),
            Frame::Presence(p) => {
                let mut payload = vec![p.event as u8];
                payload.extend_from_slice(&p.client.to_be_bytes());
                payload.extend_from_slice(p.meta);
                (2, p.topic.to_owned(), payload)
            }
        }
    }
}

/// The model of one sink (one successful registration).
#[derive(Debug)]
enum SinkModel {
    Callback,
    Channel {
        capacity: usize,
        policy: PolicySel,
        /// Frames queued and not yet drained.
        queue: VecDeque<Expected>,
        /// Frames the policy dropped.
        dropped: u64,
        /// Frames a conflating channel replaced with a newer one of the same topic.
        conflated: u64,
        /// `Some` once the channel is cut off; what `disconnect_reason` must say.
        reason: Option<DisconnectReason>,
    },
}

/// The engine side of one sink.
enum ActualSink {
    Callback(Arc<Mutex<Vec<Bytes>>>),
    Channel {
        /// `None` once dropped.
        channel: Option<AnyChannel>,
        drained: Vec<Bytes>,
    },
}

/// A channel client's consumer end, whichever kind.
enum AnyChannel {
    Queue(Channel<Bytes>),
    Conflating(ConflatingChannel<Bytes>),
}

/// Calls the same-named method on whichever kind of channel `$c` is.
macro_rules! either {
    ($c:expr, |$ch:ident| $call:expr) => {
        match $c {
            AnyChannel::Queue($ch) => $call,
            AnyChannel::Conflating($ch) => $call,
        }
    };
}

impl AnyChannel {
    fn conflated(&self) -> u64 {
        match self {
            AnyChannel::Queue(_) => 0,
            AnyChannel::Conflating(c) => c.conflated(),
        }
    }

    /// Takes everything queued now.
    fn drain(&self) -> Vec<Bytes> {
        either!(self, |c| c.try_iter().collect())
    }

    /// Whether the receiver has ended (every sender gone, nothing queued).
    fn has_ended(&self) -> bool {
        match self {
            AnyChannel::Queue(c) => matches!(c.try_recv(), Err(e) if e.is_disconnected()),
            AnyChannel::Conflating(c) => matches!(c.try_recv(), Err(e) if e.is_disconnected()),
        }
    }

    /// Compares the channel's counters and status with its model (`what` names the
    /// moment, for the failure message).
    fn check(&self, model: &SinkModel, what: &str) {
        let SinkModel::Channel {
            queue,
            dropped,
            conflated,
            reason,
            ..
        } = model
        else {
            unreachable!("a channel registration has a channel model");
        };
        let (len, got_dropped, got_reason, connected) = either!(self, |c| (
            c.len(),
            c.dropped(),
            c.disconnect_reason(),
            c.is_connected()
        ));
        assert_eq!(got_dropped, *dropped, "dropped() {what}");
        assert_eq!(self.conflated(), *conflated, "conflated() {what}");
        assert_eq!(len, queue.len(), "len() {what}");
        assert_eq!(got_reason, *reason, "disconnect_reason() {what}");
        assert_eq!(connected, reason.is_none(), "is_connected() {what}");
    }
}

/// One registration: the model and the engine's sink, side by side.
struct Registration {
    id: ClientId,
    model: SinkModel,
    /// Frames the sink received (callback) or the harness drained (channel), per model.
    received: Vec<Expected>,
    actual: ActualSink,
}

/// A client the model knows to be registered.
struct Client {
    registration: usize,
    topics: BTreeSet<usize>,
}

struct Slot {
    id: ClientId,
    /// The latest registration made through this slot (kept after it ends, for drains).
    registration: Option<usize>,
}

/// Everything one run keeps.
struct Harness {
    ps: PubSub<[u8]>,
    names: [String; NAMES],
    resolved: Vec<Topic>,
    too_long: String,
    /// Over this engine's limit, made by an engine with a larger one.
    foreign: Topic,
    slots: Vec<Slot>,
    registrations: Vec<Registration>,
    /// Registered clients, per the model.
    clients: HashMap<ClientId, Client>,
    /// Closed clients the writer removes asynchronously: id → topics.
    zombies: HashMap<ClientId, BTreeSet<usize>>,
    closed: bool,
    /// Broadcasts so far (numbers the frames).
    broadcasts: u64,
    /// Engine-wide counters the model expects.
    deliveries: u64,
    dropped: u64,
    conflated: u64,
    disconnects: u64,
    /// Bounds on `Stats::broadcasts` (a broadcast reaching only zombies may count).
    counted_min: u64,
    counted_max: u64,
    /// (broadcast number, address) of frames given to `broadcast_frame`.
    frame_addresses: Vec<(u64, usize)>,
    /// Presence: topic → member → metadata.
    presence: HashMap<usize, std::collections::BTreeMap<ClientId, Vec<u8>>>,
    /// Each member's tracked topics in the engine's order (appended; untracking moves
    /// the last into the hole, as `swap_remove` does): the order its leaves go out in.
    tracked: HashMap<ClientId, Vec<usize>>,
    /// Presence changes of the current op, delivered when it ends (the engine delivers
    /// them after the whole batch is applied, before the call returns).
    pending_presence: Vec<(usize, PresenceEvent, ClientId, Vec<u8>)>,
}

/// A topic as an op names it, resolved to what the engine is given.
enum TopicArg<'h> {
    Str(&'h str, usize),
    Owned(&'h String, usize),
    Resolved(&'h Topic, usize),
    Invalid(&'h str, Outcome),
    InvalidResolved(&'h Topic, Outcome),
}

impl TopicArg<'_> {
    fn index(&self) -> Result<usize, Outcome> {
        match self {
            TopicArg::Str(_, i) | TopicArg::Owned(_, i) | TopicArg::Resolved(_, i) => Ok(*i),
            TopicArg::Invalid(_, o) | TopicArg::InvalidResolved(_, o) => Err(o.clone()),
        }
    }
}

/// Calls `$call` with the topic argument in whichever form the op chose.
macro_rules! with_topic {
    ($arg:expr, |$t:ident| $call:expr) => {
        match $arg {
            TopicArg::Str($t, _) => $call,
            TopicArg::Owned($t, _) => $call,
            TopicArg::Resolved($t, _) => $call,
            TopicArg::Invalid($t, _) => $call,
            TopicArg::InvalidResolved($t, _) => $call,
        }
    };
}

impl Harness {
    fn new() -> Self {
        let ps = PubSub::<[u8]>::new().expect("engine starts");
        let names = topic_names();
        let resolved = names
            .iter()
            .map(|n| ps.topic(n).expect("valid topic"))
            .collect();
        let too_long = "x".repeat(MAX_TOPIC_LEN + 1);
        assert!(matches!(
            ps.topic(""),
            Err(Error::InvalidTopic(TopicError::Empty))
        ));
        assert!(matches!(
            ps.topic(&too_long),
            Err(Error::InvalidTopic(TopicError::TooLong { .. }))
        ));
        let foreign = foreign_topic();
        let slots = (0..SLOTS)
            .map(|_| Slot {
                id: ps.generate_client_id(),
                registration: None,
            })
            .collect();
        Self {
            ps,
            names,
            resolved,
            too_long,
            foreign,
            slots,
            registrations: Vec::new(),
            clients: HashMap::new(),
            zombies: HashMap::new(),
            closed: false,
            broadcasts: 0,
            deliveries: 0,
            dropped: 0,
            conflated: 0,
            disconnects: 0,
            counted_min: 0,
            counted_max: 0,
            frame_addresses: Vec::new(),
            presence: HashMap::new(),
            tracked: HashMap::new(),
            pending_presence: Vec::new(),
        }
    }

    /// Delivers the presence changes the last op made, in order.
    fn flush_presence(&mut self) {
        for (t, event, client, meta) in std::mem::take(&mut self.pending_presence) {
            self.model_presence(t, event, client, &meta);
        }
    }

    /// Model of `untrack(id, t)` for a registered client; whether it was tracked there.
    fn untrack_model(&mut self, id: ClientId, t: usize) {
        let Some(topics) = self.tracked.get_mut(&id) else {
            return;
        };
        let Some(position) = topics.iter().position(|&x| x == t) else {
            return;
        };
        topics.swap_remove(position);
        if topics.is_empty() {
            self.tracked.remove(&id);
        }
        self.leave_model(id, t);
    }

    fn leave_model(&mut self, id: ClientId, t: usize) {
        let members = self
            .presence
            .get_mut(&t)
            .expect("a tracked topic has members");
        let meta = members.remove(&id).expect("a tracked member is listed");
        if members.is_empty() {
            self.presence.remove(&t);
        }
        self.pending_presence
            .push((t, PresenceEvent::Leave, id, meta));
    }

    fn topic(&self, sel: TopicSel) -> TopicArg<'_> {
        let n = self.names.len();
        match sel {
            TopicSel::Str(i) => {
                let i = usize::from(i) % n;
                TopicArg::Str(&self.names[i], i)
            }
            TopicSel::Owned(i) => {
                let i = usize::from(i) % n;
                TopicArg::Owned(&self.names[i], i)
            }
            TopicSel::Resolved(i) => {
                let i = usize::from(i) % n;
                TopicArg::Resolved(&self.resolved[i], i)
            }
            TopicSel::Empty => TopicArg::Invalid("", Outcome::TopicEmpty),
            TopicSel::TooLong => TopicArg::Invalid(
                &self.too_long,
                Outcome::TopicTooLong {
                    len: MAX_TOPIC_LEN + 1,
                    max: MAX_TOPIC_LEN,
                },
            ),
            TopicSel::Foreign => TopicArg::InvalidResolved(
                &self.foreign,
                Outcome::TopicTooLong {
                    len: FOREIGN_TOPIC_LEN,
                    max: MAX_TOPIC_LEN,
                },
            ),
        }
    }

    fn slot(&self, slot: u8) -> usize {
        usize::from(slot) % SLOTS
    }

    /// Live subscribers a broadcast on topic `t` reaches (by name or by pattern, each
    /// once), and zombies that may still be listed.
    fn subscribers(&self, t: usize) -> (Vec<ClientId>, Vec<ClientId>) {
        let reaches =
            |subs: &BTreeSet<usize>| subs.iter().any(|&s| covers(&self.names[s], &self.names[t]));
        let mut live: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| reaches(&c.topics))
            .map(|(id, _)| *id)
            .collect();
        live.sort();
        let zombies = self
            .zombies
            .iter()
            .filter(|(_, topics)| reaches(topics))
            .map(|(id, _)| *id)
            .collect();
        (live, zombies)
    }

    /// The client with `id` is cut off (channel dropped or disconnected): it becomes a
    /// zombie, and a slot holding its id gets a fresh one (ids of zombies are never
    /// named again: whether the writer has pruned them yet is not known).
    fn kill(&mut self, id: ClientId) {
        let client = self.clients.remove(&id).expect("killing a live client");
        self.zombies.insert(id, client.topics);
        for s in 0..SLOTS {
            if self.slots[s].id == id {
                self.slots[s].id = self.ps.generate_client_id();
            }
        }
    }

    /// Model of one broadcast on topic `t` skipping `from`: delivers to the live
    /// subscribers and returns (delivered, whether the serialiser must run, may run).
    fn model_broadcast(
        &mut self,
        t: usize,
        from: Option<ClientId>,
        payload: &[u8],
    ) -> (usize, bool, bool) {
        let (live, zombies) = self.subscribers(t);
        let receivers: Vec<ClientId> = live.into_iter().filter(|id| Some(*id) != from).collect();
        let zombie_receivers = zombies.iter().any(|id| Some(*id) != from);
        let must = !receivers.is_empty();
        let may = must || zombie_receivers;
        if !must {
            return (0, false, may);
        }
        self.broadcasts += 1;
        let frame = Expected {
            broadcast: self.broadcasts,
            kind: 1,
            topic: self.names[t].clone(),
            payload: payload.to_vec(),
        };
        self.model_deliver(receivers, frame)
    }

    /// Model of one presence change on topic `t`: a Presence frame to everyone a
    /// broadcast on `t` reaches (the member included, if it subscribes).
    fn model_presence(&mut self, t: usize, event: PresenceEvent, client: ClientId, meta: &[u8]) {
        let (live, zombies) = self.subscribers(t);
        self.count_broadcast(!live.is_empty(), !live.is_empty() || !zombies.is_empty());
        if live.is_empty() {
            return;
        }
        self.broadcasts += 1;
        let mut payload = vec![event as u8];
        payload.extend_from_slice(&client.as_u64().to_be_bytes());
        payload.extend_from_slice(meta);
        let frame = Expected {
            broadcast: self.broadcasts,
            kind: 2,
            topic: self.names[t].clone(),
            payload,
        };
        self.model_deliver(live, frame);
    }

    /// Hands `frame` to each of `receivers` per its sink's model; returns (delivered,
    /// true, true) like [`model_broadcast`](Self::model_broadcast).
    fn model_deliver(&mut self, receivers: Vec<ClientId>, frame: Expected) -> (usize, bool, bool) {
        let mut delivered = 0;
        let mut cut_off = Vec::new();
        for id in receivers {
            let r = self.clients[&id].registration;
            let registration = &mut self.registrations[r];
            match &mut registration.model {
                SinkModel::Callback => {
                    registration.received.push(frame.clone());
                    delivered += 1;
                }
                SinkModel::Channel {
                    capacity,
                    policy,
                    queue,
                    dropped,
                    conflated,
                    reason,
                } => {
                    assert!(reason.is_none(), "a live client's channel is open");
                    if *policy == PolicySel::Conflate {
                        // The topic's queued frame, if any, is replaced where it stands.
                        if let Some(queued) = queue
                            .iter_mut()
                            .find(|e| e.conflation_key() == frame.conflation_key())
                        {
                            *queued = frame.clone();
                            *conflated += 1;
                            self.conflated += 1;
                            delivered += 1;
                            continue;
                        }
                    }
                    if queue.len() < *capacity {
                        queue.push_back(frame.clone());
                        delivered += 1;
                        continue;
                    }
                    *dropped += 1;
                    self.dropped += 1;
                    match policy {
                        PolicySel::DropNewest | PolicySel::BlockZero | PolicySel::Conflate => {}
                        PolicySel::DropOldest => {
                            queue.pop_front();
                            queue.push_back(frame.clone());
                            delivered += 1;
                        }
                        PolicySel::Disconnect => {
                            *reason = Some(DisconnectReason::Overflow);
                            self.disconnects += 1;
                            cut_off.push(id);
                        }
                    }
                }
            }
        }
        for id in cut_off {
            self.kill(id);
        }
        self.deliveries += delivered as u64;
        (delivered, true, true)
    }

    fn payload(index: usize, p: PayloadSel) -> Vec<u8> {
        let len = usize::from(p.len) % 32;
        if len == 0 {
            return Vec::new();
        }
        let mut v = (index as u32).to_be_bytes().to_vec();
        v.extend(std::iter::repeat(p.fill).take(len - 1));
        v
    }

    fn apply(&mut self, index: usize, op: Op) {
        match op {
            Op::Register { slot } => {
                let s = self.slot(slot);
                let id = self.slots[s].id;
                let inbox = Arc::new(Mutex::new(Vec::new()));
                let sink = Arc::clone(&inbox);
                let got = outcome(
                    self.ps.register(id, move |frame: &Bytes| {
                        sink.lock().unwrap().push(frame.clone());
                    }),
                    |()| 0,
                );
                let want = if self.closed {
                    Outcome::Closed
                } else if self.clients.contains_key(&id) {
                    Outcome::DuplicateClient(id)
                } else {
                    Outcome::Ok(0)
                };
                assert_eq!(got, want, "register");
                if got == Outcome::Ok(0) {
                    self.add_registration(s, id, SinkModel::Callback, ActualSink::Callback(inbox));
                }
            }
            Op::RegisterChannel {
                slot,
                capacity,
                policy,
            } => {
                let s = self.slot(slot);
                let id = self.slots[s].id;
                let capacity = match capacity % 8 {
                    c @ 0..=3 => usize::from(c),
                    _ => 1024,
                };
                let result = match policy.overflow_policy() {
                    Some(overflow) => self
                        .ps
                        .register_channel_with(id, ChannelConfig::new(capacity, overflow))
                        .map(AnyChannel::Queue),
                    None => self
                        .ps
                        .register_conflating(id, capacity)
                        .map(AnyChannel::Conflating),
                };
                let want = if capacity == 0 {
                    Outcome::InvalidConfig
                } else if self.closed {
                    Outcome::Closed
                } else if self.clients.contains_key(&id) {
                    Outcome::DuplicateClient(id)
                } else {
                    Outcome::Ok(0)
                };
                match result {
                    Ok(channel) => {
                        assert_eq!(Outcome::Ok(0), want, "register_channel");
                        assert_eq!(either!(&channel, |c| c.id()), id);
                        let model = SinkModel::Channel {
                            capacity,
                            policy,
                            queue: VecDeque::new(),
                            dropped: 0,
                            conflated: 0,
                            reason: None,
                        };
                        channel.check(&model, "when registered");
                        let actual = ActualSink::Channel {
                            channel: Some(channel),
                            drained: Vec::new(),
                        };
                        self.add_registration(s, id, model, actual);
                    }
                    Err(e) => assert_eq!(outcome_of_error(e), want, "register_channel"),
                }
            }
            Op::Subscribe { slot, topic } | Op::Unsubscribe { slot, topic } => {
                let subscribe = matches!(op, Op::Subscribe { .. });
                let id = self.slots[self.slot(slot)].id;
                let arg = self.topic(topic);
                let got = if subscribe {
                    with_topic!(&arg, |t| outcome(self.ps.subscribe(id, t), |()| 0))
                } else {
                    with_topic!(&arg, |t| outcome(self.ps.unsubscribe(id, t), |()| 0))
                };
                let index = arg.index();
                drop(arg);
                let want = match index {
                    Err(invalid) => invalid,
                    Ok(_) if self.closed => Outcome::Closed,
                    Ok(t) => match self.clients.get_mut(&id) {
                        None => Outcome::UnknownClient(id),
                        Some(client) => {
                            if subscribe {
                                client.topics.insert(t);
                            } else {
                                client.topics.remove(&t);
                            }
                            Outcome::Ok(0)
                        }
                    },
                };
                assert_eq!(got, want, "{op:?}");
            }
            Op::Unregister { slot } => {
                let id = self.slots[self.slot(slot)].id;
                let got = outcome(self.ps.unregister(id), |()| 0);
                let want = if self.closed {
                    Outcome::Closed
                } else {
                    self.unregister_model(id)
                };
                assert_eq!(got, want, "unregister");
            }
            Op::Broadcast { topic, payload } | Op::BroadcastFrom { topic, payload, .. } => {
                let from = match op {
                    Op::BroadcastFrom { slot, .. } => Some(self.slots[self.slot(slot)].id),
                    _ => None,
                };
                let payload = Self::payload(index, payload);
                let calls = Cell::new(0u32);
                let serialiser = |m: &[u8], out: &mut BytesMut| -> Result<(), SerialiseError> {
                    calls.set(calls.get() + 1);
                    out.put_slice(m);
                    Ok(())
                };
                let arg = self.topic(topic);
                let got = match from {
                    None => with_topic!(&arg, |t| outcome(
                        self.ps.broadcast(t, &payload[..], &serialiser),
                        |n| n
                    )),
                    Some(from) => with_topic!(&arg, |t| outcome(
                        self.ps.broadcast_from(from, t, &payload[..], &serialiser),
                        |n| n
                    )),
                };
                let index = arg.index();
                drop(arg);
                let (want, must, may) = match index {
                    Err(invalid) => (invalid, false, false),
                    Ok(_) if self.closed => (Outcome::Closed, false, false),
                    Ok(t) => {
                        let (n, must, may) = self.model_broadcast(t, from, &payload);
                        self.count_broadcast(must, may);
                        (Outcome::Ok(n), must, may)
                    }
                };
                assert_eq!(got, want, "{op:?}");
                let calls = calls.get();
                assert!(calls <= 1, "serialiser ran {calls} times");
                assert!(
                    calls >= u32::from(must) && calls <= u32::from(may),
                    "serialiser ran {calls} times (must: {must}, may: {may})"
                );
            }
            Op::BroadcastFrame {
                from,
                topic,
                frame_topic,
                payload,
            } => {
                let from = from.map(|s| self.slots[self.slot(s)].id);
                let payload = Self::payload(index, payload);
                let frame_topic = usize::from(frame_topic) % 6;
                let frame = match frame_topic {
                    0..=3 => {
                        let name = &self.names[frame_topic];
                        let encoded =
                            self.ps
                                .encode(name.as_str(), &payload, &fanout::transport::RawPayload);
                        let frame = encode_push(name, &payload).unwrap();
                        if self.closed {
                            // Like every call but `stats`, `encode` is `Closed` after shutdown.
                            assert!(matches!(encoded, Err(Error::Closed)), "{encoded:?}");
                        } else {
                            assert_eq!(encoded.expect("encode"), frame);
                        }
                        frame
                    }
                    4 => Bytes::from_static(&[1, 1, 0]),
                    _ => {
                        let mut v = encode_push(&self.names[0], &payload).unwrap().to_vec();
                        v.push(0);
                        Bytes::from(v)
                    }
                };
                let arg = self.topic(topic);
                let got = match from {
                    None => {
                        with_topic!(&arg, |t| outcome(self.ps.broadcast_frame(t, &frame), |n| n))
                    }
                    Some(from) => with_topic!(&arg, |t| outcome(
                        self.ps.broadcast_frame_from(from, t, &frame),
                        |n| n
                    )),
                };
                let index = arg.index();
                drop(arg);
                let want = match index {
                    Err(invalid) => invalid,
                    // Frames 4 and 5 are malformed: they match no topic.
                    Ok(t) if frame_topic > 3 || t != frame_topic => Outcome::FrameMismatch,
                    Ok(_) if self.closed => Outcome::Closed,
                    Ok(t) => {
                        let first = self.broadcasts + 1;
                        let (n, must, may) = self.model_broadcast(t, from, &payload);
                        self.count_broadcast(must, may);
                        if must {
                            // The frame itself must be what sinks get: remember its address.
                            self.frame_addresses.push((first, frame.as_ptr() as usize));
                        }
                        Outcome::Ok(n)
                    }
                };
                assert_eq!(got, want, "{op:?}");
            }
            Op::BroadcastFailing { from, topic } => {
                let from = from.map(|s| self.slots[self.slot(s)].id);
                let failing = |_: &[u8], _: &mut BytesMut| -> Result<(), SerialiseError> {
                    Err(SerialiseError::new("refused"))
                };
                let arg = self.topic(topic);
                let got = match from {
                    None => with_topic!(&arg, |t| outcome(
                        self.ps.broadcast(t, b"x".as_slice(), &failing),
                        |n| n
                    )),
                    Some(from) => with_topic!(&arg, |t| outcome(
                        self.ps.broadcast_from(from, t, b"x".as_slice(), &failing),
                        |n| n
                    )),
                };
                let index = arg.index();
                drop(arg);
                match index {
                    Err(invalid) => assert_eq!(got, invalid, "{op:?}"),
                    Ok(_) if self.closed => assert_eq!(got, Outcome::Closed, "{op:?}"),
                    Ok(t) => {
                        let (live, zombies) = self.subscribers(t);
                        let must = live.iter().any(|id| Some(*id) != from);
                        let may = must || zombies.iter().any(|id| Some(*id) != from);
                        if must {
                            assert_eq!(got, Outcome::Serialise, "{op:?}");
                        } else if !may {
                            assert_eq!(got, Outcome::Ok(0), "{op:?}");
                        } else {
                            assert!(
                                got == Outcome::Ok(0) || got == Outcome::Serialise,
                                "{op:?}: {got:?}"
                            );
                        }
                    }
                }
            }
            Op::Drain { slot } => {
                if let Some(r) = self.slots[self.slot(slot)].registration {
                    self.drain(r);
                }
            }
            Op::DropChannel { slot } => {
                let s = self.slot(slot);
                let Some(r) = self.slots[s].registration else {
                    return;
                };
                let registration = &mut self.registrations[r];
                let ActualSink::Channel { channel, .. } = &mut registration.actual else {
                    return;
                };
                let Some(channel) = channel.take() else {
                    return;
                };
                channel.check(&registration.model, "before drop");
                let SinkModel::Channel { queue, reason, .. } = &mut registration.model else {
                    unreachable!("a channel registration has a channel model");
                };
                // What was queued is lost with the channel.
                queue.clear();
                let id = registration.id;
                let live = reason.is_none() && !self.closed;
                if live {
                    *reason = Some(DisconnectReason::Unsubscribed);
                }
                drop(channel);
                if live {
                    self.kill(id);
                }
            }
            Op::NewId { slot } => {
                let s = self.slot(slot);
                self.slots[s] = Slot {
                    id: self.ps.generate_client_id(),
                    registration: None,
                };
            }
            Op::SubscriberCount { topic } => {
                let arg = self.topic(topic);
                let got = with_topic!(&arg, |t| outcome(self.ps.subscriber_count(t), |n| n));
                match arg.index() {
                    // After shutdown every call but `stats` is `Closed`, checked first.
                    _ if self.closed => assert_eq!(got, Outcome::Closed),
                    Err(invalid) => assert_eq!(got, invalid),
                    Ok(t) => {
                        let (live, zombies) = self.subscribers(t);
                        let Outcome::Ok(n) = got else {
                            panic!("subscriber_count: {got:?}");
                        };
                        assert!(
                            n >= live.len() && n <= live.len() + zombies.len(),
                            "subscriber_count {n}, live {}, zombies {}",
                            live.len(),
                            zombies.len()
                        );
                    }
                }
            }
            Op::Shutdown { guard } => {
                if guard < 8 {
                    self.shutdown();
                }
            }
            Op::Track { slot, topic, meta } => {
                let id = self.slots[self.slot(slot)].id;
                let is_channel = self.clients.get(&id).is_some_and(|c| {
                    matches!(
                        self.registrations[c.registration].model,
                        SinkModel::Channel { .. }
                    )
                });
                if is_channel {
                    return;
                }
                let meta = if meta % 4 == 0 {
                    Vec::new()
                } else {
                    vec![meta]
                };
                let arg = self.topic(topic);
                let got = with_topic!(&arg, |t| outcome(
                    self.ps.track(id, t, Bytes::from(meta.clone())),
                    |()| 0
                ));
                let index = arg.index();
                drop(arg);
                let want = match index {
                    Err(invalid) => invalid,
                    Ok(_) if self.closed => Outcome::Closed,
                    Ok(_) if !self.clients.contains_key(&id) => Outcome::UnknownClient(id),
                    Ok(t) => {
                        let members = self.presence.entry(t).or_default();
                        match members.insert(id, meta.clone()) {
                            Some(previous) if previous == meta => {}
                            Some(_) => {
                                self.pending_presence
                                    .push((t, PresenceEvent::Join, id, meta))
                            }
                            None => {
                                self.tracked.entry(id).or_default().push(t);
                                self.pending_presence
                                    .push((t, PresenceEvent::Join, id, meta));
                            }
                        }
                        Outcome::Ok(0)
                    }
                };
                assert_eq!(got, want, "{op:?}");
            }
            Op::Untrack { slot, topic } => {
                let id = self.slots[self.slot(slot)].id;
                let arg = self.topic(topic);
                let got = with_topic!(&arg, |t| outcome(self.ps.untrack(id, t), |()| 0));
                let index = arg.index();
                drop(arg);
                let want = match index {
                    Err(invalid) => invalid,
                    Ok(_) if self.closed => Outcome::Closed,
                    Ok(_) if !self.clients.contains_key(&id) => Outcome::UnknownClient(id),
                    Ok(t) => {
                        self.untrack_model(id, t);
                        Outcome::Ok(0)
                    }
                };
                assert_eq!(got, want, "{op:?}");
            }
            Op::List { topic } => {
                let arg = self.topic(topic);
                let got = with_topic!(&arg, |t| self.ps.list(t));
                let index = arg.index();
                drop(arg);
                match (got, index) {
                    (Err(e), _) if self.closed => assert_eq!(outcome_of_error(e), Outcome::Closed),
                    (Err(e), Err(invalid)) => assert_eq!(outcome_of_error(e), invalid),
                    (Ok(members), Ok(t)) => {
                        let got: Vec<(ClientId, Vec<u8>)> = members
                            .into_iter()
                            .map(|m| (m.client, m.meta.to_vec()))
                            .collect();
                        let want: Vec<(ClientId, Vec<u8>)> = self
                            .presence
                            .get(&t)
                            .map(|members| {
                                members
                                    .iter()
                                    .map(|(id, meta)| (*id, meta.clone()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        assert_eq!(got, want, "{op:?}");
                    }
                    (got, want) => panic!("list: {got:?}, the model expects {want:?}"),
                }
            }
            Op::Apply { mutations, count } => {
                let list = &mutations[..usize::from(count % 4)];
                let topic = |h: &Self, t: u8| match usize::from(t) % (NAMES + 1) {
                    NAMES => (h.foreign.clone(), None),
                    t => (h.resolved[t].clone(), Some(t)),
                };
                let batch: Vec<Mutation> = list
                    .iter()
                    .map(|m| match *m {
                        MutationSel::Subscribe { slot, topic: t } => {
                            Mutation::Subscribe(self.slots[self.slot(slot)].id, topic(self, t).0)
                        }
                        MutationSel::Unsubscribe { slot, topic: t } => {
                            Mutation::Unsubscribe(self.slots[self.slot(slot)].id, topic(self, t).0)
                        }
                        MutationSel::Unregister { slot } => {
                            Mutation::Unregister(self.slots[self.slot(slot)].id)
                        }
                    })
                    .collect();
                let got = match self.ps.apply(batch) {
                    Ok(results) => Ok(results
                        .into_iter()
                        .map(|r| outcome(r, |()| 0))
                        .collect::<Vec<_>>()),
                    Err(e) => Err(outcome_of_error(e)),
                };
                let want = if self.closed {
                    Err(Outcome::Closed)
                } else {
                    let too_long = Outcome::TopicTooLong {
                        len: FOREIGN_TOPIC_LEN,
                        max: MAX_TOPIC_LEN,
                    };
                    Ok(list
                        .iter()
                        .map(|m| match *m {
                            MutationSel::Subscribe { slot, topic: t }
                            | MutationSel::Unsubscribe { slot, topic: t } => {
                                let subscribe = matches!(m, MutationSel::Subscribe { .. });
                                let id = self.slots[self.slot(slot)].id;
                                match (topic(self, t).1, self.clients.get_mut(&id)) {
                                    (None, _) => too_long.clone(),
                                    (Some(_), None) => Outcome::UnknownClient(id),
                                    (Some(t), Some(client)) => {
                                        if subscribe {
                                            client.topics.insert(t);
                                        } else {
                                            client.topics.remove(&t);
                                        }
                                        Outcome::Ok(0)
                                    }
                                }
                            }
                            MutationSel::Unregister { slot } => {
                                let id = self.slots[self.slot(slot)].id;
                                self.unregister_model(id)
                            }
                        })
                        .collect())
                };
                assert_eq!(got, want, "{op:?}");
            }
        }
    }

    /// The model of `unregister(id)` on an open engine.
    fn unregister_model(&mut self, id: ClientId) -> Outcome {
        match self.clients.remove(&id) {
            Some(client) => {
                if let SinkModel::Channel { reason, .. } =
                    &mut self.registrations[client.registration].model
                {
                    *reason = Some(DisconnectReason::Unsubscribed);
                }
                // It leaves every topic it was tracked in, in the engine's order.
                for t in self.tracked.remove(&id).unwrap_or_default() {
                    self.leave_model(id, t);
                }
                Outcome::Ok(0)
            }
            None => Outcome::UnknownClient(id),
        }
    }

    fn count_broadcast(&mut self, must: bool, may: bool) {
        self.counted_min += u64::from(must);
        self.counted_max += u64::from(may);
    }

    fn add_registration(&mut self, s: usize, id: ClientId, model: SinkModel, actual: ActualSink) {
        self.registrations.push(Registration {
            id,
            model,
            received: Vec::new(),
            actual,
        });
        let registration = self.registrations.len() - 1;
        self.clients.insert(
            id,
            Client {
                registration,
                topics: BTreeSet::new(),
            },
        );
        self.slots[s].registration = Some(registration);
    }

    /// Receives everything queued on registration `r`'s channel (if it still has one).
    fn drain(&mut self, r: usize) {
        let registration = &mut self.registrations[r];
        let ActualSink::Channel {
            channel: Some(channel),
            drained,
        } = &mut registration.actual
        else {
            return;
        };
        channel.check(&registration.model, "when drained");
        let SinkModel::Channel { queue, .. } = &mut registration.model else {
            unreachable!("a channel registration has a channel model");
        };
        drained.extend(channel.drain());
        registration.received.extend(queue.drain(..));
    }

    fn shutdown(&mut self) {
        self.ps.shutdown();
        assert!(self.ps.is_closed());
        if !self.closed {
            self.closed = true;
            for (_, client) in self.clients.drain() {
                if let SinkModel::Channel { reason, .. } =
                    &mut self.registrations[client.registration].model
                {
                    *reason = Some(DisconnectReason::Shutdown);
                }
            }
            self.zombies.clear();
            self.presence.clear();
            self.tracked.clear();
            self.pending_presence.clear();
        }
    }

    /// Compares the engine's sizes and counters with the model. Sizes are ranges while
    /// zombies may still be registered.
    fn check_stats(&self) {
        let stats = self.ps.stats();
        assert_eq!(stats.deliveries, self.deliveries, "stats.deliveries");
        assert_eq!(stats.dropped, self.dropped, "stats.dropped");
        assert_eq!(stats.conflated, self.conflated, "stats.conflated");
        assert_eq!(stats.disconnects, self.disconnects, "stats.disconnects");
        assert_eq!(stats.panics, 0, "stats.panics");
        assert!(
            stats.broadcasts >= self.counted_min && stats.broadcasts <= self.counted_max,
            "stats.broadcasts {} not in {}..={}",
            stats.broadcasts,
            self.counted_min,
            self.counted_max
        );
        if self.closed {
            assert_eq!(
                (
                    stats.clients,
                    stats.topics,
                    stats.subscriptions,
                    stats.patterns
                ),
                (0, 0, 0, 0),
                "sizes after shutdown"
            );
            return;
        }
        let count = |subs: &BTreeSet<usize>, pattern: bool| {
            subs.iter()
                .filter(|&&s| is_pattern(&self.names[s]) == pattern)
                .count()
        };
        let exact = |subs: &BTreeSet<usize>| count(subs, false);
        let patterns = |subs: &BTreeSet<usize>| count(subs, true);
        let live_subs: usize = self.clients.values().map(|c| exact(&c.topics)).sum();
        let zombie_subs: usize = self.zombies.values().map(exact).sum();
        let live_patterns: usize = self.clients.values().map(|c| patterns(&c.topics)).sum();
        let zombie_patterns: usize = self.zombies.values().map(patterns).sum();
        assert!(
            stats.patterns >= live_patterns && stats.patterns <= live_patterns + zombie_patterns,
            "stats.patterns {} (live {live_patterns}, zombie {zombie_patterns})",
            stats.patterns
        );
        // A topic exists while it has subscribers by name, and stays while patterns
        // still cover it after they left (the writer keeps pattern subscribers in
        // existing topics' lists): at least the names subscribed to live, at most every
        // name ever subscribed to.
        let by_name = |s: &usize| !is_pattern(&self.names[*s]);
        let live_topics: BTreeSet<usize> = self
            .clients
            .values()
            .flat_map(|c| c.topics.iter().copied().filter(by_name))
            .collect();
        let all_topics: BTreeSet<usize> = if live_patterns + zombie_patterns == 0 {
            live_topics
                .iter()
                .copied()
                .chain(self.zombies.values().flatten().copied().filter(by_name))
                .collect()
        } else {
            (0..NAMES).filter(by_name).collect()
        };
        let within = |got: usize, lo: usize, hi: usize| got >= lo && got <= hi;
        assert!(
            within(
                stats.clients,
                self.clients.len(),
                self.clients.len() + self.zombies.len()
            ),
            "stats.clients {} (live {}, zombies {})",
            stats.clients,
            self.clients.len(),
            self.zombies.len()
        );
        assert!(
            within(stats.subscriptions, live_subs, live_subs + zombie_subs),
            "stats.subscriptions {} (live {live_subs}, zombie {zombie_subs})",
            stats.subscriptions
        );
        assert!(
            within(stats.topics, live_topics.len(), all_topics.len()),
            "stats.topics {} (live {}, with zombies {})",
            stats.topics,
            live_topics.len(),
            all_topics.len()
        );
    }

    /// Waits (bounded) until the writer has pruned every zombie, then checks the sizes
    /// exactly: nothing leaks in the registry.
    fn settle(&mut self) {
        if self.closed {
            return;
        }
        let live = self.clients.len();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ps.stats().clients != live {
            assert!(
                Instant::now() < deadline,
                "dropped/disconnected clients not pruned: stats.clients {} live {live}",
                self.ps.stats().clients
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        self.zombies.clear();
        self.check_stats();
        for (t, name) in self.names.iter().enumerate() {
            let (live, _) = self.subscribers(t);
            assert_eq!(
                self.ps.subscriber_count(name.as_str()).unwrap(),
                live.len(),
                "subscriber_count({name:?})"
            );
        }
    }

    /// Shuts down, then compares every sink's frames with the model and checks that the
    /// engine let go of every sink.
    fn finish(mut self) {
        self.settle();
        self.shutdown();
        self.check_stats();
        assert!(matches!(
            self.ps.subscribe(self.slots[0].id, "a"),
            Err(Error::Closed)
        ));
        for r in 0..self.registrations.len() {
            self.drain(r);
        }
        // Frames of one broadcast are one shared buffer; `broadcast_frame` hands out the
        // caller's own buffer.
        let mut addresses: HashMap<u64, usize> = self.frame_addresses.iter().copied().collect();
        for registration in &self.registrations {
            let frames: Vec<Bytes> = match &registration.actual {
                ActualSink::Callback(inbox) => {
                    // The engine dropped the callback: the harness holds the only handle.
                    assert_eq!(Arc::strong_count(inbox), 1, "callback sink leaked");
                    inbox.lock().unwrap().clone()
                }
                ActualSink::Channel { channel, drained } => {
                    if let Some(channel) = channel {
                        // Every sender is gone: the receiver has ended.
                        assert!(
                            channel.has_ended(),
                            "channel receiver did not end after shutdown"
                        );
                    }
                    drained.clone()
                }
            };
            let want = &registration.received;
            let got: Vec<(u8, String, Vec<u8>)> =
                frames.iter().map(|f| Expected::of_frame(f)).collect();
            let want_plain: Vec<(u8, String, Vec<u8>)> = want
                .iter()
                .map(|e| (e.kind, e.topic.clone(), e.payload.clone()))
                .collect();
            assert_eq!(
                got, want_plain,
                "frames received by {:?} ({:?})",
                registration.id, registration.model
            );
            for (frame, expected) in frames.iter().zip(want) {
                let address = frame.as_ptr() as usize;
                let first = *addresses.entry(expected.broadcast).or_insert(address);
                assert_eq!(
                    first, address,
                    "broadcast {} reached sinks in different buffers",
                    expected.broadcast
                );
            }
        }
    }
}

/// What one run exercised (so a caller can check its cases are not vacuous).
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub ops: usize,
    pub broadcasts: u64,
    pub deliveries: u64,
    pub dropped: u64,
    pub conflated: u64,
    pub disconnects: u64,
    /// Clients cut off (dropped channels, disconnects) whose removal was asynchronous.
    pub zombies: usize,
    pub shut_down: bool,
}

/// The whole target: run the ops the input encodes against the engine and the model.
pub fn run(data: &[u8]) -> Summary {
    let ops = parse(data);
    let mut harness = Harness::new();
    let mut summary = Summary {
        ops: ops.len(),
        ..Summary::default()
    };
    for (index, op) in ops.into_iter().enumerate() {
        let zombies = harness.zombies.len();
        harness.apply(index, op);
        harness.flush_presence();
        summary.zombies += harness.zombies.len().saturating_sub(zombies);
        harness.check_stats();
    }
    summary.broadcasts = harness.broadcasts;
    summary.deliveries = harness.deliveries;
    summary.dropped = harness.dropped;
    summary.conflated = harness.conflated;
    summary.disconnects = harness.disconnects;
    summary.shut_down = harness.closed;
    harness.finish();
    summary
}

/// Hand-made seeds: (name, ops).
pub fn seeds() -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    use TopicSel::*;
    let p = |len: u8| PayloadSel { len, fill: 0x5a };
    let chan = |slot: u8, capacity: u8, policy: PolicySel| RegisterChannel {
        slot,
        capacity,
        policy,
    };
    vec![
        (
            "basic",
            vec![
                Register { slot: 0 },
                chan(1, 7, PolicySel::DropNewest),
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(0),
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(3),
                },
                BroadcastFrom {
                    slot: 0,
                    topic: Str(0),
                    payload: p(5),
                },
                Unsubscribe {
                    slot: 1,
                    topic: Str(0),
                },
                Broadcast {
                    topic: Resolved(0),
                    payload: p(0),
                },
                Unregister { slot: 0 },
                Broadcast {
                    topic: Owned(0),
                    payload: p(1),
                },
                Drain { slot: 1 },
                SubscriberCount { topic: Str(0) },
            ],
        ),
        (
            "idempotent",
            vec![
                Register { slot: 0 },
                Subscribe {
                    slot: 0,
                    topic: Str(2),
                },
                Subscribe {
                    slot: 0,
                    topic: Resolved(2),
                },
                Subscribe {
                    slot: 0,
                    topic: Owned(2),
                },
                SubscriberCount { topic: Str(2) },
                Broadcast {
                    topic: Str(2),
                    payload: p(2),
                },
                Unsubscribe {
                    slot: 0,
                    topic: Str(2),
                },
                Unsubscribe {
                    slot: 0,
                    topic: Str(2),
                },
                Broadcast {
                    topic: Str(2),
                    payload: p(2),
                },
            ],
        ),
        (
            "overflow-policies",
            vec![
                chan(0, 1, PolicySel::DropNewest),
                chan(1, 1, PolicySel::DropOldest),
                chan(2, 1, PolicySel::Disconnect),
                chan(3, 2, PolicySel::BlockZero),
                Subscribe {
                    slot: 0,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 2,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 3,
                    topic: Str(1),
                },
                Broadcast {
                    topic: Str(1),
                    payload: p(1),
                },
                Broadcast {
                    topic: Str(1),
                    payload: p(2),
                },
                Broadcast {
                    topic: Str(1),
                    payload: p(3),
                },
                SubscriberCount { topic: Str(1) },
                Drain { slot: 0 },
                Drain { slot: 1 },
                Drain { slot: 2 },
                Broadcast {
                    topic: Str(1),
                    payload: p(4),
                },
                Subscribe {
                    slot: 2,
                    topic: Str(1),
                },
                Drain { slot: 3 },
            ],
        ),
        (
            "drop-channel",
            vec![
                chan(0, 7, PolicySel::DropOldest),
                Register { slot: 1 },
                Subscribe {
                    slot: 0,
                    topic: Str(3),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(3),
                },
                Broadcast {
                    topic: Str(3),
                    payload: p(9),
                },
                DropChannel { slot: 0 },
                Broadcast {
                    topic: Str(3),
                    payload: p(9),
                },
                SubscriberCount { topic: Str(3) },
                chan(0, 7, PolicySel::DropNewest),
                Subscribe {
                    slot: 0,
                    topic: Str(3),
                },
                Broadcast {
                    topic: Str(3),
                    payload: p(9),
                },
            ],
        ),
        (
            "bad-input",
            vec![
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                Unregister { slot: 0 },
                Register { slot: 0 },
                Subscribe {
                    slot: 0,
                    topic: Empty,
                },
                Subscribe {
                    slot: 0,
                    topic: TooLong,
                },
                Unsubscribe {
                    slot: 0,
                    topic: Empty,
                },
                Broadcast {
                    topic: Empty,
                    payload: p(1),
                },
                Broadcast {
                    topic: TooLong,
                    payload: p(1),
                },
                SubscriberCount { topic: TooLong },
                Register { slot: 0 },
                chan(0, 7, PolicySel::DropNewest),
                chan(1, 0, PolicySel::DropNewest),
                Unsubscribe {
                    slot: 2,
                    topic: Str(0),
                },
            ],
        ),
        (
            "frames",
            vec![
                Register { slot: 0 },
                chan(1, 7, PolicySel::DropNewest),
                Subscribe {
                    slot: 0,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(1),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(1),
                    frame_topic: 1,
                    payload: p(4),
                },
                BroadcastFrame {
                    from: Some(0),
                    topic: Resolved(1),
                    frame_topic: 1,
                    payload: p(4),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(1),
                    frame_topic: 0,
                    payload: p(4),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(1),
                    frame_topic: 4,
                    payload: p(4),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(0),
                    frame_topic: 5,
                    payload: p(4),
                },
                BroadcastFailing {
                    from: None,
                    topic: Str(1),
                },
                BroadcastFailing {
                    from: None,
                    topic: Str(0),
                },
                BroadcastFailing {
                    from: Some(0),
                    topic: Str(1),
                },
            ],
        ),
        (
            "shutdown",
            vec![
                Register { slot: 0 },
                chan(1, 7, PolicySel::DropNewest),
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(0),
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(2),
                },
                Shutdown { guard: 0 },
                Broadcast {
                    topic: Str(0),
                    payload: p(2),
                },
                Subscribe {
                    slot: 0,
                    topic: Str(1),
                },
                Register { slot: 2 },
                chan(2, 0, PolicySel::DropNewest),
                Unregister { slot: 0 },
                BroadcastFrame {
                    from: None,
                    topic: Str(0),
                    frame_topic: 0,
                    payload: p(1),
                },
                SubscriberCount { topic: Str(0) },
                Drain { slot: 1 },
                Shutdown { guard: 1 },
            ],
        ),
        (
            "apply",
            vec![
                Register { slot: 0 },
                chan(1, 7, PolicySel::DropNewest),
                Apply {
                    mutations: [
                        MutationSel::Subscribe { slot: 0, topic: 0 },
                        MutationSel::Subscribe { slot: 1, topic: 0 },
                        MutationSel::Subscribe { slot: 0, topic: 4 },
                    ],
                    count: 3,
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(2),
                },
                Apply {
                    mutations: [
                        MutationSel::Unsubscribe { slot: 0, topic: 0 },
                        MutationSel::Unregister { slot: 1 },
                        MutationSel::Subscribe { slot: 2, topic: 1 },
                    ],
                    count: 3,
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(2),
                },
                Apply {
                    mutations: [
                        MutationSel::Unregister { slot: 1 },
                        MutationSel::Unregister { slot: 0 },
                        MutationSel::Unregister { slot: 0 },
                    ],
                    count: 0,
                },
                Subscribe {
                    slot: 0,
                    topic: Foreign,
                },
                Broadcast {
                    topic: Foreign,
                    payload: p(1),
                },
                Shutdown { guard: 0 },
                Apply {
                    mutations: [
                        MutationSel::Unregister { slot: 0 },
                        MutationSel::Unregister { slot: 0 },
                        MutationSel::Unregister { slot: 0 },
                    ],
                    count: 0,
                },
            ],
        ),
        (
            "conflate",
            vec![
                chan(0, 2, PolicySel::Conflate),
                chan(1, 1, PolicySel::Conflate),
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                Subscribe {
                    slot: 0,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 0,
                    topic: Str(2),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(0),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(1),
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(1),
                },
                Broadcast {
                    topic: Str(1),
                    payload: p(2),
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(3),
                },
                Broadcast {
                    topic: Str(2),
                    payload: p(4),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(1),
                    frame_topic: 1,
                    payload: p(5),
                },
                Drain { slot: 0 },
                Broadcast {
                    topic: Str(2),
                    payload: p(6),
                },
                DropChannel { slot: 1 },
                Broadcast {
                    topic: Str(0),
                    payload: p(7),
                },
                Drain { slot: 0 },
                Shutdown { guard: 0 },
                Drain { slot: 0 },
            ],
        ),
        (
            "new-id",
            vec![
                Register { slot: 0 },
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                NewId { slot: 0 },
                Broadcast {
                    topic: Str(0),
                    payload: p(1),
                },
                Register { slot: 0 },
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                BroadcastFrom {
                    slot: 0,
                    topic: Str(0),
                    payload: p(1),
                },
                Unregister { slot: 0 },
                Register { slot: 0 },
                Broadcast {
                    topic: Str(0),
                    payload: p(1),
                },
            ],
        ),
    ]
}
