//! The NATS io thread: a current-thread tokio runtime, made by and for this thread,
//! running the `async-nats` client (its connection handler, which also reconnects and
//! resubscribes), the task that drains the tap's queue, and one task per subscription.
//! No runtime exists outside it: the user's program sees a plain thread.
//!
//! The forwarding task takes what broadcasts queued (each broadcast wakes it when it is
//! parked: see the tap's `park`), numbers and wraps it with the shared
//! [`Framer`](crate::bridge::framer::Framer), and hands each envelope to the client on this same thread, so a frame
//! crosses one thread hand-off (broadcast → io thread) before the socket, not two.
//! While the client is not connected nothing is handed over: the frames are numbered
//! and counted as dropped (receivers see the gap), never queued for later.
//!
//! Each subscription's task hands every message to the shared
//! `Inbound`, with the check that the message came
//! on its topic's subject (a message for topic `b` on `a`'s subject is bad input).
//!
//! # Runtime tasks, not a `LocalSet`
//!
//! The forwarder and the subscription tasks are the runtime's own tasks (their shared
//! state behind a lock that is never contended: one thread runs them all), not tasks of
//! a `LocalSet`. A `LocalSet` task is run from inside the runtime's `block_on` future, so
//! when the connection handler hands a message to a subscription, the runtime first
//! polls its driver once more (an `epoll_wait` with a zero timeout) and only then the
//! `LocalSet`; a runtime task woken by the handler runs straight from the run queue.
//! Measured on the lone-frame path (`benches/bridge_nats.rs`, paced, load 12): handler →
//! subscription task 2.2–2.6 µs → 0.8 µs, as a raw `async-nats` subscriber's 1.5 µs; and
//! the forwarder, woken from the broadcasting thread, reaches the socket about 0.5 µs
//! sooner.
//!
//! The
//! main task applies interest changes from the publisher thread: a subscription per
//! topic and per pattern with local subscribers; it leaves when the publisher thread
//! drops its end (the bridge is detached) or the engine is gone.
//!
//! Presence: one more subscription, made at start and kept for the bridge's life, to
//! the namespace's control subject (the client subscribes again after each reconnect,
//! as it does every subscription); the main task also publishes the presence messages
//! the publisher thread makes (heartbeats, deltas, states, the goodbye) on it, in the
//! order they were made. A pattern's subscription that matches the control subject
//! (`NAMESPACE.>`) skips what arrives on it: the control subscription reads it.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, ServerAddr, Subject, Subscriber};
use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::outlet::ToIo;
use super::subject::Subjects;
use super::MAX_SUBJECT_LEN;
use crate::bridge::backend::Feed;
use crate::bridge::batch::{Batch, Item};
use crate::bridge::inbound::{Flow, Inbound};
use crate::bridge::interest::{Interest, InterestChange};
use crate::bridge::outbound::MAX_BATCH;
use crate::bridge::stats::Counters;
use crate::transport::envelope::encode_presence_envelope;
use crate::transport::presence_sync::Message;
use crate::vocab::trace;

/// What the io thread needs to connect.
pub(crate) struct Connect {
    pub(crate) servers: Vec<ServerAddr>,
    pub(crate) backoff: (Duration, Duration),
    pub(crate) io_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) subscription_capacity: usize,
    pub(crate) name: String,
}

/// What the io thread owns.
pub(crate) struct Io<M: ?Sized> {
    pub(crate) connect: Connect,
    pub(crate) subjects: Subjects,
    pub(crate) inbound: Inbound<M>,
    pub(crate) counters: Arc<Counters>,
    /// The node's interest when the bridge was attached.
    pub(crate) interest: Vec<Interest>,
    /// Later changes and presence messages, from the publisher thread; closed when it
    /// stops.
    pub(crate) changes: UnboundedReceiver<ToIo>,
    /// Where the connected client goes (to the publisher thread's outlet).
    pub(crate) client: crossbeam_channel::Sender<Client>,
    /// The tap's queue, drained here.
    pub(crate) feed: Feed,
}

/// State the subscription tasks share (all on this one thread: the lock is never
/// contended, it only makes the tasks `Send`, as runtime tasks must be).
struct Shared<M: ?Sized> {
    inbound: Mutex<Inbound<M>>,
    subjects: Subjects,
    /// The namespace's control subject.
    control: Subject,
    /// Signalled when a task finds the engine gone.
    engine_gone: Notify,
}

