//! The writer thread: the only code that changes the registry.
//!
//! It owns the mutable side — the client registry and a working copy of the snapshot —
//! and runs a loop: block for a command, drain up to [`MAX_BATCH`] more without blocking,
//! apply them all to the working copy, publish it as one new snapshot, and only then
//! answer each caller. So a mutation returns only once every broadcast that starts
//! afterwards sees it (the visibility guarantee), and a burst of mutations costs one
//! snapshot publication, not one each.
//!
//! Cost of one mutation, with `d = log32(topics)` (≤ 4 up to a million topics), `s` the
//! subscribers of the topic touched and `k` the topics of the client touched:
//! subscribe and unsubscribe copy `d` trie nodes and the topic's subscriber list — O(d +
//! s + k) — and only the first change to a path in a batch copies; unregister is that
//! for each of the client's topics. Nothing is proportional to the total number of
//! clients or topics.

use std::collections::HashMap;
use std::time::Duration;

use smallvec::smallvec;

use super::command::{Command, Reply};
use super::snapshot::{Snapshot, Subscriber, TopicEntry};
use super::Shared;
use crate::sink::{Sink, Status};
use crate::sync::queue::{Receiver, RecvTimeoutError};
use crate::sync::{Arc, Ordering};
use crate::topic::{hash_topic, Topic};
use crate::{ClientId, Error, Mutation};

/// Most commands applied before one publication. Bounds how long the first caller of a
/// burst waits for its answer.
pub(crate) const MAX_BATCH: usize = 1024;

/// How often an idle writer checks for a sweep request (see [`Writer::sweep`]).
const SWEEP_INTERVAL: Duration = Duration::from_millis(20);

/// What the writer keeps per client.
struct ClientRecord<T> {
    /// The sink every subscription of this client shares.
    sink: Arc<Sink<T>>,
    /// The topics it is subscribed to, for `unregister` and for idempotent `subscribe`.
    /// Each name is the very `Arc` the topic's snapshot entry holds: a subscription costs
    /// this pointer here, not another copy of the name. The hash is recomputed when
    /// needed (unregister), which is cheaper than storing it per subscription.
    topics: Vec<std::sync::Arc<str>>,
}

/// The writer's state. Built by the engine, then moved onto its thread by
/// [`Writer::run_until_stopped`].
pub(crate) struct Writer<T> {
    /// What the writer shares with every handle: the snapshot cell, counters, flags.
    shared: Arc<Shared<T>>,
    /// The command queue's receiving end.
    commands: Receiver<Command<T>>,
    /// The next snapshot, built in place. After a publication it shares every node with
    /// the published snapshot until changed again.
    working: Snapshot<T>,
    /// Every registered client.
    clients: HashMap<ClientId, ClientRecord<T>, ahash::RandomState>,
}

/// An answer owed to a caller, sent once the batch is published.
enum Answer {
    One(Reply<()>, Result<(), Error>),
    Many(Reply<Vec<Result<(), Error>>>, Vec<Result<(), Error>>),
}

impl Answer {
    fn send(self) {
        match self {
            Answer::One(reply, result) => reply.send(result),
            Answer::Many(reply, results) => reply.send(Ok(results)),
        }
    }
}

/// How applying a command ended.
enum Applied {
    /// Whether the registry changed, and what to answer after publishing. Every answer,
    /// even for a no-op or an error, waits for the publication, so answers keep the
    /// order the commands came in.
    Done {
        changed: bool,
        answer: Option<Answer>,
    },
    /// Stop.
    Shutdown(Reply<()>),
}

