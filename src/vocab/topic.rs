//! Topic names, their validation, and the pre-resolved [`Topic`] handle.
//!
//! A topic is any non-empty UTF-8 string up to the engine's limit (256 bytes by default,
//! at most 65,535 because the wire format stores the length in two bytes). Every call
//! that takes a topic accepts either a `&str` — validated and hashed on each call — or a
//! [`&Topic`](Topic), which did both once when it was made and is the hot-path choice.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

use crate::vocab::error::TopicError;

/// The hard ceiling on a topic's length in bytes: the Push frame stores it as a `u16`.
pub const MAX_TOPIC_LEN: usize = u16::MAX as usize;

/// The hasher every engine in this process uses for topic names.
///
/// Randomly seeded once per process, so an attacker choosing topic names cannot plan
/// collisions, and shared by all engines, so a [`Topic`] made by one engine is valid in
/// another.
fn topic_hasher() -> &'static ahash::RandomState {
    static HASHER: OnceLock<ahash::RandomState> = OnceLock::new();
    HASHER.get_or_init(ahash::RandomState::new)
}

pub(crate) fn hash_topic(name: &str) -> u64 {
    // The name's bytes only: `str`'s `Hash` also writes a terminator byte, one more
    // round of the hash for nothing (names are compared whole on a hash match anyway).
    let mut hasher = topic_hasher().build_hasher();
    hasher.write(name.as_bytes());
    hasher.finish()
}

pub(crate) fn validate(name: &str, max_len: usize) -> Result<(), TopicError> {
    if name.is_empty() {
        Err(TopicError::Empty)
    } else if name.len() > max_len {
        Err(TopicError::TooLong {
            len: name.len(),
            max: max_len,
        })
    } else {
        Ok(())
    }
}

/// A validated, pre-hashed topic name: broadcasting through it skips the per-call
/// validation and hash.
///
/// Made by [`PubSub::topic`](crate::PubSub::topic). Cloning is one atomic increment.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    /// `hash_topic(name)`, computed once. First, so the derived `==` compares it before
    /// the name: unequal topics almost always differ here.
    hash: u64,
    /// The name, shared with the engine's snapshot once subscribed.
    name: Arc<str>,
    /// Whether the name holds a `*` or `>` byte, so it may be a wildcard pattern (see
    /// `engine::pattern`). Found once, here: a subscription whose name cannot be one
    /// skips the token split (measured: ~330 instructions per mutation otherwise).
    may_be_pattern: bool,
}

impl Topic {
    pub(crate) fn new(name: &str, max_len: usize) -> Result<Self, TopicError> {
        validate(name, max_len)?;
        Ok(Self {
            hash: hash_topic(name),
            name: Arc::from(name),
            may_be_pattern: name.bytes().any(|b| b == b'*' || b == b'>'),
        })
    }

    /// A handle on `name` (already validated, hashing to `hash`) that shares the
    /// allocation an engine's snapshot stores it in.
    pub(crate) fn from_stored(name: Arc<str>, hash: u64) -> Self {
        Self {
            hash,
            may_be_pattern: name.bytes().any(|b| b == b'*' || b == b'>'),
            name,
        }
    }

    /// Whether the name may be a wildcard pattern (it holds a `*` or `>` byte).
    pub(crate) fn may_be_pattern(&self) -> bool {
        self.may_be_pattern
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shared_name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    pub(crate) fn hash_value(&self) -> u64 {
        self.hash
    }

    pub(crate) fn key(&self) -> TopicKey<'_> {
        TopicKey {
            name: &self.name,
            hash: self.hash,
        }
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Topic").field(&&*self.name).finish()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

pub(crate) use sealed::TopicKey;

mod sealed {
    /// A borrowed topic name with its hash: what a lookup in the snapshot needs.
    /// Public in a private module: nameable inside the crate only.
    #[derive(Clone, Copy, Debug)]
    pub struct TopicKey<'a> {
        pub(crate) name: &'a str,
        pub(crate) hash: u64,
    }

    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for super::Topic {}
    impl<T: Sealed + ?Sized> Sealed for &T {}
}

/// Anything a topic can be named by: `&str`, `&String` or a pre-resolved [`&Topic`](Topic).
///
/// Sealed: the engine relies on how each form is validated and hashed.
pub trait TopicRef: sealed::Sealed {
    /// Validates and hashes the name (or returns what a [`Topic`] computed earlier).
    #[doc(hidden)]
    fn topic_key(&self, max_len: usize) -> Result<TopicKey<'_>, TopicError>;

    /// An owned [`Topic`] for commands that store the name.
    #[doc(hidden)]
    fn to_topic(&self, max_len: usize) -> Result<Topic, TopicError>;
}

impl TopicRef for str {
    #[inline]
    fn topic_key(&self, max_len: usize) -> Result<TopicKey<'_>, TopicError> {
        validate(self, max_len)?;
        Ok(TopicKey {
            name: self,
            hash: hash_topic(self),
        })
    }

    fn to_topic(&self, max_len: usize) -> Result<Topic, TopicError> {
        Topic::new(self, max_len)
    }
}

impl TopicRef for String {
    #[inline]
    fn topic_key(&self, max_len: usize) -> Result<TopicKey<'_>, TopicError> {
        self.as_str().topic_key(max_len)
    }

    fn to_topic(&self, max_len: usize) -> Result<Topic, TopicError> {
        Topic::new(self, max_len)
    }
}

impl TopicRef for Topic {
    /// Only the length is re-checked (a `Topic` may come from an engine with a larger
    /// limit); the hash is reused.
    #[inline]
    fn topic_key(&self, max_len: usize) -> Result<TopicKey<'_>, TopicError> {
        if self.name.len() > max_len {
            return Err(TopicError::TooLong {
                len: self.name.len(),
                max: max_len,
            });
        }
        Ok(self.key())
    }

    fn to_topic(&self, max_len: usize) -> Result<Topic, TopicError> {
        self.topic_key(max_len)?;
        Ok(self.clone())
    }
}

impl<T: TopicRef + ?Sized> TopicRef for &T {
    #[inline]
    fn topic_key(&self, max_len: usize) -> Result<TopicKey<'_>, TopicError> {
        (**self).topic_key(max_len)
    }

    fn to_topic(&self, max_len: usize) -> Result<Topic, TopicError> {
        (**self).to_topic(max_len)
    }
}
