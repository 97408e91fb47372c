//! [`Batch`]: envelopes to publish, back to back in one buffer — what the engine side
//! hands a backend, and what a backend that needs owned buffers slices without copying.
//!
//! An envelope carries one frame (modes 0 and 1) or several frames for one channel or
//! subject that were queued together (a batch envelope, mode 3: see
//! [`envelope`](crate::transport::envelope)); each item says how many frames it
//! carries, so the backend counts frames, not messages.

use std::ops::Range;

use bytes::Bytes;

use crate::transport::envelope::{
    begin_batch, encode_presence_envelope, push_batch_frame, set_batch_count, EnvelopeHeader,
    NodeId, BATCH_HEADER_LEN, BATCH_ITEM_HEADER_LEN, ENVELOPE_HEADER_LEN,
};
use crate::transport::presence_sync::Message;

/// One envelope of a batch: where its parts are in the batch's buffer.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The frame's topic.
    topic: Range<usize>,
    /// The whole envelope.
    envelope: Range<usize>,
    /// Broadcast frames it carries (0 for presence).
    frames: u32,
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
    /// `frame[topic]`.
    pub(crate) fn push(&mut self, header: &EnvelopeHeader, frame: &[u8], topic: Range<usize>) {
        let start = self.buffer.len();
        header.encode_into(frame, &mut self.buffer);
        let at = start + ENVELOPE_HEADER_LEN;
        self.items.push(Item {
            topic: at + topic.start..at + topic.end,
            envelope: start..self.buffer.len(),
            frames: 1,
        });
    }

    /// Appends one batch envelope from `origin` carrying `frames` (header, Push frame,
    /// and the offset of its topic in the frame), in order; the item's topic is the
    /// first frame's (all go to one channel or subject).
    pub(crate) fn push_coalesced<'f>(
        &mut self,
        origin: NodeId,
        frames: impl Iterator<Item = (EnvelopeHeader, &'f [u8], Range<usize>)>,
    ) {
        let start = self.buffer.len();
        begin_batch(origin, &mut self.buffer);
        let mut count = 0u32;
        let mut topic = start..start;
        for (header, frame, topic_in_frame) in frames {
            if count == 0 {
                let at = start + BATCH_HEADER_LEN + BATCH_ITEM_HEADER_LEN;
                topic = at + topic_in_frame.start..at + topic_in_frame.end;
            }
            push_batch_frame(header.audience, header.sequence, frame, &mut self.buffer);
            count += 1;
        }
        set_batch_count(&mut self.buffer[start..], count);
        self.items.push(Item {
            topic,
            envelope: start..self.buffer.len(),
            frames: count,
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
            frames: 0,
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
    /// Broadcast frames this envelope carries (0: presence).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn frames(&self) -> u32 {
        self.frames
    }

    /// This item's topic and envelope in `buffer`, the buffer [`Batch::take`] returned.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn parts<'b>(&self, buffer: &'b Bytes) -> (&'b str, Bytes) {
        let topic = std::str::from_utf8(&buffer[self.topic.clone()]).unwrap_or("");
        (topic, buffer.slice(self.envelope.clone()))
    }
}
