//! What a batch leaves for after the writer role is released — answers to send and
//! values to drop — and what a batch returns to the caller that ran it. See the module
//! docs of [`writer`](super) on why nothing is dropped under the role.

use crate::engine::command::{Command, Outcome, Reply};
use crate::sink::Sink;
use crate::sync::Arc;
#[cfg(feature = "tracing")]
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
#[cfg(feature = "tracing")]
use crate::vocab::trace::{self, CutOff};

/// What a batch leaves for after the writer role is released: answers to send and
/// values to drop (see the module docs on why not earlier).
pub(crate) struct Aftermath<T> {
    pub(super) answers: Vec<(Reply, Result<Outcome, Error>)>,
    /// Commands never applied (the engine closed): dropping them answers `Closed`.
    pub(super) unapplied: Vec<Command<T>>,
    pub(super) retired_sinks: Vec<Arc<Sink<T>>>,
    /// Subscribers the engine removed on its own (overflow, panic), to report once the
    /// role is released: a `tracing` subscriber is user code.
    #[cfg(feature = "tracing")]
    pub(super) cut_off: Vec<(ClientId, CutOff)>,
}

impl<T> Default for Aftermath<T> {
    fn default() -> Self {
        Self {
            answers: Vec::new(),
            unapplied: Vec::new(),
            retired_sinks: Vec::new(),
            #[cfg(feature = "tracing")]
            cut_off: Vec::new(),
        }
    }
}

impl<T> Aftermath<T> {
    /// Answers every caller, then drops what the batch retired. Call it with the role
    /// released: the drops may run user code.
    pub(crate) fn finish(self) {
        let Self {
            answers,
            unapplied,
            retired_sinks,
            #[cfg(feature = "tracing")]
            cut_off,
        } = self;
        for (reply, result) in answers {
            reply.send(result);
        }
        #[cfg(feature = "tracing")]
        for (client, why) in cut_off {
            trace::subscriber_cut_off(client, why);
        }
        drop(unapplied);
        drop(retired_sinks);
    }
}

/// One batch's result for the caller that ran it.
pub(crate) struct Batch<T> {
    /// The result of the combiner's own op, if it brought one.
    pub(crate) own: Option<Result<Outcome, Error>>,
    /// Whether the batch queued presence changes to broadcast.
    pub(crate) presence_changed: bool,
    /// Whether replaced snapshots are still held by broadcasts (to settle again later).
    pub(crate) retired_pending: bool,
    /// To finish once the role is released.
    pub(crate) aftermath: Aftermath<T>,
}
