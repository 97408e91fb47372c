//! The writer's side of presence: `track` and `untrack` change the presence table
//! under the writer role (so a departure by any path is seen exactly once), and flag the
//! batch so its changes are broadcast after the role is released.

use bytes::Bytes;

use super::Writer;
use crate::sync::lock;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::topic::Topic;

impl<T> Writer<T> {
    /// Tracks registered client `id` in `topic` with `meta`.
    pub(super) fn track(&mut self, id: ClientId, topic: &Topic, meta: Bytes) -> Result<(), Error> {
        if !self.clients.contains_key(&id) {
            return Err(Error::UnknownClient(id));
        }
        let tracked = lock(&self.presence).track(id, topic.shared_name(), topic.hash_value(), meta);
        self.presence_changed |= tracked;
        Ok(())
    }

    /// Untracks registered client `id` from `topic` (a no-op if it is not tracked).
    pub(super) fn untrack(&mut self, id: ClientId, topic: &Topic) -> Result<(), Error> {
        if !self.clients.contains_key(&id) {
            return Err(Error::UnknownClient(id));
        }
        let untracked = lock(&self.presence).untrack(id, topic.name());
        self.presence_changed |= untracked;
        Ok(())
    }
}
