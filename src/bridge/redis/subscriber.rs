//! The Redis subscriber thread: one connection subscribed to the namespace's channel
//! (or to one channel per topic with local subscribers), read with a timeout so the
//! thread notices a stop request and an idle connection; a PING after
//! [`Settings::ping_interval`] of silence finds a connection that died quietly. On any
//! error it reconnects with capped exponential backoff and subscribes again — the
//! blocking `redis` API does neither by itself. Every message goes to the shared
//! [`Inbound`].

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::Settings;
use crate::bridge::backoff::Backoff;
use crate::bridge::inbound::{Flow, Inbound};
use crate::bridge::interest::{Interest, InterestChange};
use crate::bridge::stats::Counters;
use crate::vocab::trace;

/// Most channels named in one SUBSCRIBE or UNSUBSCRIBE.
const SUBSCRIBE_CHUNK: usize = 512;

/// What the subscriber thread owns.
pub(crate) struct Subscriber<M: ?Sized> {
    pub(crate) settings: Arc<Settings>,
    pub(crate) inbound: Inbound<M>,
    pub(crate) stop: Receiver<()>,
    pub(crate) counters: Arc<Counters>,
    /// Per-topic layout: interest changes, passed on by the publisher thread.
    pub(crate) changes: Option<Receiver<Vec<InterestChange>>>,
    /// Per-topic layout: the topics with local subscribers now.
    pub(crate) topics: HashSet<Arc<str>>,
}

/// Why a connection's read loop ended.
enum End {
    /// Stop requested, or the engine is gone: leave the thread.
    Stop,
    /// The connection failed: reconnect.
    Lost(redis::RedisError),
}

