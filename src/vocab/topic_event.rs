//! [`TopicEvent`]: a topic gained its first subscriber or lost its last — what the
//! engine reports to an observer that follows which topics this engine serves (a bridge
//! subscribing to a topic's channel only while the topic has local subscribers).

/// A change in the set of topics with at least one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicEvent {
    /// The topic got its first subscriber.
    Opened(std::sync::Arc<str>),
    /// The topic lost its last subscriber.
    Closed(std::sync::Arc<str>),
}
