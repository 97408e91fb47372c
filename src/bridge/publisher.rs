//! The publisher thread: drains the tap's bounded queue into Redis over one connection,
//! so envelopes leave in the order broadcasts queued them (per-origin order; a pool of
//! connections would not keep it).
//!
//! Whatever is queued when the thread wakes goes out as one pipeline of up to
//! [`MAX_BATCH`] `PUBLISH` commands: one round trip for many frames when broadcasts come
//! faster than Redis answers. Every envelope gets the next sequence number whether it is
//! sent or not, so receivers count what this node failed to send as a gap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};

use super::backoff::Backoff;
use super::stats::Counters;
use super::Settings;
use crate::tap::Tapped;
use crate::transport::envelope::{Audience, EnvelopeHeader, NodeId};

/// Most envelopes sent in one pipeline.
pub(crate) const MAX_BATCH: usize = 256;

/// What the publisher thread owns.
pub(crate) struct Publisher {
    pub(crate) settings: Arc<Settings>,
    pub(crate) node: NodeId,
    pub(crate) queue: Receiver<Tapped>,
    pub(crate) stop: Receiver<()>,
    pub(crate) counters: Arc<Counters>,
}

impl Publisher {
    pub(crate) fn run(self) {
        let mut link = Link::new(&self.settings, &self.counters);
        let mut sequence = 0u64;
        let mut batch: Vec<Tapped> = Vec::with_capacity(MAX_BATCH);
        let mut scratch = Vec::new();
        loop {
            // Connect when due; while disconnected wake up at the next attempt.
            let wait = link.ensure(&self.settings, &self.counters);
            let first = select! {
                recv(self.queue) -> item => match item {
                    Ok(item) => item,
                    Err(_) => break,
                },
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
            self.send(&mut link, &mut sequence, &mut batch, &mut scratch);
        }
        // Detached: the tap no longer feeds the queue; send what is left in it.
        loop {
            batch.extend(self.queue.try_iter().take(MAX_BATCH));
            if batch.is_empty() {
                break;
            }
            self.send(&mut link, &mut sequence, &mut batch, &mut scratch);
        }
        self.counters
            .publisher_up
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Publishes `batch` (emptying it) in one pipeline, or counts it dropped.
    fn send(
        &self,
        link: &mut Link,
        sequence: &mut u64,
        batch: &mut Vec<Tapped>,
        scratch: &mut Vec<u8>,
    ) {
        let n = batch.len() as u64;
        let Some(con) = link.connection.as_mut() else {
            *sequence += n;
            Counters::add(&self.counters.dropped, n);
            batch.clear();
            return;
        };
        let mut pipe = redis::pipe();
        for item in batch.drain(..) {
            *sequence += 1;
            let header = EnvelopeHeader {
                audience: item.from.map_or(Audience::Everyone, Audience::AllBut),
                origin: self.node,
                sequence: *sequence,
            };
            scratch.clear();
            header.encode_into(&item.frame, scratch);
            pipe.cmd("PUBLISH")
                .arg(&self.settings.channel)
                .arg(&scratch[..])
                .ignore();
        }
        match pipe.exec(con) {
            Ok(()) => Counters::add(&self.counters.sent, n),
            Err(_) => {
                // Some may have reached Redis; none is retried, so none arrives twice.
                Counters::add(&self.counters.dropped, n);
                link.lost(&self.settings, &self.counters);
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
    fn lost(&mut self, _settings: &Settings, counters: &Counters) {
        self.connection = None;
        counters
            .publisher_up
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.next_attempt = Instant::now() + self.backoff.failed();
    }
}
