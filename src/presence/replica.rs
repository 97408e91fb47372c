//! Replicated presence: every engine's members, as one engine learns them from the others.
//!
//! Each engine (a *node*) owns its own entries — who it tracks in which topic, with what
//! metadata — and is the only one that changes them ([`Local`]). Every other node keeps a
//! copy of them ([`Replica`]) built from the messages the owner sends:
//!
//! - a [`Delta`](Message::Delta) for each batch of changes, numbered: the owner's
//!   *version* counts its changes, and a delta says which version it starts from;
//! - a [`Heartbeat`](Message::Heartbeat) with its current version when it is quiet;
//! - its whole [`State`](Message::State) when someone asks ([`Request`](Message::Request)):
//!   a node that joins late, or that sees a version it cannot reach from what it has
//!   (a delta starting past its version, a heartbeat ahead of it); a state too long for
//!   one message comes as [`StatePart`](Message::StatePart)s, which a replica collects
//!   and applies as one state once they cover it (never a part alone: a member in a part
//!   still to come must not leave meanwhile);
//! - a [`Goodbye`](Message::Goodbye) when it leaves on purpose.
//!
//! This is the model of Phoenix.Tracker (each node alone changes its entries, deltas, a
//! full state transfer when deltas don't connect, heartbeats, a node taken as down after
//! a silent period and dropped after a longer one), made simpler by what it can lean on:
//! one node's entries are one map with a single writer, so a version number is the whole
//! clock and a state at version `v` is the same everywhere.
//!
//! Source: Phoenix.Tracker (`phoenix_pubsub`, `lib/phoenix/tracker/state.ex`,
//! `shard.ex`).
//!
//! # What a replica promises
//!
//! Messages may arrive in any order, twice, or not at all; nodes may crash and come back
//! under a new node id. A replica that, once the losses stop, hears every live node's
//! heartbeats and gets the states it asks for lists exactly the live nodes' entries — the
//! same list on every replica — and its [`Event`]s, replayed from empty, give that list
//! with no event that changes nothing: one join per member that appears (or whose
//! metadata changes), one leave per member that goes. A delta or state it has already
//! applied changes nothing; one older than what it has is ignored.
//!
//! # Liveness
//!
//! A node not heard from (any message) for [`Timing::down_after`] is *down*: its members
//! leave (events) but are kept. If it is heard from again they join again (events), and
//! anything it changed meanwhile is caught up by delta or state. Silent for
//! [`Timing::drop_after`], it is forgotten. A goodbye removes a node at once (its members
//! leave) and anything it sends later is ignored, so a late message cannot bring back a
//! node that left.
//!
//! The module is pure: no threads, no I/O, no clock. Time is passed in; what to send and
//! when is the caller's (the bridge's) business.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::transport::presence_sync::{Entry, Message, Op};
use crate::vocab::node::NodeId;

/// How long a replica waits before taking a silent node as down, and as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Silence after which a node is down and its members leave (default 30 s, as in
    /// Phoenix.Tracker). Must be several heartbeat periods.
    pub down_after: Duration,
    /// Silence after which a node's entries are dropped for good (default 10 min).
    pub drop_after: Duration,
    /// Least time between two requests for the same node's state (default 1 s).
    pub request_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            down_after: Duration::from_secs(30),
            drop_after: Duration::from_secs(600),
            request_every: Duration::from_secs(1),
        }
    }
}

/// Whether a member appeared or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It appeared, or its metadata changed.
    Join,
    /// It went (its metadata is the last it had).
    Leave,
}

/// A change in what a replica lists, for the local subscribers of the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Join or leave.
    pub change: Change,
    /// The topic.
    pub topic: Arc<str>,
    /// The member's node.
    pub origin: NodeId,
    /// The member's client on that node.
    pub client: u64,
    /// Its metadata (for a leave, the last it had).
    pub meta: Bytes,
}

/// The entries one node owns, and the messages that tell the others about them.
#[derive(Debug)]
pub struct Local {
    me: NodeId,
    /// Changes made so far.
    version: u64,
    entries: BTreeMap<(Arc<str>, u64), Bytes>,
    /// Changes not yet taken as a delta, oldest first.
    pending: Vec<Op>,
    /// Someone asked for the state since it was last taken.
    state_wanted: bool,
}

