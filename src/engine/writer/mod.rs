//! The writer: the only code that changes the registry, run by whichever thread holds
//! the writer role (see [`combiner`](super::combiner)).
//!
//! It owns the mutable side — the client registry and a working copy of the snapshot —
//! and applies one batch at a time: the op of the caller that holds the role (if any),
//! then up to [`MAX_COMMANDS_PER_BATCH`] queued commands, all to the working copy; then it publishes
//! the working copy as one new snapshot. Answers are sent only after that publication,
//! so a mutation returns only once every broadcast that starts afterwards sees it (the
//! visibility guarantee), and a burst of mutations costs one publication, not one each.
//!
//! # No user code under the role
//!
//! Dropping a sink can run user code: a callback's captured state, which may hold the
//! last handle to this very engine (whose `Drop` then shuts it down) or call into it.
//! So nothing a batch removes is dropped while the role is held: removed sinks and
//! refused registrations go into the batch's [`Aftermath`], which the combiner disposes
//! of after releasing the role. The replaced snapshot is the exception: it is freed
//! under the role (with the trie garbage it may reach, see [`garbage`](super::garbage);
//! its pattern tries' counts are the writer's, see [`writer_rc`](super::writer_rc)), once
//! no broadcast holds it, and the removed sinks it may list wait for that (see
//! [`retired`]), so freeing it never drops a sink's last reference.
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

mod aftermath;
mod client_topics;
mod exact;
mod patterns;
mod presence_changes;
mod retired;
mod topic_watch;

pub(crate) use aftermath::{Aftermath, Batch};
use client_topics::ClientTopics;
use retired::Retired;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::command::{Change, Command, Op, Outcome, PruneTarget};
use super::garbage::Garbage;
use super::presence_table::PresenceTable;
use super::snapshot::{Snapshot, TopicEntry};
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
use crate::vocab::topic::Topic;

/// Most commands applied before one publication. Bounds how long one combiner holds the
/// role, and so how long its own call and everyone queued behind it wait.
pub(crate) const MAX_COMMANDS_PER_BATCH: usize = 1024;

/// A registered client, as the key of the writer's client table: the sink every
/// subscription of this client shares, hashed and compared by the client id the sink
/// holds, so the table is looked up by [`ClientId`] and stores no id of its own (its
/// entry is this pointer and the client's [`ClientTopics`], 24 bytes: see
/// [`Sink`]'s `id`). A lookup that finds a candidate reads the id from the sink.
struct ClientKey<T>(Arc<Sink<T>>);

impl<T> ClientKey<T> {
    fn sink(&self) -> &Arc<Sink<T>> {
        &self.0
    }
}

impl<T> std::borrow::Borrow<ClientId> for ClientKey<T> {
    fn borrow(&self) -> &ClientId {
        self.0.id()
    }
}

// Hash and equality are the id's, as `Borrow` requires.
impl<T> std::hash::Hash for ClientKey<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id().hash(state)
    }
}

impl<T> PartialEq for ClientKey<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl<T> Eq for ClientKey<T> {}

/// The registry's mutable side. Lives behind the writer-role lock in [`Shared`].
pub(crate) struct Writer<T> {
    /// The next snapshot, built in place. After a publication it shares every node with
    /// the published snapshot until changed again.
    working: Snapshot<T>,
    /// The snapshots it replaced, until no broadcast holds them (see [`retired`]).
    retired: Retired<T>,
    /// Every registered client, and the topics it is subscribed to by name (for
    /// `unregister` and for idempotent `subscribe`: 16 bytes, one name inline, see
    /// [`client_topics`]).
    clients: HashMap<ClientKey<T>, ClientTopics, ahash::RandomState>,
    /// Set once the registry is closed (shutdown, or a panic in a batch): every op is
    /// then answered [`Error::Closed`].
    closed: bool,
    /// Where topic events go, if anyone watches (see [`topic_events`](super::topic_events)).
    topic_watcher: Option<TopicEventSender>,
    /// While watched: subscribers per pattern text, to report a pattern's first and last.
    pattern_counts: HashMap<std::sync::Arc<str>, usize, ahash::RandomState>,
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
    /// Which thread ran the previous batch ([`thread_marker`]): a batch leaves the
    /// snapshot it replaced to the next one only on a run of batches by one thread (see
    /// `retired`, "Freed by the next batch").
    last_batch_on: usize,
    /// Fault injection for the tests of a panicking batch.
    #[cfg(any(test, loom))]
    pub(crate) panic_in_next_batch: bool,
    /// The thread that ran the latest batch, for the tests that show who combines.
    #[cfg(test)]
    pub(crate) last_batch_thread: Option<std::thread::ThreadId>,
}

