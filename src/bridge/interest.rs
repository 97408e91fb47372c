//! A node's interest: the topics and patterns its local clients use, as the bridge
//! follows them.
//!
//! The engine reports, in the order its writer applies them, each topic that gains its
//! first local subscriber or loses its last (and likewise each pattern). The publisher
//! thread drains what has queued up and [folds](fold) it into a net change — a topic
//! opened and closed again in between cancels out — which a backend that routes by
//! interest turns into SUBSCRIBE / UNSUBSCRIBE (Redis per-topic channels) or SUB / UNSUB
//! (NATS subjects).

use std::collections::HashMap;
use std::sync::Arc;

use crate::vocab::topic_event::TopicEvent;

/// One thing a node can be subscribed to on the broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Interest {
    /// A topic, by name.
    Topic(Arc<str>),
    /// A wildcard pattern (`*` one token, `>` the rest), as clients wrote it.
    Pattern(Arc<str>),
}

/// A change of a node's interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterestChange {
    /// A local client uses it now, and none did before.
    Subscribe(Interest),
    /// The last local client that used it left.
    Unsubscribe(Interest),
}

impl From<TopicEvent> for InterestChange {
    fn from(event: TopicEvent) -> Self {
        match event {
            TopicEvent::Opened(topic) => InterestChange::Subscribe(Interest::Topic(topic)),
            TopicEvent::Closed(topic) => InterestChange::Unsubscribe(Interest::Topic(topic)),
            TopicEvent::PatternOpened(p) => InterestChange::Subscribe(Interest::Pattern(p)),
            TopicEvent::PatternClosed(p) => InterestChange::Unsubscribe(Interest::Pattern(p)),
        }
    }
}

/// Folds a run of changes into the net change: for each interest, whether it ends
/// subscribed or unsubscribed relative to where it started (nothing if the same). The
/// engine alternates Subscribe and Unsubscribe per interest, so the first and last of
/// one interest decide.
pub(crate) fn fold(changes: impl IntoIterator<Item = InterestChange>) -> Vec<InterestChange> {
    // interest -> (first was a Subscribe, last was a Subscribe), in first-seen order.
    let mut order: Vec<Interest> = Vec::new();
    let mut ends: HashMap<Interest, (bool, bool)> = HashMap::new();
    for change in changes {
        let (interest, subscribed) = match change {
            InterestChange::Subscribe(i) => (i, true),
            InterestChange::Unsubscribe(i) => (i, false),
        };
        match ends.get_mut(&interest) {
            Some(end) => end.1 = subscribed,
            None => {
                order.push(interest.clone());
                ends.insert(interest, (subscribed, subscribed));
            }
        }
    }
    order
        .into_iter()
        .filter_map(|interest| {
            let (first, last) = ends[&interest];
            // Started unsubscribed iff the first change subscribed; a net change only if
            // it ends the other way.
            match (first, last) {
                (true, true) => Some(InterestChange::Subscribe(interest)),
                (false, false) => Some(InterestChange::Unsubscribe(interest)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> Interest {
        Interest::Topic(name.into())
    }

    #[test]
    fn a_topic_opened_and_closed_in_between_cancels_out() {
        use InterestChange::{Subscribe as S, Unsubscribe as U};
        let net = fold([
            S(topic("a")),
            S(topic("b")),
            U(topic("a")),
            U(topic("c")),
            U(topic("b")),
            S(topic("b")),
            S(topic("c")),
            U(topic("c")),
        ]);
        assert_eq!(net, [S(topic("b")), U(topic("c"))]);
    }
}