impl Local {
    /// No entries, version 0.
    pub fn new(me: NodeId) -> Self {
        Self {
            me,
            version: 0,
            entries: BTreeMap::new(),
            pending: Vec::new(),
            state_wanted: false,
        }
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.me
    }

    /// Tracks `client` in `topic` with `meta`; false (no change) if it is tracked there
    /// with the same metadata already.
    pub fn track(&mut self, topic: Arc<str>, client: u64, meta: Bytes) -> bool {
        match self
            .entries
            .insert((Arc::clone(&topic), client), meta.clone())
        {
            Some(previous) if previous == meta => false,
            _ => {
                self.version += 1;
                self.pending.push(Op::Join {
                    topic,
                    client,
                    meta,
                });
                true
            }
        }
    }

    /// Untracks `client` from `topic`; false (no change) if it was not tracked there.
    pub fn untrack(&mut self, topic: &Arc<str>, client: u64) -> bool {
        if self.entries.remove(&(Arc::clone(topic), client)).is_none() {
            return false;
        }
        self.version += 1;
        self.pending.push(Op::Leave {
            topic: Arc::clone(topic),
            client,
        });
        true
    }

    /// The changes since the last delta, if any.
    pub fn take_delta(&mut self) -> Option<Message> {
        if self.pending.is_empty() {
            return None;
        }
        let ops = std::mem::take(&mut self.pending);
        Some(Message::Delta {
            origin: self.me,
            base: self.version - ops.len() as u64,
            ops,
        })
    }

    /// A heartbeat at the current version.
    pub fn heartbeat(&self) -> Message {
        Message::Heartbeat {
            origin: self.me,
            version: self.version,
        }
    }

    /// The whole state at the current version.
    pub fn state(&self) -> Message {
        Message::State {
            origin: self.me,
            version: self.version,
            entries: self
                .entries
                .iter()
                .map(|((topic, client), meta)| Entry {
                    topic: Arc::clone(topic),
                    client: *client,
                    meta: meta.clone(),
                })
                .collect(),
        }
    }

    /// The goodbye.
    pub fn goodbye(&self) -> Message {
        Message::Goodbye { origin: self.me }
    }

    /// Notes a message from another node; true if it asks for this node's state (then
    /// [`take_state`](Self::take_state) has it, once for any number of requests).
    pub fn on_message(&mut self, message: &Message) -> bool {
        let Message::Request { of, .. } = message else {
            return false;
        };
        let wanted = of.is_empty() || of.contains(&self.me);
        self.state_wanted |= wanted;
        wanted
    }

    /// The state, if someone asked for it since the last call.
    pub fn take_state(&mut self) -> Option<Message> {
        std::mem::take(&mut self.state_wanted).then(|| self.state())
    }

    /// Every entry, in (topic, client) order.
    #[allow(dead_code)] // the merge simulation's view (tests/presence_merge.rs)
    pub fn entries(&self) -> impl Iterator<Item = (&Arc<str>, u64, &Bytes)> {
        self.entries
            .iter()
            .map(|((topic, client), meta)| (topic, *client, meta))
    }
}

/// What a replica knows of one other node.
#[derive(Debug)]
struct Origin {
    /// The version its entries are at.
    version: u64,
    /// The highest version it was seen at (a heartbeat, a delta's end, a state).
    seen: u64,
    entries: BTreeMap<(Arc<str>, u64), Bytes>,
    last_heard: Instant,
    /// Whether its entries are listed (not down).
    up: bool,
    /// When its state was last asked for.
    requested: Option<Instant>,
    /// The parts of a newer state received so far.
    assembly: Option<Assembly>,
}

/// The parts of one state (of one version) a replica has received, until they cover it.
#[derive(Debug)]
struct Assembly {
    version: u64,
    total: u32,
    /// Entries by the offset of their part (a part sent twice replaces itself).
    parts: BTreeMap<u32, Vec<Entry>>,
    /// Entries held in `parts`.
    held: usize,
}

