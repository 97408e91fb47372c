//! The writer's exact-topic subscriptions: subscribe, unsubscribe, unregister, and the
//! sweep of clients whose sinks died.
//!
//! The invariant that keeps one frame per client per broadcast, which every change here
//! and in [`patterns`](super::patterns) re-establishes for the topics it touches: for
//! every topic entry `t` and client `c`, `c` is in `t`'s subscriber list exactly once if
//! `c` subscribed to `t` by name or one of `c`'s patterns matches `t`, and not at all
//! otherwise. Each list is also kept ordered by client id, so that `broadcast_from` finds
//! its sender by binary search instead of comparing every subscriber's id.

use std::collections::HashMap;

use smallvec::SmallVec;

use super::aftermath::Aftermath;
use super::{ClientRecord, Writer};
use crate::engine::pattern_index;
use crate::engine::recipient::Recipient;
use crate::engine::snapshot::{Snapshot, TopicEntry, INLINE_SUBSCRIBERS};
use crate::sink::Status;
use crate::sync::{lock, Arc};
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::topic::{hash_topic, Topic};
use crate::vocab::topic_event::TopicEvent;
#[cfg(feature = "tracing")]
use crate::vocab::trace::CutOff;

impl<T> Writer<T> {
    // The invariant that keeps one frame per client per broadcast: for every topic entry
    // `t` and client `c`, `c` is in `t`'s subscriber list exactly once if `c` subscribed
    // to `t` by name or one of `c`'s patterns matches `t`, and not at all otherwise. Each
    // change below re-establishes it for the topics it touches.

    /// Adds `id` to `topic` by name. Returns whether anything changed.
    pub(super) fn subscribe(&mut self, id: ClientId, topic: Topic) -> Result<bool, Error> {
        let covered = self.covered_by_pattern(id, topic.name());
        let record = self.clients.get_mut(&id).ok_or(Error::UnknownClient(id))?;
        if record.topics.iter().any(|name| **name == *topic.name()) {
            return Ok(false);
        }
        let subscriber = Recipient::new(id, Arc::clone(&record.sink));
        let room = usize::from(!covered);
        // A clone is exactly full: copy with room for the new subscriber instead.
        let copy = |entry: &TopicEntry<T>| entry.copy_with_room(room);
        let hash = topic.hash_value();
        let name = match self.working.topics.get_mut_with(topic.name(), hash, copy) {
            Some(entry) => {
                if !covered {
                    push_subscriber(&mut entry.subscribers, subscriber);
                }
                std::sync::Arc::clone(&entry.name)
            }
            None => {
                let name = topic.shared_name();
                let mut subscribers: SmallVec<[Recipient<T>; INLINE_SUBSCRIBERS]> = SmallVec::new();
                if !self.working.patterns.is_empty() {
                    // A new topic: it gets every pattern subscriber that matches it (in
                    // client id order, as `matching` returns them).
                    let matched =
                        pattern_index::matching(&self.working.patterns, &name, self.separator);
                    subscribers.extend(matched.into_iter().filter(|s| s.id != id).cloned());
                }
                push_subscriber(&mut subscribers, subscriber);
                self.working.topics.insert(TopicEntry {
                    name: std::sync::Arc::clone(&name),
                    hash: topic.hash_value(),
                    subscribers,
                });
                if let Some(index) = &mut self.topic_index {
                    index.insert(
                        std::sync::Arc::clone(&name),
                        topic.hash_value(),
                        self.separator,
                    );
                }
                if let Some(watcher) = &self.topic_watcher {
                    // Unbounded: never blocks. An observer that went away just stops
                    // receiving.
                    let _ = watcher.send(TopicEvent::Opened(std::sync::Arc::clone(&name)));
                }
                name
            }
        };
        if record.topics.len() == record.topics.capacity() {
            record
                .topics
                .reserve_exact(gentle_growth(record.topics.len()));
        }
        record.topics.push(name);
        self.working.subscriptions += 1;
        Ok(true)
    }

    /// Removes `id` from `topic` by name. Returns whether anything changed.
    pub(super) fn unsubscribe(&mut self, id: ClientId, topic: &Topic) -> Result<bool, Error> {
        let record = self.clients.get_mut(&id).ok_or(Error::UnknownClient(id))?;
        let Some(position) = record
            .topics
            .iter()
            .position(|name| **name == *topic.name())
        else {
            return Ok(false);
        };
        record.topics.swap_remove(position);
        self.working.subscriptions -= 1;
        if !self.covered_by_pattern(id, topic.name()) {
            self.remove_subscriber(id, topic.name(), topic.hash_value());
        }
        Ok(true)
    }

