//! The immutable snapshot broadcasts read: topic → subscribers.
//!
//! The writer builds each new snapshot from the previous one (sharing everything it did
//! not change, see [`TopicMap`]) and publishes it with one atomic store. A broadcast
//! loads the current snapshot, looks its topic up and walks the subscriber list — no
//! lock, no allocation, no waiting for the writer.

use smallvec::SmallVec;

use super::garbage::Garbage;
use super::pattern_index::PatternNode;
use super::recipient::Recipient;
use super::topic_map::{Keyed, Owning, TopicMap};
use crate::vocab::client::ClientId;
use crate::vocab::topic::TopicKey;

/// Subscribers stored inline per topic before the list spills to the heap. One: most
/// topics of a server are per-user topics (direct messages, one player's state) with one
/// subscriber, and every inline slot is paid by every topic. Measured at 1M clients with
/// a topic each: 4 inline slots cost 48 B more per topic than 1 (the entry is 64 B, not
/// 112 B); a topic of 2–4 subscribers now keeps them in a heap list (one more pointer
/// to follow per broadcast).
pub(crate) const INLINE_SUBSCRIBERS: usize = 1;

/// One topic: its name and its subscribers, each client at most once.
pub(crate) struct TopicEntry<T> {
    /// The topic name, shared with the `Topic` handles that created it. (A plain `std`
    /// `Arc`: immutable data needs no loom modelling.)
    pub(crate) name: std::sync::Arc<str>,
    /// `hash_topic(name)`.
    pub(crate) hash: u64,
    /// Who receives broadcasts on this topic. Never empty: an entry whose last
    /// subscriber leaves is removed.
    pub(crate) subscribers: SmallVec<[Recipient<T>; INLINE_SUBSCRIBERS]>,
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
        let mut subscribers = SmallVec::with_capacity(self.subscribers.len() + extra);
        subscribers.extend(self.subscribers.iter().cloned());
        Self {
            name: std::sync::Arc::clone(&self.name),
            hash: self.hash,
            subscribers,
        }
    }

    /// A copy without client `id` (the writer's copy for an unsubscribe: the list is
    /// built at its new length, inline when one subscriber is left), in the same order.
    pub(crate) fn copy_without(&self, id: ClientId) -> Self {
        let mut subscribers = SmallVec::with_capacity(self.subscribers.len().saturating_sub(1));
        subscribers.extend(self.subscribers.iter().filter(|s| s.id != id).cloned());
        Self {
            name: std::sync::Arc::clone(&self.name),
            hash: self.hash,
            subscribers,
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
