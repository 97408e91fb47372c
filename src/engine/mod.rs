//! The registry core both faces share: an immutable snapshot read by broadcasts, and one
//! writer thread that changes it.
//!
//! [`Engine<T>`] is generic over the item it delivers: `Bytes` Push frames for
//! [`PubSub`](crate::PubSub), the user's message type for
//! [`Broadcaster`](crate::Broadcaster). Neither face copies the other; each is a thin
//! layer that validates input and picks what to deliver.
//!
//! # How a broadcast works
//!
//! 1. Load the current [`Snapshot`] (one atomic load; no lock).
//! 2. Look the topic up in its [`TopicMap`](topic_map::TopicMap); no subscribers → done,
//!    and the serialiser never runs.
//! 3. Make the item (serialise once), then walk the subscriber list and hand each sink
//!    a reference to it. The walk runs inside one `catch_unwind`: a panicking callback
//!    closes its own sink, and the walk resumes at the next subscriber.
//! 4. Add what happened to the counters (once per broadcast, not per delivery).
//!
//! # How a mutation works
//!
//! The caller queues a [`Command`] on the bounded command queue (blocking while it is
//! full: back-pressure on mutations, never on broadcasts) and parks until the
//! [writer](writer) answers, which it does only after publishing the snapshot that
//! contains the change.

pub(crate) mod command;
mod snapshot;
pub(crate) mod topic_map;
mod writer;

use std::panic::{catch_unwind, AssertUnwindSafe};

use command::{reply_channel, Command, Reply, LIVENESS_CHECK};
pub(crate) use snapshot::Snapshot;
use snapshot::Subscriber;
use writer::Writer;

use crate::error::StartError;
use crate::policy::ChannelConfig;
use crate::sink::{ChannelSink, Delivery, Sink, SinkState, Status};
use crate::stats::{Counters, Stats, Tally};
use crate::sync::queue::{self, SendTimeoutError, Sender, TrySendError};
use crate::sync::{lock, thread, Arc, AtomicBool, AtomicU64, JoinHandle, Mutex, Ordering};
use crate::sync::{SnapshotCell, SnapshotGuard, ThreadId};
use crate::topic::{Topic, TopicKey, MAX_TOPIC_LEN};
use crate::Channel;
use crate::{ClientId, Error, Mutation};

/// No client ever has this id. It stands for "skip nobody", for which the broadcast walk
/// has its own copy with no sender compare at all.
const NOBODY: ClientId = ClientId::from_raw(0);

/// Settings shared by both faces' builders.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    /// Capacity of the command queue to the writer.
    pub(crate) command_capacity: usize,
    /// Name of the writer thread.
    pub(crate) thread_name: String,
    /// Longest topic name accepted, in bytes.
    pub(crate) max_topic_len: usize,
    /// Capacity and policy of channels made without an explicit configuration.
    pub(crate) default_channel: ChannelConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            command_capacity: 4096,
            thread_name: "fanout-writer".to_owned(),
            max_topic_len: 256,
            default_channel: ChannelConfig::default(),
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

/// What the writer and every handle share.
pub(crate) struct Shared<T> {
    /// The snapshot broadcasts read.
    pub(crate) snapshot: SnapshotCell<Snapshot<T>>,
    /// Set once, by `shutdown` (or by the writer as it stops); broadcasts and mutations
    /// check it first and return `Closed`.
    pub(crate) closed: AtomicBool,
    /// Set when the writer thread has stopped (normally or by panicking) and dropped the
    /// command queue: nobody will answer a command any more.
    pub(crate) writer_exited: AtomicBool,
    /// Set by `shutdown` when it runs on the writer thread itself (a sink dropped there
    /// held the last handle): the writer stops after its current batch.
    pub(crate) stop_after_batch: AtomicBool,
    /// Set by a publisher that could not queue a prune command because the queue was
    /// full; the writer then sweeps closed sinks.
    pub(crate) sweep_requested: AtomicBool,
    /// Source of client ids; starts at 1 (0 is [`NOBODY`]).
    next_client_id: AtomicU64,
    /// Broadcast totals.
    pub(crate) counters: Counters,
}

