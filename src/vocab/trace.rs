//! The state changes `fanout` reports through the `tracing` facade (feature `tracing`):
//! one function per event, so that every event's target, level, message and fields are
//! written down once, here, and every layer that sees a change calls down to it.
//!
//! Events are for changes an operator acts on, never one per message: a broadcast emits
//! nothing, whatever it delivers or drops (those are counted in
//! [`Stats`](crate::Stats); see [`observe`](crate::observe) for the counters as metrics).
//! The table of events is in [`observe`](crate::observe#events).
//!
//! Without the feature every function here is empty and inlined away. With it, an event
//! the installed subscriber does not want costs a load and a compare of tracing's global
//! level filter — and none of these is ever called on the broadcast path: a subscriber
//! cut off during a broadcast is reported by the writer after it removed the client,
//! with the writer role released (a `tracing` subscriber is user code: it may lock,
//! allocate or write to a terminal).

#[cfg(feature = "tracing")]
use tracing::{info, warn};

use crate::vocab::client::ClientId;

/// Why the engine removed a subscriber on its own.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))] // the engine reports only with the feature
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CutOff {
    /// Its queue was full under the `Disconnect` policy.
    Overflow,
    /// Its callback (or the clone into its queue, or its conflation key) panicked.
    Panicked,
}

/// The engine removed `client`: its queue overflowed under the `Disconnect` policy
/// (warn), or its callback panicked (warn).
#[inline]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn subscriber_cut_off(client: ClientId, why: CutOff) {
    #[cfg(feature = "tracing")]
    match why {
        CutOff::Overflow => warn!(
            target: "fanout::engine",
            client = client.as_u64(),
            reason = "overflow",
            "subscriber disconnected: its queue was full"
        ),
        CutOff::Panicked => warn!(
            target: "fanout::engine",
            client = client.as_u64(),
            reason = "panic",
            "subscriber removed: its callback panicked"
        ),
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (client, why);
}

/// An engine shut down (info), with its totals.
#[inline]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn engine_shut_down(broadcasts: u64, deliveries: u64, dropped: u64) {
    #[cfg(feature = "tracing")]
    info!(
        target: "fanout::engine",
        broadcasts,
        deliveries,
        dropped,
        "engine shut down"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (broadcasts, deliveries, dropped);
}

/// A bridge connection came up (info): `bridge connected` the first time, `bridge
/// reconnected` after it was lost (`again`). `backend` is `"redis"` or `"nats"`;
/// `connection` names which of the backend's connections (`"publisher"`,
/// `"subscriber"`).
#[inline]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn bridge_up(backend: &'static str, connection: &'static str, again: bool) {
    #[cfg(feature = "tracing")]
    if again {
        info!(target: "fanout::bridge", backend, connection, "bridge reconnected");
    } else {
        info!(target: "fanout::bridge", backend, connection, "bridge connected");
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (backend, connection, again);
}

/// A bridge connection that was up failed (warn): frames are dropped and counted until
/// it is back.
#[inline]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn bridge_lost(
    backend: &'static str,
    connection: &'static str,
    error: &dyn std::fmt::Display,
) {
    #[cfg(feature = "tracing")]
    warn!(
        target: "fanout::bridge",
        backend,
        connection,
        error = %error,
        "bridge connection lost"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (backend, connection, error);
}

/// Another engine on the bridge went silent for the down period and is taken as down
/// (warn): its `members` presence entries leave everywhere. `engine` is its node id as
/// it is printed.
#[inline]
#[allow(dead_code)] // called by presence across hosts
pub(crate) fn engine_down(engine: &dyn std::fmt::Display, members: usize) {
    #[cfg(feature = "tracing")]
    warn!(
        target: "fanout::presence",
        engine = %engine,
        members,
        "engine taken as down: its members left"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (engine, members);
}

/// An engine taken as down is heard from again (info).
#[inline]
#[allow(dead_code)] // called by presence across hosts
pub(crate) fn engine_back(engine: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    info!(target: "fanout::presence", engine = %engine, "engine back");
    #[cfg(not(feature = "tracing"))]
    let _ = engine;
}
