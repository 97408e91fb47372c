#!/usr/bin/env bash
# Runs the cargo-fuzz targets of this crate.
#
#   fuzz/run.sh TARGET SECONDS    run one target (frame_decode | envelope_decode | ops_vs_model)
#   fuzz/run.sh all SECONDS       run every target, SECONDS each
#   fuzz/run.sh cmin TARGET       shrink corpus/TARGET to a set that keeps every covered
#                                 edge (a libFuzzer merge without hit counters: far fewer
#                                 files than `cargo fuzz cmin`); hand-made seed-* stay
#   fuzz/run.sh asan TARGET       run every corpus/TARGET input once under AddressSanitizer
#   fuzz/run.sh list              list the targets
#
# ops_vs_model is built without a sanitizer by default: the crate denies unsafe code, so
# AddressSanitizer only watches its dependencies, and it cost that target 4.4x the CPU per
# execution (1.9 ms against 0.43 ms). `fuzz/run.sh asan ops_vs_model` runs its corpus
# (every input that reached new coverage) under ASan instead. The decoder targets keep
# cargo-fuzz's default, ASan. A `--sanitizer` in CARGO_FUZZ_FLAGS overrides either.
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if
# it is missing. New corpus entries land in fuzz/corpus/TARGET/, crashes in
# fuzz/artifacts/TARGET/. Extra libFuzzer flags: FUZZ_FLAGS="-jobs=2 -workers=2"; extra
# cargo-fuzz flags: CARGO_FUZZ_FLAGS="--sanitizer none".
#
# A crash reproduces on stable: copy the artifact into fuzz/corpus/TARGET/ and run
# `cargo test --test fuzz_replay` (`--test envelope_replay` for envelope_decode): the replay
# tests run the same checks on every file.
set -euo pipefail

cd "$(dirname "$0")"
TARGETS=(frame_decode envelope_decode ops_vs_model)

usage() {
    echo "usage: $0 {frame_decode|envelope_decode|ops_vs_model|all} SECONDS | $0 {cmin|asan} TARGET | $0 list" >&2
    exit 2
}

# cargo-fuzz flags for TARGET: the caller's, plus the target's default sanitizer.
fuzz_flags() {
    local flags=${CARGO_FUZZ_FLAGS:-}
    if [[ $1 == ops_vs_model && $flags != *--sanitizer* ]]; then
        flags="$flags --sanitizer none"
    fi
    echo "$flags"
}

known() {
    local target
    for target in "${TARGETS[@]}"; do
        [[ $1 == "$target" ]] && return 0
    done
    return 1
}

[[ $# -ge 1 ]] || usage
if [[ $1 == list ]]; then
    printf '%s\n' "${TARGETS[@]}"
    exit 0
fi
[[ $# -eq 2 ]] || usage

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [[ $1 == asan ]]; then
    target=$2
    known "$target" || usage
    # shellcheck disable=SC2086
    cargo +nightly fuzz run ${CARGO_FUZZ_FLAGS:-} --sanitizer address "$target" \
        "corpus/$target" -- -runs=0
    exit 0
fi

if [[ $1 == cmin ]]; then
    target=$2
    known "$target" || usage
    # shellcheck disable=SC2046
    cargo +nightly fuzz build $(fuzz_flags "$target") "$target"
    host=$(rustc +nightly -vV | sed -n 's/^host: //p')
    binary="${CARGO_TARGET_DIR:-target}/$host/release/$target"
    [[ -n $binary && -x $binary ]] || { echo "no built $target binary found" >&2; exit 1; }
    minimal=$(mktemp -d)
    "$binary" -merge=1 -use_counters=0 -use_value_profile=0 "$minimal" "corpus/$target"
    find "corpus/$target" -type f ! -name 'seed-*' -delete
    find "$minimal" -type f -exec cp {} "corpus/$target/" \;
    rm -rf "$minimal"
    echo "corpus/$target: $(find "corpus/$target" -type f | wc -l) files" >&2
    exit 0
fi

[[ $2 =~ ^[0-9]+$ ]] || usage

run_one() {
    local target=$1 seconds=$2
    mkdir -p "corpus/$target"
    echo "== fuzzing $target for ${seconds}s" >&2
    # shellcheck disable=SC2046
    cargo +nightly fuzz run $(fuzz_flags "$target") "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_FLAGS:-}
}

if [[ $1 == all ]]; then
    for target in "${TARGETS[@]}"; do
        run_one "$target" "$2"
    done
else
    known "$1" || usage
    run_one "$1" "$2"
fi
