//! The registry core both faces share: an immutable snapshot read by broadcasts, and one
//! writer at a time that changes it.
//!
//! [`Engine<T>`] is generic over the item it delivers: `Bytes` Push frames for
//! [`PubSub`](crate::PubSub), the user's message type for
//! [`Broadcaster`](crate::Broadcaster). Neither face copies the other; each is a thin
//! layer that validates input and picks what to deliver.
//!
//! # How a broadcast works
//!
//! See [`delivery`]: one atomic snapshot load, a topic lookup (a pattern match only for
//! topics nobody subscribed to by name, and only if patterns exist), the item made once,
//! one call or queue push per subscriber.
//!
//! # How a mutation works
//!
//! The caller becomes the writer if nobody else is one: it applies its change (and
//! whatever others queued meanwhile) to the working copy, publishes one snapshot and
//! returns — no thread hop. If another caller holds the writer role, it queues its
//! change on the bounded command queue and waits for that caller to apply it. See
//! [`combiner`] for the protocol, [`writer`] for what a batch does, and [`janitor`] for
//! the background thread that serves work nobody waits on (prunes of dead sinks).

pub(crate) mod combiner;
pub(crate) mod command;
pub(crate) mod delivering_presence;
mod delivery;
mod janitor;
pub(crate) mod pattern_index;
pub(crate) mod presence_snapshot;
pub(crate) mod presence_table;
mod recipient;
mod snapshot;
#[cfg(test)]
mod tests;
pub(crate) mod topic_events;
mod topic_index;
pub(crate) mod topic_map;
mod writer;
mod writer_rc;

pub(crate) use command::Change;
use command::{Command, Op};
use janitor::JanitorState;
use presence_table::{PresenceChange, PresenceTable};
pub(crate) use snapshot::Snapshot;
use writer::Writer;

use crate::sink::{Sink, SinkState};
use crate::sync::queue::{self, Receiver, Sender};
use crate::sync::{lock, thread, Arc, AtomicBool, AtomicU64, Condvar, JoinHandle, Mutex, Ordering};
use crate::sync::{SnapshotCell, SnapshotGuard, ThreadId};
use crate::vocab::authorization::SubscribeHook;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::error::StartError;
use crate::vocab::policy::ChannelConfig;
use crate::vocab::stats::{EngineCounters, Stats};
use crate::vocab::topic::{Topic, TopicKey, MAX_TOPIC_LEN};
#[cfg(feature = "tracing")]
use crate::vocab::trace;

use delivery::{PresenceBroadcast, NOBODY};

/// Settings shared by both faces' builders.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    /// Capacity of the command queue callers post to while another holds the writer role.
    pub(crate) command_capacity: usize,
    /// Name of the background (janitor) thread.
    pub(crate) thread_name: String,
    /// Longest topic name accepted, in bytes.
    pub(crate) max_topic_len: usize,
    /// Capacity and policy of channels made without an explicit configuration.
    pub(crate) default_channel: ChannelConfig,
    /// The token separator of topics and wildcard patterns.
    pub(crate) separator: char,
    /// Asked before any subscription is applied, if set.
    pub(crate) can_subscribe: Option<SubscribeHook>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            command_capacity: 4096,
            thread_name: "fanout-janitor".to_owned(),
            max_topic_len: 256,
            default_channel: ChannelConfig::default(),
            separator: crate::vocab::pattern::DEFAULT_SEPARATOR,
            can_subscribe: None,
        }
    }
}

impl EngineConfig {
    fn validate(&self) -> Result<(), StartError> {
        if self.command_capacity == 0 {
            return Err(StartError::InvalidConfig(
                "command queue capacity must be at least 1",
            ));
        }
        if matches!(self.separator, '*' | '>') {
            return Err(StartError::InvalidConfig(
                "the separator cannot be a wildcard (`*` or `>`)",
            ));
        }
        if self.max_topic_len == 0 || self.max_topic_len > MAX_TOPIC_LEN {
            return Err(StartError::InvalidConfig(
                "max topic length must be between 1 and 65,535 bytes",
            ));
        }
        self.default_channel
            .validate()
            .map_err(|_| StartError::InvalidConfig("default channel capacity must be at least 1"))
    }
}

/// How an engine turns a presence change into what it delivers.
pub(crate) type PresenceEncoder<T> = fn(&PresenceChange) -> Option<T>;