impl<T> Writer<T> {
    pub(crate) fn new(separator: char, presence: Arc<Mutex<PresenceTable>>) -> Self {
        Self {
            working: Snapshot::default(),
            retired: Retired::default(),
            clients: HashMap::with_hasher(client_map_hasher()),
            closed: false,
            topic_watcher: None,
            pattern_counts: HashMap::with_hasher(client_map_hasher()),
            separator,
            client_patterns: HashMap::with_hasher(client_map_hasher()),
            topic_index: None,
            presence,
            presence_changed: false,
            last_batch_on: 0,
            #[cfg(any(test, loom))]
            panic_in_next_batch: false,
            #[cfg(test)]
            last_batch_thread: None,
        }
    }

    /// Applies `own` (the role holder's op, not queued) and then up to [`MAX_COMMANDS_PER_BATCH`] queued
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
            // Snapshots replaced before the close may still wait for broadcasts.
            let retired_pending = self.retired.settle(&mut aftermath.retired_sinks, false);
            return Batch {
                own: own.map(|_| Err(Error::Closed)),
                presence_changed: false,
                retired_pending,
                aftermath,
            };
        }
        #[cfg(test)]
        {
            self.last_batch_thread = Some(std::thread::current().id());
        }
        // The snapshot the previous batch replaced, if it kept it (see `retired`): freed
        // before this batch allocates. Its sinks, if any, are dropped with this batch's.
        let mut freed_early = Vec::new();
        self.retired.settle(&mut freed_early, false);
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
            while count < MAX_COMMANDS_PER_BATCH {
                let Ok(command) = queue.try_recv() else { break };
                let (this_changed, outcome) = self.apply(command.op, &mut aftermath);
                changed |= this_changed;
                if let Some(reply) = command.reply {
                    aftermath.answers.push((reply, outcome));
                }
                count += 1;
            }
            // AcqRel: pairs with the Release in `Shared::request_prune`; the sink's
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
                    self.publish(shared);
                }
                // A batch that removed sinks frees what it can now (they are dropped
                // before its callers return); any other that published leaves the
                // snapshot it replaced to the next batch — if the previous batch ran on
                // this thread too, so the next one likely will: on another core the free
                // would pull every count this batch just wrote across. (Never an older
                // snapshot: that may wait for a broadcast, with sinks attached, and
                // needs the janitor.)
                let here = thread_marker();
                let streak = std::mem::replace(&mut self.last_batch_on, here) == here;
                let keep_newest = changed && streak && aftermath.retired_sinks.is_empty();
                let retired_pending = self
                    .retired
                    .settle(&mut aftermath.retired_sinks, keep_newest);
                if !freed_early.is_empty() {
                    aftermath.retired_sinks.append(&mut freed_early);
                }
                Batch {
                    own: own_result,
                    presence_changed: std::mem::take(&mut self.presence_changed),
                    retired_pending,
                    aftermath,
                }
            }
            Err(panic) => {
                // Dropping a panic payload can itself panic; leak it instead.
                std::mem::forget(panic);
                // Nothing of this batch was published: unanswered, every caller in it
                // reads `Closed` (dropping a `Reply` answers so).
                aftermath.answers.clear();
                aftermath.retired_sinks.append(&mut freed_early);
                let retired_pending = self.close(shared, queue, Status::Shutdown, &mut aftermath);
                self.presence_changed = false;
                Batch {
                    own: brought_own.then_some(Err(Error::Closed)),
                    presence_changed: false,
                    retired_pending,
                    aftermath,
                }
            }
        }
    }

    /// Closes the registry for good: every sink closed with `reason`, an empty snapshot
    /// published, every queued command answered `Closed`. Idempotent. Returns whether
    /// replaced snapshots still wait for broadcasts (to settle again later).
    pub(crate) fn close(
        &mut self,
        shared: &Shared<T>,
        queue: &Receiver<Command<T>>,
        reason: Status,
        aftermath: &mut Aftermath<T>,
    ) -> bool {
        shared.closed.store(true, Ordering::Release);
        if !self.closed {
            self.closed = true;
            for (client, _) in self.clients.drain() {
                client.sink().close(reason);
                aftermath.retired_sinks.push(client.0);
            }
            // Views published before may reach every node of the working trie: it goes
            // with the garbage of the empty snapshot's publication.
            let working = std::mem::take(&mut self.working);
            let garbage = working.topics.into_garbage();
            self.client_patterns.clear();
            self.topic_index = None;
            lock(&self.presence).clear();
            self.publish_with(shared, garbage);
        }
        let pending = self.retired.settle(&mut aftermath.retired_sinks, false);
        aftermath.unapplied.extend(queue.try_iter());
        pending
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
                (false, Ok(Outcome::One(self.track(id, &topic, meta))))
            }
            Op::Untrack { id, topic } => (false, Ok(Outcome::One(self.untrack(id, &topic)))),
            Op::Prune { id, sink } => {
                let current =
                    self.clients
                        .get_key_value(&id)
                        .is_some_and(|(client, _)| match &sink {
                            PruneTarget::Consumer(state) => client.sink().has_consumer_state(state),
                            PruneTarget::Sink(sink) => Arc::ptr_eq(client.sink(), sink),
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
        debug_assert_eq!(*sink.id(), id, "a sink is made for the client it registers");
        #[cfg(feature = "async")]
        if sink.is_async() {
            self.working.has_async_sinks = true;
        }
        self.clients.insert(ClientKey(sink), ClientTopics::new());
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

    /// Publishes the working copy; the snapshot it replaces is retired (freed by
    /// [`Retired::settle`] once no broadcast holds it).
    fn publish(&mut self, shared: &Shared<T>) {
        self.publish_with(shared, Garbage::default());
    }

    /// [`Self::publish`], with `garbage` that views published before may reach.
    #[allow(unsafe_code)] // the snapshot's view: see `Snapshot::publish`
    fn publish_with(&mut self, shared: &Shared<T>, mut garbage: Garbage<TopicEntry<T>>) {
        let spare = self.retired.spare_garbage();
        // SAFETY: the view is read by broadcasts holding it; `retired` drops a snapshot
        // only when none does, and the garbage of a later publication only after every
        // snapshot published before that one (its in-order rule), and the working copy
        // is dropped as garbage itself (`into_garbage`).
        let (view, mut stopped) = unsafe { self.working.publish(spare) };
        let previous = shared.snapshot.swap(Arc::new(view));
        // What this epoch stopped pointing at: `previous` and older views reach it.
        garbage.append(&mut stopped);
        self.retired.retire(previous, garbage);
    }
}

/// An id of the calling thread, cheap enough for every batch (the address of a
/// thread-local; never 0).
fn thread_marker() -> usize {
    thread_local!(static MARKER: u8 = const { 0 });
    MARKER.with(|marker| marker as *const u8 as usize)
}

/// The hasher of the writer's client map: random normally; fixed under loom, which
/// needs every run of a model to make the same choices (iteration order included).
fn client_map_hasher() -> ahash::RandomState {
    #[cfg(loom)]
    return ahash::RandomState::with_seeds(1, 2, 3, 4);
    #[cfg(not(loom))]
    ahash::RandomState::new()
}
