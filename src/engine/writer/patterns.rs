//! The writer's wildcard subscriptions: a pattern goes into the snapshot's pattern
//! index (for topics that do not exist yet) and into the subscriber list of every
//! existing topic it matches (found through the [`TopicIndex`]), keeping the invariant
//! set out in [`exact`](super::exact).

use super::aftermath::Aftermath;
use super::exact::{push_subscriber, record_has_topic};
use super::Writer;
use crate::engine::recipient::Recipient;
use crate::engine::topic_index::TopicIndex;
use crate::sync::Arc;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::pattern::Pattern;

impl<T> Writer<T> {
    /// Whether one of client `id`'s patterns matches topic `name`: then the client is in
    /// that topic's subscriber list through the pattern (the invariant below).
    pub(super) fn covered_by_pattern(&self, id: ClientId, name: &str) -> bool {
        // Most engines have no patterns at all: skip the lookup.
        !self.client_patterns.is_empty()
            && self
                .client_patterns
                .get(&id)
                .is_some_and(|patterns| patterns.iter().any(|p| p.matches(name, self.separator)))
    }

    /// Subscribes `id` to `pattern`: into the pattern index (for topics that do not exist
    /// yet) and into the list of every existing topic it matches. Returns whether
    /// anything changed.
    pub(super) fn subscribe_pattern(
        &mut self,
        id: ClientId,
        pattern: Pattern,
    ) -> Result<bool, Error> {
        let (client, _) = self
            .clients
            .get_key_value(&id)
            .ok_or(Error::UnknownClient(id))?;
        let sink = Arc::clone(client.sink());
        let theirs = self.client_patterns.get(&id);
        if theirs.is_some_and(|patterns| patterns.iter().any(|p| p.text() == pattern.text())) {
            return Ok(false);
        }
        let index = self.topic_index_mut();
        for (name, hash) in index.matching(&pattern) {
            let by_name = record_has_topic(&self.clients, id, &name);
            if by_name || self.covered_by_pattern(id, &name) {
                continue;
            }
            let entry = self
                .working
                .topics
                .get_mut(&name, hash)
                .expect("the topic index lists only topics that exist");
            push_subscriber(
                &mut entry.subscribers,
                Recipient::new(id, Arc::clone(&sink)),
            );
        }
        std::sync::Arc::make_mut(&mut self.working.patterns)
            .insert(&pattern, Recipient::new(id, sink));
        self.pattern_watched(pattern.text(), true);
        self.client_patterns.entry(id).or_default().push(pattern);
        self.working.pattern_subscriptions += 1;
        Ok(true)
    }

    /// Unsubscribes `id` from `pattern` (the same string it subscribed with). Returns
    /// whether anything changed.
    pub(super) fn unsubscribe_pattern(
        &mut self,
        id: ClientId,
        pattern: &Pattern,
        aftermath: &mut Aftermath<T>,
    ) -> Result<bool, Error> {
        if !self.clients.contains_key(&id) {
            return Err(Error::UnknownClient(id));
        }
        let Some(patterns) = self.client_patterns.get_mut(&id) else {
            return Ok(false);
        };
        let Some(position) = patterns.iter().position(|p| p.text() == pattern.text()) else {
            return Ok(false);
        };
        let pattern = patterns.swap_remove(position);
        if patterns.is_empty() {
            self.client_patterns.remove(&id);
        }
        if let Some(removed) =
            std::sync::Arc::make_mut(&mut self.working.patterns).remove(&pattern, id)
        {
            aftermath.retired_sinks.push(removed.sink);
        }
        self.pattern_watched(pattern.text(), false);
        self.working.pattern_subscriptions -= 1;
        for (name, hash) in self.topic_index_mut().matching(&pattern) {
            if !record_has_topic(&self.clients, id, &name) && !self.covered_by_pattern(id, &name) {
                self.remove_subscriber(id, &name, hash);
            }
        }
        Ok(true)
    }

    /// The index of existing topics by token, built on first use.
    pub(super) fn topic_index_mut(&mut self) -> &mut TopicIndex {
        let separator = self.separator;
        let topics = &self.working.topics;
        self.topic_index.get_or_insert_with(|| {
            let mut index = TopicIndex::default();
            topics.for_each(|entry| {
                index.insert(std::sync::Arc::clone(&entry.name), entry.hash, separator)
            });
            index
        })
    }
}
