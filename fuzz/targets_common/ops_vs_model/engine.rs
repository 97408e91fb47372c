//! The engine's side of the comparison: the consumer ends the harness holds, the topic
//! arguments it passes (in each form a caller can), and the engine's results turned into
//! the model's [`Outcome`]s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fanout::transport::{decode_any, Frame};
use fanout::{Channel, ConflatingChannel, Error, OverflowPolicy, PubSub, Topic, TopicError};

use super::model::{Outcome, SinkModel};
use super::ops::PolicySel;
use super::topics::FOREIGN_TOPIC_LEN;

pub fn outcome_of_error(e: Error) -> Outcome {
    match e {
        Error::Closed => Outcome::Closed,
        Error::UnknownClient(id) => Outcome::UnknownClient(id),
        Error::DuplicateClient(id) => Outcome::DuplicateClient(id),
        Error::InvalidTopic(TopicError::Empty) => Outcome::TopicEmpty,
        Error::InvalidTopic(TopicError::TooLong { len, max }) => Outcome::TopicTooLong { len, max },
        Error::Serialise(_) => Outcome::Serialise,
        Error::FrameMismatch => Outcome::FrameMismatch,
        Error::InvalidConfig(_) => Outcome::InvalidConfig,
        other => Outcome::Other(other.to_string()),
    }
}

pub fn outcome<T>(result: Result<T, Error>, count: impl FnOnce(T) -> usize) -> Outcome {
    match result {
        Ok(v) => Outcome::Ok(count(v)),
        Err(e) => outcome_of_error(e),
    }
}

/// The engine's policy for `policy`, or `None` for a conflating channel. `BlockZero`
/// blocks for no time: on one thread a full queue never drains, so it behaves like
/// `DropNewest` without stalling the run.
pub fn overflow_policy(policy: PolicySel) -> Option<OverflowPolicy> {
    match policy {
        PolicySel::DropNewest => Some(OverflowPolicy::DropNewest),
        PolicySel::DropOldest => Some(OverflowPolicy::DropOldest),
        PolicySel::Disconnect => Some(OverflowPolicy::Disconnect),
        PolicySel::BlockZero => Some(OverflowPolicy::Block(Duration::ZERO)),
        PolicySel::Conflate => None,
    }
}

/// A `Topic` longer than the default limit, made once by an engine with a larger one.
pub fn foreign_topic() -> Topic {
    static FOREIGN: std::sync::OnceLock<Topic> = std::sync::OnceLock::new();
    FOREIGN
        .get_or_init(|| {
            let big = PubSub::<[u8]>::builder()
                .max_topic_len(1024)
                .build()
                .expect("engine starts");
            let topic = big.topic(&"f".repeat(FOREIGN_TOPIC_LEN)).unwrap();
            big.shutdown();
            topic
        })
        .clone()
}

/// A delivered frame in the model's terms: (kind, topic, payload) as in
/// [`Expected`](super::model::Expected).
pub fn frame_parts(frame: &[u8]) -> (u8, String, Vec<u8>) {
    match decode_any(frame).expect("a delivered frame decodes") {
        Frame::Push(push) => (1, push.topic.to_owned(), push.payload.to_vec()),
        Frame::Presence(p) => {
            let mut payload = vec![p.event as u8];
            payload.extend_from_slice(&p.client.to_be_bytes());
            payload.extend_from_slice(p.meta);
            (2, p.topic.to_owned(), payload)
        }
    }
}

/// The engine side of one sink.
pub enum ActualSink {
    Callback(Arc<Mutex<Vec<Bytes>>>),
    Channel {
        /// `None` once dropped.
        channel: Option<AnyChannel>,
        drained: Vec<Bytes>,
    },
}

/// A channel client's consumer end, whichever kind.
pub enum AnyChannel {
    Queue(Channel<Bytes>),
    Conflating(ConflatingChannel<Bytes>),
}

/// Calls the same-named method on whichever kind of channel `$c` is.
macro_rules! either {
    ($c:expr, |$ch:ident| $call:expr) => {
        match $c {
            AnyChannel::Queue($ch) => $call,
            AnyChannel::Conflating($ch) => $call,
        }
    };
}

impl AnyChannel {
    pub fn id(&self) -> fanout::ClientId {
        either!(self, |c| c.id())
    }

    fn conflated(&self) -> u64 {
        match self {
            AnyChannel::Queue(_) => 0,
            AnyChannel::Conflating(c) => c.conflated(),
        }
    }

    /// Takes everything queued now.
    pub fn drain(&self) -> Vec<Bytes> {
        either!(self, |c| c.try_iter().collect())
    }

    /// Whether the receiver has ended (every sender gone, nothing queued).
    pub fn has_ended(&self) -> bool {
        match self {
            AnyChannel::Queue(c) => matches!(c.try_recv(), Err(e) if e.is_disconnected()),
            AnyChannel::Conflating(c) => matches!(c.try_recv(), Err(e) if e.is_disconnected()),
        }
    }

    /// Compares the channel's counters and status with its model (`what` names the
    /// moment, for the failure message).
    pub fn check(&self, model: &SinkModel, what: &str) {
        let SinkModel::Channel {
            queue,
            dropped,
            conflated,
            reason,
            ..
        } = model
        else {
            unreachable!("a channel registration has a channel model");
        };
        let (len, got_dropped, got_reason, connected) = either!(self, |c| (
            c.len(),
            c.dropped(),
            c.disconnect_reason(),
            c.is_connected()
        ));
        assert_eq!(got_dropped, *dropped, "dropped() {what}");
        assert_eq!(self.conflated(), *conflated, "conflated() {what}");
        assert_eq!(len, queue.len(), "len() {what}");
        assert_eq!(got_reason, *reason, "disconnect_reason() {what}");
        assert_eq!(connected, reason.is_none(), "is_connected() {what}");
    }
}

/// A topic as an op names it, in the form the engine is given.
pub enum TopicArg<'h> {
    Str(&'h str),
    Owned(&'h String),
    Resolved(&'h Topic),
}

/// Calls `$call` with the topic argument in whichever form the op chose.
macro_rules! with_topic {
    ($arg:expr, |$t:ident| $call:expr) => {
        match $arg {
            TopicArg::Str($t) => $call,
            TopicArg::Owned($t) => $call,
            TopicArg::Resolved($t) => $call,
        }
    };
}
