//! Loom models only (`--cfg loom`): a bridge's presence exchange attached to an engine
//! with no broker and no threads of its own, so that the models of presence across hosts
//! (`loom-tests/tests/presence.rs`) can play the bridge's two threads themselves against
//! user threads calling the engine:
//!
//! - the receiving thread: [`PresenceSeam::accept`] hands one message, as read from the
//!   broker, to the bridge's receiving end (`Inbound::accept`), which applies it to the
//!   replica of the other engines' members and delivers the joins and leaves it makes;
//! - the publisher thread's presence step: [`PresenceSeam::publish`] mirrors the
//!   engine's presence changes queued since the last step and returns what the bridge
//!   would send the other engines.
//!
//! The wiring (`link_presence`), the receiving end and the exchange are the bridge's
//! own; only the broker and the threads that wait on it are left out.

use std::sync::Arc;
use std::time::Instant;

use super::inbound::{Flow, Inbound};
use super::outbound::PresenceLink;
use super::sequences::Tracker;
use super::stats::Counters;
use super::{link_presence, unlink_presence, BridgeError, Unwatch};
use crate::face::pubsub::PubSub;
use crate::presence::replica::Timing;
use crate::transport::envelope::NodeId;
use crate::transport::presence_sync::Message;

/// A bridge's presence side as node `node`, attached to one engine (see the module
/// docs). Dropping it detaches it as a bridge does: the other engines' members leave.
pub struct PresenceSeam<M: ?Sized> {
    inbound: Inbound<M>,
    link: PresenceLink,
    unwatch: Unwatch,
}

impl<M: ?Sized + 'static> PresenceSeam<M> {
    /// Attaches as a bridge with presence does (default timing), without a broker.
    ///
    /// Errors: [`BridgeError::Closed`].
    pub fn attach(pubsub: &PubSub<M>, node: NodeId) -> Result<Self, BridgeError> {
        let timing = Timing::default();
        let heartbeat = std::time::Duration::from_secs(1);
        let (link, unwatch) = link_presence(pubsub, node, timing, heartbeat)?;
        let inbound = Inbound {
            node,
            engine: pubsub.downgrade(),
            counters: Arc::new(Counters::default()),
            max_message_len: usize::MAX,
            streams: Tracker::default(),
            presence: Some(Arc::clone(&link.exchange)),
        };
        Ok(Self {
            inbound,
            link,
            unwatch,
        })
    }

    /// The receiving thread: one message read from the broker (a bridge envelope).
    /// `false` once the engine is gone.
    pub fn accept(&mut self, envelope: &[u8]) -> bool {
        self.inbound.accept(envelope, |_| true) == Flow::Continue
    }

    /// The publisher thread's presence step: mirrors the engine's changes queued so far,
    /// then returns what to send (the changes as a delta, this node's state if it was
    /// asked for, requests for states it lacks).
    pub fn publish(&self) -> Vec<Message> {
        let exchange = &self.link.exchange;
        exchange.local_changes(self.link.changes.try_iter());
        exchange.outgoing(Instant::now(), false)
    }
}

impl<M: ?Sized> Drop for PresenceSeam<M> {
    fn drop(&mut self) {
        // As `Bridge::detach`: other engines' members leave, the engine stops watching.
        unlink_presence(&self.link.exchange, &self.unwatch);
    }
}
