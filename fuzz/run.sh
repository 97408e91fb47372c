#!/usr/bin/env bash
# Runs the cargo-fuzz targets of this crate.
#
#   fuzz/run.sh TARGET SECONDS    run one target (frame_decode | ops_vs_model)
#   fuzz/run.sh all SECONDS       run every target, SECONDS each
#   fuzz/run.sh list              list the targets
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if
# it is missing. New corpus entries land in fuzz/corpus/TARGET/, crashes in
# fuzz/artifacts/TARGET/. Extra libFuzzer flags: FUZZ_FLAGS="-jobs=2 -workers=2".
# Extra cargo-fuzz flags (e.g. --sanitizer none, --release is the default): CARGO_FUZZ_FLAGS.
# Every crash reproduces on stable with: cp the artifact into fuzz/corpus/TARGET/ and run
# `cargo test --test fuzz_replay`.
set -euo pipefail

cd "$(dirname "$0")"
TARGETS=(frame_decode ops_vs_model)

usage() {
    echo "usage: $0 {frame_decode|ops_vs_model|all} SECONDS | $0 list" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
if [[ $1 == list ]]; then
    printf '%s\n' "${TARGETS[@]}"
    exit 0
fi
[[ $# -eq 2 && $2 =~ ^[0-9]+$ ]] || usage

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 1
fi

run_one() {
    local target=$1 seconds=$2
    mkdir -p "corpus/$target"
    echo "== fuzzing $target for ${seconds}s" >&2
    # shellcheck disable=SC2086
    cargo +nightly fuzz run ${CARGO_FUZZ_FLAGS:-} "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_FLAGS:-}
}

if [[ $1 == all ]]; then
    for target in "${TARGETS[@]}"; do
        run_one "$target" "$2"
    done
else
    found=0
    for target in "${TARGETS[@]}"; do
        [[ $1 == "$target" ]] && found=1
    done
    [[ $found == 1 ]] || usage
    run_one "$1" "$2"
fi
