//! Topic events: which topics (and wildcard patterns) gained their first subscriber or
//! lost their last, for an observer outside the engine (a bridge subscribes a node to a
//! topic's channel, or a pattern's wildcard subject, only while local clients use it).
//!
//! The writer sends them while it holds the writer role, in the order the batches apply
//! them, so an observer that replays them keeps an exact picture of the topic set. The
//! channel is unbounded (a send never blocks the writer) and the events are few: one per
//! topic or pattern opened or closed, none per subscriber. Patterns are counted per text
//! (two clients on `a.*` open it once) only while someone watches: an unwatched engine
//! pays nothing for them.

use crate::sync::Arc;
use crate::vocab::error::Error;
use crate::vocab::topic_event::TopicEvent;

/// Where the writer sends topic events.
pub(crate) type TopicEventSender = crossbeam_channel::Sender<TopicEvent>;

impl<T> super::Engine<T> {
    /// Starts sending topic events to `events` and returns the topics and patterns that
    /// have subscribers now, as `Opened` and `PatternOpened` events: every later change
    /// arrives as an event, none is missed or reported twice (both happen under the
    /// writer role). Replaces any earlier watcher.
    #[allow(dead_code)] // Used by the bridge (features `redis`, `nats`).
    pub(crate) fn watch_topics(&self, events: TopicEventSender) -> Result<Vec<TopicEvent>, Error> {
        let shared: &Arc<super::Shared<T>> = &self.link.shared;
        let mut writer = crate::sync::lock(&shared.writer);
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        Ok(writer.watch_topics(Some(events)))
    }

    /// Stops sending topic events.
    #[allow(dead_code)] // Used by the bridge (features `redis`, `nats`).
    pub(crate) fn unwatch_topics(&self) {
        let mut writer = crate::sync::lock(&self.link.shared.writer);
        writer.watch_topics(None);
    }
}