impl<M: ?Sized> Subscriber<M> {
    pub(crate) fn run(mut self) {
        let mut backoff = Backoff::new(self.settings.backoff_min, self.settings.backoff_max);
        let mut was_up = false;
        loop {
            if let Ok(mut con) = self
                .settings
                .connect_with_read_timeout(self.settings.read_timeout)
            {
                let end = self.serve(&mut con, &mut backoff, &mut was_up);
                if let (End::Lost(e), true) =
                    (&end, self.counters.subscriber_up.load(Ordering::Relaxed))
                {
                    trace::bridge_lost("redis", "subscriber", e);
                }
                self.counters.subscriber_up.store(false, Ordering::Relaxed);
                self.counters.channels.store(0, Ordering::Relaxed);
                if let End::Stop = end {
                    return;
                }
            }
            match self.stop.recv_timeout(backoff.failed()) {
                Err(RecvTimeoutError::Timeout) => {
                    // Keep the topic set current while disconnected.
                    self.apply_changes();
                }
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Subscribes on `con` and delivers what arrives until the connection fails or the
    /// bridge stops.
    fn serve(
        &mut self,
        con: &mut redis::Connection,
        backoff: &mut Backoff,
        was_up: &mut bool,
    ) -> End {
        let mut pubsub = con.as_pubsub();
        if let Err(e) = self.subscribe_all(&mut pubsub) {
            return End::Lost(e);
        }
        backoff.succeeded();
        if *was_up {
            Counters::add(&self.counters.reconnects, 1);
        }
        trace::bridge_up("redis", "subscriber", *was_up);
        *was_up = true;
        self.counters.subscriber_up.store(true, Ordering::Relaxed);
        let mut last_heard = Instant::now();
        loop {
            if self.stopping() {
                return End::Stop;
            }
            if self.changes.is_some() {
                if let Err(e) = self.follow_topics(&mut pubsub) {
                    return End::Lost(e);
                }
            }
            match pubsub.get_message() {
                Ok(message) => {
                    last_heard = Instant::now();
                    if self.accept(&message) == Flow::Stop {
                        return End::Stop;
                    }
                }
                Err(e) if e.is_timeout() => {
                    if last_heard.elapsed() >= self.settings.ping_interval {
                        if let Err(e) = pubsub.ping::<redis::Value>() {
                            return End::Lost(e);
                        }
                        last_heard = Instant::now();
                    }
                }
                Err(e) => return End::Lost(e),
            }
        }
    }

    /// After (re)connecting: the namespace's channel, or the wake channel and every
    /// topic with local subscribers.
    fn subscribe_all(&mut self, pubsub: &mut redis::PubSub<'_>) -> redis::RedisResult<()> {
        if self.changes.is_none() {
            pubsub.subscribe(self.settings.channel_for(""))?;
            self.counters.channels.store(1, Ordering::Relaxed);
            return Ok(());
        }
        pubsub.subscribe(&self.settings.wake)?;
        pubsub.subscribe(self.settings.control_channel())?;
        self.apply_changes();
        let all: Vec<&Arc<str>> = self.topics.iter().collect();
        for chunk in all.chunks(SUBSCRIBE_CHUNK) {
            let channels: Vec<Vec<u8>> =
                chunk.iter().map(|t| self.settings.channel_for(t)).collect();
            pubsub.subscribe(channels)?;
        }
        self.counters
            .channels
            .store(self.topics.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Applies pending interest changes to the topic set; returns the net change as
    /// (opened, closed) topics. Patterns are not followed: Redis matches every pattern
    /// against every publish, so a per-topic bridge never `PSUBSCRIBE`s.
    fn apply_changes(&mut self) -> (Vec<Arc<str>>, Vec<Arc<str>>) {
        let Some(changes) = &self.changes else {
            return Default::default();
        };
        let (mut opened, mut closed) = (HashSet::new(), HashSet::new());
        for change in changes.try_iter().flatten() {
            match change {
                InterestChange::Subscribe(Interest::Topic(topic)) => {
                    // Closed and reopened since the last look: still subscribed.
                    if !closed.remove(&topic) {
                        opened.insert(Arc::clone(&topic));
                    }
                    self.topics.insert(topic);
                }
                InterestChange::Unsubscribe(Interest::Topic(topic)) => {
                    if !opened.remove(&topic) {
                        closed.insert(Arc::clone(&topic));
                    }
                    self.topics.remove(&topic);
                }
                InterestChange::Subscribe(Interest::Pattern(_))
                | InterestChange::Unsubscribe(Interest::Pattern(_)) => {}
            }
        }
        (opened.into_iter().collect(), closed.into_iter().collect())
    }

    /// Per-topic layout: SUBSCRIBE to topics that opened and UNSUBSCRIBE from those that
    /// closed since the last look, in batches.
    fn follow_topics(&mut self, pubsub: &mut redis::PubSub<'_>) -> redis::RedisResult<()> {
        let (opened, closed) = self.apply_changes();
        for chunk in closed.chunks(SUBSCRIBE_CHUNK) {
            let channels: Vec<Vec<u8>> =
                chunk.iter().map(|t| self.settings.channel_for(t)).collect();
            pubsub.unsubscribe(channels)?;
        }
        for chunk in opened.chunks(SUBSCRIBE_CHUNK) {
            let channels: Vec<Vec<u8>> =
                chunk.iter().map(|t| self.settings.channel_for(t)).collect();
            pubsub.subscribe(channels)?;
        }
        self.counters
            .channels
            .store(self.topics.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Whether the bridge is being detached.
    fn stopping(&self) -> bool {
        !matches!(self.stop.try_recv(), Err(TryRecvError::Empty))
    }

    /// Hands one message to the shared receiving end.
    fn accept(&mut self, message: &redis::Msg) -> Flow {
        let channel = message.get_channel_name(); // "?" if not UTF-8: matches nothing
        if self.changes.is_some() && channel == self.settings.wake {
            return Flow::Continue; // a wake-up: interest changes are waiting
        }
        let settings = &self.settings;
        self.inbound.accept(message.get_payload_bytes(), |topic| {
            settings.is_channel_of(channel, topic)
        })
    }
}
