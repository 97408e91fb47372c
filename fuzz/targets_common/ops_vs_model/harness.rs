//! The driver: one function per op, each making the call on the engine, asking the model
//! what the call must return, and comparing. After every op the engine's `stats()` is
//! compared with the model's bounds; at the end ([`Harness::finish`]) every sink's exact
//! frame sequence is compared, frames of one broadcast must be one shared buffer, and
//! every sink must be freed by `shutdown`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use fanout::transport::{encode_push, RawPayload, SerialiseError};
use fanout::{ChannelConfig, ClientId, Error, Mutation, PubSub, Topic, TopicError};

use super::engine::{
    foreign_topic, frame_parts, outcome, outcome_of_error, overflow_policy, ActualSink, AnyChannel,
    TopicArg,
};
use super::model::{BatchOp, Model, Outcome, SinkModel, TopicIndex};
use super::ops::{channel_capacity, MutationSel, Op, PayloadSel, PolicySel, TopicSel, SLOTS};
use super::topics::{names, FOREIGN_TOPIC_LEN, MAX_TOPIC_LEN, NAMES};

/// The command queue's capacity. The default (4096 slots) is allocated and touched by
/// every engine start, which cost about a fifth of each run under ASan; this driver is
/// single-threaded and queues only prunes (dropped and disconnected channels). A burst
/// of more than 8 before the janitor runs can fill it, and the engine then falls back to
/// sweeping closed sinks: a path the default size never reaches here.
const COMMAND_CAPACITY: usize = 8;

/// An op's client slot: the id it names now, and its latest registration (kept after
/// the registration ends, for drains).
struct Slot {
    id: ClientId,
    registration: Option<usize>,
}

/// Everything one run keeps on the engine's side, and the model.
pub struct Harness {
    ps: PubSub<[u8]>,
    model: Model,
    /// The names pre-resolved by this engine.
    resolved: Vec<Topic>,
    too_long: String,
    /// Over this engine's limit, made by an engine with a larger one.
    foreign: Topic,
    slots: Vec<Slot>,
    /// The engine's sink of each of the model's registrations, at the same index.
    sinks: Vec<ActualSink>,
    /// (broadcast number, address) of frames given to `broadcast_frame`.
    frame_addresses: Vec<(u64, usize)>,
}

