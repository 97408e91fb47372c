//! The two faces over one engine: [`PubSub`](pubsub::PubSub) (clients with sinks,
//! topics by name, a Push frame serialised once per broadcast) and
//! [`Broadcaster`](broadcaster::Broadcaster) (typed items to channels), the
//! [`Builder`](builder::Builder) both start from, and (with a bridge feature) the calls
//! and events through which a bridge sees a `PubSub`: `events` and `tap`.

pub(crate) mod broadcaster;
pub(crate) mod builder;
#[cfg(any(feature = "redis", feature = "nats"))]
pub(crate) mod dropped_topics;
#[cfg(any(feature = "redis", feature = "nats"))]
pub(crate) mod events;
pub(crate) mod pubsub;
#[cfg(any(feature = "redis", feature = "nats"))]
pub(crate) mod remote_members;
#[cfg(any(feature = "redis", feature = "nats"))]
pub(crate) mod tap;
pub(crate) mod tracking;