/// What a consumer's [`Channel`](crate::Channel) keeps of its engine: enough to ask for
/// its own removal, not enough to keep the engine running.
pub(crate) struct EngineLink<T> {
    commands: Sender<Command<T>>,
    shared: Arc<Shared<T>>,
}

impl<T> Clone for EngineLink<T> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> EngineLink<T> {
    fn writer_gone(&self) -> bool {
        self.shared.writer_exited.load(Ordering::Acquire)
    }

    /// Queues a command (parking while the queue is full) and waits for its answer.
    /// Returns `Closed` rather than waiting forever if the writer stops meanwhile.
    fn send_and_wait<R>(&self, command: impl FnOnce(Reply<R>) -> Command<T>) -> Result<R, Error> {
        let (reply, waiter) = reply_channel();
        let mut command = command(reply);
        loop {
            match self.commands.send_timeout(command, LIVENESS_CHECK) {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(back)) if !self.writer_gone() => command = back,
                // Dropping the command drops its reply: the waiter reads `Closed`.
                Err(_) => break,
            }
        }
        waiter.wait(|| self.writer_gone())
    }

    /// Whether both links lead to the same engine.
    pub(crate) fn same_engine(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Asks the writer to remove client `id` if it is still registered with the sink
    /// whose state is `sink`. Never blocks: if the queue is full, sets the sweep flag
    /// instead, and the writer sweeps after its current batch.
    pub(crate) fn request_prune(&self, id: ClientId, sink: &Arc<SinkState>) {
        let command = Command::Prune {
            id,
            sink: Arc::clone(sink),
        };
        if let Err(TrySendError::Full(_)) = self.commands.try_send(command) {
            // Release pairs with the writer's AcqRel swap: the sink's closed status,
            // written before this, is visible to the sweep.
            self.shared.sweep_requested.store(true, Ordering::Release);
        }
        // Disconnected: the writer has stopped and closed every sink already.
    }
}

/// The engine: the handle side of the registry. Dropping it shuts the writer down.
pub(crate) struct Engine<T> {
    link: EngineLink<T>,
    /// Settings, fixed at start.
    config: EngineConfig,
    /// The writer thread, until joined.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer thread's id: `shutdown` on that thread must not join itself.
    writer_id: ThreadId,
}

