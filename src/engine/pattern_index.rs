//! The snapshot's index of wildcard subscriptions, for broadcasts to topics nobody
//! subscribed to by name.
//!
//! A trie over pattern tokens, the shape of NATS's sublist: each node has its literal
//! children (in a [`TopicMap`], keyed by token), a `*` child, the subscribers whose
//! pattern ends at this node, and those whose pattern ends in `>` here. Matching a topic
//! of `n` tokens visits at most the literal and the `*` child per level, so its cost
//! grows with the topic's levels and the branches that match it — not with the number
//! of patterns.
//!
//! Like the topic map it is persistent: nodes are shared between snapshots and the writer
//! copies only the path it changes (`Arc::make_mut`), so a pattern subscription costs
//! O(levels · log32(children)) plus the touched node's subscriber list, never a copy of
//! the index.
//!
//! Broadcasts to topics that exist never come here: the writer puts each topic's pattern
//! subscribers into its own subscriber list. An engine with no patterns checks one
//! `is_empty` on a topic miss and nothing on a hit.

use smallvec::SmallVec;

use super::recipient::Recipient;
use super::topic_map::{Keyed, TopicMap};
use crate::vocab::client::ClientId;
use crate::vocab::pattern::{Pattern, Token};
use crate::vocab::topic::hash_topic;

/// Matches gathered on the stack before spilling to the heap.
pub(crate) const INLINE_MATCHES: usize = 16;

/// A node of the trie.
pub(crate) struct PatternNode<T> {
    /// Literal next tokens.
    children: TopicMap<Child<T>>,
    /// The `*` branch.
    one: Option<std::sync::Arc<PatternNode<T>>>,
    /// Subscribers whose pattern ends here.
    here: SmallVec<[Recipient<T>; 1]>,
    /// Subscribers whose pattern ends with `>` here (they match one or more further
    /// tokens).
    rest: SmallVec<[Recipient<T>; 1]>,
}

/// A literal branch: its token and the node below.
struct Child<T> {
    token: std::sync::Arc<str>,
    hash: u64,
    node: PatternNode<T>,
}

impl<T> Clone for PatternNode<T> {
    fn clone(&self) -> Self {
        Self {
            children: self.children.clone(),
            one: self.one.clone(),
            here: self.here.clone(),
            rest: self.rest.clone(),
        }
    }
}

impl<T> Default for PatternNode<T> {
    fn default() -> Self {
        Self {
            children: TopicMap::default(),
            one: None,
            here: SmallVec::new(),
            rest: SmallVec::new(),
        }
    }
}

impl<T> Clone for Child<T> {
    fn clone(&self) -> Self {
        Self {
            token: std::sync::Arc::clone(&self.token),
            hash: self.hash,
            node: self.node.clone(),
        }
    }
}

impl<T> Keyed for Child<T> {
    fn key(&self) -> &str {
        &self.token
    }

    fn key_hash(&self) -> u64 {
        self.hash
    }
}

impl<T> PatternNode<T> {
    /// Whether no pattern is subscribed at or below this node (for the root: at all).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.children.len() == 0
            && self.one.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }

    /// Adds `subscriber` under `pattern`. The writer makes sure a client subscribes to a
    /// pattern once.
    pub(crate) fn insert(&mut self, pattern: &Pattern, subscriber: Recipient<T>) {
        self.insert_at(pattern.tokens(), subscriber);
    }

    fn insert_at(&mut self, tokens: &[Token], subscriber: Recipient<T>) {
        let Some((first, rest)) = tokens.split_first() else {
            self.here.push(subscriber);
            return;
        };
        match first {
            Token::Rest => self.rest.push(subscriber),
            Token::One => std::sync::Arc::make_mut(self.one.get_or_insert_with(Default::default))
                .insert_at(rest, subscriber),
            Token::Literal(literal) => {
                let hash = hash_topic(literal);
                if self.children.get(literal, hash).is_none() {
                    self.children.insert(Child {
                        token: std::sync::Arc::from(&**literal),
                        hash,
                        node: PatternNode::default(),
                    });
                }
                let child = self
                    .children
                    .get_mut(literal, hash)
                    .expect("the child was just inserted");
                child.node.insert_at(rest, subscriber);
            }
        }
    }

    /// Removes client `id` from under `pattern`, pruning nodes left empty. Returns the
    /// removed subscriber (for the writer to retire: dropping it may run user code).
    pub(crate) fn remove(&mut self, pattern: &Pattern, id: ClientId) -> Option<Recipient<T>> {
        self.remove_at(pattern.tokens(), id)
    }

    fn remove_at(&mut self, tokens: &[Token], id: ClientId) -> Option<Recipient<T>> {
        let take = |list: &mut SmallVec<[Recipient<T>; 1]>| {
            let position = list.iter().position(|s| s.id == id)?;
            Some(list.swap_remove(position))
        };
        let Some((first, rest)) = tokens.split_first() else {
            return take(&mut self.here);
        };
        match first {
            Token::Rest => take(&mut self.rest),
            Token::One => {
                let branch = self.one.as_mut()?;
                let removed = std::sync::Arc::make_mut(branch).remove_at(rest, id);
                if branch.is_empty() {
                    self.one = None;
                }
                removed
            }
            Token::Literal(literal) => {
                let hash = hash_topic(literal);
                let child = self.children.get_mut(literal, hash)?;
                let removed = child.node.remove_at(rest, id);
                if child.node.is_empty() {
                    self.children.remove(literal, hash);
                }
                removed
            }
        }
    }

    /// Adds to `out` every subscriber whose pattern matches the topic of `tokens`
    /// (possibly the same client more than once: the caller dedups).
    pub(crate) fn collect<'s>(
        &'s self,
        tokens: &[&str],
        out: &mut SmallVec<[&'s Recipient<T>; INLINE_MATCHES]>,
    ) {
        let Some((first, rest)) = tokens.split_first() else {
            out.extend(self.here.iter());
            return;
        };
        out.extend(self.rest.iter());
        if let Some(child) = self.children.get(first, hash_topic(first)) {
            child.node.collect(rest, out);
        }
        if let Some(one) = &self.one {
            one.collect(rest, out);
        }
    }
}

/// The distinct subscribers whose patterns match `name`, each once, ordered by client id.
pub(crate) fn matching<'s, T>(
    index: &'s PatternNode<T>,
    name: &str,
    separator: char,
) -> SmallVec<[&'s Recipient<T>; INLINE_MATCHES]> {
    let tokens: SmallVec<[&str; 8]> = name.split(separator).collect();
    let mut out = SmallVec::new();
    index.collect(&tokens, &mut out);
    if out.len() > 1 {
        out.sort_unstable_by_key(|s| s.id);
        out.dedup_by_key(|s| s.id);
    }
    out
}
