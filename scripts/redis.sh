#!/usr/bin/env bash
# Make sure a Redis answers on RESTYLE_REDIS_URL (default redis://127.0.0.1:6379/0); start a local,
# non-persistent one under var/redis if nothing does. Needs .venv (for the redis client) and redis-server.
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
mkdir -p var/redis
echo "redis: starting a local redis-server on 127.0.0.1:$port"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "$PWD/var/redis" --logfile "$PWD/var/redis/redis.log"
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "redis: redis-server did not answer on $url; see var/redis/redis.log" >&2
exit 1