impl<T: Clone + Send + 'static> Engine<T> {
    /// Starts the writer thread.
    pub(crate) fn start(config: EngineConfig) -> Result<Self, StartError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            snapshot: SnapshotCell::new(Arc::new(Snapshot::default())),
            closed: AtomicBool::new(false),
            sweep_requested: AtomicBool::new(false),
            writer_exited: AtomicBool::new(false),
            stop_after_batch: AtomicBool::new(false),
            next_client_id: AtomicU64::new(1),
            counters: Counters::default(),
        });
        let (commands, inbox) = queue::bounded(config.command_capacity);
        let writer = Writer::new(Arc::clone(&shared), inbox);
        let handle = thread::Builder::new()
            .name(config.thread_name.clone())
            .spawn(move || writer.run_until_stopped())
            .map_err(StartError::Spawn)?;
        Ok(Self {
            writer_id: handle.thread().id(),
            writer: Mutex::new(Some(handle)),
            link: EngineLink { commands, shared },
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

    /// How many clients are subscribed to `topic` in the current snapshot.
    pub(crate) fn subscriber_count(&self, topic: TopicKey<'_>) -> usize {
        self.snapshot().subscribers(topic).map_or(0, <[_]>::len)
    }

    pub(crate) fn stats(&self) -> Stats {
        let snapshot = self.snapshot();
        let mut stats = Stats {
            clients: snapshot.clients,
            topics: snapshot.topics.len(),
            subscriptions: snapshot.subscriptions,
            ..Stats::default()
        };
        self.shared().counters.fill(&mut stats);
        stats
    }

    // ----- mutations -------------------------------------------------------------

    /// Sends a command to the writer and waits for its answer.
    fn call<R>(&self, command: impl FnOnce(Reply<R>) -> Command<T>) -> Result<R, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.link.send_and_wait(command)
    }

    pub(crate) fn register(
        &self,
        id: ClientId,
        sink: Sink<T>,
        topic: Option<Topic>,
    ) -> Result<(), Error> {
        let sink = Arc::new(sink);
        self.call(|reply| Command::Register {
            id,
            sink,
            topic,
            reply,
        })
    }

    /// Registers `id` with a new channel sink (subscribed to `topic`, if given) and
    /// returns the consumer's end.
    pub(crate) fn register_channel(
        &self,
        id: ClientId,
        config: ChannelConfig,
        topic: Option<Topic>,
    ) -> Result<Channel<T>, Error> {
        config.validate()?;
        let (sink, receiver) = ChannelSink::new(config);
        let state = Arc::new(SinkState::new());
        self.register(id, Sink::channel(sink, Arc::clone(&state)), topic)?;
        Ok(Channel::new(receiver, state, id, self.link.clone()))
    }

    /// Applies one subscribe, unsubscribe or unregister.
    pub(crate) fn mutate(&self, change: Mutation) -> Result<(), Error> {
        self.call(|reply| Command::One { change, reply })
    }

    /// Applies `changes` in order in one round trip; one result per change.
    pub(crate) fn mutate_many(
        &self,
        changes: Vec<Mutation>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        if changes.is_empty() {
            return if self.is_closed() {
                Err(Error::Closed)
            } else {
                Ok(Vec::new())
            };
        }
        self.call(|reply| Command::Many { changes, reply })
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
        let skip = skip.unwrap_or(NOBODY);
        let snapshot = self.load_for_broadcast()?;
        let Some(subscribers) = receivers(&snapshot, topic, skip) else {
            return Ok(0);
        };
        let item = make()?;
        Ok(self.deliver(subscribers, skip, &item))
    }

    /// Like [`broadcast`](Self::broadcast) for an item the caller already has.
    #[inline]
    pub(crate) fn broadcast_ref(
        &self,
        topic: TopicKey<'_>,
        skip: Option<ClientId>,
        item: &T,
    ) -> Result<usize, Error> {
        let skip = skip.unwrap_or(NOBODY);
        let snapshot = self.load_for_broadcast()?;
        let Some(subscribers) = receivers(&snapshot, topic, skip) else {
            return Ok(0);
        };
        Ok(self.deliver(subscribers, skip, item))
    }

    #[inline]
    fn load_for_broadcast(&self) -> Result<SnapshotGuard<Snapshot<T>>, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(self.shared().snapshot.load())
    }

    /// Hands `item` to every subscriber but `skip`, isolating panics. Returns how many
    /// sinks received it.
    #[inline]
    fn deliver(&self, subscribers: &[Subscriber<T>], skip: ClientId, item: &T) -> usize {
        // Two copies of the walk: a plain `broadcast` compiles the sender check out.
        if skip == NOBODY {
            self.walk::<false>(subscribers, skip, item)
        } else {
            self.walk::<true>(subscribers, skip, item)
        }
    }

    /// The broadcast loop. The hot path does as little per subscriber as it can: no
    /// delivery counter (deliveries are `subscribers.len()` minus the rare misses the
    /// tally counts), and, unless `SKIPPING`, no sender compare.
    fn walk<const SKIPPING: bool>(
        &self,
        subscribers: &[Subscriber<T>],
        skip: ClientId,
        item: &T,
    ) -> usize {
        let mut tally = Tally::default();
        let mut remaining = subscribers.iter();
        loop {
            // One `catch_unwind` per broadcast, not per subscriber: after a panic the
            // walk resumes where the iterator stopped, just past the subscriber whose
            // callback panicked.
            let walk = catch_unwind(AssertUnwindSafe(|| {
                for subscriber in remaining.by_ref() {
                    if SKIPPING && subscriber.id == skip {
                        tally.missed += 1;
                        continue;
                    }
                    self.deliver_one(subscriber, item, &mut tally);
                }
            }));
            match walk {
                Ok(()) => break,
                Err(panic) => {
                    tally.missed += 1;
                    let culprit = &subscribers[subscribers.len() - remaining.len() - 1];
                    if culprit.sink.mark_panicked() {
                        tally.panics += 1;
                        self.link.request_prune(culprit.id, &culprit.sink.state);
                    }
                    // Dropping a panic payload can itself panic; leak it instead.
                    std::mem::forget(panic);
                }
            }
        }
        let delivered = subscribers.len() - tally.missed;
        self.shared().counters.record(delivered, &tally);
        delivered
    }

    /// One delivery. Always inlined into the walk: out of line (as the compiler chose in
    /// some binaries) it cost 39 instructions per delivery instead of 21. Everything but
    /// the common `Delivered` lives in the cold [`account_miss`](Self::account_miss).
    #[inline(always)]
    fn deliver_one(&self, subscriber: &Subscriber<T>, item: &T, tally: &mut Tally) {
        let outcome = subscriber.sink.deliver(item);
        if outcome != Delivery::Delivered {
            self.account_miss(subscriber, outcome, tally);
        }
    }

    /// Books a delivery that did not simply succeed.
    #[cold]
    #[inline(never)]
    fn account_miss(&self, subscriber: &Subscriber<T>, outcome: Delivery, tally: &mut Tally) {
        match outcome {
            Delivery::Delivered => {}
            Delivery::Dropped { frames, delivered } => {
                tally.dropped += frames;
                tally.missed += usize::from(!delivered);
            }
            Delivery::Skipped => tally.missed += 1,
            Delivery::Closed { dropped } => {
                tally.missed += 1;
                tally.dropped += dropped;
                if subscriber.sink.state.status() == Status::Overflow {
                    tally.disconnects += 1;
                }
                self.link
                    .request_prune(subscriber.id, &subscriber.sink.state);
            }
        }
    }
}

