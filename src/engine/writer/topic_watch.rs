//! The writer's side of topic events (see [`topic_events`](crate::engine::topic_events)):
//! who watches, and what topics exist when a watcher starts.

use super::Writer;
use crate::engine::topic_events::TopicEventSender;

impl<T> Writer<T> {
    /// Sets (or clears) the topic watcher; returns the topics that have subscribers now.
    pub(crate) fn watch_topics(
        &mut self,
        watcher: Option<TopicEventSender>,
    ) -> Vec<std::sync::Arc<str>> {
        self.topic_watcher = watcher;
        let mut names = Vec::with_capacity(self.working.topics.len());
        self.working
            .topics
            .for_each(|entry| names.push(std::sync::Arc::clone(&entry.name)));
        names
    }
}
