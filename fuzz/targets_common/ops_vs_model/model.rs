//! The reference model: what `PubSub<[u8]>` must answer and deliver, written as plain
//! single-threaded bookkeeping over plain data (client ids, topic indices, byte strings),
//! with no engine and no threads in it. The harness asks it what each call must return
//! and compares; it never looks at the engine's state.
//!
//! Topics are indices into [`names`](super::topics::names). Who a broadcast reaches is decided by matching every
//! subscription of every client with the model's own NATS matcher (`topics.rs`), each
//! client at most once. Each registration keeps the frames its sink must have received
//! ([`Expected`]); a channel's queue applies its overflow policy, or conflates by topic.
//!
//! Clients cut off asynchronously — a dropped channel, a `Disconnect` overflow — are
//! *zombies*: they receive nothing more, but the engine's writer may not have removed
//! them yet, so every size that counts them is a range ([`Bounds`]) until
//! [`settle`](Model::settle) says the writer is done.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use fanout::transport::PresenceEvent;
use fanout::{ClientId, DisconnectReason};

use super::ops::PolicySel;
use super::topics::{names, pattern, reaches, FOREIGN_TOPIC_LEN, MAX_TOPIC_LEN, NAMES};

/// A call's result, comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
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

/// A topic as an op names it: a name's index, or the error naming it must give.
pub type TopicIndex = Result<usize, Outcome>;

/// A frame a sink should receive: which broadcast, on which topic, with what payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub broadcast: u64,
    /// The frame kind: 1 Push, 2 Presence.
    pub kind: u8,
    pub topic: String,
    /// A Push frame's payload; for a Presence frame its event byte, client id (8 bytes,
    /// big-endian) and metadata.
    pub payload: Vec<u8>,
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
}

/// The model of one sink (one successful registration).
#[derive(Debug)]
pub enum SinkModel {
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

/// One successful registration: its sink's model and the frames it must have received
/// (a callback) or that were drained from it (a channel).
#[derive(Debug)]
pub struct Registration {
    pub id: ClientId,
    pub sink: SinkModel,
    pub received: Vec<Expected>,
}

/// A client the model knows to be registered.
struct Client {
    registration: usize,
    topics: BTreeSet<usize>,
}

/// One mutation of a batch, resolved: a topic of `None` is the over-long foreign one.
#[derive(Debug, Clone, Copy)]
pub enum BatchOp {
    Subscribe(ClientId, Option<usize>),
    Unsubscribe(ClientId, Option<usize>),
    Unregister(ClientId),
}

/// What a broadcast must do: its result, and whether its serialiser must run and may run
/// (it may run for a topic only zombies still subscribe to).
#[derive(Debug)]
pub struct BroadcastWant {
    pub outcome: Outcome,
    pub must: bool,
    pub may: bool,
    /// The number of the broadcast whose frame sinks get, if one was delivered.
    pub number: Option<u64>,
}

/// What `stats()` must say: exact counters, and sizes as inclusive ranges.
#[derive(Debug, PartialEq, Eq)]
pub struct Bounds {
    pub deliveries: u64,
    pub dropped: u64,
    pub conflated: u64,
    pub disconnects: u64,
    pub broadcasts: (u64, u64),
    pub clients: (usize, usize),
    pub topics: (usize, usize),
    pub subscriptions: (usize, usize),
    pub patterns: (usize, usize),
}

/// Everything the model keeps for one run.
#[derive(Default)]
pub struct Model {
    closed: bool,
    /// Registered clients.
    clients: HashMap<ClientId, Client>,
    /// Cut-off clients the writer removes asynchronously: id → topics.
    zombies: HashMap<ClientId, BTreeSet<usize>>,
    /// Ids cut off by the last op, for the harness to stop naming.
    killed: Vec<ClientId>,
    /// Every successful registration, in order (the harness keeps the engine's sinks
    /// at the same indices).
    pub registrations: Vec<Registration>,
    /// Broadcasts that reached somebody so far (numbers the frames).
    pub broadcasts: u64,
    /// Engine-wide counters.
    pub deliveries: u64,
    pub dropped: u64,
    pub conflated: u64,
    pub disconnects: u64,
    /// Bounds on `Stats::broadcasts` (a broadcast reaching only zombies may count).
    counted_min: u64,
    counted_max: u64,
    /// Presence: topic → member → metadata.
    presence: HashMap<usize, BTreeMap<ClientId, Vec<u8>>>,
    /// Each member's tracked topics in the engine's order (appended; untracking moves
    /// the last into the hole, as `swap_remove` does): the order its leaves go out in.
    tracked: HashMap<ClientId, Vec<usize>>,
    /// Presence changes of the current op, delivered when it ends (the engine delivers
    /// them after the whole batch is applied, before the call returns).
    pending_presence: Vec<(usize, PresenceEvent, ClientId, Vec<u8>)>,
}

impl Model {
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn zombies(&self) -> usize {
        self.zombies.len()
    }

