//! The two faces over one engine: [`PubSub`](pubsub::PubSub) (clients with sinks,
//! topics by name, a Push frame serialised once per broadcast) and
//! [`Broadcaster`](broadcaster::Broadcaster) (typed items to channels), the
//! [`Builder`](builder::Builder) both start from, and the [`tap`] through which a
//! bridge sees a `PubSub`'s broadcasts.

pub(crate) mod broadcaster;
pub(crate) mod builder;
pub(crate) mod pubsub;
#[cfg(feature = "redis")]
pub(crate) mod tap;
