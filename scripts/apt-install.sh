#!/usr/bin/env bash
# Install Debian packages quietly, one apt at a time: CI runs the tests and the compose stack side by side, and
# each may install what it lacks (Chromium, docker.io, debootstrap); two apt-gets at once would fail on dpkg's
# lock instead of waiting for it. Usage: scripts/apt-install.sh PACKAGE...
set -euo pipefail
exec 9>/tmp/restyle-apt.lock
flock 9
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
