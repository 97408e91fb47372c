//! The writer: the only code that changes the registry, run by whichever thread holds
//! the writer role (see [`combiner`](super::combiner)).
//!
//! It owns the mutable side — the client registry and a working copy of the snapshot —
//! and applies one batch at a time: the op of the caller that holds the role (if any),
//! then up to [`MAX_BATCH`] queued commands, all to the working copy; then it publishes
//! the working copy as one new snapshot. Answers are sent only after that publication,
//! so a mutation returns only once every broadcast that starts afterwards sees it (the
//! visibility guarantee), and a burst of mutations costs one publication, not one each.
//!
//! # No user code under the role
//!
//! Dropping a sink can run user code: a callback's captured state, which may hold the
//! last handle to this very engine (whose `Drop` then shuts it down) or call into it.
//! So nothing a batch removes is dropped while the role is held: removed sinks, refused
//! registrations and the replaced snapshot go into the batch's [`Aftermath`], which the
//! combiner disposes of after releasing the role.
//!
//! # A panic in a batch
//!
//! Applying a batch calls nothing but this module and the collections it uses, so a
//! panic here is a bug or an allocation failure. The working copy may then be half
//! changed, so the writer does not try to go on: it closes the engine (every sink closed,
//! an empty snapshot published) and every caller of the batch, and of any later call,
//! gets [`Error::Closed`]. Nothing waits forever and no broadcast sees a torn registry.
//!
//! # Costs
//!
//! With `d = log32(topics)` (≤ 4 up to a million topics), `s` the subscribers of the
//! topic touched and `k` the topics of the client touched: subscribe and unsubscribe copy
//! `d` trie nodes and the topic's subscriber list — O(d + s + k) — and only the first
//! change to a path in a batch copies; unregister is that for each of the client's
//! topics. Nothing is proportional to the total number of clients or topics.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use smallvec::{smallvec, SmallVec};

use super::command::{Change, Command, Op, Outcome, PruneTarget, Reply};
use super::pattern_index;
use super::presence_table::PresenceTable;
use super::recipient::Recipient;
use super::snapshot::{Snapshot, TopicEntry, INLINE_SUBSCRIBERS};
use super::topic_events::TopicEventSender;
use super::topic_index::TopicIndex;
use super::Shared;
use crate::sink::{Sink, Status};
use crate::sync::queue::Receiver;
use crate::sync::{lock, Arc, Mutex, Ordering};
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::pattern::Pattern;
use crate::vocab::subscription::Subscription;
use crate::vocab::topic::{hash_topic, Topic};
use crate::vocab::topic_event::TopicEvent;
#[cfg(feature = "tracing")]
use crate::vocab::trace::{self, CutOff};

/// Most commands applied before one publication. Bounds how long one combiner holds the
/// role, and so how long its own call and everyone queued behind it wait.
pub(crate) const MAX_BATCH: usize = 1024;

/// What the writer keeps per client.
struct ClientRecord<T> {
    /// The sink every subscription of this client shares.
    sink: Arc<Sink<T>>,
    /// The topics it is subscribed to, for `unregister` and for idempotent `subscribe`.
    /// Each name is the very `Arc` the topic's snapshot entry holds: a subscription costs
    /// this pointer here, not another copy of the name. One is stored inline: most
    /// clients of a per-user-topic server have exactly one topic of their own.
    topics: SmallVec<[std::sync::Arc<str>; 1]>,
}

