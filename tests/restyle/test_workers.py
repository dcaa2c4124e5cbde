"""WorkerRegistry: the heartbeat roster behind /readyz, and the VGG19 weights each live worker runs."""

from __future__ import annotations

import redis

from restyle.workers import WorkerRegistry, alive_window
from tests.support.settings import MakeSettings
from tests.support.waiting import eventually

EVERY = 5.0  # the heartbeat period the workers of these tests announce


def test_a_worker_that_beat_recently_is_alive(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> None:
    registry = WorkerRegistry(redis_client, make_settings().key_prefix)
    registry.beat("w1@host", "imagenet", every=EVERY)
    assert registry.alive(within=10) == ["w1@host"]


def test_a_retired_worker_is_not_alive(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> None:
    registry = WorkerRegistry(redis_client, make_settings().key_prefix)
    registry.beat("w1@host", "imagenet", every=EVERY)
    registry.retire("w1@host")
    assert registry.alive(within=10) == []


def test_no_worker_means_nobody_alive(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> None:
    assert WorkerRegistry(redis_client, make_settings().key_prefix).alive(within=10) == []


def test_the_weights_of_each_worker_are_those_it_announced(
    make_settings: MakeSettings, redis_client: redis.Redis[bytes]
) -> None:
    registry = WorkerRegistry(redis_client, make_settings().key_prefix)
    registry.beat("w1@host", "imagenet", every=EVERY)
    registry.beat("w2@host", "random(seed=0)", every=EVERY)
    assert registry.weights(["w1@host", "w2@host"]) == {"w1@host": "imagenet", "w2@host": "random(seed=0)"}


def test_a_worker_announces_the_weights_of_its_latest_beat(
    make_settings: MakeSettings, redis_client: redis.Redis[bytes]
) -> None:
    registry = WorkerRegistry(redis_client, make_settings().key_prefix)
    registry.beat("w1@host", "random(seed=0)", every=EVERY)
    registry.beat("w1@host", "imagenet", every=EVERY)
    assert registry.weights(["w1@host"]) == {"w1@host": "imagenet"}


def test_the_weights_of_no_workers_are_none(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> None:
    assert WorkerRegistry(redis_client, make_settings().key_prefix).weights([]) == {}


def test_a_retired_worker_leaves_no_weights_behind(
    make_settings: MakeSettings, redis_client: redis.Redis[bytes]
) -> None:
    prefix = make_settings().key_prefix
    registry = WorkerRegistry(redis_client, prefix)
    registry.beat("w1@host", "imagenet", every=EVERY)
    registry.retire("w1@host")
    assert registry.weights(["w1@host"]) == {}
    assert list(redis_client.scan_iter(f"{prefix}:*")) == []


def test_every_key_a_beat_writes_expires_but_the_roster(
    make_settings: MakeSettings, redis_client: redis.Redis[bytes]
) -> None:
    """Node names are new at every worker start: a key of each that never expired would pile up forever
    (the roster itself forgets long-silent workers whenever it is read)."""
    prefix = make_settings().key_prefix
    WorkerRegistry(redis_client, prefix).beat("w1@host", "imagenet", every=EVERY)
    lasting = [key for key in redis_client.scan_iter(f"{prefix}:*") if redis_client.ttl(key) == -1]
    assert lasting == [f"{prefix}:workers".encode()]


def test_a_workers_weights_outlast_its_alive_window(
    make_settings: MakeSettings, redis_client: redis.Redis[bytes]
) -> None:
    prefix = make_settings().key_prefix
    WorkerRegistry(redis_client, prefix).beat("w1@host", "imagenet", every=EVERY)
    (weights_key,) = [key for key in redis_client.scan_iter(f"{prefix}:*") if key != f"{prefix}:workers".encode()]
    assert redis_client.pttl(weights_key) > alive_window(EVERY) * 1000


def test_the_weights_of_a_long_silent_worker_are_forgotten(
    make_settings: MakeSettings, redis_client: redis.Redis[bytes]
) -> None:
    registry = WorkerRegistry(redis_client, make_settings().key_prefix)
    registry.beat("w1@host", "imagenet", every=0.01)
    # Their time to live is a fraction of a second; Redis expires a key it is asked for once that has passed.
    eventually(lambda: registry.weights(["w1@host"]) == {}, "the weights outlived their time to live", seconds=10)