impl<M: ?Sized + 'static> Io<M> {
    pub(crate) fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
        {
            Ok(runtime) => runtime,
            Err(_) => return, // dropping `client` fails the attach
        };
        runtime.block_on(self.serve());
    }

    async fn serve(mut self) {
        // The connection handler says when the connection is (again) up.
        let (connected_tx, mut connected) = tokio::sync::mpsc::unbounded_channel();
        let client = match self
            .options(connected_tx)
            .connect(self.connect.servers.as_slice())
            .await
        {
            Ok(client) => client,
            Err(_) => return,
        };
        if self.client.send(client.clone()).is_err() {
            return;
        }
        let control = Subject::from(self.subjects.control());
        let shared = Arc::new(Shared {
            inbound: Mutex::new(self.inbound),
            subjects: self.subjects,
            control: control.clone(),
            engine_gone: Notify::new(),
        });
        // With presence on, every node reads the control subject, whatever its
        // interest; the client subscribes again after each reconnect.
        let exchange = lock(&shared.inbound).presence.clone();
        let control_task = if exchange.is_some() {
            match client.subscribe(control.clone()).await {
                Ok(subscriber) => Some(tokio::task::spawn(read_control(
                    subscriber,
                    Arc::clone(&shared),
                ))),
                Err(_) => None, // the client is closed already: we are stopping
            }
        } else {
            None
        };
        let mut greeted = false;
        let mut forwarder = Forwarder {
            feed: self.feed,
            client: client.clone(),
            subjects: shared.subjects.clone(),
            cache: HashMap::new(),
            counters: Arc::clone(&self.counters),
            io_timeout: self.connect.io_timeout,
            frames: Vec::with_capacity(MAX_BATCH),
            batch: Batch::default(),
        };
        // The forwarder runs until the bridge stops, then sends what is left.
        let stop = Arc::new(Stop::default());
        let forward = tokio::task::spawn({
            let stop = Arc::clone(&stop);
            async move {
                forwarder.run(&stop).await;
                forwarder.drain().await;
            }
        });
        let mut subscriptions: HashMap<Interest, JoinHandle<()>> = HashMap::new();
        for interest in std::mem::take(&mut self.interest) {
            subscribe(&client, &shared, &mut subscriptions, interest).await;
        }
        self.counters
            .channels
            .store(subscriptions.len(), Ordering::Relaxed);
        loop {
            let changes = tokio::select! {
                changes = self.changes.recv() => changes,
                () = shared.engine_gone.notified() => None,
                Some(()) = connected.recv() => {
                    // Presence: the publisher thread's hello went nowhere if it ran
                    // before the first connection was up (it usually does). Ask for
                    // everyone's state once, and after every (re)connection tell our
                    // version at once: whoever missed our changes asks for our state.
                    if let Some(exchange) = &exchange {
                        let mut out = Vec::with_capacity(2);
                        if !std::mem::replace(&mut greeted, true) {
                            out.push(exchange.hello());
                        }
                        out.push(exchange.heartbeat());
                        greet(&client, &control, &out, &self.connect).await;
                    }
                    continue;
                }
            };
            let Some(changes) = changes else {
                break; // detached, or the engine is gone
            };
            let changes = match changes {
                ToIo::Follow(changes) => changes,
                ToIo::Publish(buffer, items) => {
                    publish(
                        &client,
                        &shared.subjects,
                        &control,
                        &buffer,
                        items,
                        &self.connect,
                    )
                    .await;
                    continue;
                }
            };
            for change in changes {
                match change {
                    InterestChange::Subscribe(interest) => {
                        subscribe(&client, &shared, &mut subscriptions, interest).await;
                    }
                    InterestChange::Unsubscribe(interest) => {
                        // Dropping the task's subscription sends the UNSUB.
                        if let Some(task) = subscriptions.remove(&interest) {
                            task.abort();
                        }
                    }
                }
            }
            self.counters
                .channels
                .store(subscriptions.len(), Ordering::Relaxed);
        }
        for (_, task) in subscriptions.drain() {
            task.abort();
        }
        if let Some(task) = control_task {
            task.abort();
        }
        // Detached (the tap no longer feeds the queue) or the engine is gone: the
        // forwarder sends what is left, then the client writes it out.
        stop.now();
        let _ = tokio::time::timeout(self.connect.io_timeout * 2, forward).await;
        let _ = tokio::time::timeout(self.connect.io_timeout, client.flush()).await;
        self.counters.publisher_up.store(false, Ordering::Relaxed);
        self.counters.subscriber_up.store(false, Ordering::Relaxed);
        self.counters.channels.store(0, Ordering::Relaxed);
    }

    /// The client's options: no echo, our backoff, our counters on its events, and a
    /// signal on `connected` each time the connection is up.
    fn options(&self, connected: tokio::sync::mpsc::UnboundedSender<()>) -> ConnectOptions {
        let counters = Arc::clone(&self.counters);
        let was_up = Arc::new(AtomicBool::new(false));
        let (min, max) = self.connect.backoff;
        ConnectOptions::new()
            .name(&self.connect.name)
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .skip_subject_validation(true)
            .connection_timeout(self.connect.io_timeout)
            .ping_interval(self.connect.ping_interval)
            .subscription_capacity(self.connect.subscription_capacity)
            .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, min, max))
            .event_callback(move |event| {
                let counters = Arc::clone(&counters);
                let was_up = Arc::clone(&was_up);
                let connected = connected.clone();
                async move {
                    match event {
                        // One connection carries both directions.
                        Event::Connected => {
                            let again = was_up.swap(true, Ordering::Relaxed);
                            if again {
                                Counters::add(&counters.reconnects, 1);
                            }
                            trace::bridge_up("nats", "connection", again);
                            counters.publisher_up.store(true, Ordering::Relaxed);
                            counters.subscriber_up.store(true, Ordering::Relaxed);
                            let _ = connected.send(()); // the io thread is gone: stopping
                        }
                        Event::Disconnected => {
                            trace::bridge_lost("nats", "connection", &"disconnected");
                            counters.publisher_up.store(false, Ordering::Relaxed);
                            counters.subscriber_up.store(false, Ordering::Relaxed);
                        }
                        Event::SlowConsumer(_) => Counters::add(&counters.slow_consumers, 1),
                        _ => {}
                    }
                }
            })
    }
}