/// The registry's mutable side. Lives behind the writer-role lock in [`Shared`].
pub(crate) struct Writer<T> {
    /// The next snapshot, built in place. After a publication it shares every node with
    /// the published snapshot until changed again.
    working: Snapshot<T>,
    /// Every registered client.
    clients: HashMap<ClientId, ClientRecord<T>, ahash::RandomState>,
    /// Set once the registry is closed (shutdown, or a panic in a batch): every op is
    /// then answered [`Error::Closed`].
    closed: bool,
    /// Where topic events go, if anyone watches (see [`topic_events`](super::topic_events)).
    topic_watcher: Option<TopicEventSender>,
    /// The token separator of topics and patterns.
    separator: char,
    /// Each client's wildcard patterns; only clients that have some.
    client_patterns: HashMap<ClientId, Vec<Pattern>, ahash::RandomState>,
    /// Existing topics by token, once any pattern was subscribed (see [`TopicIndex`]).
    topic_index: Option<TopicIndex>,
    /// The presence table (shared with readers of `list`; changed only here).
    presence: Arc<Mutex<PresenceTable>>,
    /// Whether this batch queued presence changes to deliver.
    pub(crate) presence_changed: bool,
    /// Fault injection for the tests of a panicking batch.
    #[cfg(any(test, loom))]
    pub(crate) panic_in_next_batch: bool,
    /// The thread that ran the latest batch, for the tests that show who combines.
    #[cfg(test)]
    pub(crate) last_batch_thread: Option<std::thread::ThreadId>,
}

/// What a batch leaves for after the writer role is released: answers to send and
/// values to drop (see the module docs on why not earlier).
pub(crate) struct Aftermath<T> {
    answers: Vec<(Reply, Result<Outcome, Error>)>,
    /// Commands never applied (the engine closed): dropping them answers `Closed`.
    unapplied: Vec<Command<T>>,
    retired_sinks: Vec<Arc<Sink<T>>>,
    retired_snapshots: Vec<Arc<Snapshot<T>>>,
    /// Subscribers the engine removed on its own (overflow, panic), to report once the
    /// role is released: a `tracing` subscriber is user code.
    #[cfg(feature = "tracing")]
    cut_off: Vec<(ClientId, CutOff)>,
}

impl<T> Default for Aftermath<T> {
    fn default() -> Self {
        Self {
            answers: Vec::new(),
            unapplied: Vec::new(),
            retired_sinks: Vec::new(),
            retired_snapshots: Vec::new(),
            #[cfg(feature = "tracing")]
            cut_off: Vec::new(),
        }
    }
}

impl<T> Aftermath<T> {
    /// Answers every caller, then drops what the batch retired. Call it with the role
    /// released: the drops may run user code.
    pub(crate) fn finish(self) {
        let Self {
            answers,
            unapplied,
            retired_sinks,
            retired_snapshots,
            #[cfg(feature = "tracing")]
            cut_off,
        } = self;
        for (reply, result) in answers {
            reply.send(result);
        }
        #[cfg(feature = "tracing")]
        for (client, why) in cut_off {
            trace::subscriber_cut_off(client, why);
        }
        drop(unapplied);
        drop(retired_snapshots);
        drop(retired_sinks);
    }
}

/// One batch's result for the caller that ran it.
pub(crate) struct Batch<T> {
    /// The result of the combiner's own op, if it brought one.
    pub(crate) own: Option<Result<Outcome, Error>>,
    /// Whether the batch queued presence changes to broadcast.
    pub(crate) presence_changed: bool,
    /// To finish once the role is released.
    pub(crate) aftermath: Aftermath<T>,
}

impl<T> Writer<T> {
    pub(crate) fn new(separator: char, presence: Arc<Mutex<PresenceTable>>) -> Self {
        Self {
            working: Snapshot::default(),
            clients: HashMap::with_hasher(client_map_hasher()),
            closed: false,
            topic_watcher: None,
            separator,
            client_patterns: HashMap::with_hasher(client_map_hasher()),
            topic_index: None,
            presence,
            presence_changed: false,
            #[cfg(any(test, loom))]
            panic_in_next_batch: false,
            #[cfg(test)]
            last_batch_thread: None,
        }
    }

