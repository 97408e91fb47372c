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
use super::stats::Counters;
use crate::face::tap::Tapped;
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
}

impl<O: Outlet> Publisher<O> {
    pub(crate) fn run(mut self) {
        let mut next_attempt = Instant::now();
        let mut was_up = false;
        let mut batch = Batch::default();
        let mut frames = Vec::with_capacity(MAX_BATCH);
        let no_events = never();
        let events = self.events.take().unwrap_or(no_events);
        loop {
            // Connect when due; while disconnected wake up at the next attempt.
            let wait = self.ensure(&mut next_attempt, &mut was_up);
            let first = select! {
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
        if self.manages_connection {
            self.counters.publisher_up.store(false, Ordering::Relaxed);
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
            Err(Failure::NotSent | Failure::Unknown) => {
                Counters::add(&self.counters.dropped, n);
                self.counters.publisher_up.store(false, Ordering::Relaxed);
                *next_attempt = Instant::now() + self.backoff.failed();
            }
        }
    }
}
