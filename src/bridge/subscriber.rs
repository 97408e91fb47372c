//! The subscriber thread: one connection subscribed to the namespace's channel (or to
//! one channel per topic with local subscribers), read with a timeout so the thread
//! notices a stop request and an idle connection; a PING after
//! [`Settings::ping_interval`] of silence finds a connection that died quietly. On any
//! error it reconnects with capped exponential backoff and subscribes again — the
//! blocking `redis` API does neither by itself.
//!
//! Each message is checked ([`decode_envelope`], and the channel it came on must be its
//! topic's), filtered (own origin: an echo; a sequence number not above its stream's
//! last: a duplicate), its sequence jump counted as a gap, and its Push frame delivered
//! to local subscribers only.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::backoff::Backoff;
use super::sequences::{Tracker, Verdict};
use super::stats::Counters;
use super::Settings;
use crate::face::pubsub::WeakPubSub;
use crate::transport::envelope::{decode_envelope, NodeId, ENVELOPE_HEADER_LEN};
use crate::vocab::error::Error;
use crate::vocab::topic_event::TopicEvent;
use crate::vocab::trace;

/// Most channels named in one SUBSCRIBE or UNSUBSCRIBE.
const SUBSCRIBE_CHUNK: usize = 512;

/// What the subscriber thread owns.
pub(crate) struct Subscriber<M: ?Sized> {
    pub(crate) settings: Arc<Settings>,
    pub(crate) node: NodeId,
    pub(crate) engine: WeakPubSub<M>,
    pub(crate) stop: Receiver<()>,
    pub(crate) counters: Arc<Counters>,
    /// Per-topic layout: the topics with local subscribers when the bridge was attached,
    /// and every change since (passed on by the publisher thread).
    pub(crate) topics: Option<(Vec<Arc<str>>, Receiver<TopicEvent>)>,
}

/// Why a connection's read loop ended.
enum End {
    /// Stop requested, or the engine is gone: leave the thread.
    Stop,
    /// The connection failed: reconnect.
    Lost(redis::RedisError),
}

/// The thread's state across connections.
struct State {
    /// Per-topic layout: the topics with local subscribers now.
    topics: HashSet<Arc<str>>,
    /// Last sequence number per (origin, topic).
    streams: Tracker,
    backoff: Backoff,
    /// Whether a connection was up before (the next one counts as a reconnect).
    was_up: bool,
}