impl Assembly {
    fn new(version: u64, total: u32) -> Self {
        Self {
            version,
            total,
            parts: BTreeMap::new(),
            held: 0,
        }
    }

    /// Adds a part; the whole state's entries, in order, once the parts cover it.
    fn add(&mut self, offset: u32, entries: &[Entry]) -> Option<Vec<Entry>> {
        if let Some(old) = self.parts.insert(offset, entries.to_vec()) {
            self.held -= old.len();
        }
        self.held += entries.len();
        // Parts cut for different limits may overlap; many times the state's size held
        // means a sender repeating itself: start over from this part.
        if self.held > 2 * self.total as usize + 1 {
            self.parts.clear();
            self.parts.insert(offset, entries.to_vec());
            self.held = entries.len();
        }
        let total = self.total as usize;
        let mut covered = 0;
        for (&offset, part) in &self.parts {
            if offset as usize > covered {
                return None;
            }
            covered = covered.max(offset as usize + part.len());
        }
        if covered < total {
            return None;
        }
        let mut whole = Vec::with_capacity(total);
        for (&offset, part) in &self.parts {
            let skip = whole.len().saturating_sub(offset as usize);
            whole.extend(part.iter().skip(skip).cloned());
        }
        Some(whole)
    }
}

/// Every other node's entries, as this node knows them, and the events they make.
#[derive(Debug)]
pub struct Replica {
    me: NodeId,
    timing: Timing,
    origins: HashMap<NodeId, Origin>,
    /// Nodes that said goodbye, and when: ignored until forgotten after `drop_after`.
    departed: HashMap<NodeId, Instant>,
    /// Topic → its listed members (of nodes that are up), by (node, client).
    listed: HashMap<Arc<str>, BTreeMap<(NodeId, u64), Bytes>>,
}

impl Replica {
    /// A replica for node `me` (whose own messages it ignores).
    pub fn new(me: NodeId, timing: Timing) -> Self {
        Self {
            me,
            timing,
            origins: HashMap::new(),
            departed: HashMap::new(),
            listed: HashMap::new(),
        }
    }

    /// The timing it runs with.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Applies one message received at `now`, appending the changes to what it lists to
    /// `events`.
    pub fn receive(&mut self, message: &Message, now: Instant, events: &mut Vec<Event>) {
        let origin = message.origin();
        if origin == self.me || self.departed.contains_key(&origin) {
            return;
        }
        if let Message::Goodbye { .. } = message {
            if let Some(gone) = self.origins.remove(&origin) {
                if gone.up {
                    self.unlist_all(origin, &gone.entries, events);
                }
            }
            self.departed.insert(origin, now);
            return;
        }
        let record = self.origins.entry(origin).or_insert_with(|| Origin {
            version: 0,
            seen: 0,
            entries: BTreeMap::new(),
            last_heard: now,
            up: true,
            requested: None,
            assembly: None,
        });
        record.last_heard = record.last_heard.max(now);
        let was_down = !record.up;
        record.up = true;
        let have = record.version;
        record.seen = record.seen.max(match message {
            Message::Heartbeat { version, .. }
            | Message::State { version, .. }
            | Message::StatePart { version, .. } => *version,
            Message::Delta { base, ops, .. } => base + ops.len() as u64,
            Message::Request { .. } | Message::Goodbye { .. } => 0,
        });
        if let Message::State {
            version, entries, ..
        } = message
        {
            if *version > have {
                if record
                    .assembly
                    .as_ref()
                    .is_some_and(|a| a.version <= *version)
                {
                    record.assembly = None;
                }
                self.apply_state(origin, *version, entries, was_down, events);
                return;
            }
        }
        if let Message::StatePart {
            version,
            total,
            offset,
            entries,
            ..
        } = message
        {
            let stale = record
                .assembly
                .as_ref()
                .is_some_and(|a| a.version > *version);
            if *version > have && !stale {
                let same = |a: &Assembly| a.version == *version && a.total == *total;
                if !record.assembly.as_ref().is_some_and(same) {
                    // The first part of this state: the parts of an older one go.
                    record.assembly = Some(Assembly::new(*version, *total));
                }
                let whole = record
                    .assembly
                    .as_mut()
                    .and_then(|assembly| assembly.add(*offset, entries));
                if let Some(whole) = whole {
                    record.assembly = None;
                    self.apply_state(origin, *version, &whole, was_down, events);
                    return;
                }
            }
        }
        if was_down {
            self.relist(origin, events);
        }
        let Message::Delta { base, ops, .. } = message else {
            return;
        };
        let end = base + ops.len() as u64;
        if end <= have || *base > have {
            return; // applied already, or does not connect: wait for the state
        }
        // `base <= have < end`: the ops past `have` are new.
        let fresh = usize::try_from(have - base).map_or(&ops[..0], |skip| &ops[skip..]);
        for op in fresh {
            match op {
                Op::Join {
                    topic,
                    client,
                    meta,
                } => self.set(origin, topic, *client, Some(meta.clone()), events),
                Op::Leave { topic, client } => self.set(origin, topic, *client, None, events),
            }
        }
        if let Some(record) = self.origins.get_mut(&origin) {
            record.version = end;
            if record.assembly.as_ref().is_some_and(|a| a.version <= end) {
                record.assembly = None; // the deltas got there first
            }
        }
    }

