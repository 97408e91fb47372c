//! The errors every fallible public call returns. Nothing in `fanout` panics on user input.

use std::fmt;

use crate::vocab::authorization::Denied;
use crate::vocab::client::ClientId;

/// Why a call on a running engine failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The engine was shut down (explicitly or because its last handle was dropped).
    Closed,
    /// The client id is not registered (never was, or was unregistered).
    UnknownClient(ClientId),
    /// `register` was called with an id that is already registered. Registration refuses
    /// rather than replaces: unregister first to swap a client's sink.
    DuplicateClient(ClientId),
    /// The topic name is empty or longer than the engine's limit.
    InvalidTopic(TopicError),
    /// The serialiser failed; nothing was delivered.
    Serialise(SerialiseError),
    /// A pre-encoded frame passed to `broadcast_frame` is not a Push frame for the topic
    /// it is broadcast on.
    FrameMismatch,
    /// A channel configuration is unusable (for example a capacity of zero).
    InvalidConfig(&'static str),
    /// A wildcard subscription is malformed (see [`PatternError`]).
    InvalidPattern(PatternError),
    /// The engine's [`can_subscribe`](crate::Builder::can_subscribe) hook refused the
    /// subscription; nothing changed.
    Denied(Denied),
    /// [`subscribe_with_members`](crate::PubSub::subscribe_with_members) was called from
    /// inside a presence delivery (a sink's callback handed a Presence frame): the ordered
    /// step would wait for the delivery it is called from. Nothing changed.
    InPresenceDelivery,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("the fanout engine is closed"),
            Error::UnknownClient(id) => write!(f, "{id} is not registered"),
            Error::DuplicateClient(id) => write!(f, "{id} is already registered"),
            Error::InvalidTopic(e) => write!(f, "invalid topic: {e}"),
            Error::Serialise(e) => write!(f, "serialiser failed: {e}"),
            Error::FrameMismatch => f.write_str("frame is not a Push frame for this topic"),
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::InvalidPattern(e) => write!(f, "invalid pattern: {e}"),
            Error::Denied(denied) => denied.fmt(f),
            Error::InPresenceDelivery => {
                f.write_str("subscribe_with_members called from inside a presence delivery")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidTopic(e) => Some(e),
            Error::Serialise(e) => Some(e),
            Error::InvalidPattern(e) => Some(e),
            Error::Denied(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TopicError> for Error {
    fn from(e: TopicError) -> Self {
        Error::InvalidTopic(e)
    }
}

impl From<SerialiseError> for Error {
    fn from(e: SerialiseError) -> Self {
        Error::Serialise(e)
    }
}

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is the empty string.
    Empty,
    /// The name is longer (in UTF-8 bytes) than the engine allows.
    TooLong {
        /// Length of the refused name, in bytes.
        len: usize,
        /// The engine's limit, in bytes.
        max: usize,
    },
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("topic name is empty"),
            TopicError::TooLong { len, max } => {
                write!(f, "topic name is {len} bytes, the limit is {max}")
            }
        }
    }
}

impl std::error::Error for TopicError {}

impl From<PatternError> for Error {
    fn from(e: PatternError) -> Self {
        Error::InvalidPattern(e)
    }
}

/// Why a wildcard subscription was refused (see [`PubSub::subscribe`](crate::PubSub::subscribe)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// A token is empty (`foo..*`, `*.`).
    EmptyToken,
    /// `>` is not the last token (`foo.>.bar`).
    RestNotLast,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::EmptyToken => f.write_str("a pattern token is empty"),
            PatternError::RestNotLast => f.write_str("`>` may only be a pattern's last token"),
        }
    }
}

impl std::error::Error for PatternError {}

/// Why an engine could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The builder was given an unusable setting.
    InvalidConfig(&'static str),
    /// The engine's background thread could not be spawned.
    Spawn(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            StartError::Spawn(e) => {
                write!(f, "could not spawn the engine's background thread: {e}")
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Spawn(e) => Some(e),
            StartError::InvalidConfig(_) => None,
        }
    }
}

/// A serialiser failed. Nothing was delivered.
pub struct SerialiseError(Box<dyn std::error::Error + Send + Sync>);

impl SerialiseError {
    /// Wraps any error (or a message string).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }

    /// The wrapped error.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync> {
        self.0
    }
}

impl fmt::Debug for SerialiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SerialiseError").field(&self.0).finish()
    }
}

impl fmt::Display for SerialiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SerialiseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
