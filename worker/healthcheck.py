"""``python -m worker.healthcheck``: exit 0 while a worker of this host beats in Redis, 1 (saying why) otherwise.

The worker container's health check. A heartbeat rather than ``celery inspect ping``: the heartbeat thread keeps
beating through long jobs, when a busy solo-pool worker cannot answer a ping; and a worker that could not load
its network never beats, so it is unhealthy too (it takes no jobs).
"""

from __future__ import annotations

import socket
import sys

import redis

from restyle.settings import Settings, get_settings
from restyle.workers import WorkerRegistry, alive_window

# Well inside compose's healthcheck timeout, so an unreachable Redis is reported rather than the check killed.
REDIS_TIMEOUT_SECONDS = 5.0


def problem(settings: Settings, host: str) -> str | None:
    """Why no worker of ``host`` counts as alive, or None when one does.

    Workers are named ``…@host`` (``restyle.cli.servers.worker_argv``); in a container, the host is the
    container's own name, so only this container's worker makes it healthy.
    """
    window = alive_window(settings.heartbeat_seconds)
    client: redis.Redis[bytes] = redis.Redis.from_url(
        settings.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    try:
        alive = WorkerRegistry(client, settings.key_prefix).alive(within=window)
    except redis.RedisError as error:
        return f"Redis at the configured RESTYLE_REDIS_URL is unreachable: {error}"
    finally:
        client.close()
    if not any(name.endswith(f"@{host}") for name in alive):
        return (
            f"no worker on {host} has sent a heartbeat in the last {window:g} s "
            "(one that cannot load VGG19 never does: see its log)"
        )
    return None


def main() -> int:
    """Check this host against the environment's settings; the exit status is what Docker reads."""
    reason = problem(get_settings(), socket.gethostname())
    if reason is None:
        return 0
    print(f"unhealthy: {reason}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
