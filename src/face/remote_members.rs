//! Other engines' members, as a capability (the bridge's presence exchange) knows them:
//! what [`PubSub::list`](crate::PubSub::list) and
//! [`PubSub::count_members`](crate::PubSub::count_members) add to this engine's own
//! table while a bridge is attached.

use std::sync::Arc;

use crate::sync::{lock, Mutex};
use crate::vocab::member::Member;

/// A view of other engines' members.
pub(crate) trait RemoteMembers: Send + Sync {
    /// Appends `topic`'s members on other engines to `out`, ordered by (node, client).
    fn list(&self, topic: &str, out: &mut Vec<Member>);
    /// How many members `topic` has on other engines: O(1).
    fn count(&self, topic: &str) -> usize;
    /// Runs `body` while no other engine's join or leave is being delivered here (the
    /// bridge's delivery turn).
    fn in_turn(&self, body: &mut dyn FnMut());
}

/// The slot a bridge puts its view in: every handle of one engine shares it. A
/// `crate::sync` mutex, so the loom models see a bridge detaching race a subscriber.
#[derive(Default)]
pub(crate) struct RemoteSlot(Mutex<Option<Arc<dyn RemoteMembers>>>);

impl RemoteSlot {
    /// Puts `view` in (or takes it out with `None`).
    pub(crate) fn set(&self, view: Option<Arc<dyn RemoteMembers>>) {
        *lock(&self.0) = view;
    }

    /// The view, if a bridge is attached. The slot's lock is held only to clone it, so
    /// listing never waits for another list.
    pub(crate) fn get(&self) -> Option<Arc<dyn RemoteMembers>> {
        lock(&self.0).clone()
    }
}
