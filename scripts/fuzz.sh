#!/usr/bin/env bash
# Build the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer) and run each one
# for a while:
#
#   scripts/fuzz.sh [seconds per target, default 60] [target...]
#
# Without targets, every one in fuzz/fuzz_targets/ runs, one after the
# other. The seeds in fuzz/corpus/<target>/ are only read; what libFuzzer
# finds goes to fuzz/found/<target>/, each run's output to
# fuzz/logs/<target>.log, and a crashing input to fuzz/artifacts/<target>/
# (its path is printed). Exits non-zero when a target crashed.
#
# Needs the nightly toolchain and a C++ compiler (libFuzzer is C++);
# installs cargo-fuzz when it is missing. FUZZ_SANITIZER=address builds
# with AddressSanitizer; the default is none: our crates are safe Rust
# (unsafe_code is forbidden), and without it the runs are twice as many
# and the build is shorter.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
usage="usage: scripts/fuzz.sh [seconds per target, default 60] [target...]"

secs=${1:-60}
case "$secs" in
    '' | *[!0-9]*) echo "$usage" >&2; exit 2 ;;
esac
(($# == 0)) || shift
sanitizer=${FUZZ_SANITIZER:-none}

all=()
for f in fuzz/fuzz_targets/*.rs; do
    all+=("$(basename "$f" .rs)")
done
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "error: no fuzz target \`$t\`; the targets are: ${all[*]}" >&2
        exit 2
    fi
done

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "error: cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! command -v c++ >/dev/null 2>&1; then
    echo "error: libFuzzer is built from C++ and there is no C++ compiler: install build-essential" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz (cargo install cargo-fuzz --locked; a few minutes)"
    cargo install cargo-fuzz --locked
fi

# The fuzz crate is a workspace of its own; its lock file starts as the
# main one, so the targets build the dependency versions the tests use.
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock

say "building the fuzz targets (cargo +nightly fuzz build, sanitizer: $sanitizer; the first build compiles every dependency and takes a while)"
cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"

mkdir -p fuzz/logs
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/found/$t" "fuzz/artifacts/$t"
    log="fuzz/logs/$t.log"
    say "fuzzing $t for $secs s (log: $log)"
    set +e
    # -timeout: an input that takes 10 s is a hang, reported like a crash.
    cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$t" \
        "$PWD/fuzz/found/$t" "$PWD/fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    runs=$(grep -Eo 'number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
    if [ "$status" -eq 0 ]; then
        echo "$t: ok, ${runs:-?} inputs tried"
    else
        input=$(grep -Eo 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/^Test unit written to //' || true)
        tail -n 30 "$log"
        echo "$t: FAILED (exit $status)${input:+; the input is $input}"
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo
    echo "fuzzing failed for: ${failed[*]}"
    echo "Rerun one input with: cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer $sanitizer <target> <input>"
    echo "Once fixed, keep the input as a seed: copy it to fuzz/corpus/<target>/."
    exit 1
fi
echo
echo "${#targets[@]} fuzz target(s) ran $secs s each without a crash"