    /// Replaces `origin`'s entries with a state newer than what it has.
    fn apply_state(
        &mut self,
        origin: NodeId,
        version: u64,
        entries: &[Entry],
        was_down: bool,
        events: &mut Vec<Event>,
    ) {
        let new: BTreeMap<(Arc<str>, u64), Bytes> = entries
            .iter()
            .map(|e| ((Arc::clone(&e.topic), e.client), e.meta.clone()))
            .collect();
        let Some(record) = self.origins.get_mut(&origin) else {
            return;
        };
        record.version = version;
        if was_down {
            // Nothing of it is listed: take the new entries and list them.
            record.entries = new;
            self.relist(origin, events);
            return;
        }
        let old = std::mem::take(&mut record.entries);
        for (topic, client) in old.keys().filter(|k| !new.contains_key(*k)) {
            self.unlist(origin, topic, *client, events);
        }
        for ((topic, client), meta) in &new {
            if old.get(&(Arc::clone(topic), *client)) != Some(meta) {
                self.list_one(origin, topic, *client, meta.clone(), events);
            }
        }
        if let Some(record) = self.origins.get_mut(&origin) {
            record.entries = new;
        }
    }

    /// Takes nodes silent for `down_after` as down (their members leave) and forgets
    /// those silent for `drop_after`, and goodbyes older than that.
    pub fn tick(&mut self, now: Instant, events: &mut Vec<Event>) {
        let timing = self.timing;
        let silent = |since: Instant| now.saturating_duration_since(since);
        let mut down = Vec::new();
        let mut dropped = Vec::new();
        for (&origin, record) in &self.origins {
            let quiet = silent(record.last_heard);
            if quiet >= timing.drop_after {
                dropped.push(origin);
            } else if record.up && quiet >= timing.down_after {
                down.push(origin);
            }
        }
        down.sort_unstable();
        dropped.sort_unstable();
        for origin in down {
            if let Some(record) = self.origins.get_mut(&origin) {
                record.up = false;
                let entries = std::mem::take(&mut record.entries);
                self.unlist_all(origin, &entries, events);
                if let Some(record) = self.origins.get_mut(&origin) {
                    record.entries = entries;
                }
            }
        }
        for origin in dropped {
            if let Some(gone) = self.origins.remove(&origin) {
                if gone.up {
                    self.unlist_all(origin, &gone.entries, events);
                }
            }
        }
        self.departed
            .retain(|_, left| silent(*left) < timing.drop_after);
    }

    /// A request for the states of the nodes this replica is behind on, unless each was
    /// asked for within [`Timing::request_every`].
    pub fn request(&mut self, now: Instant) -> Option<Message> {
        let every = self.timing.request_every;
        let mut of: Vec<NodeId> = self
            .origins
            .iter_mut()
            .filter(|(_, r)| r.up && r.seen > r.version)
            .filter(|(_, r)| {
                r.requested
                    .map_or(true, |at| now.saturating_duration_since(at) >= every)
            })
            .map(|(origin, r)| {
                r.requested = Some(now);
                *origin
            })
            .collect();
        if of.is_empty() {
            return None;
        }
        of.sort_unstable();
        Some(Message::Request {
            origin: self.me,
            of,
        })
    }