impl Harness {
    pub fn new() -> Self {
        let ps = PubSub::<[u8]>::builder()
            .command_capacity(COMMAND_CAPACITY)
            .build()
            .expect("engine starts");
        let resolved = names()
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
        let slots = (0..SLOTS)
            .map(|_| Slot {
                id: ps.generate_client_id(),
                registration: None,
            })
            .collect();
        Self {
            ps,
            model: Model::default(),
            resolved,
            too_long,
            foreign: foreign_topic(),
            slots,
            sinks: Vec::new(),
            frame_addresses: Vec::new(),
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Runs op number `index`, then the presence changes it made, then compares stats.
    pub fn step(&mut self, index: usize, op: Op) {
        match op {
            Op::Register { slot } => self.register(slot),
            Op::RegisterChannel {
                slot,
                capacity,
                policy,
            } => self.register_channel(slot, channel_capacity(capacity), policy),
            Op::Subscribe { slot, topic } => self.subscribe(slot, topic, true),
            Op::Unsubscribe { slot, topic } => self.subscribe(slot, topic, false),
            Op::Unregister { slot } => self.unregister(slot),
            Op::Broadcast { topic, payload } => self.broadcast(index, None, topic, payload),
            Op::BroadcastFrom {
                slot,
                topic,
                payload,
            } => self.broadcast(index, Some(slot), topic, payload),
            Op::BroadcastFrame {
                from,
                topic,
                frame_topic,
                payload,
            } => self.broadcast_frame(index, from, topic, frame_topic, payload),
            Op::BroadcastFailing { from, topic } => self.broadcast_failing(from, topic),
            Op::Drain { slot } => self.drain_slot(slot),
            Op::DropChannel { slot } => self.drop_channel(slot),
            Op::NewId { slot } => self.new_id(slot),
            Op::SubscriberCount { topic } => self.subscriber_count(topic),
            Op::Shutdown { guard } => {
                if guard < 8 {
                    self.shutdown();
                }
            }
            Op::Track { slot, topic, meta } => self.track(slot, topic, meta),
            Op::Untrack { slot, topic } => self.untrack(slot, topic),
            Op::List { topic } => self.list(topic),
            Op::Apply { mutations, count } => self.apply(&mutations[..usize::from(count % 4)]),
        }
        self.model.flush_presence();
        // Ids the op cut off are never named again: their slots get fresh ones.
        for id in self.model.take_killed() {
            for slot in self.slots.iter_mut().filter(|s| s.id == id) {
                slot.id = self.ps.generate_client_id();
            }
        }
        self.check_stats();
    }

    fn id(&self, slot: u8) -> ClientId {
        self.slots[usize::from(slot) % SLOTS].id
    }

    /// The engine's argument for `sel`, and the model's index (or the error it names).
    fn topic(&self, sel: TopicSel) -> (TopicArg<'_>, TopicIndex) {
        let index = |i: u8| usize::from(i) % NAMES;
        match sel {
            TopicSel::Str(i) => (TopicArg::Str(&names()[index(i)]), Ok(index(i))),
            TopicSel::Owned(i) => (TopicArg::Owned(&names()[index(i)]), Ok(index(i))),
            TopicSel::Resolved(i) => (TopicArg::Resolved(&self.resolved[index(i)]), Ok(index(i))),
            TopicSel::Empty => (TopicArg::Str(""), Err(Outcome::TopicEmpty)),
            TopicSel::TooLong => {
                let len = MAX_TOPIC_LEN + 1;
                let max = MAX_TOPIC_LEN;
                let want = Err(Outcome::TopicTooLong { len, max });
                (TopicArg::Str(&self.too_long), want)
            }
            TopicSel::Foreign => {
                let len = FOREIGN_TOPIC_LEN;
                let max = MAX_TOPIC_LEN;
                let want = Err(Outcome::TopicTooLong { len, max });
                (TopicArg::Resolved(&self.foreign), want)
            }
        }
    }

    /// The model accepted registration `r` of slot `slot`; the engine's sink goes with it.
    fn add_sink(&mut self, slot: u8, r: usize, sink: ActualSink) {
        assert_eq!(r, self.sinks.len(), "registrations stay aligned");
        self.sinks.push(sink);
        self.slots[usize::from(slot) % SLOTS].registration = Some(r);
    }

    fn register(&mut self, slot: u8) {
        let id = self.id(slot);
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&inbox);
        let got = outcome(
            self.ps.register(id, move |frame: &Bytes| {
                sink.lock().unwrap().push(frame.clone());
            }),
            |()| 0,
        );
        let want = self.model.register(id, SinkModel::Callback);
        assert_eq!(
            got,
            want.clone().map_or_else(|e| e, |_| Outcome::Ok(0)),
            "register"
        );
        if let Ok(r) = want {
            self.add_sink(slot, r, ActualSink::Callback(inbox));
        }
    }

    fn register_channel(&mut self, slot: u8, capacity: usize, policy: PolicySel) {
        let id = self.id(slot);
        let result = match overflow_policy(policy) {
            Some(overflow) => self
                .ps
                .register_channel_with(id, ChannelConfig::new(capacity, overflow))
                .map(AnyChannel::Queue),
            None => self
                .ps
                .register_conflating(id, capacity)
                .map(AnyChannel::Conflating),
        };
        let sink = SinkModel::Channel {
            capacity,
            policy,
            queue: VecDeque::new(),
            dropped: 0,
            conflated: 0,
            reason: None,
        };
        let want = self.model.register(id, sink);
        match (result, want) {
            (Ok(channel), Ok(r)) => {
                assert_eq!(channel.id(), id);
                channel.check(&self.model.registrations[r].sink, "when registered");
                let channel = Some(channel);
                let drained = Vec::new();
                self.add_sink(slot, r, ActualSink::Channel { channel, drained });
            }
            (Err(e), Err(want)) => assert_eq!(outcome_of_error(e), want, "register_channel"),
            (got, want) => panic!(
                "register_channel: {:?}, the model expects {want:?}",
                got.map(|_| ())
            ),
        }
    }

    /// `subscribe`, or `unsubscribe`.
    fn subscribe(&mut self, slot: u8, topic: TopicSel, subscribe: bool) {
        let id = self.id(slot);
        let (arg, t) = self.topic(topic);
        let got = if subscribe {
            with_topic!(&arg, |t| outcome(self.ps.subscribe(id, t), |()| 0))
        } else {
            with_topic!(&arg, |t| outcome(self.ps.unsubscribe(id, t), |()| 0))
        };
        let want = self.model.subscribe(id, t, subscribe);
        assert_eq!(got, want, "subscribe {subscribe} {slot} {topic:?}");
    }

    fn unregister(&mut self, slot: u8) {
        let id = self.id(slot);
        let got = outcome(self.ps.unregister(id), |()| 0);
        assert_eq!(got, self.model.unregister(id), "unregister");
    }

    /// `broadcast`, or `broadcast_from` the client in slot `from`.
    fn broadcast(&mut self, index: usize, from: Option<u8>, topic: TopicSel, payload: PayloadSel) {
        let from = from.map(|s| self.id(s));
        let payload = payload.bytes(index);
        let calls = Cell::new(0u32);
        let serialiser = |m: &[u8], out: &mut BytesMut| -> Result<(), SerialiseError> {
            calls.set(calls.get() + 1);
            out.put_slice(m);
            Ok(())
        };
        let (arg, t) = self.topic(topic);
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
        let want = self.model.broadcast(t, from, &payload);
        assert_eq!(got, want.outcome, "broadcast from {from:?} on {topic:?}");
        let calls = calls.get();
        assert!(calls <= 1, "serialiser ran {calls} times");
        assert!(
            calls >= u32::from(want.must) && calls <= u32::from(want.may),
            "serialiser ran {calls} times (must: {}, may: {})",
            want.must,
            want.may
        );
    }

    /// `encode` a frame for name `frame_topic % 6` (4: a garbage frame, 5: a frame with a
    /// trailing byte) and `broadcast_frame[_from]` it on `topic`.
    fn broadcast_frame(
        &mut self,
        index: usize,
        from: Option<u8>,
        topic: TopicSel,
        frame_topic: u8,
        payload: PayloadSel,
    ) {
        let from = from.map(|s| self.id(s));
        let payload = payload.bytes(index);
        let frame_topic = usize::from(frame_topic) % 6;
        let frame = match frame_topic {
            0..=3 => {
                let name = &names()[frame_topic];
                let encoded = self.ps.encode(name.as_str(), &payload, &RawPayload);
                let frame = encode_push(name, &payload).unwrap();
                if self.model.is_closed() {
                    // Like every call but `stats`, `encode` is `Closed` after shutdown.
                    assert!(matches!(encoded, Err(Error::Closed)), "{encoded:?}");
                } else {
                    assert_eq!(encoded.expect("encode"), frame);
                }
                frame
            }
            4 => Bytes::from_static(&[1, 1, 0]),
            _ => {
                let mut v = encode_push(&names()[0], &payload).unwrap().to_vec();
                v.push(0);
                Bytes::from(v)
            }
        };
        let (arg, t) = self.topic(topic);
        let got = match from {
            None => with_topic!(&arg, |t| outcome(self.ps.broadcast_frame(t, &frame), |n| n)),
            Some(from) => with_topic!(&arg, |t| outcome(
                self.ps.broadcast_frame_from(from, t, &frame),
                |n| n
            )),
        };
        let want = self.model.broadcast_frame(t, frame_topic, from, &payload);
        if let Some(number) = want.number {
            // The frame itself must be what sinks get: remember its address.
            self.frame_addresses.push((number, frame.as_ptr() as usize));
        }
        assert_eq!(
            got, want.outcome,
            "broadcast_frame {frame_topic} on {topic:?}"
        );
    }

    /// A broadcast whose serialiser fails.
    fn broadcast_failing(&mut self, from: Option<u8>, topic: TopicSel) {
        let from = from.map(|s| self.id(s));
        let failing = |_: &[u8], _: &mut BytesMut| -> Result<(), SerialiseError> {
            Err(SerialiseError::new("refused"))
        };
        let (arg, t) = self.topic(topic);
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
        let allowed = self.model.broadcast_failing(t, from);
        assert!(
            allowed.contains(&got),
            "failing broadcast on {topic:?}: {got:?}, the model allows {allowed:?}"
        );
    }

    fn drain_slot(&mut self, slot: u8) {
        if let Some(r) = self.slots[usize::from(slot) % SLOTS].registration {
            self.drain(r);
        }
    }

    /// Receives everything queued on registration `r`'s channel (if it still has one).
    fn drain(&mut self, r: usize) {
        let ActualSink::Channel {
            channel: Some(channel),
            drained,
        } = &mut self.sinks[r]
        else {
            return;
        };
        channel.check(&self.model.registrations[r].sink, "when drained");
        drained.extend(channel.drain());
        self.model.drain(r);
    }

    /// Drops the slot's channel (an unsubscribe the engine applies asynchronously).
    fn drop_channel(&mut self, slot: u8) {
        let Some(r) = self.slots[usize::from(slot) % SLOTS].registration else {
            return;
        };
        let ActualSink::Channel { channel, .. } = &mut self.sinks[r] else {
            return;
        };
        let Some(channel) = channel.take() else {
            return;
        };
        channel.check(&self.model.registrations[r].sink, "before drop");
        drop(channel);
        self.model.drop_channel(r);
    }

    /// Gives the slot a fresh id, leaving its registration (if any) alive and unreachable.
    fn new_id(&mut self, slot: u8) {
        self.slots[usize::from(slot) % SLOTS] = Slot {
            id: self.ps.generate_client_id(),
            registration: None,
        };
    }

    fn subscriber_count(&mut self, topic: TopicSel) {
        let (arg, t) = self.topic(topic);
        let got = with_topic!(&arg, |t| outcome(self.ps.subscriber_count(t), |n| n));
        match (got, self.model.subscriber_count(t)) {
            (Outcome::Ok(n), Ok((lo, hi))) => {
                assert!(n >= lo && n <= hi, "subscriber_count {n}, want {lo}..={hi}")
            }
            (got, Err(want)) => assert_eq!(got, want, "subscriber_count"),
            (got, want) => panic!("subscriber_count: {got:?}, the model expects {want:?}"),
        }
    }

    fn shutdown(&mut self) {
        self.ps.shutdown();
        assert!(self.ps.is_closed());
        self.model.shutdown();
    }

    /// `track` with metadata `[meta]` (empty when `meta % 4 == 0`), for callback clients
    /// and unknown ids only (see [`Op::Track`]).
    fn track(&mut self, slot: u8, topic: TopicSel, meta: u8) {
        let id = self.id(slot);
        if self.model.is_channel_client(id) {
            return;
        }
        let meta = if meta % 4 == 0 {
            Vec::new()
        } else {
            vec![meta]
        };
        let (arg, t) = self.topic(topic);
        let got = with_topic!(&arg, |t| outcome(
            self.ps.track(id, t, Bytes::from(meta.clone())),
            |()| 0
        ));
        assert_eq!(got, self.model.track(id, t, meta), "track {slot} {topic:?}");
    }

    fn untrack(&mut self, slot: u8, topic: TopicSel) {
        let id = self.id(slot);
        let (arg, t) = self.topic(topic);
        let got = with_topic!(&arg, |t| outcome(self.ps.untrack(id, t), |()| 0));
        assert_eq!(got, self.model.untrack(id, t), "untrack {slot} {topic:?}");
    }

    fn list(&mut self, topic: TopicSel) {
        let (arg, t) = self.topic(topic);
        let got = with_topic!(&arg, |t| self.ps.list(t));
        match (got, t) {
            (Err(e), _) if self.model.is_closed() => {
                assert_eq!(outcome_of_error(e), Outcome::Closed)
            }
            (Err(e), Err(invalid)) => assert_eq!(outcome_of_error(e), invalid),
            (Ok(members), Ok(t)) => {
                let got: Vec<(ClientId, Vec<u8>)> = members
                    .into_iter()
                    .map(|m| (m.client, m.meta.to_vec()))
                    .collect();
                assert_eq!(got, self.model.members(t), "list {topic:?}");
            }
            (got, want) => panic!("list: {got:?}, the model expects {want:?}"),
        }
    }

    /// `PubSub::apply` of a batch; topic `t % 9 == 8` is the foreign one.
    fn apply(&mut self, list: &[MutationSel]) {
        let topic = |t: u8| match usize::from(t) % (NAMES + 1) {
            NAMES => None,
            t => Some(t),
        };
        let batch: Vec<BatchOp> = list
            .iter()
            .map(|m| match *m {
                MutationSel::Subscribe { slot, topic: t } => {
                    BatchOp::Subscribe(self.id(slot), topic(t))
                }
                MutationSel::Unsubscribe { slot, topic: t } => {
                    BatchOp::Unsubscribe(self.id(slot), topic(t))
                }
                MutationSel::Unregister { slot } => BatchOp::Unregister(self.id(slot)),
            })
            .collect();
        let resolved =
            |t: Option<usize>| t.map_or_else(|| self.foreign.clone(), |t| self.resolved[t].clone());
        let mutations: Vec<Mutation> = batch
            .iter()
            .map(|m| match *m {
                BatchOp::Subscribe(id, t) => Mutation::Subscribe(id, resolved(t)),
                BatchOp::Unsubscribe(id, t) => Mutation::Unsubscribe(id, resolved(t)),
                BatchOp::Unregister(id) => Mutation::Unregister(id),
            })
            .collect();
        let got = match self.ps.apply(mutations) {
            Ok(results) => Ok(results
                .into_iter()
                .map(|r| outcome(r, |()| 0))
                .collect::<Vec<_>>()),
            Err(e) => Err(outcome_of_error(e)),
        };
        assert_eq!(got, self.model.apply(&batch), "apply {list:?}");
    }

    /// Compares the engine's counters and sizes with the model's bounds.
    fn check_stats(&self) {
        let stats = self.ps.stats();
        let want = self.model.bounds();
        assert_eq!(stats.deliveries, want.deliveries, "stats.deliveries");
        assert_eq!(stats.dropped, want.dropped, "stats.dropped");
        assert_eq!(stats.conflated, want.conflated, "stats.conflated");
        assert_eq!(stats.disconnects, want.disconnects, "stats.disconnects");
        assert_eq!(stats.panics, 0, "stats.panics");
        let within = |name: &str, got: usize, (lo, hi): (usize, usize)| {
            assert!(
                got >= lo && got <= hi,
                "stats.{name} {got} not in {lo}..={hi}"
            );
        };
        let (lo, hi) = want.broadcasts;
        let broadcasts = stats.broadcasts;
        assert!(
            broadcasts >= lo && broadcasts <= hi,
            "stats.broadcasts {broadcasts} not in {lo}..={hi}"
        );
        within("clients", stats.clients, want.clients);
        within("subscriptions", stats.subscriptions, want.subscriptions);
        within("patterns", stats.patterns, want.patterns);
        within("topics", stats.topics, want.topics);
    }

    /// Waits (bounded) until the writer has pruned every zombie, then checks the sizes
    /// exactly: nothing leaks in the registry.
    fn settle(&mut self) {
        if self.model.is_closed() {
            return;
        }
        let live = self.model.live_clients();
        let deadline = Instant::now() + Duration::from_secs(5);
        // The janitor usually prunes within microseconds of being woken: poll often at
        // first, then back off (sleeping, never spinning) to at most a millisecond.
        let mut pause = Duration::from_micros(10);
        while self.ps.stats().clients != live {
            assert!(
                Instant::now() < deadline,
                "dropped/disconnected clients not pruned: stats.clients {} live {live}",
                self.ps.stats().clients
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
        self.model.settle();
        self.check_stats();
        for (t, name) in names().iter().enumerate() {
            let (live, _) = self.model.subscribers(t);
            assert_eq!(
                self.ps.subscriber_count(name.as_str()).unwrap(),
                live.len(),
                "subscriber_count({name:?})"
            );
        }
    }

    /// Shuts down, then compares every sink's frames with the model and checks that the
    /// engine let go of every sink.
    pub fn finish(mut self) {
        self.settle();
        self.shutdown();
        self.check_stats();
        assert!(matches!(
            self.ps.subscribe(self.slots[0].id, "a"),
            Err(Error::Closed)
        ));
        for r in 0..self.sinks.len() {
            self.drain(r);
        }
        // Frames of one broadcast are one shared buffer; `broadcast_frame` hands out the
        // caller's own buffer.
        let mut addresses: std::collections::HashMap<u64, usize> =
            self.frame_addresses.iter().copied().collect();
        for (sink, registration) in self.sinks.iter().zip(&self.model.registrations) {
            let frames: Vec<Bytes> = match sink {
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
            let got: Vec<(u8, String, Vec<u8>)> = frames.iter().map(|f| frame_parts(f)).collect();
            let want_plain: Vec<(u8, String, Vec<u8>)> = want
                .iter()
                .map(|e| (e.kind, e.topic.clone(), e.payload.clone()))
                .collect();
            assert_eq!(
                got, want_plain,
                "frames received by {:?} ({:?})",
                registration.id, registration.sink
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