/// Subscribes to `interest`'s subject and starts the task that reads it.
async fn subscribe<M: ?Sized + 'static>(
    client: &Client,
    shared: &Arc<Shared<M>>,
    subscriptions: &mut HashMap<Interest, JoinHandle<()>>,
    interest: Interest,
) {
    if subscriptions.contains_key(&interest) {
        return;
    }
    let subject = match &interest {
        Interest::Topic(topic) => shared.subjects.topic(topic),
        Interest::Pattern(pattern) => shared.subjects.pattern(pattern),
    };
    // Fails only once the client is closed (we are stopping).
    let Ok(subscriber) = client.subscribe(subject).await else {
        return;
    };
    let task = tokio::task::spawn(read(subscriber, Arc::clone(shared)));
    subscriptions.insert(interest, task);
}

/// Publishes envelopes the publisher thread made (presence messages): an item with an
/// empty topic on the control subject. Lost if the client cannot take them within the
/// io timeout (the heartbeats that follow let the others catch up).
async fn publish(
    client: &Client,
    subjects: &Subjects,
    control: &Subject,
    buffer: &Bytes,
    items: Vec<Item>,
    connect: &Connect,
) {
    for item in items {
        let (topic, envelope) = item.parts(buffer);
        let subject = if topic.is_empty() {
            control.clone()
        } else {
            Subject::from(subjects.topic(topic))
        };
        let publish = client.publish(subject, envelope);
        match tokio::time::timeout(connect.io_timeout, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Publishes presence messages made on this thread on the control subject.
async fn greet(client: &Client, control: &Subject, messages: &[Message], connect: &Connect) {
    for message in messages {
        let mut envelope = Vec::new();
        encode_presence_envelope(message, &mut envelope);
        let publish = client.publish(control.clone(), Bytes::from(envelope));
        match tokio::time::timeout(connect.io_timeout, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Hands every message of the control subscription to the shared receiving end (no
/// topic's subject is the control subject, so only presence envelopes are accepted).
async fn read_control<M: ?Sized>(mut subscriber: Subscriber, shared: Arc<Shared<M>>) {
    while let Some(message) = poll_fn(|cx| Pin::new(&mut subscriber).poll_next(cx)).await {
        let flow = lock(&shared.inbound).accept_owned(&message.payload, |_| false);
        if flow == Flow::Stop {
            shared.engine_gone.notify_one();
            return;
        }
    }
}

/// Hands every message of one subscription to the shared receiving end.
async fn read<M: ?Sized>(mut subscriber: Subscriber, shared: Arc<Shared<M>>) {
    while let Some(message) = poll_fn(|cx| Pin::new(&mut subscriber).poll_next(cx)).await {
        if message.subject == shared.control {
            continue; // a pattern that matches the control subject: read once, there
        }
        let subjects = &shared.subjects;
        let subject: &str = &message.subject;
        let flow = lock(&shared.inbound).accept_owned(&message.payload, |topic| {
            subjects.is_subject_of(subject, topic)
        });
        if flow == Flow::Stop {
            shared.engine_gone.notify_one();
            return;
        }
    }
}

/// Tells the forwarder to stop when it next finds the queue empty. Set and read on this
/// one thread (the atomic and the lock only make it `Sync`): Relaxed is enough.
#[derive(Default)]
struct Stop {
    requested: AtomicBool,
    /// The forwarder's waker while it is parked.
    parked: Mutex<Option<std::task::Waker>>,
}

impl Stop {
    fn now(&self) {
        self.requested.store(true, Ordering::Relaxed);
        if let Some(waker) = lock(&self.parked).take() {
            waker.wake();
        }
    }
}

/// Locks a mutex of this thread's tasks. A task that panicked while holding it (a bug)
/// leaves the value as it was; the others go on.
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The task that drains the tap's queue into the client.
struct Forwarder {
    feed: Feed,
    client: Client,
    subjects: Subjects,
    /// Topic → subject, so a frame costs no subject building (subjects are shared
    /// buffers: a clone is a reference count). Cleared when full.
    cache: HashMap<Box<str>, Subject>,
    counters: Arc<Counters>,
    /// The longest one envelope waits for room in the client's queue.
    io_timeout: Duration,
    frames: Vec<crate::face::tap::Tapped>,
    batch: Batch,
}

/// Most subjects the forwarder remembers.
const MAX_CACHED_SUBJECTS: usize = 1 << 16;

impl Forwarder {
    /// Forwards until `stop` is requested while the queue is empty.
    async fn run(&mut self, stop: &Stop) {
        loop {
            let queue = &self.feed.queue;
            self.frames.extend(queue.try_iter().take(MAX_BATCH));
            if self.frames.is_empty() {
                let first = poll_fn(|cx| {
                    if let Ok(item) = queue.try_recv() {
                        return Poll::Ready(Some(item));
                    }
                    if stop.requested.load(Ordering::Relaxed) {
                        return Poll::Ready(None);
                    }
                    let mut parked = lock(&stop.parked);
                    if !parked.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *parked = Some(cx.waker().clone());
                    }
                    drop(parked);
                    self.feed.tap.park(cx.waker());
                    // The second look the tap's protocol needs (a push between the first
                    // look and `park` would otherwise sit in the queue).
                    match queue.try_recv() {
                        Ok(item) => Poll::Ready(Some(item)),
                        Err(_) => Poll::Pending,
                    }
                })
                .await;
                match first {
                    Some(item) => self.frames.push(item),
                    None => return,
                }
                self.frames.extend(queue.try_iter().take(MAX_BATCH - 1));
            }
            self.send().await;
        }
    }

    /// Sends what is left in the queue (the bridge is stopping).
    async fn drain(&mut self) {
        loop {
            self.frames
                .extend(self.feed.queue.try_iter().take(MAX_BATCH));
            if self.frames.is_empty() {
                return;
            }
            self.send().await;
        }
    }

    /// Numbers and wraps `frames` (emptying it) and hands the envelopes to the client,
    /// or counts them dropped.
    async fn send(&mut self) {
        let n = self.frames.len() as u64;
        let connected = self.client.connection_state() == State::Connected;
        self.batch.clear();
        self.feed
            .framer
            .wrap(&mut self.frames, &mut self.batch, connected);
        if !connected {
            Counters::add(&self.counters.dropped, n);
            return;
        }
        let (buffer, items) = self.batch.take();
        let mut sent = 0;
        for item in items {
            let (topic, envelope) = item.parts(&buffer);
            let subject = match self.cache.get(topic) {
                Some(subject) => subject.clone(),
                None => {
                    if self.cache.len() >= MAX_CACHED_SUBJECTS {
                        self.cache.clear();
                    }
                    let subject = Subject::from(self.subjects.topic(topic));
                    self.cache.insert(topic.into(), subject.clone());
                    subject
                }
            };
            if subject.len() > MAX_SUBJECT_LEN {
                continue; // never sent: the server would close the connection
            }
            // Room in the client's queue comes at once unless it is stuck reconnecting:
            // then give up on the rest (numbered: receivers see the gap).
            let publish = self.client.publish(subject, envelope);
            match tokio::time::timeout(self.io_timeout, publish).await {
                Ok(Ok(())) => sent += u64::from(item.frames()),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Counters::add(&self.counters.sent, sent);
        Counters::add(&self.counters.dropped, n - sent);
    }
}

/// The wait before connection attempt `attempts` (1 for the first of a run: at attach,
/// or after a connection was lost): none before the first, as the Redis bridge tries at
/// once, then `min`, doubling after each failure, up to `max`.
fn reconnect_delay(attempts: usize, min: Duration, max: Duration) -> Duration {
    let Some(failures) = attempts.checked_sub(2) else {
        return Duration::ZERO;
    };
    min.saturating_mul(1 << failures.min(31)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attempt_waits_nothing_then_the_backoff_doubles_to_its_cap() {
        let ms = Duration::from_millis;
        let delays: Vec<_> = (1..=6)
            .map(|attempt| reconnect_delay(attempt, ms(50), ms(250)))
            .collect();
        assert_eq!(delays, [ms(0), ms(50), ms(100), ms(200), ms(250), ms(250)]);
        assert_eq!(reconnect_delay(usize::MAX, ms(50), ms(250)), ms(250));
    }
}
