"""A worker that cannot load its network takes no jobs and does not count as ready."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import redis

from restyle.settings import Settings
from restyle.workers import WorkerRegistry
from tests.conftest import PATIENCE_SECONDS, ApiServer, MakeSettings, WorkerProcess, submit


def test_a_worker_without_its_network_stays_out_of_the_roster_and_leaves_jobs_queued(
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    redis_client: redis.Redis[bytes],
    tmp_path: Path,
) -> None:
    settings = make_settings(weights=str(tmp_path / "missing-vgg19.pth"))
    api = start_api(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while "takes no jobs" not in worker.log() and time.monotonic() < deadline:
            assert worker.process.poll() is None, worker.log()
            time.sleep(0.1)
        with api.client() as http:
            job = submit(http).json()
            time.sleep(2 * settings.heartbeat_seconds + 1)
            assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
            assert http.get("/readyz").status_code == 503
        assert worker.name not in WorkerRegistry(redis_client, settings.key_prefix).alive(60)
    finally:
        worker.stop()
