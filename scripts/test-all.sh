#!/usr/bin/env bash
# Install what Switchboard's tests need on a fresh Debian machine, then run
# the whole suite. Safe to run again: installed pieces are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# The sandbox tests run against a real Docker engine, with images built
# locally from Debian's static busybox and from debootstrap.
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need_apt+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
# The control UI's tests drive Debian's headless Chromium through its
# WebDriver (tests/tests/ui.rs); nothing is downloaded by the tests.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# The store tests run against a real PostgreSQL server, made by the tests
# with Debian's server binaries (tests/src/postgres.rs).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# The tray's test starts a private D-Bus session bus (tests/tests/tray.rs).
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus)
if ((${#need_apt[@]})); then
    say "installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

if ! docker info >/dev/null 2>&1; then
    say "starting the Docker engine (log: target/dockerd.log)"
    mkdir -p target
    $SUDO sh -c 'nohup dockerd >"$1" 2>&1 &' sh "$PWD/target/dockerd.log"
    for i in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        [ "$i" -eq 60 ] && { echo "error: dockerd did not answer within 60 s; see target/dockerd.log" >&2; tail -20 target/dockerd.log >&2; exit 1; }
        sleep 1
    done
    echo "Docker $(docker version --format '{{.Server.Version}}') answers"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed. Switchboard needs Rust 1.95 or newer (https://rustup.rs)." >&2
    exit 1
fi

say "building the workspace ($(cargo --version))"
cargo build --workspace --all-targets --locked

# The default sandbox image, built offline as users without a registry do
# (debootstrap's root filesystem is cached in /var/cache/switchboard, so
# later runs only import it).
if ! docker image inspect switchboard-sandbox:bookworm >/dev/null 2>&1; then
    say "building the default sandbox image (switchboard sandbox build-image)"
    $SUDO target/debug/switchboard sandbox build-image --from debootstrap --cache /var/cache/switchboard
fi

say "running the tests"
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.log
status=${PIPESTATUS[0]}
set -e

# Every fuzz target for 20 s (fuzz/, see README "Fuzzing"). The first run
# installs cargo-fuzz and builds the targets with the nightly toolchain.
say "fuzzing each target for 20 s (scripts/fuzz.sh 20)"
set +e
scripts/fuzz.sh 20
fuzz_status=$?
set -e

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' target/test-output.log | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.log | awk '{s+=$1} END {print s+0}')
echo
echo "${passed} passed, ${failed} failed"
[ "$fuzz_status" -eq 0 ] || echo "fuzzing failed: see the fuzz step above"
[ "$status" -ne 0 ] && exit "$status"
exit "$fuzz_status"
