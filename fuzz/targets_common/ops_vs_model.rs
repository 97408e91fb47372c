//! Fuzz target logic: random operation sequences against `PubSub<[u8]>` and a plain
//! single-threaded reference model. Shared by the cargo-fuzz binary
//! (`fuzz/fuzz_targets/ops_vs_model.rs`) and the stable replay test
//! (`tests/fuzz_replay.rs`), which both include this file with `#[path]`. Depends only
//! on `fanout`, `bytes` and `arbitrary`.
//!
//! Three parts, in the shape of arc-swap's `tests/random.rs`:
//!
//! - [`ops`]: the input bytes read as a sequence of [`Op`]s (through `arbitrary`) over
//!   [`SLOTS`] client slots and a few topic names, and the way back ([`encode`]).
//! - [`model`]: what the engine must answer and deliver, as plain data — clients,
//!   subscriptions (names and wildcard patterns, matched by the model's own NATS
//!   matcher), each sink's queue under its overflow policy or conflation, presence
//!   members. No engine types beyond plain values, no threads.
//! - [`harness`]: one function per op, making the call on the engine and comparing its
//!   answer (the delivered count or the exact error) with the model's; after every op
//!   `stats()` against the model's bounds; at the end every sink's exact frame sequence,
//!   one shared buffer per broadcast, and every sink freed by `shutdown`.
//!
//! Dropped channels and channels cut off by the `Disconnect` policy are removed by the
//! engine asynchronously: the model keeps them as *zombies* — closed (they receive
//! nothing more), maybe still counted in the registry — and never names their ids again
//! (the slot gets a fresh id). Sizes are then checked as ranges; before the end the
//! harness waits (bounded) until every zombie is gone and checks sizes exactly.
//!
//! Presence: `track` / `untrack` / `list` of callback clients, with the model's own
//! member table; every join and leave (untrack, unregister) is a Presence frame in the
//! exact frame sequence of every sink the topic's broadcasts reach.

#![allow(dead_code)]

#[macro_use]
#[path = "ops_vs_model/engine.rs"]
mod engine;
#[path = "ops_vs_model/harness.rs"]
mod harness;
#[path = "ops_vs_model/model.rs"]
mod model;
#[path = "ops_vs_model/ops.rs"]
mod ops;
#[path = "ops_vs_model/seeds.rs"]
mod seeds;
#[path = "ops_vs_model/topics.rs"]
mod topics;

// What the replay test uses (the fuzz binary needs only `run`).
#[allow(unused_imports)]
pub use ops::{encode, parse, MutationSel, Op, PayloadSel, PolicySel, TopicSel, SLOTS};
#[allow(unused_imports)]
pub use seeds::seeds;

/// What one run exercised (so a caller can check its cases are not vacuous).
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub ops: usize,
    pub broadcasts: u64,
    pub deliveries: u64,
    pub dropped: u64,
    pub conflated: u64,
    pub disconnects: u64,
    /// Clients cut off (dropped channels, disconnects) whose removal was asynchronous.
    pub zombies: usize,
    pub shut_down: bool,
}

/// The whole target: run the ops the input encodes against the engine and the model.
pub fn run(data: &[u8]) -> Summary {
    let ops = parse(data);
    let mut harness = harness::Harness::new();
    let mut summary = Summary {
        ops: ops.len(),
        ..Summary::default()
    };
    for (index, op) in ops.into_iter().enumerate() {
        let zombies = harness.model().zombies();
        harness.step(index, op);
        summary.zombies += harness.model().zombies().saturating_sub(zombies);
    }
    let model = harness.model();
    summary.broadcasts = model.broadcasts;
    summary.deliveries = model.deliveries;
    summary.dropped = model.dropped;
    summary.conflated = model.conflated;
    summary.disconnects = model.disconnects;
    summary.shut_down = model.is_closed();
    harness.finish();
    summary
}
