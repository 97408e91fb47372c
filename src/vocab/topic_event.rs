//! [`TopicEvent`]: a topic gained its first subscriber or lost its last, or a wildcard
//! pattern its first or last subscriber — what the engine reports to an observer that
//! follows which topics and patterns this engine serves (a bridge subscribing to a
//! topic's channel or a pattern's wildcard subject only while local clients use it).

/// A change in the set of topics with at least one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicEvent {
    /// The topic got its first subscriber.
    Opened(std::sync::Arc<str>),
    /// The topic lost its last subscriber.
    Closed(std::sync::Arc<str>),
    /// The pattern (as clients wrote it) got its first subscriber.
    PatternOpened(std::sync::Arc<str>),
    /// The pattern lost its last subscriber.
    PatternClosed(std::sync::Arc<str>),
}