/// What every handle, the writer role and the janitor share.
pub(crate) struct Shared<T> {
    /// The snapshot broadcasts read.
    pub(crate) snapshot: SnapshotCell<Snapshot<T>>,
    /// Set once, by `shutdown` (or by a writer that panicked); broadcasts and mutations
    /// check it first and return `Closed`.
    pub(crate) closed: AtomicBool,
    /// The writer role: whoever holds this lock is the one writer. Never held while user
    /// code runs (see [`writer`]).
    writer: Mutex<Writer<T>>,
    /// Where callers post commands while another holds the role.
    inbox_sender: Sender<Command<T>>,
    /// The same queue's other end, drained by whoever holds the role.
    inbox: Receiver<Command<T>>,
    /// Set by a publisher that could not queue a prune command because the queue was
    /// full; the next batch then sweeps closed sinks.
    pub(crate) sweep_requested: AtomicBool,
    /// The janitor's wake-up flags, and its signal.
    janitor_state: Mutex<JanitorState>,
    janitor_signal: Condvar,
    /// Source of client ids; starts at 1 (0 is [`NOBODY`]).
    next_client_id: AtomicU64,
    /// The token separator of topics and patterns (broadcasts to pattern-only topics
    /// split names with it).
    separator: char,
    /// Presence: members per topic and undelivered changes (see [`presence_table`]).
    presence: Arc<Mutex<PresenceTable>>,
    /// Held by whoever is broadcasting queued presence changes, so they go out in order.
    presence_delivery: Mutex<()>,
    /// How presence changes are broadcast (`None` for a `Broadcaster`, which has no
    /// presence).
    presence_broadcast: Option<PresenceBroadcast<T>>,
    /// Broadcast totals.
    pub(crate) counters: EngineCounters,
}

impl<T> Shared<T> {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// What a consumer's [`Channel`](crate::Channel) keeps of its engine: enough to ask for
/// its own removal, not enough to keep the engine running.
pub(crate) struct EngineLink<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for EngineLink<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> EngineLink<T> {
    /// Whether both links lead to the same engine.
    pub(crate) fn same_engine(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Asks for client `id` to be removed if it is still registered with the sink whose
    /// state is `sink` (see [`Shared::request_prune`]).
    pub(crate) fn request_prune(&self, id: ClientId, sink: &Arc<SinkState>) {
        self.shared
            .request_prune(id, command::PruneTarget::Consumer(Arc::clone(sink)));
    }
}

/// The engine: the handle side of the registry. Dropping it shuts the engine down.
pub(crate) struct Engine<T> {
    link: EngineLink<T>,
    /// Settings, fixed at start.
    config: EngineConfig,
    /// The janitor thread, until joined.
    janitor: Mutex<Option<JoinHandle<()>>>,
    /// The janitor thread's id: `shutdown` on that thread must not join itself.
    janitor_id: ThreadId,
}

impl<T: Clone + Send + 'static> Engine<T> {
    /// Starts the janitor thread. `presence_encoder` makes the frames of presence
    /// changes (`None`: this engine has no presence).
    pub(crate) fn start(
        config: EngineConfig,
        presence_encoder: Option<PresenceEncoder<T>>,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let (inbox_sender, inbox) = queue::bounded(config.command_capacity);
        let presence = Arc::new(Mutex::new(PresenceTable::default()));
        let shared = Arc::new(Shared {
            snapshot: SnapshotCell::new(Arc::new(Snapshot::default())),
            closed: AtomicBool::new(false),
            writer: Mutex::new(Writer::new(config.separator, Arc::clone(&presence))),
            inbox_sender,
            inbox,
            sweep_requested: AtomicBool::new(false),
            janitor_state: Mutex::new(JanitorState::default()),
            janitor_signal: Condvar::new(),
            next_client_id: AtomicU64::new(1),
            separator: config.separator,
            presence,
            presence_delivery: Mutex::new(()),
            presence_broadcast: presence_encoder.map(|encode| PresenceBroadcast {
                encode,
                broadcast: |shared, topic, item| {
                    // Closed: nobody left to tell.
                    let _ = shared.broadcast_ref(topic, NOBODY, item);
                },
            }),
            counters: EngineCounters::default(),
        });
        let for_janitor = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name(config.thread_name.clone())
            .spawn(move || janitor::run(for_janitor))
            .map_err(StartError::Spawn)?;
        Ok(Self {
            janitor_id: handle.thread().id(),
            janitor: Mutex::new(Some(handle)),
            link: EngineLink { shared },
            config,
        })
    }
}

impl<T: Clone> Engine<T> {
    pub(crate) fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub(crate) fn link(&self) -> &EngineLink<T> {
        &self.link
    }

    fn shared(&self) -> &Shared<T> {
        &self.link.shared
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared().closed.load(Ordering::Acquire)
    }

