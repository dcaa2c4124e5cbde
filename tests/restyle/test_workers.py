"""WorkerRegistry: the heartbeat roster behind /readyz."""

from __future__ import annotations

import redis

from restyle.workers import WorkerRegistry
from tests.conftest import MakeSettings


def test_a_worker_that_beat_recently_is_alive(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> None:
    registry = WorkerRegistry(redis_client, make_settings().key_prefix)
    registry.beat("w1@host")
    assert registry.alive(within=10) == ["w1@host"]


def test_a_retired_worker_is_not_alive(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> None:
    registry = WorkerRegistry(redis_client, make_settings().key_prefix)
    registry.beat("w1@host")
    registry.retire("w1@host")
    assert registry.alive(within=10) == []


def test_no_worker_means_nobody_alive(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> None:
    assert WorkerRegistry(redis_client, make_settings().key_prefix).alive(within=10) == []
