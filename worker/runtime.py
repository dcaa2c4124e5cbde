"""What a worker process holds for its whole life: settings, stores, and the VGG net, loaded once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import redis

from restyle.jobs import JobStore, Runs
from restyle.settings import Settings, get_settings
from restyle.storage import Storage, open_storage

if TYPE_CHECKING:
    from core.vgg import FeatureNet


@dataclass
class Runtime:
    """Per-process resources; the network is built on first use, never at import (fork and CUDA safety)."""

    settings: Settings
    redis: redis.Redis[bytes]
    store: JobStore
    runs: Runs
    storage: Storage
    # Set when this process's worker begins to shut down: a job running here then hands itself back to the
    # queue within one iteration, instead of holding the shutdown up or being killed with it.
    stopping: threading.Event = field(default_factory=threading.Event)
    _net: FeatureNet | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def network(self) -> FeatureNet:
        """The VGG feature net, loaded on the first call in this process and kept for every later job."""
        with self._lock:
            if self._net is None:
                from core.vgg import load_vgg

                self._net = load_vgg(self.settings.weights, self.settings.device)
            return self._net


def build_runtime(settings: Settings) -> Runtime:
    """The resources of a worker process with ``settings`` (the network not loaded yet)."""
    client = redis.Redis.from_url(settings.redis_url)
    store = JobStore(client, settings.key_prefix, settings.retention_seconds)
    return Runtime(
        settings=settings,
        redis=client,
        store=store,
        runs=Runs(store.ledger, settings.lease_seconds),
        storage=open_storage(settings),
    )


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """This process's resources, from the environment's settings."""
    return build_runtime(get_settings())