    pub fn live_clients(&self) -> usize {
        self.clients.len()
    }

    /// The ids the last ops cut off (their slots must get fresh ids).
    pub fn take_killed(&mut self) -> Vec<ClientId> {
        std::mem::take(&mut self.killed)
    }

    /// Whether `id` is registered with a channel.
    pub fn is_channel_client(&self, id: ClientId) -> bool {
        self.clients.get(&id).is_some_and(|c| {
            matches!(
                self.registrations[c.registration].sink,
                SinkModel::Channel { .. }
            )
        })
    }

    /// `register`: `Ok(registration index)` if it must succeed.
    pub fn register(&mut self, id: ClientId, sink: SinkModel) -> Result<usize, Outcome> {
        if let SinkModel::Channel { capacity: 0, .. } = sink {
            return Err(Outcome::InvalidConfig);
        }
        if self.closed {
            return Err(Outcome::Closed);
        }
        if self.clients.contains_key(&id) {
            return Err(Outcome::DuplicateClient(id));
        }
        self.registrations.push(Registration {
            id,
            sink,
            received: Vec::new(),
        });
        let registration = self.registrations.len() - 1;
        let topics = BTreeSet::new();
        self.clients.insert(
            id,
            Client {
                registration,
                topics,
            },
        );
        Ok(registration)
    }

    /// `subscribe` (or `unsubscribe`) of `id` to topic `t`.
    pub fn subscribe(&mut self, id: ClientId, t: TopicIndex, subscribe: bool) -> Outcome {
        let t = match t {
            Err(invalid) => return invalid,
            Ok(_) if self.closed => return Outcome::Closed,
            Ok(t) => t,
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return Outcome::UnknownClient(id);
        };
        if subscribe {
            client.topics.insert(t);
        } else {
            client.topics.remove(&t);
        }
        Outcome::Ok(0)
    }

    /// `unregister(id)`.
    pub fn unregister(&mut self, id: ClientId) -> Outcome {
        if self.closed {
            return Outcome::Closed;
        }
        let Some(client) = self.clients.remove(&id) else {
            return Outcome::UnknownClient(id);
        };
        if let SinkModel::Channel { reason, .. } = &mut self.registrations[client.registration].sink
        {
            *reason = Some(DisconnectReason::Unsubscribed);
        }
        // It leaves every topic it was tracked in, in the engine's order.
        for t in self.tracked.remove(&id).unwrap_or_default() {
            self.leave(id, t);
        }
        Outcome::Ok(0)
    }

    /// `apply(batch)`: one result per mutation, in order, or `Closed` for the batch.
    pub fn apply(&mut self, batch: &[BatchOp]) -> Result<Vec<Outcome>, Outcome> {
        if self.closed {
            return Err(Outcome::Closed);
        }
        let topic = |t: Option<usize>| {
            t.ok_or(Outcome::TopicTooLong {
                len: FOREIGN_TOPIC_LEN,
                max: MAX_TOPIC_LEN,
            })
        };
        let results = batch.iter().map(|m| match *m {
            BatchOp::Subscribe(id, t) => self.subscribe(id, topic(t), true),
            BatchOp::Unsubscribe(id, t) => self.subscribe(id, topic(t), false),
            BatchOp::Unregister(id) => self.unregister(id),
        });
        Ok(results.collect())
    }

