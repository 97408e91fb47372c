#!/usr/bin/env bash
# Instruction counts per delivery and per broadcast, fanout vs its floors, with callgrind.
#
# Builds benches/floor_callgrind.rs, runs each mode at two subscriber counts under
# `valgrind --tool=callgrind`, collecting only inside the `measure_*` functions, and
# prints the marginal instructions per delivery (slope between the two counts) and the
# instructions per broadcast at n=1. Instruction counts are repeatable on a shared,
# noisy machine where wall-clock numbers are not.
#
# Usage: [FEATURES=async] scripts/callgrind_floor.sh [out_dir]   (about 2 minutes)
#        FEATURES=metrics,tracing MODES=cb_fanout scripts/callgrind_floor.sh: the
#        operating features compiled in (no recorder, no subscriber installed)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/callgrind}
mkdir -p "$out"
# FEATURES=async adds the `as_fanout` mode (async channel sinks) and builds the engine
# with the async flavour compiled in (so the other modes show whether it costs them).
features=${FEATURES:-}
modes="cb_fanout cb_floor cb_fanout_str cb_fanout_from cb_tokio cb_bus ch_fanout ch_crossbeam"
case $features in *async*) modes="$modes as_fanout" ;; esac
modes=${MODES:-$modes} # e.g. MODES="cb_fanout ch_fanout" for a quicker look
# `-p fanout-benches`: without it cargo builds every default workspace member and unifies
# their features, so the chat server's (`async`, `metrics`, `tracing`) would be compiled
# into the engine whatever FEATURES says.
bin=$(cargo bench -p fanout-benches --bench floor_callgrind ${features:+--features "fanout-benches/$features"} --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "floor_callgrind" and m.get("executable"):
        print(m["executable"])')
iters=2000 # must match ITERS in benches/floor_callgrind.rs

count() { # mode n -> Ir collected
    timeout 900 valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_*' \
        --callgrind-out-file="$out/cg.$1.$2" "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

printf '%-14s %14s %14s %12s\n' mode 'Ir/broadcast@1' 'Ir/delivery' 'deliveries'
for mode in $modes; do
    one=$(count "$mode" 1)
    small=$(count "$mode" 256)
    big=$(count "$mode" 4096)
    # Channel modes run whole rounds of 32 broadcasts: 1984 of the 2000.
    case $mode in ch_* | as_*) b=$((iters / 32 * 32)) ;; *) b=$iters ;; esac
    python3 - "$mode" "$one" "$small" "$big" "$b" <<'EOF'
import sys
mode, one, small, big, b = sys.argv[1], *map(int, sys.argv[2:])
per = (big - small) / ((4096 - 256) * b)
print(f"{mode:<14} {one / b:>14.0f} {per:>14.1f} {b:>12}")
EOF
done
echo "annotate: callgrind_annotate $out/cg.<mode>.<n>"
