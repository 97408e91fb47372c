//! The writer's side of topic events (see [`topic_events`](crate::engine::topic_events)):
//! who watches, what topics and patterns exist when a watcher starts, and the count per
//! pattern text that tells a pattern's first subscriber and its last (kept only while
//! someone watches: an unwatched engine pays nothing for it).

use super::Writer;
use crate::engine::topic_events::TopicEventSender;
use crate::vocab::topic_event::TopicEvent;

impl<T> Writer<T> {
    /// Sets (or clears) the topic watcher; returns the topics and patterns that have
    /// subscribers now, as `Opened` and `PatternOpened` events.
    pub(crate) fn watch_topics(&mut self, watcher: Option<TopicEventSender>) -> Vec<TopicEvent> {
        self.topic_watcher = watcher;
        self.pattern_counts.clear();
        if self.topic_watcher.is_none() {
            return Vec::new();
        }
        let mut now = Vec::with_capacity(self.working.topics.len());
        self.working
            .topics
            .for_each(|entry| now.push(TopicEvent::Opened(std::sync::Arc::clone(&entry.name))));
        for pattern in self.client_patterns.values().flatten() {
            *self
                .pattern_counts
                .entry(pattern.text().into())
                .or_insert(0) += 1;
        }
        for text in self.pattern_counts.keys() {
            now.push(TopicEvent::PatternOpened(std::sync::Arc::clone(text)));
        }
        now
    }

    /// While watched, counts a pattern's subscribers and reports its first and last.
    pub(super) fn pattern_watched(&mut self, text: &str, added: bool) {
        let Some(watcher) = &self.topic_watcher else {
            return;
        };
        if added {
            let count = self.pattern_counts.entry(text.into()).or_insert(0);
            *count += 1;
            if *count == 1 {
                let _ = watcher.send(TopicEvent::PatternOpened(text.into()));
            }
        } else if let Some(count) = self.pattern_counts.get_mut(text) {
            *count -= 1;
            if *count == 0 {
                self.pattern_counts.remove(text);
                let _ = watcher.send(TopicEvent::PatternClosed(text.into()));
            }
        }
    }
}
