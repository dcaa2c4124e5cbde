"""Redis killed and started again under a busy service: every job it had accepted still ends succeeded.

Redis dies by SIGKILL while one job runs and others wait, and comes back with its append-only file. Meanwhile
the running job's engine goes on, its worker waits to record the outcome, the API answers 503; afterwards the
job must not be given up for lost (its lease lapsed with Redis, not with its worker) and the queued jobs must
still run. Each test has a private Redis, worker and API: the shared Redis must never go down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from restyle.jobs import JobStore
from restyle.settings import Settings
from tests.support import PATIENCE_SECONDS
from tests.support.api_server import ApiServer
from tests.support.jobs import Json, finished, running_with_progress, submit, wait_for
from tests.support.settings import MakeSettings
from tests.support.worker_process import WorkerProcess
from tests.worker.conftest import RedisServer

# Enough iterations at 32 px that the job is still running when Redis dies, and for a few seconds after.
RUNNING_ITERATIONS = 300


@dataclass
class Service:
    """One API and one worker on a Redis that the test may kill."""

    redis: RedisServer
    settings: Settings
    api: ApiServer
    worker: WorkerProcess


@pytest.fixture
def service(private_redis: RedisServer, make_settings: MakeSettings, tmp_path: Path) -> Iterator[Service]:
    """Stopped before its Redis is killed for good, so no process is left retrying a Redis that is gone."""
    settings = make_settings(redis_url=private_redis.url)
    api = ApiServer(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        with private_redis.client() as client:
            worker.wait_ready(client)
        yield Service(private_redis, settings, api, worker)
    finally:
        worker.stop()
        api.stop()


def _finished_through_outage(http: httpx.Client, job_id: str) -> Json:
    """Poll a job until it is final, riding out 503s (Redis away) and refused connections; ``wait_for`` would
    fail at the first of them."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    last: httpx.Response | None = None
    while True:
        try:
            last = http.get(f"/v1/jobs/{job_id}")
        except httpx.TransportError:
            last = None
        if last is not None and last.status_code != 503:
            last.raise_for_status()
            job: Json = last.json()
            if finished(job):
                return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} never finished after Redis came back (last answer: {last and last.text})")
        time.sleep(0.1)


def _submitted_through_outage(http: httpx.Client) -> Json:
    """Submit a small job, trying again until the API can reach Redis and accepts it."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        try:
            response = submit(http, size=32, iterations=3)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code != 503:
            assert response.status_code == 202, response.text
            job: Json = response.json()
            return job
        if time.monotonic() > deadline:
            pytest.fail("the API never accepted a job after Redis came back")
        time.sleep(0.2)


@dataclass(frozen=True)
class Restart:
    """What a Redis restart under load left: the job that was running, the others, and when Redis died."""

    running: Json
    others: list[Json]
    killed_at: datetime
    left_queued: int
    left_running: int

    @property
    def jobs(self) -> list[Json]:
        return [self.running, *self.others]


def _restart_redis_under_load(service: Service, outage_seconds: float) -> Restart:
    """Kill Redis while one job runs and three wait, keep it down for ``outage_seconds``, start it again,
    submit one more job, and wait for every job to end."""
    with service.api.client() as http:
        running = submit(http, size=32, iterations=RUNNING_ITERATIONS).json()
        queued = [submit(http, size=32, iterations=3).json() for _ in range(3)]
        before = wait_for(http, running["id"], running_with_progress)
        waiting = [http.get(f"/v1/jobs/{job['id']}").json()["status"] for job in queued]
        assert before["progress"]["iteration"] < RUNNING_ITERATIONS / 2, "too fast to be running when Redis dies"
        assert waiting == ["queued"] * 3

        killed_at = datetime.now().astimezone()
        service.redis.kill()
        time.sleep(outage_seconds)  # the outage itself: how long Redis stays down is what the test varies
        service.redis.start()

        after = _submitted_through_outage(http)
        jobs = [_finished_through_outage(http, job["id"]) for job in [running, *queued, after]]
    with service.redis.client() as client:
        stats = JobStore(client, service.settings.key_prefix, service.settings.retention_seconds).stats()
    return Restart(jobs[0], jobs[1:], killed_at, left_queued=stats.queued, left_running=stats.running)


def _assert_all_succeeded_in_one_run(restart: Restart) -> None:
    assert [job["status"] for job in restart.jobs] == ["succeeded"] * len(restart.jobs), restart.jobs
    # It ran across the outage (its run ended after Redis died) and that run was not given up for lost: the
    # lease lapsed because Redis was away, not because the worker was.
    running = restart.running
    assert [run["outcome"] for run in running["runs"]] == ["succeeded"], running
    assert datetime.fromisoformat(running["runs"][0]["ended_at"]) > restart.killed_at, running
    assert running["attempts"] == 1
    # And the indexes agree with the records: no job is left behind as queued or running.
    assert (restart.left_queued, restart.left_running) == (0, 0)


def test_every_accepted_job_succeeds_when_redis_is_killed_and_back_within_seconds(service: Service) -> None:
    restart = _restart_redis_under_load(service, outage_seconds=5)
    _assert_all_succeeded_in_one_run(restart)


# Slow by nature (about 1.5 min; deselect with -m "not slow"): Redis stays down for more than a minute, longer
# than every retry and reconnect back-off of the worker, Celery and the API, which is the outage that once
# stranded the running job's record in `running`.
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_every_accepted_job_succeeds_when_redis_is_killed_and_down_for_over_a_minute(service: Service) -> None:
    restart = _restart_redis_under_load(service, outage_seconds=70)
    _assert_all_succeeded_in_one_run(restart)
