//! The NATS outlet: what the publisher thread keeps of the NATS backend. The io thread
//! drains the tap's queue itself (see [`io`](super::io)), so the publisher thread only
//! passes on to it the node's interest changes and the presence messages it makes
//! (which the io thread publishes on the control subject).

use async_nats::connection::State;
use async_nats::Client;
use tokio::sync::mpsc::UnboundedSender;

use bytes::Bytes;

use crate::bridge::backend::{Failure, Outlet};
use crate::bridge::batch::{Batch, Item};
use crate::bridge::interest::InterestChange;

/// What the publisher thread hands the io thread.
pub(crate) enum ToIo {
    /// The node's net interest change.
    Follow(Vec<InterestChange>),
    /// Envelopes to publish, in order (a [`Batch`] taken: its buffer and items). An
    /// item with an empty topic goes to the control subject.
    Publish(Bytes, Vec<Item>),
}

/// The publisher thread's end of the NATS backend.
pub(crate) struct NatsOutlet {
    pub(crate) client: Client,
    /// Work for the io thread, in order; dropping it stops the io thread (after it has
    /// done what was sent: the goodbye goes out).
    pub(crate) to_io: UnboundedSender<ToIo>,
}

impl Outlet for NatsOutlet {
    fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn connect(&mut self) -> bool {
        // The client reconnects by itself (and resubscribes): just look.
        self.is_connected()
    }

    /// Called for presence messages only (the io thread drains the tap's queue itself:
    /// `Backend::drains_queue`): hands them to the io thread, which publishes them.
    fn publish(&mut self, batch: &mut Batch) -> Result<u64, Failure> {
        let (buffer, items) = batch.take();
        let items = items.collect();
        self.to_io
            .send(ToIo::Publish(buffer, items))
            .map(|()| 0)
            .map_err(|_| Failure::NotSent) // the io thread is gone: stopping anyway
    }

    fn follow(&mut self, delta: Vec<InterestChange>) {
        if !delta.is_empty() {
            let _ = self.to_io.send(ToIo::Follow(delta)); // the io thread is gone: stopping
        }
    }

    fn max_payload(&self) -> Option<usize> {
        // The server's, from its INFO (the client's default, 1 MiB, until connected).
        Some(self.client.max_payload())
    }
}
