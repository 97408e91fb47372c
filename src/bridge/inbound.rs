//! The receiving end every backend shares: what happens to one message read from the
//! broker, whatever the broker.
//!
//! Each message is checked (no longer than the limit; an envelope, [`decode_envelope`];
//! on the channel or subject of its topic, which only the backend can tell), filtered
//! (own origin: an echo; a sequence number not above its stream's last: a duplicate),
//! its sequence jump counted as a gap, and its Push frame delivered to local
//! subscribers only — never forwarded again.

use std::sync::Arc;

use bytes::Bytes;

use super::presence::Exchange;
use super::sequences::{Tracker, Verdict};
use super::stats::Counters;
use crate::face::pubsub::WeakPubSub;
use crate::transport::envelope::{
    decode_envelope, decode_presence_envelope, NodeId, ENVELOPE_HEADER_LEN, MODE_PRESENCE,
};
use crate::vocab::error::Error;

/// Whether the receiving thread goes on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next message.
    Continue,
    /// The engine is gone or closed: leave the thread.
    Stop,
}

/// The receiving thread's engine-facing state: owned by that thread alone.
pub(crate) struct Inbound<M: ?Sized> {
    /// This node: envelopes from it are echoes.
    pub(crate) node: NodeId,
    pub(crate) engine: WeakPubSub<M>,
    pub(crate) counters: Arc<Counters>,
    /// Longest message accepted.
    pub(crate) max_message_len: usize,
    /// Last sequence number per (origin, topic).
    pub(crate) streams: Tracker,
    /// Presence across hosts: where presence envelopes go.
    pub(crate) presence: Option<Arc<Exchange>>,
}

impl<M: ?Sized> Inbound<M> {
    /// Checks one message and delivers its frame locally. `fits(topic)` says whether the
    /// message came on the channel or subject where `topic`'s envelopes go (a frame for
    /// another topic is bad input). `payload` is copied once, into the delivered frame.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // Redis lends its buffer
    pub(crate) fn accept(&mut self, payload: &[u8], fits: impl FnOnce(&str) -> bool) -> Flow {
        self.accept_with(payload, fits, |payload| {
            Bytes::copy_from_slice(&payload[ENVELOPE_HEADER_LEN..])
        })
    }

    /// As [`accept`](Self::accept), for a backend that owns the message: the delivered
    /// frame is a slice of it, not a copy.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // NATS hands over `Bytes`
    pub(crate) fn accept_owned(
        &mut self,
        payload: &Bytes,
        fits: impl FnOnce(&str) -> bool,
    ) -> Flow {
        self.accept_with(payload, fits, |_| payload.slice(ENVELOPE_HEADER_LEN..))
    }

    fn accept_with(
        &mut self,
        payload: &[u8],
        fits: impl FnOnce(&str) -> bool,
        frame: impl FnOnce(&[u8]) -> Bytes,
    ) -> Flow {
        let bad = |counters: &Counters| {
            Counters::add(&counters.bad_envelopes, 1);
            Flow::Continue
        };
        if payload.len() > self.max_message_len {
            return bad(&self.counters);
        }
        if payload.get(1) == Some(&MODE_PRESENCE) {
            return self.accept_presence(payload);
        }
        let Ok(envelope) = decode_envelope(payload) else {
            return bad(&self.counters);
        };
        let topic = envelope.push.topic;
        if !fits(topic) {
            return bad(&self.counters); // a frame for another topic than its channel's
        }
        let header = envelope.header;
        if header.origin == self.node {
            return Flow::Continue; // our own broadcast, delivered locally already
        }
        match self.streams.check(header.origin, topic, header.sequence) {
            Verdict::Duplicate => {
                Counters::add(&self.counters.duplicates, 1);
                return Flow::Continue;
            }
            Verdict::Deliver { missed } => Counters::add(&self.counters.gaps, missed),
        }
        let Some(engine) = self.engine.upgrade() else {
            return Flow::Stop;
        };
        match engine.deliver_remote(topic, &frame(payload)) {
            Ok(_) => {
                Counters::add(&self.counters.received, 1);
                Flow::Continue
            }
            Err(Error::Closed) => Flow::Stop,
            Err(_) => bad(&self.counters), // a topic longer than this engine accepts
        }
    }

    /// A presence envelope: what another engine tells about its members. Any channel of
    /// the namespace may carry it (it names no topic).
    fn accept_presence(&mut self, payload: &[u8]) -> Flow {
        let Ok(message) = decode_presence_envelope(payload) else {
            Counters::add(&self.counters.bad_envelopes, 1);
            return Flow::Continue;
        };
        let Some(exchange) = &self.presence else {
            return Flow::Continue; // presence is off here
        };
        if message.origin() == self.node {
            return Flow::Continue; // our own
        }
        if exchange.receive(&message, std::time::Instant::now()) {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }
}