impl<M: ?Sized> Subscriber<M> {
    pub(crate) fn run(mut self) {
        let mut state = State {
            topics: self
                .topics
                .as_mut()
                .map(|(now, _)| std::mem::take(now).into_iter().collect())
                .unwrap_or_default(),
            streams: Tracker::default(),
            backoff: Backoff::new(self.settings.backoff_min, self.settings.backoff_max),
            was_up: false,
        };
        loop {
            if let Ok(mut con) = self
                .settings
                .connect_with_read_timeout(self.settings.read_timeout)
            {
                let end = self.serve(&mut con, &mut state);
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
            match self.stop.recv_timeout(state.backoff.failed()) {
                Err(RecvTimeoutError::Timeout) => {
                    // Keep the topic set current while disconnected.
                    self.apply_events(&mut state.topics);
                }
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Subscribes on `con` and delivers what arrives until the connection fails or the
    /// bridge stops.
    fn serve(&self, con: &mut redis::Connection, state: &mut State) -> End {
        let mut pubsub = con.as_pubsub();
        if let Err(e) = self.subscribe_all(&mut pubsub, state) {
            return End::Lost(e);
        }
        state.backoff.succeeded();
        if state.was_up {
            Counters::add(&self.counters.reconnects, 1);
        }
        trace::bridge_up("redis", "subscriber", state.was_up);
        state.was_up = true;
        self.counters.subscriber_up.store(true, Ordering::Relaxed);
        let mut last_heard = Instant::now();
        loop {
            if self.stopping() {
                return End::Stop;
            }
            if self.topics.is_some() {
                if let Err(e) = self.follow_topics(&mut pubsub, state) {
                    return End::Lost(e);
                }
            }
            match pubsub.get_message() {
                Ok(message) => {
                    last_heard = Instant::now();
                    if !self.accept(&message, &mut state.streams) {
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
    fn subscribe_all(
        &self,
        pubsub: &mut redis::PubSub<'_>,
        state: &mut State,
    ) -> redis::RedisResult<()> {
        if self.topics.is_none() {
            pubsub.subscribe(self.settings.channel_for(""))?;
            self.counters.channels.store(1, Ordering::Relaxed);
            return Ok(());
        }
        pubsub.subscribe(&self.settings.wake)?;
        self.apply_events(&mut state.topics);
        let all: Vec<&Arc<str>> = state.topics.iter().collect();
        for chunk in all.chunks(SUBSCRIBE_CHUNK) {
            let channels: Vec<Vec<u8>> =
                chunk.iter().map(|t| self.settings.channel_for(t)).collect();
            pubsub.subscribe(channels)?;
        }
        self.counters
            .channels
            .store(state.topics.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Applies pending topic events to `topics`; returns the net change as (opened,
    /// closed) topics.
    fn apply_events(&self, topics: &mut HashSet<Arc<str>>) -> (Vec<Arc<str>>, Vec<Arc<str>>) {
        let Some((_, events)) = &self.topics else {
            return Default::default();
        };
        let (mut opened, mut closed) = (HashSet::new(), HashSet::new());
        for event in events.try_iter() {
            match event {
                TopicEvent::Opened(topic) => {
                    // Closed and reopened since the last look: still subscribed.
                    if !closed.remove(&topic) {
                        opened.insert(Arc::clone(&topic));
                    }
                    topics.insert(topic);
                }
                TopicEvent::Closed(topic) => {
                    if !opened.remove(&topic) {
                        closed.insert(Arc::clone(&topic));
                    }
                    topics.remove(&topic);
                }
            }
        }
        (opened.into_iter().collect(), closed.into_iter().collect())
    }

    /// Per-topic layout: SUBSCRIBE to topics that opened and UNSUBSCRIBE from those that
    /// closed since the last look, in batches.
    fn follow_topics(
        &self,
        pubsub: &mut redis::PubSub<'_>,
        state: &mut State,
    ) -> redis::RedisResult<()> {
        let (opened, closed) = self.apply_events(&mut state.topics);
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
            .store(state.topics.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Whether the bridge is being detached.
    fn stopping(&self) -> bool {
        !matches!(self.stop.try_recv(), Err(TryRecvError::Empty))
    }

    /// Checks one message and delivers its frame locally. `false` once the engine is
    /// gone or closed.
    fn accept(&self, message: &redis::Msg, streams: &mut Tracker) -> bool {
        let bad = || {
            Counters::add(&self.counters.bad_envelopes, 1);
            true
        };
        let channel = message.get_channel_name(); // "?" if not UTF-8: matches nothing
        if self.topics.is_some() && channel == self.settings.wake {
            return true; // a wake-up: topic events are waiting
        }
        let payload = message.get_payload_bytes();
        if payload.len() > self.settings.max_message_len {
            return bad();
        }
        let Ok(envelope) = decode_envelope(payload) else {
            return bad();
        };
        let topic = envelope.push.topic;
        if !self.settings.is_channel_of(channel, topic) {
            return bad(); // a frame for another topic than its channel's
        }
        let header = envelope.header;
        if header.origin == self.node {
            return true; // our own broadcast, delivered locally already
        }
        match streams.check(header.origin, topic, header.sequence) {
            Verdict::Duplicate => {
                Counters::add(&self.counters.duplicates, 1);
                return true;
            }
            Verdict::Deliver { missed } => Counters::add(&self.counters.gaps, missed),
        }
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        let frame = Bytes::copy_from_slice(&payload[ENVELOPE_HEADER_LEN..]);
        match engine.deliver_remote(topic, &frame) {
            Ok(_) => {
                Counters::add(&self.counters.received, 1);
                true
            }
            Err(Error::Closed) => false,
            Err(_) => bad(), // a topic longer than this engine accepts
        }
    }
}