    /// The members of `topic` on other nodes that are up, by (node, client).
    pub fn list(&self, topic: &str) -> impl Iterator<Item = (NodeId, u64, &Bytes)> {
        self.listed
            .get(topic)
            .into_iter()
            .flat_map(|members| members.iter().map(|(&(n, c), meta)| (n, c, meta)))
    }

    /// How many members of `topic` other nodes have (O(1)).
    pub fn count(&self, topic: &str) -> usize {
        self.listed.get(topic).map_or(0, BTreeMap::len)
    }

    /// Every listed member, as (topic, node, client, meta), in no particular order.
    pub fn all(&self) -> impl Iterator<Item = (&Arc<str>, NodeId, u64, &Bytes)> {
        self.listed.iter().flat_map(|(topic, members)| {
            members
                .iter()
                .map(move |(&(n, c), meta)| (topic, n, c, meta))
        })
    }

    /// The nodes it knows, with whether each is up.
    #[allow(dead_code)] // the merge simulation's view (tests/presence_merge.rs)
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, bool)> + '_ {
        self.origins.iter().map(|(&n, r)| (n, r.up))
    }

    /// Sets one entry of `origin` (listed: it is up) to `meta` (`None`: gone).
    fn set(
        &mut self,
        origin: NodeId,
        topic: &Arc<str>,
        client: u64,
        meta: Option<Bytes>,
        events: &mut Vec<Event>,
    ) {
        let Some(record) = self.origins.get_mut(&origin) else {
            return;
        };
        let key = (Arc::clone(topic), client);
        match meta {
            Some(meta) => {
                if record.entries.get(&key) == Some(&meta) {
                    return;
                }
                record.entries.insert(key, meta.clone());
                self.list_one(origin, topic, client, meta, events);
            }
            None => {
                if record.entries.remove(&key).is_some() {
                    self.unlist(origin, topic, client, events);
                }
            }
        }
    }

    /// Lists every entry of `origin` (it came back up).
    fn relist(&mut self, origin: NodeId, events: &mut Vec<Event>) {
        let Some(record) = self.origins.get_mut(&origin) else {
            return;
        };
        let entries = std::mem::take(&mut record.entries);
        for ((topic, client), meta) in &entries {
            self.list_one(origin, topic, *client, meta.clone(), events);
        }
        if let Some(record) = self.origins.get_mut(&origin) {
            record.entries = entries;
        }
    }

    /// Unlists every entry of `origin` (it went down or away).
    fn unlist_all(
        &mut self,
        origin: NodeId,
        entries: &BTreeMap<(Arc<str>, u64), Bytes>,
        events: &mut Vec<Event>,
    ) {
        for (topic, client) in entries.keys() {
            self.unlist(origin, topic, *client, events);
        }
    }

    fn list_one(
        &mut self,
        origin: NodeId,
        topic: &Arc<str>,
        client: u64,
        meta: Bytes,
        events: &mut Vec<Event>,
    ) {
        let members = self.listed.entry(Arc::clone(topic)).or_default();
        if members.insert((origin, client), meta.clone()).as_ref() == Some(&meta) {
            return;
        }
        events.push(Event {
            change: Change::Join,
            topic: Arc::clone(topic),
            origin,
            client,
            meta,
        });
    }

    fn unlist(&mut self, origin: NodeId, topic: &Arc<str>, client: u64, events: &mut Vec<Event>) {
        let Some(members) = self.listed.get_mut(topic) else {
            return;
        };
        let Some(meta) = members.remove(&(origin, client)) else {
            return;
        };
        if members.is_empty() {
            self.listed.remove(topic);
        }
        events.push(Event {
            change: Change::Leave,
            topic: Arc::clone(topic),
            origin,
            client,
            meta,
        });
    }
}