    /// Live subscribers a broadcast on topic `t` reaches (by name or by pattern, each
    /// once), sorted, and zombies that may still be listed.
    pub fn subscribers(&self, t: usize) -> (Vec<ClientId>, Vec<ClientId>) {
        let reaches = |subs: &BTreeSet<usize>| subs.iter().any(|&s| reaches(s, t));
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

    /// `subscriber_count(t)`: the inclusive range it may return.
    pub fn subscriber_count(&self, t: TopicIndex) -> Result<(usize, usize), Outcome> {
        // After shutdown every call but `stats` is `Closed`, checked first.
        if self.closed {
            return Err(Outcome::Closed);
        }
        let (live, zombies) = self.subscribers(t?);
        Ok((live.len(), live.len() + zombies.len()))
    }

    /// `broadcast` / `broadcast_from` of `payload` on topic `t`.
    pub fn broadcast(
        &mut self,
        t: TopicIndex,
        from: Option<ClientId>,
        payload: &[u8],
    ) -> BroadcastWant {
        let idle = |outcome| BroadcastWant {
            outcome,
            must: false,
            may: false,
            number: None,
        };
        match t {
            Err(invalid) => idle(invalid),
            Ok(_) if self.closed => idle(Outcome::Closed),
            Ok(t) => self.deliver_push(t, from, payload),
        }
    }

    /// `broadcast_frame[_from]` on topic `t` of a frame encoded for name `frame_topic`
    /// (4 and 5: malformed frames, which match no topic).
    pub fn broadcast_frame(
        &mut self,
        t: TopicIndex,
        frame_topic: usize,
        from: Option<ClientId>,
        payload: &[u8],
    ) -> BroadcastWant {
        let t = match t {
            Ok(t) if frame_topic > 3 || t != frame_topic => Err(Outcome::FrameMismatch),
            other => other,
        };
        self.broadcast(t, from, payload)
    }

    /// A broadcast whose serialiser fails: the results it may give.
    pub fn broadcast_failing(&self, t: TopicIndex, from: Option<ClientId>) -> Vec<Outcome> {
        let t = match t {
            Err(invalid) => return vec![invalid],
            Ok(_) if self.closed => return vec![Outcome::Closed],
            Ok(t) => t,
        };
        let (live, zombies) = self.subscribers(t);
        let must = live.iter().any(|id| Some(*id) != from);
        let may = must || zombies.iter().any(|id| Some(*id) != from);
        match (must, may) {
            (true, _) => vec![Outcome::Serialise],
            (false, false) => vec![Outcome::Ok(0)],
            (false, true) => vec![Outcome::Ok(0), Outcome::Serialise],
        }
    }

    /// One Push broadcast on topic `t` skipping `from`, delivered to the live subscribers.
    fn deliver_push(&mut self, t: usize, from: Option<ClientId>, payload: &[u8]) -> BroadcastWant {
        let (live, zombies) = self.subscribers(t);
        let receivers: Vec<ClientId> = live.into_iter().filter(|id| Some(*id) != from).collect();
        let must = !receivers.is_empty();
        let may = must || zombies.iter().any(|id| Some(*id) != from);
        self.count_broadcast(must, may);
        if !must {
            return BroadcastWant {
                outcome: Outcome::Ok(0),
                must,
                may,
                number: None,
            };
        }
        self.broadcasts += 1;
        let frame = Expected {
            broadcast: self.broadcasts,
            kind: 1,
            topic: names()[t].clone(),
            payload: payload.to_vec(),
        };
        let delivered = self.deliver(receivers, frame);
        BroadcastWant {
            outcome: Outcome::Ok(delivered),
            must,
            may,
            number: Some(self.broadcasts),
        }
    }

    fn count_broadcast(&mut self, must: bool, may: bool) {
        self.counted_min += u64::from(must);
        self.counted_max += u64::from(may);
    }

    /// Hands `frame` to each of `receivers` per its sink's model; returns how many got it.
    fn deliver(&mut self, receivers: Vec<ClientId>, frame: Expected) -> usize {
        let mut delivered = 0;
        let mut cut_off = Vec::new();
        for id in receivers {
            let r = self.clients[&id].registration;
            let registration = &mut self.registrations[r];
            let SinkModel::Channel {
                capacity,
                policy,
                queue,
                dropped,
                conflated,
                reason,
            } = &mut registration.sink
            else {
                registration.received.push(frame.clone());
                delivered += 1;
                continue;
            };
            assert!(reason.is_none(), "a live client's channel is open");
            if *policy == PolicySel::Conflate {
                // The topic's queued frame, if any, is replaced where it stands.
                let key = frame.conflation_key();
                if let Some(queued) = queue.iter_mut().find(|e| e.conflation_key() == key) {
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
        for id in cut_off {
            self.kill(id);
        }
        self.deliveries += delivered as u64;
        delivered
    }

    /// The client with `id` is cut off (channel dropped or disconnected): it becomes a
    /// zombie, and its id is never named again (whether the writer has pruned it yet is
    /// not known).
    fn kill(&mut self, id: ClientId) {
        let client = self.clients.remove(&id).expect("killing a live client");
        self.zombies.insert(id, client.topics);
        self.killed.push(id);
    }

    /// Receives everything queued on registration `r`'s channel.
    pub fn drain(&mut self, r: usize) {
        let registration = &mut self.registrations[r];
        if let SinkModel::Channel { queue, .. } = &mut registration.sink {
            registration.received.extend(queue.drain(..));
        }
    }

    /// The consumer drops registration `r`'s channel: what was queued is lost with it,
    /// and a live client is cut off (the engine removes it asynchronously).
    pub fn drop_channel(&mut self, r: usize) {
        let registration = &mut self.registrations[r];
        let SinkModel::Channel { queue, reason, .. } = &mut registration.sink else {
            unreachable!("only a channel is dropped");
        };
        queue.clear();
        if reason.is_none() && !self.closed {
            *reason = Some(DisconnectReason::Unsubscribed);
            let id = registration.id;
            self.kill(id);
        }
    }

    /// `shutdown`: every channel is cut off; the registry and presence empty out.
    pub fn shutdown(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for (_, client) in self.clients.drain() {
            if let SinkModel::Channel { reason, .. } =
                &mut self.registrations[client.registration].sink
            {
                *reason = Some(DisconnectReason::Shutdown);
            }
        }
        self.zombies.clear();
        self.presence.clear();
        self.tracked.clear();
        self.pending_presence.clear();
    }

    /// The writer has removed every zombie.
    pub fn settle(&mut self) {
        self.zombies.clear();
    }

    /// `track(id, t, meta)`.
    pub fn track(&mut self, id: ClientId, t: TopicIndex, meta: Vec<u8>) -> Outcome {
        let t = match t {
            Err(invalid) => return invalid,
            Ok(_) if self.closed => return Outcome::Closed,
            Ok(_) if !self.clients.contains_key(&id) => return Outcome::UnknownClient(id),
            Ok(t) => t,
        };
        let members = self.presence.entry(t).or_default();
        match members.insert(id, meta.clone()) {
            Some(previous) if previous == meta => {}
            Some(_) => self
                .pending_presence
                .push((t, PresenceEvent::Join, id, meta)),
            None => {
                self.tracked.entry(id).or_default().push(t);
                self.pending_presence
                    .push((t, PresenceEvent::Join, id, meta));
            }
        }
        Outcome::Ok(0)
    }

    /// `untrack(id, t)` (a no-op for a client not tracked there).
    pub fn untrack(&mut self, id: ClientId, t: TopicIndex) -> Outcome {
        let t = match t {
            Err(invalid) => return invalid,
            Ok(_) if self.closed => return Outcome::Closed,
            Ok(_) if !self.clients.contains_key(&id) => return Outcome::UnknownClient(id),
            Ok(t) => t,
        };
        let Some(topics) = self.tracked.get_mut(&id) else {
            return Outcome::Ok(0);
        };
        let Some(position) = topics.iter().position(|&x| x == t) else {
            return Outcome::Ok(0);
        };
        topics.swap_remove(position);
        if topics.is_empty() {
            self.tracked.remove(&id);
        }
        self.leave(id, t);
        Outcome::Ok(0)
    }

    fn leave(&mut self, id: ClientId, t: usize) {
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

    /// `list(t)`'s members, in id order.
    pub fn members(&self, t: usize) -> Vec<(ClientId, Vec<u8>)> {
        let members = self.presence.get(&t).into_iter().flatten();
        members.map(|(id, meta)| (*id, meta.clone())).collect()
    }

    /// Delivers the presence changes the last op made, in order: each a Presence frame
    /// to everyone a broadcast on its topic reaches (the member included, if it
    /// subscribes).
    pub fn flush_presence(&mut self) {
        for (t, event, client, meta) in std::mem::take(&mut self.pending_presence) {
            let (live, zombies) = self.subscribers(t);
            self.count_broadcast(!live.is_empty(), !live.is_empty() || !zombies.is_empty());
            if live.is_empty() {
                continue;
            }
            self.broadcasts += 1;
            let mut payload = vec![event as u8];
            payload.extend_from_slice(&client.as_u64().to_be_bytes());
            payload.extend_from_slice(&meta);
            let frame = Expected {
                broadcast: self.broadcasts,
                kind: 2,
                topic: names()[t].clone(),
                payload,
            };
            self.deliver(live, frame);
        }
    }

    /// What `stats()` must say now. Sizes are ranges while zombies may still be
    /// registered.
    pub fn bounds(&self) -> Bounds {
        let mut bounds = Bounds {
            deliveries: self.deliveries,
            dropped: self.dropped,
            conflated: self.conflated,
            disconnects: self.disconnects,
            broadcasts: (self.counted_min, self.counted_max),
            clients: (0, 0),
            topics: (0, 0),
            subscriptions: (0, 0),
            patterns: (0, 0),
        };
        if self.closed {
            return bounds;
        }
        let count =
            |subs: &BTreeSet<usize>, p: bool| subs.iter().filter(|&&s| pattern(s) == p).count();
        let live = || self.clients.values().map(|c| &c.topics);
        let zombie = || self.zombies.values();
        let live_subs: usize = live().map(|s| count(s, false)).sum();
        let zombie_subs: usize = zombie().map(|s| count(s, false)).sum();
        let live_patterns: usize = live().map(|s| count(s, true)).sum();
        let zombie_patterns: usize = zombie().map(|s| count(s, true)).sum();
        // A topic exists while it has subscribers by name, and stays while patterns
        // still cover it after they left (the writer keeps pattern subscribers in
        // existing topics' lists): at least the names subscribed to live, at most every
        // name ever subscribed to.
        let by_name = |s: &usize| !pattern(*s);
        let live_topics: BTreeSet<usize> = live().flatten().copied().filter(by_name).collect();
        let all_topics: BTreeSet<usize> = if live_patterns + zombie_patterns == 0 {
            let zombie_topics = zombie().flatten().copied().filter(by_name);
            live_topics.iter().copied().chain(zombie_topics).collect()
        } else {
            (0..NAMES).filter(by_name).collect()
        };
        let clients = self.clients.len();
        bounds.clients = (clients, clients + self.zombies.len());
        bounds.topics = (live_topics.len(), all_topics.len());
        bounds.subscriptions = (live_subs, live_subs + zombie_subs);
        bounds.patterns = (live_patterns, live_patterns + zombie_patterns);
        bounds
    }
}
