//! The seam between the bridge's engine-facing side and its backends (Redis, NATS).
//!
//! The engine-facing side owns everything a user is promised whatever the broker: the
//! tap's bounded queue, envelopes, sequence numbers, gap accounting, counters, and the
//! node's interest (which topics and patterns its clients use). A backend owns only the
//! transport: connections, channel or subject names, and the thread(s) that read from
//! the broker. Two threads meet here:
//!
//! - the **publisher thread** ([`outbound`](super::outbound), engine side) drains the
//!   queue, numbers and wraps each frame, and hands [`Batch`]es to the backend's
//!   [`Outlet`]; it also hands it the node's interest changes;
//! - the backend's **receiving thread** hands every message it reads to
//!   [`Inbound::accept`](super::inbound::Inbound::accept) (engine side), with a check
//!   that the message came on the channel or subject of its topic.

use std::ops::Range;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::Receiver;

use super::inbound::Inbound;
use super::interest::{Interest, InterestChange};
use super::outbound::Framer;
use super::BridgeError;
use crate::face::tap::{Tap, Tapped};
use crate::transport::envelope::{encode_presence_envelope, EnvelopeHeader, ENVELOPE_HEADER_LEN};
use crate::transport::presence_sync::Message;

/// Why a batch was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// None of it reached the broker: the connection was down or refused it before
    /// writing.
    NotSent,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // a Redis pipeline cut midway
    /// Some of it may have reached the broker (a pipeline cut midway, a timeout after
    /// writing). Nothing is retried, so nothing arrives twice.
    Unknown,
}

/// The publisher thread's handle on the broker: one per bridge, used by that thread
/// alone.
pub(crate) trait Outlet: Send + 'static {
    /// Whether [`publish`](Self::publish) can send now.
    fn is_connected(&self) -> bool;

    /// Tries to connect; whether it is connected now. The publisher thread calls it while
    /// disconnected, paced by the bridge's backoff. (A client that reconnects by itself
    /// just reports its state.)
    fn connect(&mut self) -> bool;

    /// Publishes every envelope of `batch`, in order, or fails as a whole. Returns how
    /// many it skipped because the broker would refuse them (a NATS subject longer than
    /// the server takes): counted as dropped.
    fn publish(&mut self, batch: &mut Batch) -> Result<u64, Failure>;

    /// The node's interest changed: `delta` is the net change since the last call, in
    /// order. Backends that route by interest pass it on to their receiving side.
    fn follow(&mut self, delta: Vec<InterestChange>);
}

/// A transport: starts its receiving side and returns the publisher thread's outlet.
pub(crate) trait Backend: Sized {
    /// The publisher thread's end.
    type Outlet: Outlet;

    /// Whether a node subscribes only to the topics and patterns its clients use (then
    /// the bridge follows the engine's interest events and feeds [`Outlet::follow`]).
    fn routes_by_interest(&self) -> bool;

    /// Whether the backend drains the tap's queue on its own thread (an async task woken
    /// by each broadcast: one thread hand-off less between a broadcast and the socket)
    /// instead of the publisher thread handing it batches through the outlet. It then
    /// also keeps the connection state and reconnect counters itself.
    fn drains_queue(&self) -> bool {
        false
    }

    /// Starts the receiving thread(s), which hand every message to `inbound` and stop
    /// when `stop` disconnects (or the engine is gone). `interest` is the node's
    /// interest when the bridge was attached; later changes come through the outlet.
    /// `feed`: the tap's queue, when [`drains_queue`](Self::drains_queue).
    fn start<M: ?Sized + 'static>(
        self,
        inbound: Inbound<M>,
        interest: Vec<Interest>,
        stop: Receiver<()>,
        feed: Option<Feed>,
    ) -> Result<(Self::Outlet, Vec<JoinHandle<()>>), BridgeError>;
}

/// The tap's queue, for a backend that drains it itself.
#[cfg_attr(not(feature = "nats"), allow(dead_code))] // NATS's io thread drains it
pub(crate) struct Feed {
    /// Where the backend's task parks while the queue is empty.
    pub(crate) tap: Arc<Tap>,
    pub(crate) queue: Receiver<Tapped>,
    /// Numbers and wraps what it takes, as the publisher thread would.
    pub(crate) framer: Framer,
}

/// One envelope of a batch: where its parts are in the batch's buffer.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The frame's topic.
    topic: Range<usize>,
    /// The whole envelope.
    envelope: Range<usize>,
}

/// Envelopes to publish, back to back in one buffer (one allocation per batch, not per
/// envelope; a backend that needs owned buffers slices the frozen buffer).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    buffer: Vec<u8>,
    items: Vec<Item>,
}

impl Batch {
    /// Appends the envelope of `header` and `frame`, a Push frame whose topic is
    /// `topic` (a slice of `frame`).
    pub(crate) fn push(&mut self, header: &EnvelopeHeader, frame: &[u8], topic: &str) {
        let start = self.buffer.len();
        // The topic's offset inside the frame: both are slices of one buffer.
        let topic_at = topic.as_ptr() as usize - frame.as_ptr() as usize;
        header.encode_into(frame, &mut self.buffer);
        let topic_start = start + ENVELOPE_HEADER_LEN + topic_at;
        self.items.push(Item {
            topic: topic_start..topic_start + topic.len(),
            envelope: start..self.buffer.len(),
        });
    }

    /// Appends a presence envelope carrying `message`, on the control route (an empty
    /// topic): every node receives it, whatever the topics it serves.
    pub(crate) fn push_presence(&mut self, message: &Message) {
        let start = self.buffer.len();
        encode_presence_envelope(message, &mut self.buffer);
        self.items.push(Item {
            topic: start..start,
            envelope: start..self.buffer.len(),
        });
    }

    /// Every (topic, envelope) in order; the topic is empty for the control route.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // Redis's pipeline
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.items.iter().map(|item| {
            let topic = std::str::from_utf8(&self.buffer[item.topic.clone()]).unwrap_or("");
            (topic, &self.buffer[item.envelope.clone()])
        })
    }

    /// Empties the batch, returning its buffer (no copy) and items, for a backend that
    /// needs owned slices.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // NATS's owned messages
    pub(crate) fn take(&mut self) -> (Bytes, std::vec::Drain<'_, Item>) {
        (
            Bytes::from(std::mem::take(&mut self.buffer)),
            self.items.drain(..),
        )
    }

    /// Empties the batch, keeping its allocations.
    pub(crate) fn clear(&mut self) {
        self.buffer.clear();
        self.items.clear();
    }
}

impl Item {
    /// This item's topic and envelope in `buffer`, the buffer [`Batch::take`] returned.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn parts<'b>(&self, buffer: &'b Bytes) -> (&'b str, Bytes) {
        let topic = std::str::from_utf8(&buffer[self.topic.clone()]).unwrap_or("");
        (topic, buffer.slice(self.envelope.clone()))
    }
}
