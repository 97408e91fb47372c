//! The writer's index of existing topics by token, for finding the topics a new (or
//! removed) pattern subscription covers without scanning every topic.
//!
//! Only the writer reads it, so it is a plain mutable trie. It exists only once some
//! client has subscribed to a pattern (built then from the topic map, O(topics) once):
//! an engine nobody subscribes to patterns on pays nothing for it, in time or memory.

use std::collections::HashMap;

use crate::vocab::pattern::{Pattern, Token};

/// A node: the topic that ends here (if one exists) and the next tokens.
#[derive(Default)]
pub(crate) struct TopicIndex {
    /// The full name of the topic ending at this node, with its hash.
    topic: Option<(std::sync::Arc<str>, u64)>,
    children: HashMap<Box<str>, TopicIndex, ahash::RandomState>,
}

impl TopicIndex {
    /// Adds topic `name`.
    pub(crate) fn insert(&mut self, name: std::sync::Arc<str>, hash: u64, separator: char) {
        let mut node = self;
        for token in name.split(separator) {
            node = node.children.entry(token.into()).or_default();
        }
        node.topic = Some((name, hash));
    }

    /// Removes topic `name`, pruning nodes left empty.
    pub(crate) fn remove(&mut self, name: &str, separator: char) {
        let tokens: Vec<&str> = name.split(separator).collect();
        self.remove_at(&tokens);
    }

    fn remove_at(&mut self, tokens: &[&str]) {
        let Some((first, rest)) = tokens.split_first() else {
            self.topic = None;
            return;
        };
        if let Some(child) = self.children.get_mut(*first) {
            child.remove_at(rest);
            if child.topic.is_none() && child.children.is_empty() {
                self.children.remove(*first);
            }
        }
    }

    /// Every existing topic `pattern` matches, as (name, hash).
    pub(crate) fn matching(&self, pattern: &Pattern) -> Vec<(std::sync::Arc<str>, u64)> {
        let mut out = Vec::new();
        self.collect(pattern.tokens(), &mut out);
        out
    }

    fn collect(&self, tokens: &[Token], out: &mut Vec<(std::sync::Arc<str>, u64)>) {
        let Some((first, rest)) = tokens.split_first() else {
            out.extend(self.topic.clone());
            return;
        };
        match first {
            Token::Literal(literal) => {
                if let Some(child) = self.children.get(&**literal) {
                    child.collect(rest, out);
                }
            }
            Token::One => {
                for child in self.children.values() {
                    child.collect(rest, out);
                }
            }
            Token::Rest => {
                for child in self.children.values() {
                    child.collect_all(out);
                }
            }
        }
    }

    /// Every topic at or below this node.
    fn collect_all(&self, out: &mut Vec<(std::sync::Arc<str>, u64)>) {
        out.extend(self.topic.clone());
        for child in self.children.values() {
            child.collect_all(out);
        }
    }
}
