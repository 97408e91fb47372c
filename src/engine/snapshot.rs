//! The immutable snapshot broadcasts read: topic → subscribers.
//!
//! The writer builds each new snapshot from the previous one (sharing everything it did
//! not change, see [`TopicMap`]) and publishes it with one atomic store. A broadcast
//! loads the current snapshot, looks its topic up and walks the subscriber list — no
//! lock, no allocation, no waiting for the writer.

use super::garbage::Garbage;
use super::pattern_index::PatternNode;
use super::recipient::Recipient;
use super::subscribers::Subscribers;
use super::topic_map::{Keyed, Owning, TopicMap};
use crate::vocab::client::ClientId;
use crate::vocab::topic::TopicKey;

/// One topic: its name and its subscribers, each client at most once.
pub(crate) struct TopicEntry<T> {
    /// The topic name, shared with the `Topic` handles that created it. (A plain `std`
    /// `Arc`: immutable data needs no loom modelling.)
    pub(crate) name: std::sync::Arc<str>,
    /// `hash_topic(name)`.
    pub(crate) hash: u64,
    /// Who receives broadcasts on this topic (one inline: see [`Subscribers`]). Never
    /// empty: an entry whose last subscriber leaves is removed.
    pub(crate) subscribers: Subscribers<T>,
}

impl<T> Clone for TopicEntry<T> {
    fn clone(&self) -> Self {
        Self {
            name: std::sync::Arc::clone(&self.name),
            hash: self.hash,
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<T> TopicEntry<T> {
    /// A copy with room for `extra` more subscribers (the writer's copy for a subscribe:
    /// a clone is exactly full, so the push would reallocate it).
    pub(crate) fn copy_with_room(&self, extra: usize) -> Self {
        Self {
            name: std::sync::Arc::clone(&self.name),
            hash: self.hash,
            subscribers: self.subscribers.copy_with_room(extra),
        }
    }

    /// A copy without client `id` (the writer's copy for an unsubscribe: the list is
    /// built at its new length, inline when one subscriber is left), in the same order.
    pub(crate) fn copy_without(&self, id: ClientId) -> Self {
        Self {
            name: std::sync::Arc::clone(&self.name),
            hash: self.hash,
            subscribers: self.subscribers.copy_without(id),
        }
    }
}

impl<T> Keyed for TopicEntry<T> {
    fn key(&self) -> &str {
        &self.name
    }

    fn key_hash(&self) -> u64 {
        self.hash
    }
}

/// Everything a broadcast or a statistics call reads, as of one writer batch.
pub(crate) struct Snapshot<T> {
    /// Topic name → subscribers. The writer's working snapshot owns the trie; a
    /// published one is a view of it (see [`garbage`](super::garbage)).
    pub(crate) topics: TopicMap<TopicEntry<T>, Owning>,
    /// Registered clients (channels, for a `Broadcaster`).
    pub(crate) clients: usize,
    /// Subscriptions to topics by name (client–topic pairs).
    pub(crate) subscriptions: usize,
    /// Wildcard subscriptions, for topics nobody subscribed to by name.
    pub(crate) patterns: std::sync::Arc<PatternNode<T>>,
    /// Wildcard subscriptions (client–pattern pairs).
    pub(crate) pattern_subscriptions: usize,
    /// Whether an async channel sink was ever registered: then a broadcast ends with a
    /// look for parked consumers (`engine/delivery.rs`, `wake_parked`). Set by the
    /// writer in the snapshot that first holds one, so no broadcast can reach an async
    /// sink without seeing it; never cleared.
    #[cfg(feature = "async")]
    pub(crate) has_async_sinks: bool,
}

impl<T> Snapshot<T> {
    /// The writer's publication: a snapshot equal to this working copy, whose topics are
    /// a view ([`TopicMap::publish`]), and what the ended epoch stopped pointing at.
    ///
    /// # Safety
    ///
    /// As [`TopicMap::publish`]: nothing reads the returned snapshot once the garbage of a
    /// later publication, or the working copy, is dropped (the writer's `Retired` keeps
    /// that order).
    #[allow(unsafe_code)] // a view's lifetime is the writer's rule, not the borrow checker's
    pub(crate) unsafe fn publish(
        &mut self,
        spare: Garbage<TopicEntry<T>>,
    ) -> (Self, Garbage<TopicEntry<T>>) {
        // SAFETY: passed on to the caller.
        let (topics, stopped) = unsafe { self.topics.publish(spare) };
        let view = Self {
            topics,
            clients: self.clients,
            subscriptions: self.subscriptions,
            patterns: std::sync::Arc::clone(&self.patterns),
            pattern_subscriptions: self.pattern_subscriptions,
            #[cfg(feature = "async")]
            has_async_sinks: self.has_async_sinks,
        };
        (view, stopped)
    }
}

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Self {
            topics: TopicMap::default(),
            clients: 0,
            subscriptions: 0,
            patterns: std::sync::Arc::default(),
            pattern_subscriptions: 0,
            #[cfg(feature = "async")]
            has_async_sinks: false,
        }
    }
}

impl<T> Snapshot<T> {
    /// The subscribers of `topic`, if it has any.
    #[inline]
    pub(crate) fn subscribers(&self, topic: TopicKey<'_>) -> Option<&[Recipient<T>]> {
        self.topics
            .get(topic.name, topic.hash)
            .map(|entry| &entry.subscribers[..])
    }
}
