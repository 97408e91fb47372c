//! Client identities.

use std::fmt;

/// Identifies one registered client of a [`PubSub`](crate::PubSub) engine, or one
/// [`Channel`](crate::Channel) of a [`Broadcaster`](crate::Broadcaster).
///
/// Ids come from [`PubSub::generate_client_id`](crate::PubSub::generate_client_id): a
/// per-engine counter, so two ids from one engine never collide and comparing them is
/// one integer compare. That is what makes
/// [`broadcast_from`](crate::PubSub::broadcast_from) cost the same as `broadcast`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl ClientId {
    pub(crate) const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The id as a number, for logs and metrics.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client#{}", self.0)
    }
}
