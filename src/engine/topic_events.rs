//! Topic events: which topics gained their first subscriber or lost their last, for an
//! observer outside the engine (the Redis bridge subscribes a node to a topic's Redis
//! channel only while the topic has local subscribers).
//!
//! The writer sends them while it holds the writer role, in the order the batches apply
//! them, so an observer that replays them keeps an exact picture of the topic set. The
//! channel is unbounded (a send never blocks the writer) and the events are few: one per
//! topic opened or closed, none per subscriber.

use crate::sync::Arc;
use crate::vocab::error::Error;
use crate::vocab::topic_event::TopicEvent;

/// Where the writer sends topic events.
pub(crate) type TopicEventSender = crossbeam_channel::Sender<TopicEvent>;

impl<T> super::Engine<T> {
    /// Starts sending topic events to `events` and returns the topics that have
    /// subscribers now: every later change arrives as an event, none is missed or
    /// reported twice (both happen under the writer role). Replaces any earlier watcher.
    #[allow(dead_code)] // Used by the Redis bridge (feature `redis`).
    pub(crate) fn watch_topics(
        &self,
        events: TopicEventSender,
    ) -> Result<Vec<std::sync::Arc<str>>, Error> {
        let shared: &Arc<super::Shared<T>> = &self.link.shared;
        let mut writer = crate::sync::lock(&shared.writer);
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        Ok(writer.watch_topics(Some(events)))
    }

    /// Stops sending topic events.
    #[allow(dead_code)] // Used by the Redis bridge (feature `redis`).
    pub(crate) fn unwatch_topics(&self) {
        let mut writer = crate::sync::lock(&self.link.shared.writer);
        writer.watch_topics(None);
    }
}
