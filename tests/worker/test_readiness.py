"""A worker that cannot load its network takes no jobs and does not count as ready."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from restyle.settings import Settings
from restyle.workers import WorkerRegistry
from tests.support.api_server import ApiServer
from tests.support.jobs import submit
from tests.support.worker_process import WorkerProcess


def test_a_worker_without_its_network_stays_out_of_the_roster_and_leaves_jobs_queued(
    networkless_worker: WorkerProcess,
    start_api: Callable[[Settings], ApiServer],
    redis_client: redis.Redis[bytes],
) -> None:
    settings = networkless_worker.settings
    api = start_api(settings)
    with api.client() as http:
        job = submit(http).json()
        # Watched throughout two heartbeat periods, in which a worker able to run the job would have beaten and
        # claimed it: a window to observe what must not happen, not a wait for something to happen.
        window_ends = time.monotonic() + 2 * settings.heartbeat_seconds + 1
        while time.monotonic() < window_ends:
            assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
            assert http.get("/readyz").status_code == 503
            time.sleep(0.1)
    assert networkless_worker.name not in WorkerRegistry(redis_client, settings.key_prefix).alive(60)
