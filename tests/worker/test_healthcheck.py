"""``python -m worker.healthcheck``: the worker container is healthy while a worker of its host beats in Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import redis

from restyle.settings import Settings
from restyle.workers import WorkerRegistry
from tests.support import REPO_ROOT
from tests.support.settings import MakeSettings, settings_env
from tests.support.worker_process import WorkerProcess
from worker.healthcheck import problem


def healthcheck(settings: Settings) -> subprocess.CompletedProcess[str]:
    """The check as Docker runs it, in a process of its own with the worker's RESTYLE_… environment."""
    return subprocess.run(
        [sys.executable, "-m", "worker.healthcheck"],
        cwd=REPO_ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_host_whose_worker_beats_is_healthy(worker: WorkerProcess) -> None:
    checked = healthcheck(worker.settings)
    assert (checked.returncode, checked.stdout) == (0, "")


def test_a_worker_that_could_not_load_its_network_leaves_its_host_unhealthy(
    networkless_worker: WorkerProcess, redis_client: redis.Redis[bytes]
) -> None:
    # Watched throughout two heartbeat periods, in which a loaded worker would have beaten: a window to observe
    # what must not happen, not a wait for something to happen.
    settings = networkless_worker.settings
    roster = WorkerRegistry(redis_client, settings.key_prefix)
    window_ends = time.monotonic() + 2 * settings.heartbeat_seconds
    while time.monotonic() < window_ends:
        assert roster.alive(60) == []
        time.sleep(0.1)
    checked = healthcheck(networkless_worker.settings)
    assert checked.returncode == 1
    (line,) = checked.stdout.splitlines()
    assert line.startswith(f"unhealthy: no worker on {socket.gethostname()} has sent a heartbeat in the last ")


def test_a_worker_on_another_host_does_not_make_this_one_healthy(
    make_settings: MakeSettings, redis_client: redis.Redis[bytes]
) -> None:
    settings = make_settings()
    WorkerRegistry(redis_client, settings.key_prefix).beat(
        "restyle-1@gpu-2", "random(seed=0)", every=settings.heartbeat_seconds
    )
    assert problem(settings, "gpu-1") is not None
    assert problem(settings, "gpu-2") is None


def test_an_unreachable_redis_is_unhealthy_saying_so(make_settings: MakeSettings) -> None:
    reason = problem(make_settings(redis_url="redis://127.0.0.1:1/0"), "gpu-1")
    assert reason is not None
    assert reason.startswith("Redis at the configured RESTYLE_REDIS_URL is unreachable: ")
