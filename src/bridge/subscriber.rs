//! The subscriber thread: one connection subscribed to the namespace's channel, read
//! with a timeout so the thread notices a stop request and an idle connection; a PING
//! after [`Settings::ping_interval`] of silence finds a connection that died quietly.
//! On any error it reconnects with capped exponential backoff and subscribes again —
//! the blocking `redis` API does neither by itself.
//!
//! Each message is checked ([`decode_envelope`]), filtered (own origin: an echo;
//! sequence not above the origin's last: a duplicate), its sequence jump counted as a
//! gap, and its Push frame delivered to local subscribers only.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::backoff::Backoff;
use super::stats::Counters;
use super::Settings;
use crate::error::Error;
use crate::pubsub::WeakPubSub;
use crate::transport::envelope::{decode_envelope, NodeId, ENVELOPE_HEADER_LEN};

/// Most origins whose last sequence number is remembered. A foreign publisher inventing
/// origins cannot grow the map past this; when full it is cleared, and the next
/// envelope of each origin then counts no gap.
const MAX_ORIGINS: usize = 4096;

/// What the subscriber thread owns.
pub(crate) struct Subscriber<M: ?Sized> {
    pub(crate) settings: Arc<Settings>,
    pub(crate) node: NodeId,
    pub(crate) engine: WeakPubSub<M>,
    pub(crate) stop: Receiver<()>,
    pub(crate) counters: Arc<Counters>,
}

/// Why a connection's read loop ended.
enum End {
    /// Stop requested, or the engine is gone: leave the thread.
    Stop,
    /// The connection failed: reconnect.
    Lost,
}

impl<M: ?Sized> Subscriber<M> {
    pub(crate) fn run(self) {
        let mut backoff = Backoff::new(self.settings.backoff_min, self.settings.backoff_max);
        let mut origins: HashMap<NodeId, u64> = HashMap::new();
        let mut was_up = false;
        loop {
            if let Ok(mut con) = self
                .settings
                .connect_with_read_timeout(self.settings.read_timeout)
            {
                let end = self.serve(&mut con, &mut origins, &mut backoff, &mut was_up);
                self.counters.subscriber_up.store(false, Ordering::Relaxed);
                if let End::Stop = end {
                    return;
                }
            }
            match self.stop.recv_timeout(backoff.failed()) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Subscribes on `con` and delivers what arrives until the connection fails or the
    /// bridge stops.
    fn serve(
        &self,
        con: &mut redis::Connection,
        origins: &mut HashMap<NodeId, u64>,
        backoff: &mut Backoff,
        was_up: &mut bool,
    ) -> End {
        let mut pubsub = con.as_pubsub();
        if pubsub.subscribe(&self.settings.channel).is_err() {
            return End::Lost;
        }
        backoff.succeeded();
        if *was_up {
            Counters::add(&self.counters.reconnects, 1);
        }
        *was_up = true;
        self.counters.subscriber_up.store(true, Ordering::Relaxed);
        let mut last_heard = Instant::now();
        loop {
            if self.stopping() {
                return End::Stop;
            }
            match pubsub.get_message() {
                Ok(message) => {
                    last_heard = Instant::now();
                    if !self.accept(message.get_payload_bytes(), origins) {
                        return End::Stop;
                    }
                }
                Err(e) if e.is_timeout() => {
                    if last_heard.elapsed() >= self.settings.ping_interval {
                        if pubsub.ping::<redis::Value>().is_err() {
                            return End::Lost;
                        }
                        last_heard = Instant::now();
                    }
                }
                Err(_) => return End::Lost,
            }
        }
    }

    /// Whether the bridge is being detached.
    fn stopping(&self) -> bool {
        !matches!(
            self.stop.try_recv(),
            Err(crossbeam_channel::TryRecvError::Empty)
        )
    }

    /// Checks one message and delivers its frame locally. `false` once the engine is
    /// gone or closed.
    fn accept(&self, message: &[u8], origins: &mut HashMap<NodeId, u64>) -> bool {
        let bad = || {
            Counters::add(&self.counters.bad_envelopes, 1);
            true
        };
        if message.len() > self.settings.max_message_len {
            return bad();
        }
        let Ok(envelope) = decode_envelope(message) else {
            return bad();
        };
        let header = envelope.header;
        if header.origin == self.node {
            return true; // our own broadcast, delivered locally already
        }
        match origins.get(&header.origin) {
            Some(&last) if header.sequence <= last => {
                Counters::add(&self.counters.duplicates, 1);
                return true;
            }
            Some(&last) => Counters::add(&self.counters.gaps, header.sequence - last - 1),
            None if origins.len() >= MAX_ORIGINS => origins.clear(),
            None => {}
        }
        origins.insert(header.origin, header.sequence);
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        let frame = Bytes::copy_from_slice(&message[ENVELOPE_HEADER_LEN..]);
        match engine.deliver_remote(envelope.push.topic, &frame) {
            Ok(_) => {
                Counters::add(&self.counters.received, 1);
                true
            }
            Err(Error::Closed) => false,
            Err(_) => bad(), // a topic longer than this engine accepts
        }
    }
}
