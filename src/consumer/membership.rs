//! [`Membership`]: what a consumer's end of a channel — a [`Channel`](crate::Channel) or a
//! [`ConflatingChannel`](crate::ConflatingChannel) — keeps of its place in the engine,
//! and the unsubscribe that dropping it makes.

use crate::consumer::disconnect_reason::DisconnectReason;
use crate::engine::EngineLink;
use crate::sink::{SinkState, Status};
use crate::sync::Arc;
use crate::vocab::client::ClientId;

/// A channel consumer's registration: its sink's shared state, its client id, and a link
/// to the engine that does not keep the engine running. Dropping it closes the sink (so
/// publishers skip it at once) and asks the engine to remove it from the snapshot.
pub(crate) struct Membership<M> {
    /// Status and drop counter, shared with the sink in the snapshot.
    state: Arc<SinkState>,
    /// This subscriber's id in its engine.
    id: ClientId,
    /// For the unsubscribe-on-drop request.
    link: EngineLink<M>,
}

impl<M> Membership<M> {
    pub(crate) fn new(state: Arc<SinkState>, id: ClientId, link: EngineLink<M>) -> Self {
        Self { state, id, link }
    }

    pub(crate) fn id(&self) -> ClientId {
        self.id
    }

    /// Items the sink's policy dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.state.dropped()
    }

    /// Whether publishers still deliver here.
    pub(crate) fn is_connected(&self) -> bool {
        self.state.is_open()
    }

    /// Why the sink stopped receiving, or `None` while it is open.
    pub(crate) fn disconnect_reason(&self) -> Option<DisconnectReason> {
        DisconnectReason::of(self.state.status())
    }

    /// Whether this membership belongs to the engine `link` points at.
    pub(crate) fn is_from(&self, link: &EngineLink<M>) -> bool {
        self.link.same_engine(link)
    }
}

impl<M> Drop for Membership<M> {
    fn drop(&mut self) {
        // Close first so publishers skip the sink at once; then ask the writer to drop
        // it from the snapshot (unless it was already removed, e.g. unsubscribed).
        if self.state.close(Status::ConsumerGone) {
            self.link.request_prune(self.id, &self.state);
        }
    }
}
