#!/usr/bin/env bash
# Build the Switchboard gateway image without a container registry: the same
# image as deploy/Dockerfile, made the way `switchboard sandbox build-image`
# makes the sandbox image offline. A Debian bookworm root filesystem
# (debootstrap --variant=minbase, with ca-certificates) is made once and
# cached under /var/cache/switchboard; the user switchboard (uid 10001), the
# release binary and deploy/container/switchboard.toml are added to a copy,
# and the result is imported with `docker import`.
#
#   sudo deploy/container/build-offline.sh                  # switchboard:latest
#   sudo deploy/container/build-offline.sh --tag switchboard:0.1.0
#
# Options (or the variables in brackets):
#   --tag NAME      the image's name [SWITCHBOARD_IMAGE] (default switchboard:latest)
#   --mirror URL    Debian archive [DEBIAN_MIRROR] (default http://deb.debian.org/debian)
#   --cache DIR     where the root filesystem is cached [SWITCHBOARD_CACHE]
#                   (default /var/cache/switchboard)
#   --rebuild       build target/release/switchboard again even if it exists
#
# Needs root (debootstrap, file ownership), debootstrap, docker, and the
# binary target/release/switchboard (built with
# `cargo build --release --locked -p switchboard` when missing, as the user
# who ran sudo).
set -euo pipefail

DEFAULT_TAG="switchboard:latest"
TAG="${SWITCHBOARD_IMAGE:-$DEFAULT_TAG}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${SWITCHBOARD_CACHE:-/var/cache/switchboard}"
SUITE="bookworm"
PACKAGES="ca-certificates"
REBUILD=0
UID_GID="10001"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BINARY="$ROOT/target/release/switchboard"
CONFIG="$ROOT/deploy/container/switchboard.toml"

ARGS="$*"
STEPS=6
step=0
say() { printf '==> [%d/%d] %s\n' "$step" "$STEPS" "$*"; }
next() { step=$((step + 1)); say "$@"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || die "--tag needs a value, e.g. --tag switchboard:0.1.0"; TAG="$2"; shift 2 ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a URL"; MIRROR="$2"; shift 2 ;;
    --cache) [ $# -ge 2 ] || die "--cache needs a directory"; CACHE="$2"; shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# 1. What this needs, said before anything starts.
next "checking what the build needs"
[ "$(id -u)" -eq 0 ] || die "run this as root (debootstrap and the image's file ownership need it): sudo $0 $ARGS"
PATH="$PATH:/usr/sbin:/sbin"
command -v debootstrap >/dev/null 2>&1 \
  || die "debootstrap is not installed: apt-get install debootstrap (or build with deploy/Dockerfile where a registry is reachable)"
command -v docker >/dev/null 2>&1 || die "docker is not installed: the image is imported into a Docker engine"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (is it running? is DOCKER_HOST right?): docker info"
[ -f "$CONFIG" ] || die "$CONFIG is missing: run this from a Switchboard checkout"
info "image $TAG, Debian $SUITE from $MIRROR, cache $CACHE"

# 2. The release binary.
next "the release binary"
if [ "$REBUILD" -eq 1 ] || [ ! -x "$BINARY" ]; then
  build='cargo build --release --locked -p switchboard'
  info "building it: $build (several minutes the first time)"
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    # As the user who ran sudo, with their toolchain and their target/.
    runuser -u "$SUDO_USER" -- bash -lc "cd '$ROOT' && $build" \
      || die "the build failed (above). Build it yourself with \`$build\`, then run this again"
  else
    command -v cargo >/dev/null 2>&1 \
      || die "cargo is not on root's PATH: build the binary as your user with \`$build\`, then run this again"
    (cd "$ROOT" && $build) || die "the build failed (above)"
  fi
else
  info "using $BINARY ($(date -r "$BINARY" '+%Y-%m-%d %H:%M'); --rebuild builds it again)"
fi
[ -x "$BINARY" ] || die "$BINARY is still missing after the build"

# 3. The root filesystem, cached by suite, mirror and package list.
next "the Debian root filesystem"
mkdir -p "$CACHE"
hash="$(printf '%s %s %s' "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-8)"
TARBALL="$CACHE/gateway-rootfs-$SUITE-$hash.tar"
if [ -f "$TARBALL" ]; then
  info "using the cached $TARBALL (delete it to make a fresh one)"
else
  partial="$CACHE/gateway-rootfs-$SUITE.partial"
  rm -rf "$partial"
  info "debootstrap $SUITE from $MIRROR with $PACKAGES (a few minutes; cached afterwards)"
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$partial" "$MIRROR" 2>&1 \
      | sed -u 's/^/    /'; then
    rm -rf "$partial"
    die "debootstrap failed (above): it needs root and access to $MIRROR"
  fi
  # No package caches in the image.
  rm -rf "$partial"/var/cache/apt/archives/*.deb "$partial"/var/lib/apt/lists/*
  info "packing it into $TARBALL"
  tar -C "$partial" --numeric-owner --exclude='./dev/*' -cf "$TARBALL.partial" .
  mv "$TARBALL.partial" "$TARBALL"
  rm -rf "$partial"
fi

# 4. A copy with the user, the binary and the config.
next "adding the user switchboard ($UID_GID), the binary and the config"
STAGING="$(mktemp -d "$CACHE/gateway-image.XXXXXX")"
trap 'rm -rf "$STAGING"' EXIT
tar -C "$STAGING" --numeric-owner -xf "$TARBALL"
grep -q '^switchboard:' "$STAGING/etc/group" \
  || echo "switchboard:x:$UID_GID:" >>"$STAGING/etc/group"
grep -q '^switchboard:' "$STAGING/etc/passwd" \
  || echo "switchboard:x:$UID_GID:$UID_GID:Switchboard gateway:/var/lib/switchboard:/usr/sbin/nologin" >>"$STAGING/etc/passwd"
install -d -o "$UID_GID" -g "$UID_GID" -m 0750 "$STAGING/var/lib/switchboard"
install -d -m 0755 "$STAGING/etc/switchboard" "$STAGING/usr/local/bin"
install -m 0755 "$BINARY" "$STAGING/usr/local/bin/switchboard"
install -m 0644 "$CONFIG" "$STAGING/etc/switchboard/switchboard.toml"
info "$(du -sm "$STAGING" | cut -f1) MiB in all"

# 5. Into the engine. The --change lines are the Dockerfile's runtime stage.
next "importing into Docker as $TAG"
if ! tar -C "$STAGING" --numeric-owner -c . | docker import \
  --change 'USER 10001:10001' \
  --change 'WORKDIR /var/lib/switchboard' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV SWITCHBOARD_CONFIG=/etc/switchboard/switchboard.toml' \
  --change 'ENV SWITCHBOARD_DATA_DIR=/var/lib/switchboard' \
  --change 'ENV HOME=/var/lib/switchboard' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'EXPOSE 7788' \
  --change 'STOPSIGNAL SIGTERM' \
  --change 'ENTRYPOINT ["/usr/local/bin/switchboard"]' \
  --change 'CMD ["serve"]' \
  - "$TAG" | sed 's/^/    /'; then
  die "docker import failed (above)"
fi

# 6. What was made.
next "checking the image"
if ! docker run --rm "$TAG" --version | sed 's/^/    /'; then
  die "the image was imported but its binary does not run: docker run --rm $TAG --version"
fi
info "done: $TAG ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%d MiB", $1/1048576}'))"
info "next: docker compose -f deploy/compose.yaml up -d, or kubectl apply -k deploy/k8s (deploy/README.md)"
