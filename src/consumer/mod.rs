//! The consumer ends a user holds: a [`Channel`](channel::Channel) of frames or items,
//! a [`ConflatingChannel`](conflating_channel::ConflatingChannel) that keeps the latest
//! item per key, and (feature `async`) an
//! `AsyncChannel` (`consumer/async_channel.rs`) a task can await.
//!
//! Each is the receiving half of a sink the engine holds (see [`crate::sink`]) plus a
//! [`Membership`](membership::Membership): the link back to the engine that lets a
//! dropped channel unsubscribe itself and tells its consumer why it ended. Each consumer
//! type builds its own sink and registers it through the engine's generic calls, so the
//! engine never names a consumer type.

#[cfg(feature = "async")]
pub(crate) mod async_channel;
pub(crate) mod channel;
pub(crate) mod conflating_channel;
pub(crate) mod disconnect_reason;
pub(crate) mod membership;
