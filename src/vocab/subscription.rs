//! [`Subscription`]: what a subscribe or unsubscribe names — one topic, or a wildcard
//! pattern — parsed once, by the face that takes the call, and handed to the engine
//! as it is.

use crate::vocab::error::PatternError;
use crate::vocab::pattern::{is_pattern, Pattern};
use crate::vocab::topic::Topic;

/// A validated subscription: an exact topic, or a parsed pattern.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    /// One topic by name.
    Topic(Topic),
    /// A wildcard pattern (`*` one token, `>` the rest).
    Pattern(Pattern),
}

impl Subscription {
    /// Reads `topic` as a pattern if it is one under `separator` (see
    /// [`is_pattern`]), as an exact topic otherwise.
    ///
    /// Errors: a malformed pattern (an empty token, `>` before the last token).
    pub(crate) fn parse(topic: Topic, separator: char) -> Result<Self, PatternError> {
        if topic.may_be_pattern() && is_pattern(topic.name(), separator) {
            Ok(Subscription::Pattern(Pattern::parse(
                topic.shared_name(),
                separator,
            )?))
        } else {
            Ok(Subscription::Topic(topic))
        }
    }

    /// The subscription as it was written.
    pub(crate) fn name(&self) -> &str {
        match self {
            Subscription::Topic(topic) => topic.name(),
            Subscription::Pattern(pattern) => pattern.text(),
        }
    }
}
