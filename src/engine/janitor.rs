//! The janitor: a background thread for the writer's work that nobody waits on.
//!
//! Callers apply their own mutations ([`combiner`](super::combiner)); but some changes
//! are asked for by code that must not take the writer role or wait for it — a broadcast
//! that found a dead sink, a consumer dropping its [`Channel`](crate::Channel) — and a
//! combiner that has served its bounded share leaves the rest of the queue behind. Those
//! wake the janitor, which takes the role (waiting for it if need be) and serves the
//! queue until it is empty, then sleeps until woken again. An idle engine's janitor never
//! wakes up.

use super::Shared;
use std::time::Duration;

use crate::sync::{lock, Arc, MutexGuard};

/// What the janitor's wake-up lock guards.
#[derive(Default)]
pub(crate) struct JanitorState {
    /// Work was posted since the janitor last looked.
    requested: bool,
    /// A batch left replaced snapshots that broadcasts still held: settle again soon.
    settle_requested: bool,
    /// The engine is shutting down: exit.
    stop: bool,
}

impl<T> Shared<T> {
    /// Wakes the janitor to serve the queue.
    pub(crate) fn wake_janitor(&self) {
        let mut state = lock(&self.janitor_state);
        if !state.requested {
            state.requested = true;
            self.janitor_signal.notify_one();
        }
    }

    /// Wakes the janitor to free, shortly, the replaced snapshots broadcasts still held
    /// (see [`retired`](super::writer)).
    pub(crate) fn wake_janitor_to_settle(&self) {
        let mut state = lock(&self.janitor_state);
        if !state.settle_requested {
            state.settle_requested = true;
            self.janitor_signal.notify_one();
        }
    }

    /// Tells the janitor to exit.
    pub(crate) fn stop_janitor(&self) {
        lock(&self.janitor_state).stop = true;
        self.janitor_signal.notify_one();
    }
}

/// How long the janitor lets broadcasts finish before it settles replaced snapshots
/// again (they hold one for the few microseconds of a delivery). Unused under loom.
#[cfg_attr(loom, allow(dead_code))]
const SETTLE_DELAY: Duration = Duration::from_micros(200);

/// The janitor thread's body.
pub(crate) fn run<T>(shared: Arc<Shared<T>>) {
    loop {
        {
            let mut state = lock(&shared.janitor_state);
            while !state.requested && !state.settle_requested && !state.stop {
                state = match shared.janitor_signal.wait(state) {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
            if !state.requested && !state.stop {
                // Only a settle: give the broadcasts holding old snapshots time to end
                // (woken early by a stop or by work).
                state = settle_delay(&shared, state);
            }
            if state.stop {
                return;
            }
            state.requested = false;
            state.settle_requested = false;
        }
        // Dropping what a batch retired may drop the last handle to this engine, whose
        // shutdown then runs here and asks us to stop: the loop above sees it. A batch
        // settles the replaced snapshots; one that still leaves some held asks again.
        shared.serve_until_empty();
    }
}

/// Waits [`SETTLE_DELAY`] (or until woken). Under loom, which has no time (a timed wait
/// never elapses), it lets the other threads run instead.
fn settle_delay<'a, T>(
    shared: &'a Shared<T>,
    state: MutexGuard<'a, JanitorState>,
) -> MutexGuard<'a, JanitorState> {
    #[cfg(not(loom))]
    return match shared.janitor_signal.wait_timeout(state, SETTLE_DELAY) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    };
    #[cfg(loom)]
    {
        drop(state);
        crate::sync::thread::yield_now();
        lock(&shared.janitor_state)
    }
}