    pub(crate) fn generate_client_id(&self) -> ClientId {
        // Relaxed: uniqueness needs only the atomicity of the increment.
        ClientId::from_raw(self.shared().next_client_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The current snapshot (for statistics and counts).
    pub(crate) fn snapshot(&self) -> SnapshotGuard<Snapshot<T>> {
        self.shared().snapshot.load()
    }

    /// The name the current snapshot stores for `topic`, if it has subscribers by name:
    /// a [`Topic`] handle made from it shares the entry's name, so a
    /// broadcast through the handle recognises the entry by pointer, without comparing
    /// (or even reading) the name's bytes.
    pub(crate) fn stored_name(&self, topic: TopicKey<'_>) -> Option<std::sync::Arc<str>> {
        let snapshot = self.snapshot();
        let entry = snapshot.topics.get(topic.name, topic.hash)?;
        Some(std::sync::Arc::clone(&entry.name))
    }

    /// How many clients a broadcast on `topic` would reach now (by name or pattern).
    pub(crate) fn subscriber_count(&self, topic: TopicKey<'_>) -> usize {
        let snapshot = self.snapshot();
        match snapshot.subscribers(topic) {
            Some(subscribers) => subscribers.len(),
            None if snapshot.patterns.is_empty() => 0,
            None => {
                pattern_index::matching(&snapshot.patterns, topic.name, self.config.separator).len()
            }
        }
    }

    /// Counts a subscription the authorization hook refused.
    pub(crate) fn record_denial(&self) {
        self.shared().counters.record_denial();
    }

    pub(crate) fn stats(&self) -> Stats {
        let snapshot = self.snapshot();
        let mut stats = Stats {
            clients: snapshot.clients,
            topics: snapshot.topics.len(),
            subscriptions: snapshot.subscriptions,
            patterns: snapshot.pattern_subscriptions,
            // The presence table's own lock (never the writer role), taken only here.
            members: lock(&self.shared().presence).members(),
            ..Stats::default()
        };
        self.shared().counters.fill(&mut stats);
        stats
    }

    // ----- mutations -------------------------------------------------------------

    pub(crate) fn register(
        &self,
        id: ClientId,
        sink: Sink<T>,
        topic: Option<Topic>,
    ) -> Result<(), Error> {
        self.register_shared(id, Arc::new(sink), topic)
    }

    /// [`register`](Self::register) for a sink already behind its `Arc`.
    pub(crate) fn register_shared(
        &self,
        id: ClientId,
        sink: Arc<Sink<T>>,
        topic: Option<Topic>,
    ) -> Result<(), Error> {
        self.shared().call(Op::Register { id, sink, topic })?.one()
    }

    /// Tracks `id` in `topic`'s presence list with `meta`.
    pub(crate) fn track(
        &self,
        id: ClientId,
        topic: Topic,
        meta: bytes::Bytes,
    ) -> Result<(), Error> {
        self.shared().call(Op::Track { id, topic, meta })?.one()
    }

    /// Untracks `id` from `topic` (a no-op if not tracked).
    pub(crate) fn untrack(&self, id: ClientId, topic: Topic) -> Result<(), Error> {
        self.shared().call(Op::Untrack { id, topic })?.one()
    }

    /// Calls `each` with the members of `topic` now (client and metadata), ordered by
    /// client id, under the presence table's own lock (never the writer role); returns
    /// this engine's node id for them.
    pub(crate) fn for_each_member(
        &self,
        topic: &str,
        each: impl FnMut(ClientId, &bytes::Bytes),
    ) -> crate::vocab::node::NodeId {
        let table = lock(&self.shared().presence);
        table.for_each_member(topic, each);
        table.node()
    }

    /// Subscribes `id` to `topic` and delivers it the topic's members then every later
    /// change, in one ordered step (see [`presence_snapshot`]).
    pub(crate) fn subscribe_with_snapshot(
        &self,
        id: ClientId,
        topic: crate::vocab::topic::TopicKey<'_>,
        subscribe: impl FnOnce() -> Result<(), Error>,
        others: impl FnOnce() -> Vec<T>,
    ) -> Result<(), Error> {
        self.shared()
            .subscribe_with_snapshot(id, topic, subscribe, others)
    }

    /// The node id this engine's members carry (`NodeId(0)` without a bridge; changed
    /// with events by [`watch_presence`](Self::watch_presence) and
    /// [`unwatch_presence`](Self::unwatch_presence)).
    pub(crate) fn presence_node(&self) -> crate::vocab::node::NodeId {
        lock(&self.shared().presence).node()
    }

    /// How many members `topic` has on this engine: O(1), under the presence table's
    /// own lock.
    pub(crate) fn count_members(&self, topic: &str) -> usize {
        lock(&self.shared().presence).count(topic)
    }

    /// Starts handing every presence change to `watcher` and names this engine's members
    /// `node`; returns the members now (see [`PresenceTable::watch`]). The rename's
    /// leaves and joins are delivered to this engine's subscribers before it returns
    /// (or by the thread delivering presence events at that moment).
    #[allow(dead_code)] // Used by the bridge (features `redis`, `nats`).
    pub(crate) fn watch_presence(
        &self,
        watcher: presence_table::PresenceWatcher,
        node: crate::vocab::node::NodeId,
    ) -> Result<Vec<(std::sync::Arc<str>, ClientId, bytes::Bytes)>, Error> {
        let members = {
            let mut table = lock(&self.shared().presence);
            if self.is_closed() {
                return Err(Error::Closed);
            }
            table.watch(watcher, node)
        };
        // Queued under the table's lock, delivered after it, as a batch's changes are.
        self.shared().deliver_presence();
        Ok(members)
    }

    /// Stops the presence watcher and names this engine's members `NodeId(0)` again,
    /// delivering the rename's leaves and joins as [`watch_presence`](Self::watch_presence)
    /// does.
    #[allow(dead_code)] // Used by the bridge (features `redis`, `nats`).
    pub(crate) fn unwatch_presence(&self) {
        lock(&self.shared().presence).unwatch();
        self.shared().deliver_presence();
    }

    /// Registers many clients in one batch; one result each, in order.
    pub(crate) fn register_many(
        &self,
        clients: Vec<(ClientId, Sink<T>)>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        if clients.is_empty() {
            return self.empty_batch();
        }
        let clients = clients
            .into_iter()
            .map(|(id, sink)| (id, Arc::new(sink)))
            .collect();
        Ok(self.shared().call(Op::RegisterMany(clients))?.many())
    }

    /// Applies one subscribe, unsubscribe or unregister.
    pub(crate) fn mutate(&self, change: Change) -> Result<(), Error> {
        self.shared().call(Op::One(change))?.one()
    }

    /// Applies `changes` in order in one batch; one result per change.
    pub(crate) fn mutate_many(
        &self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        if changes.is_empty() {
            return self.empty_batch();
        }
        Ok(self.shared().call(Op::Many(changes))?.many())
    }

    /// Fault injection: the next batch panics while applying, as a bug or an allocation
    /// failure would (see [`writer`]'s "A panic in a batch").
    #[cfg(any(test, loom))]
    pub(crate) fn inject_batch_panic(&self) {
        let shared = self.shared();
        let mut writer = lock(&shared.writer);
        writer.panic_in_next_batch = true;
        // We held the role: like every releaser, make sure what was posted meanwhile is
        // served.
        if shared.release(writer) {
            shared.hand_off();
        }
    }

    /// What an empty batch returns: nothing, or `Closed`.
    fn empty_batch(&self) -> Result<Vec<Result<(), Error>>, Error> {
        if self.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(Vec::new())
        }
    }

    // ----- broadcasts ------------------------------------------------------------

    /// Delivers the item `make` produces to every subscriber of `topic` except `skip`.
    /// `make` runs only if someone will receive it.
    #[inline]
    pub(crate) fn broadcast(
        &self,
        topic: TopicKey<'_>,
        skip: Option<ClientId>,
        make: impl FnOnce() -> Result<T, Error>,
    ) -> Result<usize, Error> {
        self.shared().broadcast(topic, skip.unwrap_or(NOBODY), make)
    }

    /// Like [`broadcast`](Self::broadcast) for an item the caller already has.
    #[inline]
    pub(crate) fn broadcast_ref(
        &self,
        topic: TopicKey<'_>,
        skip: Option<ClientId>,
        item: &T,
    ) -> Result<usize, Error> {
        self.shared()
            .broadcast_ref(topic, skip.unwrap_or(NOBODY), item)
    }
}

impl<T> Engine<T> {
    /// Closes the registry (every sink closed, an empty snapshot published, every queued
    /// call answered `Closed`) and stops the janitor. Idempotent; returns only once both
    /// are done, even when another thread's `shutdown` started first. Called on the
    /// janitor thread itself (a sink it dropped held the last handle), it does not join.
    pub(crate) fn shutdown(&self) {
        let shared = &self.link.shared;
        shared.closed.store(true, Ordering::Release);
        shared.close_registry();
        if thread::current().id() == self.janitor_id {
            // We are the janitor (user code it ran while disposing of a batch's leftovers
            // shut the engine down, or dropped its last handle): it exits when this returns
            // to its loop. It must not touch the join-handle lock: another thread's
            // `shutdown` may hold it while joining us (found by a loom model).
            shared.stop_janitor();
            return;
        }
        // Held until the janitor is joined, so a concurrent second `shutdown` waits here
        // and also returns only once the janitor has stopped.
        let mut janitor = lock(&self.janitor);
        let Some(handle) = janitor.take() else {
            return;
        };
        shared.stop_janitor();
        let _ = handle.join();
        drop(janitor);
        shared.settle_after_close();
        // Once per engine: by the call that took the janitor's handle.
        #[cfg(feature = "tracing")]
        {
            let mut totals = Stats::default();
            shared.counters.fill(&mut totals);
            trace::engine_shut_down(totals.broadcasts, totals.deliveries, totals.dropped);
        }
    }
}

impl<T> Drop for Engine<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