    /// Applies `own` (the role holder's op, not queued) and then up to [`MAX_BATCH`] queued
    /// commands, and publishes one snapshot if anything changed.
    pub(crate) fn run_batch(
        &mut self,
        shared: &Shared<T>,
        own: Option<Op<T>>,
        queue: &Receiver<Command<T>>,
    ) -> Batch<T> {
        let mut aftermath = Aftermath::default();
        if self.closed {
            aftermath.unapplied.extend(queue.try_iter());
            return Batch {
                own: own.map(|_| Err(Error::Closed)),
                presence_changed: false,
                aftermath,
            };
        }
        #[cfg(test)]
        {
            self.last_batch_thread = Some(std::thread::current().id());
        }
        let brought_own = own.is_some();
        let mut own_result = None;
        let mut changed = false;
        let applied = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(any(test, loom))]
            if std::mem::take(&mut self.panic_in_next_batch) {
                panic!("fault injection: a panic while applying a batch");
            }
            let mut count = 0;
            if let Some(op) = own {
                let (this_changed, outcome) = self.apply(op, &mut aftermath);
                changed |= this_changed;
                own_result = Some(outcome);
                count += 1;
            }
            while count < MAX_BATCH {
                let Ok(command) = queue.try_recv() else { break };
                let (this_changed, outcome) = self.apply(command.op, &mut aftermath);
                changed |= this_changed;
                if let Some(reply) = command.reply {
                    aftermath.answers.push((reply, outcome));
                }
                count += 1;
            }
            // AcqRel: pairs with the Release in `EngineLink::request_prune`; the sink's
            // closed status, written before the flag, is then visible to the sweep. A
            // compare-exchange rather than `swap`: the same effect on a bool, and one
            // loom models exactly (loom 0.7 can lose a store racing a `swap`, loom#254).
            if shared
                .sweep_requested
                .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                changed |= self.sweep(&mut aftermath);
            }
        }));
        match applied {
            Ok(()) => {
                if changed {
                    self.publish(shared, &mut aftermath);
                }
                Batch {
                    own: own_result,
                    presence_changed: std::mem::take(&mut self.presence_changed),
                    aftermath,
                }
            }
            Err(panic) => {
                // Dropping a panic payload can itself panic; leak it instead.
                std::mem::forget(panic);
                // Nothing of this batch was published: unanswered, every caller in it
                // reads `Closed` (dropping a `Reply` answers so).
                aftermath.answers.clear();
                self.close(shared, queue, Status::Shutdown, &mut aftermath);
                self.presence_changed = false;
                Batch {
                    own: brought_own.then_some(Err(Error::Closed)),
                    presence_changed: false,
                    aftermath,
                }
            }
        }
    }

    /// Closes the registry for good: every sink closed with `reason`, an empty snapshot
    /// published, every queued command answered `Closed`. Idempotent.
    pub(crate) fn close(
        &mut self,
        shared: &Shared<T>,
        queue: &Receiver<Command<T>>,
        reason: Status,
        aftermath: &mut Aftermath<T>,
    ) {
        shared.closed.store(true, Ordering::Release);
        if !self.closed {
            self.closed = true;
            for (_, record) in self.clients.drain() {
                record.sink.close(reason);
                aftermath.retired_sinks.push(record.sink);
            }
            let working = std::mem::take(&mut self.working);
            aftermath.retired_snapshots.push(Arc::new(working));
            self.client_patterns.clear();
            self.topic_index = None;
            lock(&self.presence).clear();
            self.publish(shared, aftermath);
        }
        aftermath.unapplied.extend(queue.try_iter());
    }

    /// Applies one op. Returns whether the registry changed, and the outcome.
    fn apply(&mut self, op: Op<T>, aftermath: &mut Aftermath<T>) -> (bool, Result<Outcome, Error>) {
        match op {
            Op::Register { id, sink, topic } => {
                let result = self.register(id, sink, topic, aftermath);
                (result.is_ok(), Ok(Outcome::One(result)))
            }
            Op::RegisterMany(clients) => {
                self.clients.reserve(clients.len());
                let mut changed = false;
                let results = clients
                    .into_iter()
                    .map(|(id, sink)| {
                        let result = self.register(id, sink, None, aftermath);
                        changed |= result.is_ok();
                        result
                    })
                    .collect();
                (changed, Ok(Outcome::Many(results)))
            }
            Op::One(change) => match self.mutate(change, aftermath) {
                Ok(changed) => (changed, Ok(Outcome::One(Ok(())))),
                Err(e) => (false, Ok(Outcome::One(Err(e)))),
            },
            Op::Many(changes) => {
                let mut changed = false;
                let results = changes
                    .into_iter()
                    .map(|change| {
                        let outcome = self.mutate(change, aftermath);
                        changed |= matches!(outcome, Ok(true));
                        outcome.map(|_| ())
                    })
                    .collect();
                (changed, Ok(Outcome::Many(results)))
            }
            Op::Track { id, topic, meta } => {
                let result = if self.clients.contains_key(&id) {
                    let tracked = lock(&self.presence).track(
                        id,
                        topic.shared_name(),
                        topic.hash_value(),
                        meta,
                    );
                    self.presence_changed |= tracked;
                    Ok(())
                } else {
                    Err(Error::UnknownClient(id))
                };
                (false, Ok(Outcome::One(result)))
            }
            Op::Untrack { id, topic } => {
                let result = if self.clients.contains_key(&id) {
                    let untracked = lock(&self.presence).untrack(id, topic.name());
                    self.presence_changed |= untracked;
                    Ok(())
                } else {
                    Err(Error::UnknownClient(id))
                };
                (false, Ok(Outcome::One(result)))
            }
            Op::Prune { id, sink } => {
                let current = self.clients.get(&id).is_some_and(|record| match &sink {
                    PruneTarget::Consumer(state) => record.sink.has_consumer_state(state),
                    PruneTarget::Sink(sink) => Arc::ptr_eq(&record.sink, sink),
                });
                if let PruneTarget::Sink(sink) = sink {
                    // It may be the last handle on a callback: drop it after the role.
                    aftermath.retired_sinks.push(sink);
                }
                if current {
                    // The sink was closed by whoever asked for the prune; `ConsumerGone`
                    // only applies if it somehow was not.
                    let _ = self.unregister(id, Status::ConsumerGone, aftermath);
                }
                (current, Ok(Outcome::Nothing))
            }
        }
    }

    fn register(
        &mut self,
        id: ClientId,
        sink: Arc<Sink<T>>,
        topic: Option<Topic>,
        aftermath: &mut Aftermath<T>,
    ) -> Result<(), Error> {
        if self.clients.contains_key(&id) {
            aftermath.retired_sinks.push(sink);
            return Err(Error::DuplicateClient(id));
        }
        #[cfg(feature = "async")]
        if sink.is_async() {
            self.working.has_async_sinks = true;
        }
        self.clients.insert(
            id,
            ClientRecord {
                sink,
                topics: SmallVec::new(),
            },
        );
        self.working.clients += 1;
        if let Some(topic) = topic {
            self.subscribe(id, topic)?;
        }
        Ok(())
    }

    /// Applies one change. Returns whether the registry changed.
    fn mutate(&mut self, change: Change, aftermath: &mut Aftermath<T>) -> Result<bool, Error> {
        match change {
            Change::Subscribe(id, Subscription::Pattern(pattern)) => {
                self.subscribe_pattern(id, pattern)
            }
            Change::Subscribe(id, Subscription::Topic(topic)) => self.subscribe(id, topic),
            Change::Unsubscribe(id, Subscription::Pattern(pattern)) => {
                self.unsubscribe_pattern(id, &pattern, aftermath)
            }
            Change::Unsubscribe(id, Subscription::Topic(topic)) => self.unsubscribe(id, &topic),
            Change::Unregister(id) => self
                .unregister(id, Status::Unsubscribed, aftermath)
                .map(|()| true),
        }
    }

    /// Whether one of client `id`'s patterns matches topic `name`: then the client is in
    /// that topic's subscriber list through the pattern (the invariant below).
    fn covered_by_pattern(&self, id: ClientId, name: &str) -> bool {
        // Most engines have no patterns at all: skip the lookup.
        !self.client_patterns.is_empty()
            && self
                .client_patterns
                .get(&id)
                .is_some_and(|patterns| patterns.iter().any(|p| p.matches(name, self.separator)))
    }

    // The invariant that keeps one frame per client per broadcast: for every topic entry
    // `t` and client `c`, `c` is in `t`'s subscriber list exactly once if `c` subscribed
    // to `t` by name or one of `c`'s patterns matches `t`, and not at all otherwise. Each
    // change below re-establishes it for the topics it touches.

    /// Adds `id` to `topic` by name. Returns whether anything changed.
    fn subscribe(&mut self, id: ClientId, topic: Topic) -> Result<bool, Error> {
        let covered = self.covered_by_pattern(id, topic.name());
        let record = self.clients.get_mut(&id).ok_or(Error::UnknownClient(id))?;
        if record.topics.iter().any(|name| **name == *topic.name()) {
            return Ok(false);
        }
        let subscriber = Recipient {
            id,
            sink: Arc::clone(&record.sink),
        };
        let name = match self
            .working
            .topics
            .get_mut(topic.name(), topic.hash_value())
        {
            Some(entry) => {
                if !covered {
                    push_subscriber(&mut entry.subscribers, subscriber);
                }
                std::sync::Arc::clone(&entry.name)
            }
            None => {
                let name = topic.shared_name();
                let mut subscribers: SmallVec<[Recipient<T>; INLINE_SUBSCRIBERS]> =
                    smallvec![subscriber];
                if !self.working.patterns.is_empty() {
                    // A new topic: it gets every pattern subscriber that matches it.
                    let matched =
                        pattern_index::matching(&self.working.patterns, &name, self.separator);
                    subscribers.extend(matched.into_iter().filter(|s| s.id != id).cloned());
                }
                self.working.topics.insert(TopicEntry {
                    name: std::sync::Arc::clone(&name),
                    hash: topic.hash_value(),
                    subscribers,
                });
                if let Some(index) = &mut self.topic_index {
                    index.insert(
                        std::sync::Arc::clone(&name),
                        topic.hash_value(),
                        self.separator,
                    );
                }
                if let Some(watcher) = &self.topic_watcher {
                    // Unbounded: never blocks. An observer that went away just stops
                    // receiving.
                    let _ = watcher.send(TopicEvent::Opened(std::sync::Arc::clone(&name)));
                }
                name
            }
        };
        if record.topics.len() == record.topics.capacity() {
            record
                .topics
                .reserve_exact(gentle_growth(record.topics.len()));
        }
        record.topics.push(name);
        self.working.subscriptions += 1;
        Ok(true)
    }

    /// Removes `id` from `topic` by name. Returns whether anything changed.
    fn unsubscribe(&mut self, id: ClientId, topic: &Topic) -> Result<bool, Error> {
        let record = self.clients.get_mut(&id).ok_or(Error::UnknownClient(id))?;
        let Some(position) = record
            .topics
            .iter()
            .position(|name| **name == *topic.name())
        else {
            return Ok(false);
        };
        record.topics.swap_remove(position);
        self.working.subscriptions -= 1;
        if !self.covered_by_pattern(id, topic.name()) {
            self.remove_subscriber(id, topic.name(), topic.hash_value());
        }
        Ok(true)
    }

    /// Subscribes `id` to `pattern`: into the pattern index (for topics that do not exist
    /// yet) and into the list of every existing topic it matches. Returns whether
    /// anything changed.
    fn subscribe_pattern(&mut self, id: ClientId, pattern: Pattern) -> Result<bool, Error> {
        let record = self.clients.get(&id).ok_or(Error::UnknownClient(id))?;
        let sink = Arc::clone(&record.sink);
        let theirs = self.client_patterns.get(&id);
        if theirs.is_some_and(|patterns| patterns.iter().any(|p| p.text() == pattern.text())) {
            return Ok(false);
        }
        let index = self.topic_index_mut();
        for (name, hash) in index.matching(&pattern) {
            let by_name = record_has_topic(&self.clients, id, &name);
            if by_name || self.covered_by_pattern(id, &name) {
                continue;
            }
            let entry = self
                .working
                .topics
                .get_mut(&name, hash)
                .expect("the topic index lists only topics that exist");
            push_subscriber(
                &mut entry.subscribers,
                Recipient {
                    id,
                    sink: Arc::clone(&sink),
                },
            );
        }
        std::sync::Arc::make_mut(&mut self.working.patterns)
            .insert(&pattern, Recipient { id, sink });
        self.client_patterns.entry(id).or_default().push(pattern);
        self.working.pattern_subscriptions += 1;
        Ok(true)
    }

    /// Unsubscribes `id` from `pattern` (the same string it subscribed with). Returns
    /// whether anything changed.
    fn unsubscribe_pattern(
        &mut self,
        id: ClientId,
        pattern: &Pattern,
        aftermath: &mut Aftermath<T>,
    ) -> Result<bool, Error> {
        if !self.clients.contains_key(&id) {
            return Err(Error::UnknownClient(id));
        }
        let Some(patterns) = self.client_patterns.get_mut(&id) else {
            return Ok(false);
        };
        let Some(position) = patterns.iter().position(|p| p.text() == pattern.text()) else {
            return Ok(false);
        };
        let pattern = patterns.swap_remove(position);
        if patterns.is_empty() {
            self.client_patterns.remove(&id);
        }
        if let Some(removed) =
            std::sync::Arc::make_mut(&mut self.working.patterns).remove(&pattern, id)
        {
            aftermath.retired_sinks.push(removed.sink);
        }
        self.working.pattern_subscriptions -= 1;
        for (name, hash) in self.topic_index_mut().matching(&pattern) {
            if !record_has_topic(&self.clients, id, &name) && !self.covered_by_pattern(id, &name) {
                self.remove_subscriber(id, &name, hash);
            }
        }
        Ok(true)
    }

    /// The index of existing topics by token, built on first use.
    fn topic_index_mut(&mut self) -> &mut TopicIndex {
        let separator = self.separator;
        let topics = &self.working.topics;
        self.topic_index.get_or_insert_with(|| {
            let mut index = TopicIndex::default();
            topics.for_each(|entry| {
                index.insert(std::sync::Arc::clone(&entry.name), entry.hash, separator)
            });
            index
        })
    }

    /// Removes `id` from every topic and pattern and forgets it, closing its sink with
    /// `reason`.
    fn unregister(
        &mut self,
        id: ClientId,
        reason: Status,
        aftermath: &mut Aftermath<T>,
    ) -> Result<(), Error> {
        let record = self.clients.remove(&id).ok_or(Error::UnknownClient(id))?;
        for name in &record.topics {
            self.remove_subscriber(id, name, hash_topic(name));
        }
        self.working.subscriptions -= record.topics.len();
        if let Some(patterns) = self.client_patterns.remove(&id) {
            let index = std::sync::Arc::make_mut(&mut self.working.patterns);
            for pattern in &patterns {
                if let Some(removed) = index.remove(pattern, id) {
                    aftermath.retired_sinks.push(removed.sink);
                }
            }
            self.working.pattern_subscriptions -= patterns.len();
            // The topics it was in through its patterns (once each: the client is in a
            // list at most once, and removing an absent subscriber is a no-op).
            for pattern in &patterns {
                for (name, hash) in self.topic_index_mut().matching(pattern) {
                    self.remove_subscriber(id, &name, hash);
                }
            }
        }
        #[cfg(feature = "tracing")]
        match record.sink.state().status() {
            // Closed by the broadcast that found it full or panicking; here to be pruned.
            Status::Overflow => aftermath.cut_off.push((id, CutOff::Overflow)),
            Status::Panicked => aftermath.cut_off.push((id, CutOff::Panicked)),
            _ => {}
        }
        record.sink.close(reason);
        self.working.clients -= 1;
        aftermath.retired_sinks.push(record.sink);
        self.presence_changed |= lock(&self.presence).depart(id);
        Ok(())
    }

    /// Removes every client whose sink is closed. Runs only when a publisher could not
    /// queue a prune command because the queue was full: O(clients), and rare.
    fn sweep(&mut self, aftermath: &mut Aftermath<T>) -> bool {
        let dead: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, record)| !record.sink.state().is_open())
            .map(|(id, _)| *id)
            .collect();
        for id in &dead {
            let _ = self.unregister(*id, Status::ConsumerGone, aftermath);
        }
        !dead.is_empty()
    }

    /// Removes `id` from `topic`'s entry, dropping the entry if it empties.
    fn remove_subscriber(&mut self, id: ClientId, name: &str, hash: u64) {
        if let Some(closed) = remove_subscriber(&mut self.working, id, name, hash) {
            if let Some(index) = &mut self.topic_index {
                index.remove(&closed, self.separator);
            }
            if let Some(watcher) = &self.topic_watcher {
                let _ = watcher.send(TopicEvent::Closed(closed));
            }
        }
    }

    /// Sets (or clears) the topic watcher; returns the topics that have subscribers now.
    pub(crate) fn watch_topics(
        &mut self,
        watcher: Option<TopicEventSender>,
    ) -> Vec<std::sync::Arc<str>> {
        self.topic_watcher = watcher;
        let mut names = Vec::with_capacity(self.working.topics.len());
        self.working
            .topics
            .for_each(|entry| names.push(std::sync::Arc::clone(&entry.name)));
        names
    }

    /// Publishes the working copy; the snapshot it replaces is retired, not dropped.
    fn publish(&mut self, shared: &Shared<T>, aftermath: &mut Aftermath<T>) {
        let previous = shared.snapshot.swap(Arc::new(self.working.clone()));
        aftermath.retired_snapshots.push(previous);
    }
}

