#!/usr/bin/env bash
# Make sure a Redis answers on RESTYLE_REDIS_URL (default redis://127.0.0.1:6379/0); start a local one if
# nothing does. It keeps an append-only file under RESTYLE_REDIS_DIR (default var/redis; a relative path is
# taken from the repository root), so queued jobs and their records survive a restart or a crash of that
# Redis; the file is fsync'd every second, so a crash of the machine loses at most about the last second.
# Needs .venv (for the redis client) and redis-server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

url=${RESTYLE_REDIS_URL:-redis://127.0.0.1:6379/0}
ping() { .venv/bin/python -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()" "$url" 2>/dev/null; }

ping && exit 0
port=$(.venv/bin/python -c "import sys, urllib.parse as u; print(u.urlparse(sys.argv[1]).port or 6379)" "$url")
if ! command -v redis-server >/dev/null; then
  echo "redis: nothing answers on $url and redis-server is not installed (apt-get install redis-server)" >&2
  exit 1
fi
mkdir -p "${RESTYLE_REDIS_DIR:-var/redis}"
# Absolute, because redis-server changes into --dir before it opens the log file.
dir=$(cd "${RESTYLE_REDIS_DIR:-var/redis}" && pwd)
echo "redis: starting a local redis-server on 127.0.0.1:$port with its files in $dir"
# No snapshots (--save ""): the append-only file alone is what a restart loads.
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly yes --appendfsync everysec \
  --dir "$dir" --logfile "$dir/redis.log"
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "redis: redis-server did not answer on $url; see $dir/redis.log" >&2
exit 1
