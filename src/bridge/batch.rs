//! [`Batch`]: envelopes to publish, back to back in one buffer — what the engine side
//! hands a backend, and what a backend that needs owned buffers slices without copying.

use std::ops::Range;

use bytes::Bytes;

use crate::transport::envelope::{encode_presence_envelope, EnvelopeHeader, ENVELOPE_HEADER_LEN};
use crate::transport::presence_sync::Message;

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

    /// Every (topic, envelope) in order.
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
