//! [`Framer`]: numbers each frame of its topic's stream and wraps it in an envelope —
//! the part of publishing every backend shares, whichever thread drains the tap's queue
//! (the publisher thread, or a backend's own task).

use std::sync::Arc;

use super::batch::Batch;
use super::sequences::Numbering;
use crate::face::tap::{Tap, Tapped};
use crate::transport::envelope::{Audience, EnvelopeHeader, NodeId};
use crate::transport::frame::decode;

/// Numbers and wraps frames into envelopes: the part of publishing every backend
/// shares, whichever thread drains the queue (the publisher thread, or a backend's own
/// task).
pub(crate) struct Framer {
    pub(crate) node: NodeId,
    pub(crate) numbering: Numbering,
    /// The tap, for the frames its full queue refused.
    tap: Arc<Tap>,
}

impl Framer {
    pub(crate) fn new(node: NodeId, tap: Arc<Tap>) -> Self {
        Self {
            node,
            numbering: Numbering::default(),
            tap,
        }
    }

    /// Numbers every frame of `frames` (emptying it) — sent or not, so receivers count
    /// what is not sent as a gap — and, if `connected`, appends its envelope to `batch`.
    /// First, the frames the tap's full queue refused since the last call use up their
    /// numbers: receivers count them as gaps too (see `face::dropped_topics`).
    pub(crate) fn wrap(&mut self, frames: &mut Vec<Tapped>, batch: &mut Batch, connected: bool) {
        if let Some(refused) = self.tap.refused() {
            let numbering = &mut self.numbering;
            refused.drain(|key, count| numbering.skip(key, count));
        }
        for item in frames.drain(..) {
            // The engine built or checked every frame it forwards: this always decodes.
            let Ok(push) = decode(&item.frame) else {
                continue;
            };
            let header = EnvelopeHeader {
                audience: item.from.map_or(Audience::Everyone, Audience::AllBut),
                origin: self.node,
                sequence: self.numbering.next(push.topic),
            };
            if connected {
                batch.push(&header, &item.frame, push.topic);
            }
        }
    }
}