/// The subscribers of `topic` a broadcast skipping `skip` would reach; `None` if nobody,
/// so the caller can skip making the item.
#[inline]
fn receivers<'s, T>(
    snapshot: &'s Snapshot<T>,
    topic: TopicKey<'_>,
    skip: ClientId,
) -> Option<&'s [Subscriber<T>]> {
    let subscribers = snapshot.subscribers(topic)?;
    match subscribers {
        [only] if only.id == skip => None,
        _ => Some(subscribers),
    }
}

impl<T> Engine<T> {
    /// Stops the writer and waits for it. Idempotent. Called from the writer thread
    /// itself (a sink dropped there held the last handle), it only signals.
    pub(crate) fn shutdown(&self) {
        let on_writer_thread = thread::current().id() == self.writer_id;
        self.link.shared.closed.store(true, Ordering::Release);
        // Held until the writer is joined, so a concurrent second `shutdown` waits here
        // and also returns only once the writer has stopped. The writer itself never
        // waits on this lock: it calls `shutdown` only when it drops the last handle, and
        // then no other handle exists to be inside `shutdown` at the same time.
        let mut writer = lock(&self.writer);
        let Some(handle) = writer.take() else {
            return;
        };
        if on_writer_thread {
            // The writer stops after its current batch; nobody can join it.
            self.link
                .shared
                .stop_after_batch
                .store(true, Ordering::Release);
            drop(handle);
            return;
        }
        let _ = self.link.send_and_wait(|reply| Command::Shutdown { reply });
        let _ = handle.join();
        drop(writer);
    }
}

impl<T> Drop for Engine<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
