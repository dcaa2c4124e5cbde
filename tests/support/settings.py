"""Stands in for a deployment's configuration: settings isolated from every other test's and every other
person's on the shared test Redis, and the Redis connection that checks it is there.

Every settings object from a ``SettingsFactory`` has a key prefix and Celery queue of its own, on Redis db 15
(``RESTYLE_TEST_REDIS_URL`` overrides), and a storage directory of its own; it is tuned for tiny fast jobs,
accepts the API keys ``ALICE`` and ``BOB``, and signs webhooks with ``WEBHOOK_SECRET``. ``remove_keys()``
deletes the keys under those prefixes, and nothing else: never FLUSHDB, the Redis is shared.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from restyle.settings import Settings

REDIS_URL = os.environ.get("RESTYLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ALICE, BOB = "alice-key", "bob-key"
WEBHOOK_SECRET = "webhook-test-secret"

MakeSettings = Callable[..., Settings]


def connect_redis() -> redis.Redis[bytes]:
    """A client of the test Redis; fails the test (saying where it looked) when that Redis does not answer."""
    client: redis.Redis[bytes] = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"the service tests need Redis at {REDIS_URL} ({error})")
    return client


class SettingsFactory:
    """Makes settings with a unique prefix, queue and storage directory, tuned for tiny fast jobs; keyword
    arguments override any field. Remembers every prefix it gave out, for ``remove_keys()``."""

    def __init__(self, redis_client: redis.Redis[bytes], storage_dir: Callable[[], Path]) -> None:
        """``storage_dir`` makes a new, empty directory for each settings object."""
        self.redis_client = redis_client
        self.storage_dir = storage_dir
        self.prefixes: list[str] = []

    def __call__(self, **overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:12]
        values: dict[str, Any] = {
            "redis_url": REDIS_URL,
            "key_prefix": f"restyle-test-{tag}",
            "queue": f"restyle-test-{tag}",
            "storage_dir": self.storage_dir(),
            "weights": "random",
            "device": "cpu",
            "api_keys": [ALICE, BOB],
            "max_upload_bytes": 256 * 1024,
            "max_image_pixels": 1_000_000,
            "progress_interval": 0.0,
            "snapshot_every": 2,
            "heartbeat_seconds": 0.5,
            # `restyle up`'s worker at the tests' own priority: beside other load at normal priority (another
            # test run, a CPU hog) a niced worker is starved by design, and each `up` test would wait on it.
            "worker_niceness": 0,
            "job_time_limit": 300,
            "webhook_secret": WEBHOOK_SECRET,
            "webhook_allow_hosts": ["127.0.0.1"],  # the loopback WebhookReceiver, on purpose
            "webhook_backoff_seconds": 0.2,
            "webhook_timeout": 5,
            "retry_after_seconds": 7,
        }
        values.update(overrides)
        settings = Settings(**values)
        self.prefixes.append(settings.key_prefix)
        return settings

    def remove_keys(self) -> None:
        """Delete every Redis key under the prefixes given out (by prefix: never FLUSHDB)."""
        for prefix in self.prefixes:
            keys = list(self.redis_client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                self.redis_client.delete(*keys[start : start + 500])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in another process (and nothing from the caller's)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RESTYLE_")}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(item.get_secret_value() if isinstance(item, SecretStr) else str(item) for item in value)
        elif isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"RESTYLE_{name.upper()}"] = str(value)
    return env
