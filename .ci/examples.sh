#!/usr/bin/env bash
# Runs every example small enough for CI (debug builds; `cargo test` compiled them).
# Each example checks its own results and exits non-zero if they are wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

run() { echo "+ cargo run -q --example $*"; cargo run -q --example "$@"; }

run demo -- --seconds 1 --clients 1000 --topics 100
echo "+ cargo run -q --bin chat_server -- --port 0 --run-for-secs 1 --moderator-token ci"
cargo run -q --bin chat_server -- --port 0 --run-for-secs 1 --moderator-token ci
run market_data -- --quotes 1000 --strategies 3
run game_tick -- --players 1000 --zones 10 --ticks 30
run select_loop

# A bad flag is a clear error with exit code 2.
set +e
cargo run -q --example demo -- --bogus 2>/tmp/fanout-demo-bad-flag.txt
code=$?
set -e
if [ "$code" -ne 2 ]; then
    echo "demo --bogus exited with $code, expected 2" >&2
    exit 1
fi
echo "demo --bogus: exit 2, said: $(head -n 1 /tmp/fanout-demo-bad-flag.txt)"
