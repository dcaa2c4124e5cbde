"""Which workers are alive: each announces itself in Redis on a heartbeat, and /readyz reads the roster.

Celery's own ``ping`` broadcasts to every worker on the broker (other deployments sharing the Redis answer
too) and takes a second to time out; a heartbeat under our key prefix is scoped and answers at once.
"""

from __future__ import annotations

import time

import redis


class WorkerRegistry:
    """Worker names with the time of their last heartbeat, in one sorted set."""

    def __init__(self, client: redis.Redis[bytes], prefix: str) -> None:
        self.redis = client
        self._key = f"{prefix}:workers"

    def beat(self, name: str) -> None:
        self.redis.zadd(self._key, {name: time.time()})

    def retire(self, name: str) -> None:
        """Leave the roster at a clean shutdown, so readiness drops at once instead of after a timeout."""
        self.redis.zrem(self._key, name)

    def alive(self, within: float) -> list[str]:
        """Workers that beat in the last ``within`` seconds; long-silent ones are forgotten on the way."""
        now = time.time()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._key, "-inf", now - max(within * 20, 3600))
            pipe.zrangebyscore(self._key, now - within, "+inf")
            _, names = pipe.execute()
        return [name.decode() for name in names]
