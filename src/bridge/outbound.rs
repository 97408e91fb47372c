//! The publisher thread, shared by every backend: drains the tap's bounded queue and
//! hands the frames, numbered and wrapped in envelopes, to the backend's [`Outlet`] —
//! or, for a backend that drains the queue on its own thread (NATS), only follows the
//! node's interest; that backend numbers and wraps with the same [`Framer`].
//!
//! One thread and one outlet per bridge, so envelopes leave in the order broadcasts
//! queued them (per-origin order; a pool of connections would not keep it). Whatever is
//! queued when the thread wakes goes out as one [`Batch`] of up to [`MAX_BATCH`]
//! envelopes: one round trip for many frames when broadcasts come faster than the
//! broker answers. Every envelope gets the next sequence number of its topic
//! (`Numbering`) whether it is sent or not, so receivers count what this node failed
//! to send as a gap.
//!
//! When the backend routes by interest, the thread also drains the engine's interest
//! events, [folds](super::interest::fold) them and hands the net change to the outlet.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, Receiver};

use super::backend::{Failure, Outlet};
use super::backoff::Backoff;
use super::batch::Batch;
use super::framer::Framer;
use super::interest::{fold, InterestChange};
use super::presence::Exchange;
use super::stats::Counters;
use crate::engine::presence_table::PresenceChange;
use crate::face::tap::Tapped;
use crate::transport::envelope::ENVELOPE_HEADER_LEN;
use crate::transport::presence_sync::{split, Message};
use crate::vocab::topic_event::TopicEvent;

/// Most envelopes in one batch.
pub(crate) const MAX_BATCH: usize = 256;

/// What the publisher thread owns.
pub(crate) struct Publisher<O: Outlet> {
    pub(crate) outlet: O,
    pub(crate) framer: Framer,
    /// The tap's queue, or `never()` when the backend drains it itself.
    pub(crate) queue: Receiver<Tapped>,
    /// Whether this thread connects the outlet and counts its state (not when the
    /// backend's own thread does).
    pub(crate) manages_connection: bool,
    pub(crate) stop: Receiver<()>,
    pub(crate) counters: Arc<Counters>,
    /// The engine's interest events, when the backend routes by interest.
    pub(crate) events: Option<Receiver<TopicEvent>>,
    pub(crate) backoff: Backoff,
    /// Presence across hosts: the exchange, the engine's presence changes, and the
    /// receiving thread's wake-ups.
    pub(crate) presence: Option<PresenceLink>,
    /// The longest message receivers accept: presence messages are split to fit it.
    pub(crate) max_message_len: usize,
}

/// What the publisher thread needs for presence.
pub(crate) struct PresenceLink {
    pub(crate) exchange: Arc<Exchange>,
    pub(crate) changes: Receiver<PresenceChange>,
    pub(crate) kicks: Receiver<()>,
}

impl<O: Outlet> Publisher<O> {
    pub(crate) fn run(mut self) {
        let mut next_attempt = Instant::now();
        let mut was_up = false;
        let mut batch = Batch::default();
        let mut frames = Vec::with_capacity(MAX_BATCH);
        let no_events = never();
        let events = self.events.take().unwrap_or(no_events);
        let presence = self.presence.take();
        let (changes, kicks) = match &presence {
            Some(link) => (link.changes.clone(), link.kicks.clone()),
            None => (never(), never()),
        };
        // Presence: ask everyone for their states, and tell them ours.
        let mut next_beat = Instant::now();
        if let Some(link) = &presence {
            let mut hello = vec![link.exchange.hello()];
            hello.extend(link.exchange.outgoing(Instant::now(), false));
            self.send_presence(&hello, &mut batch, &mut next_attempt);
        }
        loop {
            // Connect when due; while disconnected wake up at the next attempt.
            let mut wait = self.ensure(&mut next_attempt, &mut was_up);
            if let Some(link) = &presence {
                let now = Instant::now();
                if now >= next_beat {
                    next_beat = now + link.exchange.heartbeat;
                    if !link.exchange.tick(now) {
                        break; // the engine is gone
                    }
                    let out = link.exchange.outgoing(now, true);
                    self.send_presence(&out, &mut batch, &mut next_attempt);
                }
                wait = wait.min(next_beat.saturating_duration_since(Instant::now()));
            }
            let first = select! {
                recv(changes) -> change => {
                    let Some(link) = &presence else { continue };
                    match change {
                        Ok(change) => {
                            let all = std::iter::once(change).chain(changes.try_iter());
                            link.exchange.local_changes(all);
                        }
                        Err(_) => break, // the engine closed: nobody left to list
                    }
                    let out = link.exchange.outgoing(Instant::now(), false);
                    self.send_presence(&out, &mut batch, &mut next_attempt);
                    continue;
                }
                recv(kicks) -> _ => {
                    if let Some(link) = &presence {
                        let out = link.exchange.outgoing(Instant::now(), false);
                        self.send_presence(&out, &mut batch, &mut next_attempt);
                    }
                    continue;
                }
                recv(self.queue) -> item => match item {
                    Ok(item) => item,
                    Err(_) => break,
                },
                recv(events) -> event => {
                    if let Ok(event) = event {
                        let changes = std::iter::once(event)
                            .chain(events.try_iter())
                            .map(InterestChange::from);
                        self.outlet.follow(fold(changes));
                    }
                    continue;
                }
                recv(self.stop) -> _ => break,
                default(wait) => continue,
            };
            frames.push(first);
            frames.extend(self.queue.try_iter().take(MAX_BATCH - 1));
            self.send(&mut frames, &mut batch, &mut next_attempt);
        }
        // Detached: the tap no longer feeds the queue; send what is left in it.
        loop {
            frames.extend(self.queue.try_iter().take(MAX_BATCH));
            if frames.is_empty() {
                break;
            }
            self.send(&mut frames, &mut batch, &mut next_attempt);
        }
        // Presence: the others drop this node's members now, not after the down period.
        if let Some(link) = &presence {
            let mut out = link.exchange.outgoing(Instant::now(), false);
            out.push(link.exchange.goodbye());
            self.send_presence(&out, &mut batch, &mut next_attempt);
        }
        if self.manages_connection {
            self.counters.publisher_up.store(false, Ordering::Relaxed);
        }
    }

