#!/usr/bin/env bash
# Instructions per publish to conflating channels vs `DropOldest` channels, with callgrind.
#
# Builds benches/conflation_callgrind.rs, runs each mode at 1 and 16 channels under
# `valgrind --tool=callgrind`, collecting only inside `measure_publish`, and prints the
# instructions per publish at 1 and 16 channels and per extra channel (the slope).
#
# Usage: scripts/callgrind_conflation.sh [out_dir]   (a few minutes)
#        MODES="new_drop_oldest new_conflate" scripts/callgrind_conflation.sh: a subset
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/callgrind}
mkdir -p "$out"
bin=$(cargo bench -p fanout-benches --bench conflation_callgrind --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "conflation_callgrind" and m.get("executable"):
        print(m["executable"])')
publishes=6400 # ROUNDS × KEYS in benches/conflation_callgrind.rs

count() { # mode n -> Ir collected
    timeout 900 valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_publish*' \
        --callgrind-out-file="$out/cg.conflation.$1.$2" "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

printf '%-18s %12s %12s %18s\n' mode 'Ir/publish@1' 'Ir/publish@16' 'Ir/extra channel'
for mode in ${MODES:-slow_drop_oldest slow_conflate new_drop_oldest new_conflate}; do
    one=$(count "$mode" 1)
    sixteen=$(count "$mode" 16)
    python3 - "$mode" "$one" "$sixteen" "$publishes" <<'PY'
import sys
mode, one, sixteen, p = sys.argv[1], *map(int, sys.argv[2:])
print(f"{mode:<18} {one / p:>12.0f} {sixteen / p:>12.0f} {(sixteen - one) / (15 * p):>18.1f}")
PY
done
echo "annotate: callgrind_annotate $out/cg.conflation.<mode>.<n>"
