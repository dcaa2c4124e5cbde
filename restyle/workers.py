"""Which workers are alive, and the network weights each runs: each announces itself in Redis on a heartbeat,
and /readyz reads the roster.

Celery's own ``ping`` broadcasts to every worker on the broker (other deployments sharing the Redis answer
too) and takes a second to time out; a heartbeat under our key prefix is scoped and answers at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

# A worker counts as alive if it beat within this many heartbeat periods: one late beat on a loaded machine
# is not a dead worker. /readyz and the worker container's health check both judge by it.
HEARTBEATS_OF_GRACE = 3
# A worker's weights key outlives its alive window by this factor, so a live worker's is never missing (the
# roster's times are the workers' clocks, the expiry is Redis's); node names are new at every start, so
# without an expiry the keys of past runs would pile up forever.
_WEIGHTS_KEY_WINDOWS = 2


def alive_window(heartbeat_seconds: float) -> float:
    """How recent a worker's last beat must be for it to count as alive."""
    return heartbeat_seconds * HEARTBEATS_OF_GRACE


class WorkerRegistry:
    """Worker names with the time of their last heartbeat in one sorted set; each one's weights in a key."""

    def __init__(self, client: redis.Redis[bytes], prefix: str) -> None:
        self.redis = client
        self._prefix = prefix
        self._key = f"{prefix}:workers"

    def beat(self, name: str, weights: str, *, every: float) -> None:
        """Announce ``name``, running ``weights``, as one that beats every ``every`` seconds."""
        expiry_ms = round(alive_window(every) * _WEIGHTS_KEY_WINDOWS * 1000)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key, {name: time.time()})
            pipe.set(self._weights_key(name), weights, px=expiry_ms)
            pipe.execute()

    def retire(self, name: str) -> None:
        """Leave the roster at a clean shutdown, so readiness drops at once instead of after a timeout."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._key, name)
            pipe.delete(self._weights_key(name))
            pipe.execute()

    def alive(self, within: float) -> list[str]:
        """Workers that beat in the last ``within`` seconds; long-silent ones are forgotten on the way."""
        now = time.time()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._key, "-inf", now - max(within * 20, 3600))
            pipe.zrangebyscore(self._key, now - within, "+inf")
            _, names = pipe.execute()
        return [name.decode() for name in names]

    def weights(self, names: Sequence[str]) -> dict[str, str]:
        """The weights each of ``names`` last announced; a worker silent for long (its key expired) is left out."""
        if not names:
            return {}  # MGET wants at least one key
        values = self.redis.mget([self._weights_key(name) for name in names])
        return {name: value.decode() for name, value in zip(names, values, strict=True) if value is not None}

    def _weights_key(self, name: str) -> str:
        return f"{self._prefix}:worker:{name}"
