//! The NATS outlet: what the publisher thread keeps of the NATS backend. The io thread
//! drains the tap's queue itself (see [`io`](super::io)), so the publisher thread only
//! passes the node's interest changes on to it.

use async_nats::connection::State;
use async_nats::Client;
use tokio::sync::mpsc::UnboundedSender;

use crate::bridge::backend::{Failure, Outlet};
use crate::bridge::batch::Batch;
use crate::bridge::interest::InterestChange;

/// The publisher thread's end of the NATS backend.
pub(crate) struct NatsOutlet {
    pub(crate) client: Client,
    /// Interest changes for the io thread; dropping it stops the io thread.
    pub(crate) to_io: UnboundedSender<Vec<InterestChange>>,
}

impl Outlet for NatsOutlet {
    fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn connect(&mut self) -> bool {
        // The client reconnects by itself (and resubscribes): just look.
        self.is_connected()
    }

    fn publish(&mut self, _batch: &mut Batch) -> Result<u64, Failure> {
        // Never called: the io thread drains the queue (`Backend::drains_queue`).
        Err(Failure::NotSent)
    }

    fn follow(&mut self, delta: Vec<InterestChange>) {
        if !delta.is_empty() {
            let _ = self.to_io.send(delta); // the io thread is gone: stopping anyway
        }
    }
}
