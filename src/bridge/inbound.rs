//! The receiving end every backend shares: what happens to one message read from the
//! broker, whatever the broker.
//!
//! Each message is checked (no longer than the limit; an envelope, [`decode_envelope`],
//! or a batch of them, [`decode_batch_envelope`]; on the channel or subject of its
//! topic, which only the backend can tell), filtered (own origin: an echo; a sequence
//! number not above its stream's last: a duplicate), its sequence jump counted as a
//! gap, and its Push frame delivered to local subscribers only — never forwarded again.
//! A batch counts as one bad message if any part of it is bad, and otherwise as the
//! frames it carries: each is numbered, counted and delivered as a plain envelope's.

use std::sync::Arc;

use bytes::Bytes;

use super::presence::Exchange;
use super::sequences::{Tracker, Verdict};
use super::stats::Counters;
use crate::face::pubsub::WeakPubSub;
use crate::transport::envelope::{
    decode_batch_envelope, decode_envelope, decode_presence_envelope, NodeId, ENVELOPE_HEADER_LEN,
    MODE_BATCH, MODE_PRESENCE,
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

/// A message as the backend hands it over.
#[derive(Clone, Copy)]
enum Message<'a> {
    /// Lent for the call (Redis): what is delivered is copied out of it.
    Lent(&'a [u8]),
    /// Owned (NATS): what is delivered is a slice of it.
    Owned(&'a Bytes),
}

impl Message<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Message::Lent(bytes) => bytes,
            Message::Owned(bytes) => bytes,
        }
    }

    /// The whole message as an owned buffer (a copy only if lent).
    fn to_owned(self) -> Bytes {
        match self {
            Message::Lent(bytes) => Bytes::copy_from_slice(bytes),
            Message::Owned(bytes) => bytes.clone(),
        }
    }
}

impl<M: ?Sized> Inbound<M> {
    /// Checks one message and delivers its frame(s) locally. `fits(topic)` says whether
    /// the message came on the channel or subject where `topic`'s envelopes go (a frame
    /// for another topic is bad input). `payload` is copied once: the frame of a plain
    /// envelope, the whole message of a batch (its frames are slices of the copy).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // Redis lends its buffer
    pub(crate) fn accept(&mut self, payload: &[u8], fits: impl Fn(&str) -> bool) -> Flow {
        self.accept_message(Message::Lent(payload), fits)
    }

    /// As [`accept`](Self::accept), for a backend that owns the message: the delivered
    /// frames are slices of it, not copies.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // NATS hands over `Bytes`
    pub(crate) fn accept_owned(&mut self, payload: &Bytes, fits: impl Fn(&str) -> bool) -> Flow {
        self.accept_message(Message::Owned(payload), fits)
    }

    fn accept_message(&mut self, message: Message<'_>, fits: impl Fn(&str) -> bool) -> Flow {
        let payload = message.bytes();
        if payload.len() > self.max_message_len {
            return self.bad();
        }
        match payload.get(1) {
            Some(&MODE_PRESENCE) => return self.accept_presence(payload),
            Some(&MODE_BATCH) => return self.accept_batch(message, fits),
            _ => {}
        }
        let Ok(envelope) = decode_envelope(payload) else {
            return self.bad();
        };
        let topic = envelope.push.topic;
        if !fits(topic) {
            return self.bad(); // a frame for another topic than its channel's
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
            Verdict::Deliver { missed: 0 } => {}
            Verdict::Deliver { missed } => Counters::add(&self.counters.gaps, missed),
        }
        let Some(engine) = self.engine.upgrade() else {
            return Flow::Stop;
        };
        let frame = match message {
            Message::Lent(bytes) => Bytes::copy_from_slice(&bytes[ENVELOPE_HEADER_LEN..]),
            Message::Owned(bytes) => bytes.slice(ENVELOPE_HEADER_LEN..),
        };
        match engine.deliver_remote(topic, &frame) {
            Ok(_) => {
                Counters::add(&self.counters.received, 1);
                Flow::Continue
            }
            Err(Error::Closed) => Flow::Stop,
            Err(_) => self.bad(), // a topic longer than this engine accepts
        }
    }

    /// A batch envelope: checked whole (one bad frame or one for another channel's topic
    /// refuses it all, counted once), then each frame checked and delivered as a plain
    /// envelope would be, the counters added once per batch.
    fn accept_batch(&mut self, message: Message<'_>, fits: impl Fn(&str) -> bool) -> Flow {
        let payload = message.bytes();
        let Ok(batch) = decode_batch_envelope(payload) else {
            return self.bad();
        };
        // Runs of one topic are the common case: check each topic once per run.
        let mut checked = "";
        for envelope in batch.iter() {
            let topic = envelope.push.topic;
            if topic != checked {
                if !fits(topic) {
                    return self.bad();
                }
                checked = topic;
            }
        }
        if batch.origin == self.node {
            return Flow::Continue; // our own broadcasts
        }
        let Some(engine) = self.engine.upgrade() else {
            return Flow::Stop;
        };
        let owned = message.to_owned();
        let (mut received, mut gaps, mut duplicates, mut bad) = (0, 0, 0, 0);
        let mut flow = Flow::Continue;
        for envelope in batch.iter() {
            let topic = envelope.push.topic;
            match self
                .streams
                .check(batch.origin, topic, envelope.header.sequence)
            {
                Verdict::Duplicate => {
                    duplicates += 1;
                    continue;
                }
                Verdict::Deliver { missed } => gaps += missed,
            }
            // The frame's place in the message: a slice of the owned copy.
            let at = envelope.frame.as_ptr() as usize - payload.as_ptr() as usize;
            let frame = owned.slice(at..at + envelope.frame.len());
            match engine.deliver_remote(topic, &frame) {
                Ok(_) => received += 1,
                Err(Error::Closed) => {
                    flow = Flow::Stop;
                    break;
                }
                Err(_) => bad += 1, // a topic longer than this engine accepts
            }
        }
        for (counter, n) in [
            (&self.counters.received, received),
            (&self.counters.gaps, gaps),
            (&self.counters.duplicates, duplicates),
            (&self.counters.bad_envelopes, bad),
        ] {
            if n > 0 {
                Counters::add(counter, n);
            }
        }
        flow
    }

    /// Counts a bad message and goes on.
    fn bad(&self) -> Flow {
        Counters::add(&self.counters.bad_envelopes, 1);
        Flow::Continue
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