    /// Publishes presence messages as one batch on the control route. Lost if the broker
    /// is down: the heartbeats that follow let every node see what it missed and ask for
    /// the state.
    fn send_presence(
        &mut self,
        messages: &[Message],
        batch: &mut Batch,
        next_attempt: &mut Instant,
    ) {
        if messages.is_empty() || !self.outlet.is_connected() {
            return;
        }
        let limit = self
            .outlet
            .max_payload()
            .map_or(self.max_message_len, |max| max.min(self.max_message_len));
        let max_body = limit.saturating_sub(ENVELOPE_HEADER_LEN);
        batch.clear();
        for message in messages {
            for part in split(message.clone(), max_body) {
                batch.push_presence(&part);
            }
        }
        if self.outlet.publish(batch).is_err() {
            self.counters.publisher_up.store(false, Ordering::Relaxed);
            *next_attempt = Instant::now() + self.backoff.failed();
        }
    }

    /// Connects if disconnected and an attempt is due. Returns how long the caller may
    /// wait for work before the next attempt (long when connected).
    fn ensure(&mut self, next_attempt: &mut Instant, was_up: &mut bool) -> Duration {
        const IDLE: Duration = Duration::from_secs(3600);
        if !self.manages_connection {
            return IDLE;
        }
        if self.outlet.is_connected() {
            *was_up = true;
            self.counters.publisher_up.store(true, Ordering::Relaxed);
            return IDLE;
        }
        self.counters.publisher_up.store(false, Ordering::Relaxed);
        let now = Instant::now();
        if now < *next_attempt {
            return *next_attempt - now;
        }
        if self.outlet.connect() {
            self.backoff.succeeded();
            if *was_up {
                Counters::add(&self.counters.reconnects, 1);
            }
            *was_up = true;
            self.counters.publisher_up.store(true, Ordering::Relaxed);
            IDLE
        } else {
            let delay = self.backoff.failed();
            *next_attempt = Instant::now() + delay;
            delay
        }
    }

    /// Numbers and wraps `frames` (emptying it) and publishes them as one batch, or
    /// counts them dropped.
    fn send(&mut self, frames: &mut Vec<Tapped>, batch: &mut Batch, next_attempt: &mut Instant) {
        let n = frames.len() as u64;
        let connected = self.outlet.is_connected();
        batch.clear();
        self.framer.wrap(frames, batch, connected);
        if !connected {
            Counters::add(&self.counters.dropped, n);
            return;
        }
        match self.outlet.publish(batch) {
            Ok(skipped) => {
                Counters::add(&self.counters.sent, n - skipped);
                Counters::add(&self.counters.dropped, skipped);
            }
            Err(failure) => {
                let counter = match failure {
                    Failure::NotSent => &self.counters.dropped,
                    Failure::Unknown => &self.counters.unknown,
                };
                Counters::add(counter, n);
                self.counters.publisher_up.store(false, Ordering::Relaxed);
                *next_attempt = Instant::now() + self.backoff.failed();
            }
        }
    }
}