impl<T: Clone> Writer<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>, commands: Receiver<Command<T>>) -> Self {
        Self {
            shared,
            commands,
            working: Snapshot::default(),
            clients: HashMap::with_hasher(client_map_hasher()),
        }
    }

    /// The writer thread's body: runs the loop, then — however it ended, even by a
    /// panic — marks the engine closed and the writer gone, so no caller waits forever.
    pub(crate) fn run_until_stopped(self) {
        struct OnExit<T>(Arc<Shared<T>>);
        impl<T> Drop for OnExit<T> {
            fn drop(&mut self) {
                self.0.closed.store(true, Ordering::Release);
                // Release pairs with the Acquire in `EngineLink::writer_gone`.
                self.0.writer_exited.store(true, Ordering::Release);
            }
        }
        let _on_exit = OnExit(Arc::clone(&self.shared));
        self.run();
        // `self` (with the command queue's receiving end) was dropped inside `run`
        // before `_on_exit` runs: new sends fail from here on.
    }

    fn run(mut self) {
        let mut answers: Vec<Answer> = Vec::new();
        loop {
            let first = match self.commands.recv_timeout(SWEEP_INTERVAL) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut changed = false;
            let mut stop = None;
            let mut next = first;
            let mut applied = 0;
            while let Some(command) = next.take() {
                match self.apply(command) {
                    Applied::Done {
                        changed: this_changed,
                        answer,
                    } => {
                        changed |= this_changed;
                        answers.extend(answer);
                    }
                    Applied::Shutdown(reply) => {
                        stop = Some(reply);
                        break;
                    }
                }
                applied += 1;
                if applied < MAX_BATCH {
                    next = self.commands.try_recv().ok();
                }
            }
            // AcqRel: pairs with the Release in `EngineLink::request_prune`; the sink's
            // closed status, written before the flag, is then visible to the sweep. A
            // compare-exchange rather than `swap`: the same effect on a bool, and one
            // loom models exactly (loom 0.7 can lose a store racing a `swap`, loom#254).
            if self
                .shared
                .sweep_requested
                .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                changed |= self.sweep();
            }
            if changed {
                self.publish();
            }
            // Answer only now: the snapshot each caller's change is in has been published.
            for answer in answers.drain(..) {
                answer.send();
            }
            if let Some(reply) = stop {
                self.shutdown();
                reply.send(Ok(()));
                return;
            }
            if self.shared.stop_after_batch.load(Ordering::Acquire) {
                // The last handle was dropped on this very thread (see `Engine::shutdown`).
                break;
            }
        }
        self.shutdown();
    }

    fn apply(&mut self, command: Command<T>) -> Applied {
        match command {
            Command::Register {
                id,
                sink,
                topic,
                reply,
            } => {
                let result = self.register(id, sink, topic);
                Applied::Done {
                    changed: result.is_ok(),
                    answer: Some(Answer::One(reply, result)),
                }
            }
            Command::One { change, reply } => {
                let (changed, result) = match self.mutate(change) {
                    Ok(changed) => (changed, Ok(())),
                    Err(e) => (false, Err(e)),
                };
                Applied::Done {
                    changed,
                    answer: Some(Answer::One(reply, result)),
                }
            }
            Command::Many { changes, reply } => {
                let mut changed = false;
                let results = changes
                    .into_iter()
                    .map(|change| {
                        let outcome = self.mutate(change);
                        changed |= matches!(outcome, Ok(true));
                        outcome.map(|_| ())
                    })
                    .collect();
                Applied::Done {
                    changed,
                    answer: Some(Answer::Many(reply, results)),
                }
            }
            Command::Prune { id, sink } => {
                let current = self
                    .clients
                    .get(&id)
                    .is_some_and(|record| Arc::ptr_eq(&record.sink.state, &sink));
                if current {
                    // The sink was closed by whoever asked for the prune; `ConsumerGone`
                    // only applies if it somehow was not.
                    let _ = self.unregister(id, Status::ConsumerGone);
                }
                Applied::Done {
                    changed: current,
                    answer: None,
                }
            }
            Command::Shutdown { reply } => Applied::Shutdown(reply),
        }
    }

    fn register(
        &mut self,
        id: ClientId,
        sink: Arc<Sink<T>>,
        topic: Option<Topic>,
    ) -> Result<(), Error> {
        if self.clients.contains_key(&id) {
            return Err(Error::DuplicateClient(id));
        }
        self.clients.insert(
            id,
            ClientRecord {
                sink,
                topics: Vec::new(),
            },
        );
        self.working.clients += 1;
        if let Some(topic) = topic {
            self.subscribe(id, topic)?;
        }
        Ok(())
    }

    /// Applies one change. Returns whether the registry changed.
    fn mutate(&mut self, change: Mutation) -> Result<bool, Error> {
        match change {
            Mutation::Subscribe(id, topic) => self.subscribe(id, topic),
            Mutation::Unsubscribe(id, topic) => self.unsubscribe(id, &topic),
            Mutation::Unregister(id) => self.unregister(id, Status::Unsubscribed).map(|()| true),
        }
    }

    /// Adds `id` to `topic`. Returns whether anything changed.
    fn subscribe(&mut self, id: ClientId, topic: Topic) -> Result<bool, Error> {
        let record = self.clients.get_mut(&id).ok_or(Error::UnknownClient(id))?;
        if record.topics.iter().any(|name| **name == *topic.name()) {
            return Ok(false);
        }
        let subscriber = Subscriber {
            id,
            sink: Arc::clone(&record.sink),
        };
        let name = match self
            .working
            .topics
            .get_mut(topic.name(), topic.hash_value())
        {
            Some(entry) => {
                if entry.subscribers.len() == entry.subscribers.capacity() {
                    entry
                        .subscribers
                        .reserve_exact(gentle_growth(entry.subscribers.len()));
                }
                entry.subscribers.push(subscriber);
                std::sync::Arc::clone(&entry.name)
            }
            None => {
                let name = topic.shared_name();
                self.working.topics.insert(TopicEntry {
                    name: std::sync::Arc::clone(&name),
                    hash: topic.hash_value(),
                    subscribers: smallvec![subscriber],
                });
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

    /// Removes `id` from `topic`. Returns whether anything changed.
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
        remove_subscriber(&mut self.working, id, topic.name(), topic.hash_value());
        Ok(true)
    }

    /// Removes `id` from every topic and forgets it, closing its sink with `reason`.
    fn unregister(&mut self, id: ClientId, reason: Status) -> Result<(), Error> {
        let record = self.clients.remove(&id).ok_or(Error::UnknownClient(id))?;
        for name in &record.topics {
            remove_subscriber(&mut self.working, id, name, hash_topic(name));
        }
        record.sink.state.close(reason);
        self.working.clients -= 1;
        Ok(())
    }

    /// Removes every client whose sink is closed. Runs only when a publisher could not
    /// queue a prune command because the queue was full: O(clients), and rare.
    fn sweep(&mut self) -> bool {
        let dead: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, record)| !record.sink.state.is_open())
            .map(|(id, _)| *id)
            .collect();
        for id in &dead {
            let _ = self.unregister(*id, Status::ConsumerGone);
        }
        !dead.is_empty()
    }

    fn publish(&mut self) {
        self.shared.snapshot.store(Arc::new(self.working.clone()));
    }

    /// Closes every sink and publishes an empty snapshot, so channel receivers end once
    /// the last in-flight broadcast lets go of the old one.
    fn shutdown(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        for record in self.clients.values() {
            record.sink.state.close(Status::Shutdown);
        }
        self.clients.clear();
        self.working = Snapshot::default();
        self.publish();
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
fn remove_subscriber<T>(snapshot: &mut Snapshot<T>, id: ClientId, name: &str, hash: u64) {
    let Some(entry) = snapshot.topics.get_mut(name, hash) else {
        debug_assert!(false, "client record names a topic the snapshot lacks");
        return;
    };
    if let Some(position) = entry.subscribers.iter().position(|s| s.id == id) {
        entry.subscribers.swap_remove(position);
        snapshot.subscriptions -= 1;
    }
    if entry.subscribers.is_empty() {
        snapshot.topics.remove(name, hash);
    }
}
