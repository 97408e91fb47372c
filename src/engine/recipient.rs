//! [`Recipient`]: one entry of a topic's subscriber list in the snapshot, shared by the
//! exact-topic map and the pattern index.

use crate::sink::Sink;
use crate::sync::Arc;
use crate::vocab::client::ClientId;

/// One subscription as broadcasts see it — who receives the frame, and where: 16 bytes.
pub(crate) struct Recipient<T> {
    /// Compared against `broadcast_from`'s sender: one integer compare.
    pub(crate) id: ClientId,
    /// Shared with every other topic the client is in, and with the writer's registry.
    pub(crate) sink: Arc<Sink<T>>,
}

impl<T> Clone for Recipient<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            sink: Arc::clone(&self.sink),
        }
    }
}
