//! What a channel sink does when its bounded queue is full.
//!
//! Every channel sink — a [`Broadcaster`](crate::Broadcaster) [`Channel`](crate::Channel)
//! or a channel-backed [`PubSub`](crate::PubSub) client — is a bounded queue. When a
//! publisher finds it full, the sink's [`OverflowPolicy`] decides, and whatever it drops
//! is counted on the channel ([`Channel::dropped`](crate::Channel::dropped)) and in the
//! engine's [`Stats`](crate::Stats). No policy blocks a publisher beyond its stated
//! bound.
//!
//! | policy | on a full queue | choose it for |
//! |---|---|---|
//! | [`DropNewest`](OverflowPolicy::DropNewest) | the new frame is dropped | events where the backlog matters more than the latest (chat history); the cheapest |
//! | [`DropOldest`](OverflowPolicy::DropOldest) | the oldest queued frame is dropped, the new one queued | state where only the latest counts (market data, game state) |
//! | [`Disconnect`](OverflowPolicy::Disconnect) | the subscriber is removed; its receiver ends after draining and reports [`DisconnectReason::Overflow`](crate::DisconnectReason::Overflow) | consumers that must see everything or nothing (resync on reconnect) |
//! | [`Block`](OverflowPolicy::Block) | the publisher waits up to the duration, then drops the frame | in-process pipelines where a short stall is better than loss |
//! | conflation: a [`ConflatingChannel`](crate::ConflatingChannel) from [`subscribe_conflating`](crate::Broadcaster::subscribe_conflating) or [`register_conflating`](crate::PubSub::register_conflating) | at most one pending item per key (a key function's, or the frame's topic): a newer item replaces the pending one in place and is counted as [`conflated`](crate::ConflatingChannel::conflated); with `capacity` distinct keys pending, an item for another key is dropped (drop-newest) and counted | a slow consumer of many keys that must end on the latest of each and never lose a quiet one (quotes per symbol, entity state per id) |
//!
//! `Block` delays every later subscriber of the same broadcast by up to its bound: give
//! it to consumers you trust to keep up.
//!
//! # Why conflation is not an `OverflowPolicy`
//!
//! The four policies above act only on a full queue of items and leave the consumer's
//! [`Channel`](crate::Channel) alone. Conflation acts on every publish, needs a key (a
//! function of a `Broadcaster`'s message type, which a `Copy` policy enum cannot carry
//! and a builder's default channel could not supply), and changes what the queue holds:
//! a crossbeam queue cannot replace an item in place, so a conflating channel queues one
//! [`Pending`](crate::Pending) token per key and keeps the latest items beside it. That
//! is a different consumer type, so it is chosen by its own subscribe call rather than a
//! [`ChannelConfig`]. Its cost: one mutex lock and one hash lookup per publish (see
//! [`ConflatingChannel`](crate::ConflatingChannel#cost)).

use std::time::Duration;

use crate::vocab::error::Error;

/// What a channel sink does when its queue is full. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Drop the frame being published; keep the queue as it is.
    DropNewest,
    /// Drop the oldest queued frame and queue the new one: the consumer always sees the
    /// latest.
    DropOldest,
    /// Disconnect the subscriber: it is unsubscribed, its receiver ends once drained, and
    /// [`Channel::disconnect_reason`](crate::Channel::disconnect_reason) says why.
    Disconnect,
    /// Block the publisher for at most this long waiting for room, then drop the frame.
    Block(Duration),
}

/// Capacity and overflow policy of one channel sink.
///
/// The default is a capacity of 1024 with [`OverflowPolicy::DropNewest`]; an engine's
/// builder can change the default for every channel it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Frames the queue holds before the policy applies. At least 1.
    pub capacity: usize,
    /// What happens when the queue is full.
    pub policy: OverflowPolicy,
}

impl ChannelConfig {
    /// A configuration with the given capacity and policy.
    pub const fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        Self { capacity, policy }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.capacity == 0 {
            return Err(Error::InvalidConfig("channel capacity must be at least 1"));
        }
        Ok(())
    }
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self::new(1024, OverflowPolicy::DropNewest)
    }
}