/// The hasher of the writer's client map: random normally; fixed under loom, which
/// needs every run of a model to make the same choices (iteration order included).
fn client_map_hasher() -> ahash::RandomState {
    #[cfg(loom)]
    return ahash::RandomState::with_seeds(1, 2, 3, 4);
    #[cfg(not(loom))]
    ahash::RandomState::new()
}

/// Whether client `id` subscribed to topic `name` by name.
fn record_has_topic<T>(
    clients: &HashMap<ClientId, ClientRecord<T>, ahash::RandomState>,
    id: ClientId,
    name: &str,
) -> bool {
    clients
        .get(&id)
        .is_some_and(|record| record.topics.iter().any(|t| **t == *name))
}

/// Appends to a topic's subscriber list, growing it gently.
fn push_subscriber<T>(
    list: &mut SmallVec<[Recipient<T>; INLINE_SUBSCRIBERS]>,
    subscriber: Recipient<T>,
) {
    if list.len() == list.capacity() {
        list.reserve_exact(gentle_growth(list.len()));
    }
    list.push(subscriber);
}

/// How much to grow a full list of `len` elements by: half again (at least one).
///
/// Lists here are long-lived and mostly short (a client's topics, a topic's
/// subscribers), so the default growth (to 4, then doubling) would leave most of each
/// allocation empty; growing by 1.5× from one keeps waste under a third while staying
/// amortised O(1) per push.
fn gentle_growth(len: usize) -> usize {
    (len / 2).max(1)
}

/// Removes `id` from `topic`'s entry in `snapshot`, dropping the entry if it empties.
/// Returns the topic's name if it did drop the entry.
fn remove_subscriber<T>(
    snapshot: &mut Snapshot<T>,
    id: ClientId,
    name: &str,
    hash: u64,
) -> Option<std::sync::Arc<str>> {
    let Some(entry) = snapshot.topics.get_mut(name, hash) else {
        debug_assert!(false, "client record names a topic the snapshot lacks");
        return None;
    };
    if let Some(position) = entry.subscribers.iter().position(|s| s.id == id) {
        entry.subscribers.swap_remove(position);
    }
    if entry.subscribers.is_empty() {
        return snapshot
            .topics
            .remove(name, hash)
            .map(|removed| std::sync::Arc::clone(&removed.name));
    }
    None
}
