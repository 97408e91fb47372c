//! [`Member`]: one entry of a topic's member list.

use bytes::Bytes;

use crate::vocab::client::ClientId;

/// One member of a topic, as [`PubSub::list`](crate::PubSub::list) returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The tracked client.
    pub client: ClientId,
    /// The metadata it was tracked with.
    pub meta: Bytes,
}
