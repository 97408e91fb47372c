#!/usr/bin/env bash
# Runs the loom models in loom-tests/tests/models.rs, loom-tests/tests/conflation.rs,
# loom-tests/tests/conflation_resident.rs (resident keys of a conflating table),
# loom-tests/tests/trie_garbage.rs (the topic trie's garbage rule),
# loom-tests/tests/async_wake.rs and loom-tests/tests/presence.rs (presence across hosts,
# through the bridge's presence side) against the real engine, and the models inside the crate
# (`src/sync/waker_slot.rs`, `src/sync/park_lock.rs`), built with
# `--cfg loom` (see src/sync.rs and src/sync/loom_queue.rs).
#
# Uses its own target directory (target/loom) so the loom build never invalidates the
# main one. Extra arguments go to `cargo test` (e.g. a test name filter, or
# `-- --nocapture` to see how many interleavings each model explored).
#
# Environment: LOOM_MAX_PREEMPTIONS (default 2), LOOM_RUN_TIMEOUT in seconds (default
# 900: the whole suite takes well under a minute on 2 cores once built), FEATURES: more
# of fanout's features to build the models with, comma-separated (e.g.
# `FEATURES=metrics,tracing loom-tests/run.sh`: the operating features compiled in).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom${RUSTFLAGS:+ $RUSTFLAGS}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
features=${FEATURES:-}
# The loom-tests crate names them through its dependency: fanout/metrics,fanout/tracing.
dependency_features=$(printf '%s' "$features" | sed -E 's/([^,]+)/fanout\/\1/g')
# First the models that live inside the crate, of internals the public API cannot reach
# (the async waker slot against a queue weaker than the stand-in's mutex; the conflating
# table's lock on its own).
timeout "${LOOM_RUN_TIMEOUT:-900}" \
    cargo test --release -p fanout --features "async${features:+,$features}" --lib -- waker_slot park_lock
exec timeout "${LOOM_RUN_TIMEOUT:-900}" \
    cargo test --release --manifest-path loom-tests/Cargo.toml ${dependency_features:+--features "$dependency_features"} \
    --test models --test conflation --test conflation_resident --test async_wake --test presence --test trie_garbage "$@"