    /// Removes `id` from every topic and pattern and forgets it, closing its sink with
    /// `reason`.
    pub(super) fn unregister(
        &mut self,
        id: ClientId,
        reason: Status,
        aftermath: &mut Aftermath<T>,
    ) -> Result<(), Error> {
        let record = self.clients.remove(&id).ok_or(Error::UnknownClient(id))?;
        for name in &record.topics {
            self.remove_subscriber(id, name, hash_topic(name));
        }
        self.working.subscriptions -= record.topics.len();
        if let Some(patterns) = self.client_patterns.remove(&id) {
            let index = std::sync::Arc::make_mut(&mut self.working.patterns);
            for pattern in &patterns {
                if let Some(removed) = index.remove(pattern, id) {
                    aftermath.retired_sinks.push(removed.sink);
                }
            }
            self.working.pattern_subscriptions -= patterns.len();
            for pattern in &patterns {
                self.pattern_watched(pattern.text(), false);
            }
            // The topics it was in through its patterns (once each: the client is in a
            // list at most once, and removing an absent subscriber is a no-op).
            for pattern in &patterns {
                for (name, hash) in self.topic_index_mut().matching(pattern) {
                    self.remove_subscriber(id, &name, hash);
                }
            }
        }
        #[cfg(feature = "tracing")]
        match record.sink.state().status() {
            // Closed by the broadcast that found it full or panicking; here to be pruned.
            Status::Overflow => aftermath.cut_off.push((id, CutOff::Overflow)),
            Status::Panicked => aftermath.cut_off.push((id, CutOff::Panicked)),
            _ => {}
        }
        record.sink.close(reason);
        self.working.clients -= 1;
        aftermath.retired_sinks.push(record.sink);
        self.presence_changed |= lock(&self.presence).depart(id);
        Ok(())
    }

    /// Removes every client whose sink is closed. Runs only when a publisher could not
    /// queue a prune command because the queue was full: O(clients), and rare.
    pub(super) fn sweep(&mut self, aftermath: &mut Aftermath<T>) -> bool {
        let dead: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, record)| !record.sink.state().is_open())
            .map(|(id, _)| *id)
            .collect();
        for id in &dead {
            let _ = self.unregister(*id, Status::ConsumerGone, aftermath);
        }
        !dead.is_empty()
    }

    /// Removes `id` from `topic`'s entry, dropping the entry if it empties.
    pub(super) fn remove_subscriber(&mut self, id: ClientId, name: &str, hash: u64) {
        if let Some(closed) = remove_subscriber(&mut self.working, id, name, hash) {
            if let Some(index) = &mut self.topic_index {
                index.remove(&closed, self.separator);
            }
            if let Some(watcher) = &self.topic_watcher {
                let _ = watcher.send(TopicEvent::Closed(closed));
            }
        }
    }
}

/// Whether client `id` subscribed to topic `name` by name.
pub(super) fn record_has_topic<T>(
    clients: &HashMap<ClientId, ClientRecord<T>, ahash::RandomState>,
    id: ClientId,
    name: &str,
) -> bool {
    clients
        .get(&id)
        .is_some_and(|record| record.topics.iter().any(|t| **t == *name))
}

/// Adds to a topic's subscriber list at its place in client id order (the end, for a
/// client newer than every subscriber: the common case), growing the list gently.
pub(super) fn push_subscriber<T>(
    list: &mut SmallVec<[Recipient<T>; INLINE_SUBSCRIBERS]>,
    subscriber: Recipient<T>,
) {
    if list.len() == list.capacity() {
        list.reserve_exact(gentle_growth(list.len()));
    }
    let at = list.partition_point(|s| s.id < subscriber.id);
    list.insert(at, subscriber);
}

/// How much to grow a full list of `len` elements by: half again (at least one).
///
/// Lists here are long-lived and mostly short (a client's topics, a topic's
/// subscribers), so the default growth (to 4, then doubling) would leave most of each
/// allocation empty; growing by 1.5× from one keeps waste under a third while staying
/// amortised O(1) per push.
pub(super) fn gentle_growth(len: usize) -> usize {
    (len / 2).max(1)
}

/// Removes `id` from `topic`'s entry in `snapshot`, dropping the entry if it empties.
/// Returns the topic's name if it did drop the entry.
pub(super) fn remove_subscriber<T>(
    snapshot: &mut Snapshot<T>,
    id: ClientId,
    name: &str,
    hash: u64,
) -> Option<std::sync::Arc<str>> {
    let Some(entry) = snapshot.topics.get(name, hash) else {
        debug_assert!(false, "client record names a topic the snapshot lacks");
        return None;
    };
    if entry.subscribers.len() == 1 && entry.subscribers[0].id == id {
        // The last subscriber leaves: remove the entry without copying it first.
        let closed = std::sync::Arc::clone(&entry.name);
        snapshot.topics.remove(name, hash);
        return Some(closed);
    }
    if entry
        .subscribers
        .binary_search_by_key(&id, |s| s.id)
        .is_err()
    {
        return None;
    }
    // Copied without `id` (in id order) if a published snapshot shares it; changed in
    // place if this batch already copied it.
    let entry = snapshot
        .topics
        .get_mut_with(name, hash, |entry| entry.copy_without(id))?;
    if let Ok(position) = entry.subscribers.binary_search_by_key(&id, |s| s.id) {
        entry.subscribers.remove(position); // keeps the id order
    }
    None
}
