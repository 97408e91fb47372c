//! The seam between the bridge's engine-facing side and its backends (Redis, NATS).
//!
//! The engine-facing side owns everything a user is promised whatever the broker: the
//! tap's bounded queue, envelopes, sequence numbers, gap accounting, counters, and the
//! node's interest (which topics and patterns its clients use). A backend owns only the
//! transport: connections, channel or subject names, and the thread(s) that read from
//! the broker. Two threads meet here:
//!
//! - the **publisher thread** ([`outbound`](super::outbound), engine side) drains the
//!   queue, numbers and wraps each frame, and hands [`Batch`]es to the backend's
//!   [`Outlet`]; it also hands it the node's interest changes;
//! - the backend's **receiving thread** hands every message it reads to
//!   [`Inbound::accept`](super::inbound::Inbound::accept) (engine side), with a check
//!   that the message came on the channel or subject of its topic.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use super::batch::Batch;
use super::framer::Framer;
use super::inbound::Inbound;
use super::interest::{Interest, InterestChange};
use super::BridgeError;
use crate::face::tap::{Tap, Tapped};

/// Why a batch was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// None of it reached the broker: the connection was down or refused it before
    /// writing.
    NotSent,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // a Redis pipeline cut midway
    /// Some of it may have reached the broker (a pipeline cut midway, a timeout after
    /// writing). Nothing is retried, so nothing arrives twice.
    Unknown,
}

/// The publisher thread's handle on the broker: one per bridge, used by that thread
/// alone.
pub(crate) trait Outlet: Send + 'static {
    /// Whether [`publish`](Self::publish) can send now.
    fn is_connected(&self) -> bool;

    /// Tries to connect; whether it is connected now. The publisher thread calls it while
    /// disconnected, paced by the bridge's backoff. (A client that reconnects by itself
    /// just reports its state.)
    fn connect(&mut self) -> bool;

    /// Publishes every envelope of `batch`, in order, or fails as a whole. Returns how
    /// many it skipped because the broker would refuse them (a NATS subject longer than
    /// the server takes): counted as dropped.
    fn publish(&mut self, batch: &mut Batch) -> Result<u64, Failure>;

    /// The node's interest changed: `delta` is the net change since the last call, in
    /// order. Backends that route by interest pass it on to their receiving side.
    fn follow(&mut self, delta: Vec<InterestChange>);

    /// The longest message the broker takes now, if it has a limit below the bridge's
    /// own (a NATS server's `max_payload`): presence messages are split to fit it.
    fn max_payload(&self) -> Option<usize> {
        None
    }
}

/// A transport: starts its receiving side and returns the publisher thread's outlet.
pub(crate) trait Backend: Sized {
    /// The publisher thread's end.
    type Outlet: Outlet;

    /// Whether a node subscribes only to the topics and patterns its clients use (then
    /// the bridge follows the engine's interest events and feeds [`Outlet::follow`]).
    fn routes_by_interest(&self) -> bool;

    /// Whether the backend drains the tap's queue on its own thread (an async task woken
    /// by each broadcast: one thread hand-off less between a broadcast and the socket)
    /// instead of the publisher thread handing it batches through the outlet. It then
    /// also keeps the connection state and reconnect counters itself.
    fn drains_queue(&self) -> bool {
        false
    }

    /// Starts the receiving thread(s), which hand every message to `inbound` and stop
    /// when `stop` disconnects (or the engine is gone). `interest` is the node's
    /// interest when the bridge was attached; later changes come through the outlet.
    /// `feed`: the tap's queue, when [`drains_queue`](Self::drains_queue).
    fn start<M: ?Sized + 'static>(
        self,
        inbound: Inbound<M>,
        interest: Vec<Interest>,
        stop: Receiver<()>,
        feed: Option<Feed>,
    ) -> Result<(Self::Outlet, Vec<JoinHandle<()>>), BridgeError>;
}

/// The tap's queue, for a backend that drains it itself.
#[cfg_attr(not(feature = "nats"), allow(dead_code))] // NATS's io thread drains it
pub(crate) struct Feed {
    /// Where the backend's task parks while the queue is empty.
    pub(crate) tap: Arc<Tap>,
    pub(crate) queue: Receiver<Tapped>,
    /// Numbers and wraps what it takes, as the publisher thread would.
    pub(crate) framer: Framer,
}
