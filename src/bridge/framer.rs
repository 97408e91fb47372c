//! [`Framer`]: numbers each frame of its topic's stream and wraps it in an envelope —
//! the part of publishing every backend shares, whichever thread drains the tap's queue
//! (the publisher thread, or a backend's own task).
//!
//! # Coalescing
//!
//! Frames that were already queued together and go to the same channel or subject are
//! wrapped in one batch envelope (mode 3) instead of one envelope each: the broker then
//! pays its per-message costs (a `PUBLISH` parsed and fanned out, a NATS message routed
//! and read) once per run of frames, and receivers once per run too. Only *consecutive*
//! frames for one route are joined, so the messages leave in the order the broadcasts
//! queued them, and nothing waits for company: a frame alone in the queue goes at once,
//! as a plain envelope. Measured in `benches/bridge.rs` and `benches/bridge_nats.rs`
//! (PERFORMANCE.md, "Across hosts").

use std::ops::Range;
use std::sync::Arc;

use super::batch::Batch;
use super::sequences::Numbering;
use crate::face::tap::{Tap, Tapped};
use crate::transport::envelope::{
    Audience, EnvelopeHeader, NodeId, BATCH_HEADER_LEN, BATCH_ITEM_HEADER_LEN,
};
use crate::transport::frame::decode;

/// Longest batch envelope the framer writes (a run of frames longer than this is cut),
/// unless the bridge's message limit is lower: far below a receiver's default limit
/// (16 MiB) and NATS's default payload limit (1 MiB), and long enough that the
/// per-message costs are spread thin (a batch of 256 frames of 64 bytes is 24 KiB).
pub(crate) const MAX_COALESCED_LEN: usize = 64 << 10;

/// Where frames go, which decides which frames may share a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routes {
    /// One channel for every topic (Redis's namespace layout): any run of frames.
    OneChannel,
    /// A channel or subject per topic (Redis per-topic, NATS): runs of one topic.
    PerTopic,
}

/// One numbered frame of the batch being wrapped.
struct Numbered {
    header: EnvelopeHeader,
    /// The topic's bytes in the frame.
    topic: Range<usize>,
    /// Index in the frames being wrapped.
    index: usize,
}

/// Numbers and wraps frames into envelopes: the part of publishing every backend
/// shares, whichever thread drains the queue (the publisher thread, or a backend's own
/// task).
pub(crate) struct Framer {
    pub(crate) node: NodeId,
    pub(crate) numbering: Numbering,
    /// The tap, for the frames its full queue refused.
    tap: Arc<Tap>,
    routes: Routes,
    /// Longest batch envelope to write.
    max_len: usize,
    /// The frames being wrapped, numbered (kept for its allocation).
    numbered: Vec<Numbered>,
}

impl Framer {
    /// A framer for `node`'s frames from `tap`; batch envelopes no longer than
    /// `max_message_len` (the bridge's limit, which its peers share) or
    /// [`MAX_COALESCED_LEN`].
    pub(crate) fn new(node: NodeId, tap: Arc<Tap>, routes: Routes, max_message_len: usize) -> Self {
        Self {
            node,
            numbering: Numbering::default(),
            tap,
            routes,
            max_len: max_message_len.min(MAX_COALESCED_LEN),
            numbered: Vec::new(),
        }
    }

    /// Numbers every frame of `frames` (emptying it) — sent or not, so receivers count
    /// what is not sent as a gap — and, if `connected`, appends their envelopes to
    /// `batch`, coalescing runs of frames for one route. First, the frames the tap's full
    /// queue refused since the last call use up their numbers: receivers count them as
    /// gaps too (see `face::dropped_topics`).
    pub(crate) fn wrap(&mut self, frames: &mut Vec<Tapped>, batch: &mut Batch, connected: bool) {
        if let Some(refused) = self.tap.refused() {
            let numbering = &mut self.numbering;
            refused.drain(|key, count| numbering.skip(key, count));
        }
        self.numbered.clear();
        for (index, item) in frames.iter().enumerate() {
            // The engine built or checked every frame it forwards: this always decodes.
            let Ok(push) = decode(&item.frame) else {
                continue;
            };
            let at = push.topic.as_ptr() as usize - item.frame.as_ptr() as usize;
            self.numbered.push(Numbered {
                header: EnvelopeHeader {
                    audience: item.from.map_or(Audience::Everyone, Audience::AllBut),
                    origin: self.node,
                    sequence: self.numbering.next(push.topic),
                },
                topic: at..at + push.topic.len(),
                index,
            });
        }
        if connected {
            let mut run = 0;
            while run < self.numbered.len() {
                let end = self.run_end(run, frames);
                let first = &self.numbered[run];
                if end - run == 1 {
                    let frame = &frames[first.index].frame;
                    batch.push(&first.header, frame, first.topic.clone());
                } else {
                    let parts = self.numbered[run..end]
                        .iter()
                        .map(|n| (n.header, &frames[n.index].frame[..], n.topic.clone()));
                    batch.push_coalesced(self.node, parts);
                }
                run = end;
            }
        }
        frames.clear();
    }

