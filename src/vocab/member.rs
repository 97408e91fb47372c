//! [`Member`]: one entry of a topic's member list.

use bytes::Bytes;

use crate::vocab::client::ClientId;
use crate::vocab::node::NodeId;

/// One member of a topic, as [`PubSub::list`](crate::PubSub::list) returns it.
///
/// A member is the pair (node, client): client ids are numbered per engine, so with a
/// bridge attached two engines' members may share a client id, never a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's engine: its bridge's node id, or `NodeId(0)` for this engine's own
    /// members while it has no bridge (a bridge attaching or detaching renames them,
    /// with a leave and a join each: [`crate::presence`], "Across hosts").
    pub node: NodeId,
    /// The tracked client, as its engine numbers it (a client of another engine is not
    /// registered here).
    pub client: ClientId,
    /// The metadata it was tracked with.
    pub meta: Bytes,
}
