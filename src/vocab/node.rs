//! [`NodeId`]: the identity of a bridged engine, naming a member across engines with a
//! client id.

use std::fmt;

/// A bridged engine's identity: 128 random bits, drawn when its bridge starts (each
/// attach draws a new one). `NodeId(0)` (the default) names an engine without a bridge.
///
/// An engine's own members carry its current node id, so it changes when a bridge with
/// presence attaches and when it detaches: the engine then tells its subscribers, for
/// every member, a leave under the old id and a join under the new one (see
/// [`crate::presence`], "Across hosts").
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u128);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({:032x})", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}