    /// The end of the run of frames that starts at `numbered[start]` and may share one
    /// message: same route, at most `max_len` bytes.
    fn run_end(&self, start: usize, frames: &[Tapped]) -> usize {
        let first = &self.numbered[start];
        let first_frame = &frames[first.index].frame;
        let topic = &first_frame[first.topic.clone()];
        let mut len = BATCH_HEADER_LEN + BATCH_ITEM_HEADER_LEN + first_frame.len();
        let mut end = start + 1;
        while let Some(next) = self.numbered.get(end) {
            let frame = &frames[next.index].frame;
            len += BATCH_ITEM_HEADER_LEN + frame.len();
            let same_route = match self.routes {
                Routes::OneChannel => true,
                Routes::PerTopic => &frame[next.topic.clone()] == topic,
            };
            if !same_route || len > self.max_len {
                break;
            }
            end += 1;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::envelope::{decode_batch_envelope, decode_envelope, MODE_BATCH};
    use crate::transport::frame::encode_push;
    use crate::vocab::client::ClientId;

    /// A frame as a receiver reads it: topic, sequence, payload (its index).
    type Seen = (String, u64, u8);

    /// Wraps frames of `topics` (payload = index; frame 1 from a `broadcast_from`) and
    /// returns each envelope as (its item's topic, [(topic, sequence, payload)] of its
    /// frames).
    fn wrap(routes: Routes, max_len: usize, topics: &[&str]) -> Vec<(String, Vec<Seen>)> {
        let mut framer = Framer::new(NodeId(7), Arc::new(Tap::default()), routes, max_len);
        let mut frames: Vec<Tapped> = topics
            .iter()
            .enumerate()
            .map(|(i, topic)| Tapped {
                from: (i == 1).then(|| ClientId::from_raw(3)),
                frame: encode_push(topic, &[i as u8]).unwrap(),
            })
            .collect();
        let mut batch = Batch::default();
        framer.wrap(&mut frames, &mut batch, true);
        assert!(frames.is_empty());
        batch
            .iter()
            .map(|(topic, envelope)| {
                let frames: Vec<_> = if envelope[1] == MODE_BATCH {
                    decode_batch_envelope(envelope).unwrap().iter().collect()
                } else {
                    vec![decode_envelope(envelope).unwrap()]
                };
                let frames = frames
                    .iter()
                    .map(|e| {
                        assert_eq!(e.header.origin, NodeId(7));
                        let from = e.header.audience != Audience::Everyone;
                        assert_eq!(from, e.push.payload[0] == 1, "the audience travels");
                        (
                            e.push.topic.to_owned(),
                            e.header.sequence,
                            e.push.payload[0],
                        )
                    })
                    .collect();
                (topic.to_owned(), frames)
            })
            .collect()
    }

    fn f(topic: &str, sequence: u64, index: u8) -> Seen {
        (topic.to_owned(), sequence, index)
    }

    #[test]
    fn runs_for_one_topic_share_an_envelope_in_order() {
        let topics = ["t", "t", "u", "u", "u", "t"];
        let got = wrap(Routes::PerTopic, MAX_COALESCED_LEN, &topics);
        assert_eq!(
            got,
            [
                ("t".to_owned(), vec![f("t", 1, 0), f("t", 2, 1)]),
                (
                    "u".to_owned(),
                    vec![f("u", 3, 2), f("u", 4, 3), f("u", 5, 4)]
                ),
                ("t".to_owned(), vec![f("t", 3, 5)]),
            ]
        );
    }

    #[test]
    fn one_channel_takes_any_run_and_the_length_cap_cuts_it() {
        let topics = ["t", "t", "u", "u", "u", "t"];
        let got = wrap(Routes::OneChannel, MAX_COALESCED_LEN, &topics);
        assert_eq!(got.len(), 1, "one envelope for the whole run: {got:?}");
        assert_eq!(got[0].1.len(), 6);
        assert_eq!(got[0].1[5], f("t", 3, 5));
        // Room for the batch header and two frames of 10 bytes (topic 1, payload 1).
        let cap = BATCH_HEADER_LEN + 2 * (BATCH_ITEM_HEADER_LEN + 10);
        let got = wrap(Routes::OneChannel, cap, &topics);
        let sizes: Vec<usize> = got.iter().map(|(_, frames)| frames.len()).collect();
        assert_eq!(sizes, [2, 2, 2]);
        let all: Vec<_> = got.into_iter().flat_map(|(_, frames)| frames).collect();
        let indices: Vec<u8> = all.iter().map(|(_, _, i)| *i).collect();
        assert_eq!(indices, [0, 1, 2, 3, 4, 5], "order kept across envelopes");
    }
}
