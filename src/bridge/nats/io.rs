//! The NATS io thread: a current-thread tokio runtime, made by and for this thread,
//! running the `async-nats` client (its connection handler, which also reconnects and
//! resubscribes) and one task per subscription. No runtime exists outside it: the
//! user's program sees a plain thread.
//!
//! Each subscription's task hands every message to the shared
//! [`Inbound`](crate::bridge::inbound::Inbound), with the check that the message came
//! on its topic's subject (a message for topic `b` on `a`'s subject is bad input). The
//! main task applies interest changes from the publisher thread: a subscription per
//! topic and per pattern with local subscribers; it leaves when the publisher thread
//! drops its end (the bridge is detached) or the engine is gone.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, ServerAddr, Subscriber};
use futures_core::Stream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::subject::Subjects;
use crate::bridge::inbound::{Flow, Inbound};
use crate::bridge::interest::{Interest, InterestChange};
use crate::bridge::stats::Counters;

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
    /// Later changes, from the publisher thread; closed when it stops.
    pub(crate) changes: UnboundedReceiver<Vec<InterestChange>>,
    /// Where the connected client goes (to the publisher thread's outlet).
    pub(crate) client: crossbeam_channel::Sender<Client>,
}

/// State the subscription tasks share (all on this one thread).
struct Shared<M: ?Sized> {
    inbound: RefCell<Inbound<M>>,
    subjects: Subjects,
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
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, self.serve());
    }

    async fn serve(mut self) {
        let client = match self
            .options()
            .connect(self.connect.servers.as_slice())
            .await
        {
            Ok(client) => client,
            Err(_) => return,
        };
        if self.client.send(client.clone()).is_err() {
            return;
        }
        let shared = Rc::new(Shared {
            inbound: RefCell::new(self.inbound),
            subjects: self.subjects,
            engine_gone: Notify::new(),
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
            };
            let Some(changes) = changes else {
                break; // detached, or the engine is gone
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
        // Let the client write what the publisher thread handed it before it went.
        let _ = tokio::time::timeout(self.connect.io_timeout, client.flush()).await;
        self.counters.subscriber_up.store(false, Ordering::Relaxed);
        self.counters.channels.store(0, Ordering::Relaxed);
    }

    /// The client's options: no echo, our backoff, our counters on its events.
    fn options(&self) -> ConnectOptions {
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
            .reconnect_delay_callback(move |attempts| {
                let doublings = attempts.saturating_sub(1).min(31) as u32;
                min.saturating_mul(1 << doublings).min(max)
            })
            .event_callback(move |event| {
                let counters = Arc::clone(&counters);
                let was_up = Arc::clone(&was_up);
                async move {
                    match event {
                        Event::Connected => {
                            if was_up.swap(true, Ordering::Relaxed) {
                                Counters::add(&counters.reconnects, 1);
                            }
                            counters.subscriber_up.store(true, Ordering::Relaxed);
                        }
                        Event::Disconnected => {
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
    shared: &Rc<Shared<M>>,
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
    let task = tokio::task::spawn_local(read(subscriber, Rc::clone(shared)));
    subscriptions.insert(interest, task);
}

/// Hands every message of one subscription to the shared receiving end.
async fn read<M: ?Sized>(mut subscriber: Subscriber, shared: Rc<Shared<M>>) {
    while let Some(message) = poll_fn(|cx| Pin::new(&mut subscriber).poll_next(cx)).await {
        let subjects = &shared.subjects;
        let subject: &str = &message.subject;
        let flow = shared
            .inbound
            .borrow_mut()
            .accept_owned(&message.payload, |topic| {
                subjects.is_subject_of(subject, topic)
            });
        if flow == Flow::Stop {
            shared.engine_gone.notify_one();
            return;
        }
    }
}
