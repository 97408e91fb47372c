//! The publisher thread: drains the tap's bounded queue into Redis over one connection,
//! so envelopes leave in the order broadcasts queued them (per-origin order; a pool of
//! connections would not keep it).
//!
//! Whatever is queued when the thread wakes goes out as one pipeline of up to
//! [`MAX_BATCH`] `PUBLISH` commands: one round trip for many frames when broadcasts come
//! faster than Redis answers. Every envelope gets the next sequence number of its topic
//! ([`Numbering`]) whether it is sent or not, so receivers count what this node failed
//! to send as a gap.
//!
//! Under [`ChannelLayout::PerTopic`](super::ChannelLayout::PerTopic) the thread also
//! passes the engine's topic events on to the subscriber thread, and wakes it (it is
//! blocked reading its connection) with an empty message on this node's wake channel,
//! so a topic's first local subscriber gets the node subscribed in about a round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, Receiver, Sender};

use super::backoff::Backoff;
use super::sequences::Numbering;
use super::stats::Counters;
use super::Settings;
use crate::face::tap::Tapped;
use crate::transport::envelope::{Audience, EnvelopeHeader, NodeId};
use crate::transport::frame::decode;
use crate::vocab::topic_event::TopicEvent;
use crate::vocab::trace;

/// Most envelopes sent in one pipeline.
pub(crate) const MAX_BATCH: usize = 256;

/// What the publisher thread owns.
pub(crate) struct Publisher {
    pub(crate) settings: Arc<Settings>,
    pub(crate) node: NodeId,
    pub(crate) queue: Receiver<Tapped>,
    pub(crate) stop: Receiver<()>,
    pub(crate) counters: Arc<Counters>,
    /// Per-topic layout: the engine's topic events, and where they go on to.
    pub(crate) events: Option<(Receiver<TopicEvent>, Sender<TopicEvent>)>,
}

impl Publisher {
    pub(crate) fn run(self) {
        let mut link = Link::new(&self.settings, &self.counters);
        let mut numbering = Numbering::default();
        let mut batch: Vec<Tapped> = Vec::with_capacity(MAX_BATCH);
        let mut scratch = Vec::new();
        let no_events = never();
        let events = self.events.as_ref().map_or(&no_events, |(from, _)| from);
        loop {
            // Connect when due; while disconnected wake up at the next attempt.
            let wait = link.ensure(&self.settings, &self.counters);
            let first = select! {
                recv(self.queue) -> item => match item {
                    Ok(item) => item,
                    Err(_) => break,
                },
                recv(events) -> event => {
                    if let Ok(event) = event {
                        self.pass_on(event, events, &mut link);
                    }
                    continue;
                }
                recv(self.stop) -> _ => break,
                default(wait) => continue,
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            self.send(&mut link, &mut numbering, &mut batch, &mut scratch);
        }
        // Detached: the tap no longer feeds the queue; send what is left in it.
        loop {
            batch.extend(self.queue.try_iter().take(MAX_BATCH));
            if batch.is_empty() {
                break;
            }
            self.send(&mut link, &mut numbering, &mut batch, &mut scratch);
        }
        self.counters
            .publisher_up
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hands `first` and every other queued topic event to the subscriber thread, then
    /// wakes it with one empty message on its wake channel.
    fn pass_on(&self, first: TopicEvent, events: &Receiver<TopicEvent>, link: &mut Link) {
        let Some((_, to_subscriber)) = &self.events else {
            return;
        };
        for event in std::iter::once(first).chain(events.try_iter()) {
            let _ = to_subscriber.send(event);
        }
        if let Some(con) = link.connection.as_mut() {
            let wake = redis::cmd("PUBLISH")
                .arg(&self.settings.wake)
                .arg(&b""[..])
                .exec(con);
            if let Err(e) = wake {
                trace::bridge_lost("redis", "publisher", &e);
                link.lost(&self.counters);
            }
        }
        // Disconnected: the subscriber picks the events up within one read timeout.
    }

    /// Publishes `batch` (emptying it) in one pipeline, or counts it dropped.
    fn send(
        &self,
        link: &mut Link,
        numbering: &mut Numbering,
        batch: &mut Vec<Tapped>,
        scratch: &mut Vec<u8>,
    ) {
        let n = batch.len() as u64;
        let mut pipe = redis::pipe();
        for item in batch.drain(..) {
            // The engine built or checked every frame it forwards: this always decodes.
            let Ok(push) = decode(&item.frame) else {
                continue;
            };
            let header = EnvelopeHeader {
                audience: item.from.map_or(Audience::Everyone, Audience::AllBut),
                origin: self.node,
                sequence: numbering.next(push.topic),
            };
            if link.connection.is_none() {
                continue; // numbered, so receivers see the gap
            }
            scratch.clear();
            header.encode_into(&item.frame, scratch);
            pipe.cmd("PUBLISH")
                .arg(self.settings.channel_for(push.topic))
                .arg(&scratch[..])
                .ignore();
        }
        let Some(con) = link.connection.as_mut() else {
            Counters::add(&self.counters.dropped, n);
            return;
        };
        match pipe.exec(con) {
            Ok(()) => Counters::add(&self.counters.sent, n),
            Err(e) => {
                trace::bridge_lost("redis", "publisher", &e);
                // Some may have reached Redis; none is retried, so none arrives twice.
                Counters::add(&self.counters.dropped, n);
                link.lost(&self.counters);
            }
        }
    }
}

/// The publisher's connection and when to try again after losing it.
struct Link {
    connection: Option<redis::Connection>,
    backoff: Backoff,
    next_attempt: Instant,
    /// Whether a connection was up before (the next one counts as a reconnect).
    was_up: bool,
}

impl Link {
    fn new(settings: &Settings, counters: &Counters) -> Self {
        let mut link = Self {
            connection: None,
            backoff: Backoff::new(settings.backoff_min, settings.backoff_max),
            next_attempt: Instant::now(),
            was_up: false,
        };
        link.ensure(settings, counters);
        link
    }

    /// Connects if disconnected and an attempt is due. Returns how long the caller may
    /// wait for work before the next attempt (long when connected).
    fn ensure(&mut self, settings: &Settings, counters: &Counters) -> Duration {
        const IDLE: Duration = Duration::from_secs(3600);
        if self.connection.is_some() {
            return IDLE;
        }
        let now = Instant::now();
        if now < self.next_attempt {
            return self.next_attempt - now;
        }
        match settings.connect() {
            Ok(con) => {
                self.connection = Some(con);
                self.backoff.succeeded();
                if self.was_up {
                    Counters::add(&counters.reconnects, 1);
                }
                trace::bridge_up("redis", "publisher", self.was_up);
                self.was_up = true;
                counters
                    .publisher_up
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                IDLE
            }
            Err(_) => {
                let delay = self.backoff.failed();
                self.next_attempt = Instant::now() + delay;
                delay
            }
        }
    }

    /// The connection failed: drop it and wait before the next attempt.
    fn lost(&mut self, counters: &Counters) {
        self.connection = None;
        counters
            .publisher_up
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.next_attempt = Instant::now() + self.backoff.failed();
    }
}
