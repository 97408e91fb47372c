//! Sequence numbers per (origin, topic): how a receiver tells a missed frame from a
//! frame it was never meant to see (under per-topic channels a node receives only the
//! topics it serves, so a per-origin counter would jump all the time).
//!
//! The origin numbers each topic's envelopes 1 apart. A topic it has not numbered
//! before (or forgot: the table is bounded) starts at the origin's count of all
//! envelopes so far, which is at least every number any topic has had: a topic's numbers
//! only ever grow, so a receiver never takes a fresh start for a replay. Forgetting
//! costs one false gap per topic on receivers that knew the old numbers.
//!
//! Frames the tap's full queue refused never reach the publisher thread; the tap records
//! how many per topic ([`DroppedTopics`](crate::face::dropped_topics::DroppedTopics)),
//! and the publisher [skips](Numbering::skip) that many numbers of each before it
//! numbers its next batch: receivers count them as gaps like any other loss. The
//! publisher's table is keyed as the tap records ([`drop_key`]).

use std::collections::HashMap;

use crate::face::dropped_topics::drop_key;
use crate::transport::envelope::NodeId;
use crate::vocab::topic::hash_topic;

/// Most topics (publisher) or (origin, topic) streams (receiver) a table remembers;
/// a full table is cleared.
const MAX_STREAMS: usize = 1 << 16;

/// The publisher's side: the next number for each topic.
#[derive(Debug, Default)]
pub(crate) struct Numbering {
    /// Envelopes numbered so far, all topics.
    all: u64,
    /// Topic key ([`drop_key`] of its hash) → last number given. (`ahash`: the
    /// default SipHash was half of the framer's cost per frame, measured with callgrind
    /// on `benches/bridge_nats.rs profile_bridge`.)
    last: HashMap<u64, u64, ahash::RandomState>,
}

impl Numbering {
    /// The number of the next envelope on `topic`.
    pub(crate) fn next(&mut self, topic: &str) -> u64 {
        self.advance(drop_key(hash_topic(topic)), 1)
    }

    /// Uses up `n` numbers of the topic whose key is `key`: frames that were never
    /// handed to the publisher thread (refused by the tap's full queue).
    pub(crate) fn skip(&mut self, key: u64, n: u64) {
        if n > 0 {
            self.advance(key, n);
        }
    }

    /// Adds `n` to `key`'s stream; returns its last number.
    fn advance(&mut self, key: u64, n: u64) -> u64 {
        self.all += n;
        if self.last.len() >= MAX_STREAMS {
            self.last.clear();
        }
        let all = self.all;
        let last = self
            .last
            .entry(key)
            .and_modify(|last| *last += n)
            .or_insert(all);
        *last
    }
}

/// What a receiver concludes from one envelope's number.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Deliver it; `missed` frames of this stream were skipped before it.
    Deliver { missed: u64 },
    /// Not above the last number of its stream: a replay; skip it.
    Duplicate,
}

/// The receiver's side: the last number seen per (origin, topic).
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// (origin, topic hash) → last number seen (`ahash`, as [`Numbering`]).
    last: HashMap<(NodeId, u64), u64, ahash::RandomState>,
}

impl Tracker {
    pub(crate) fn check(&mut self, origin: NodeId, topic: &str, sequence: u64) -> Verdict {
        let key = (origin, hash_topic(topic));
        if let Some(last) = self.last.get_mut(&key) {
            if sequence <= *last {
                return Verdict::Duplicate;
            }
            let missed = sequence - *last - 1;
            *last = sequence;
            return Verdict::Deliver { missed };
        }
        if self.last.len() >= MAX_STREAMS {
            self.last.clear();
        }
        // A stream not heard before: nothing to compare with, so no gap.
        self.last.insert(key, sequence);
        Verdict::Deliver { missed: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_grow_per_topic_and_never_restart() {
        let mut n = Numbering::default();
        assert_eq!(n.next("a"), 1);
        assert_eq!(n.next("a"), 2);
        assert_eq!(n.next("b"), 3); // a new topic starts at the count of all envelopes
        assert_eq!(n.next("a"), 3);
        assert_eq!(n.next("b"), 4);
        n.last.clear(); // forgotten
        assert_eq!(n.next("a"), 6, "above every number topic a had");
    }

    #[test]
    fn skipped_numbers_show_as_a_gap() {
        let mut n = Numbering::default();
        assert_eq!(n.next("a"), 1);
        n.skip(drop_key(hash_topic("a")), 3);
        assert_eq!(n.next("a"), 5, "numbers 2, 3 and 4 went to refused frames");
        n.skip(drop_key(hash_topic("b")), 2);
        assert_eq!(
            n.next("b"),
            8,
            "a new topic starts above every number given"
        );
    }

    #[test]
    fn a_receiver_counts_gaps_per_stream_and_skips_replays() {
        let mut t = Tracker::default();
        let (x, y) = (NodeId(1), NodeId(2));
        assert_eq!(t.check(x, "a", 5), Verdict::Deliver { missed: 0 });
        assert_eq!(t.check(x, "a", 6), Verdict::Deliver { missed: 0 });
        assert_eq!(t.check(x, "a", 9), Verdict::Deliver { missed: 2 });
        assert_eq!(t.check(x, "a", 9), Verdict::Duplicate);
        assert_eq!(t.check(x, "b", 1), Verdict::Deliver { missed: 0 });
        assert_eq!(t.check(y, "a", 1), Verdict::Deliver { missed: 0 });
    }
}
