"""Nothing waits on a dead worker: a job whose worker dies or freezes runs again on another within a lease.

These run with the default lease (10 s) unless a test says why it shortens it.
"""

from __future__ import annotations

import io
import signal
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis
from PIL import Image

from restyle.jobs import JobStore
from restyle.settings import Settings
from tests.support.api_server import ApiServer
from tests.support.jobs import Json, finished, running_with_progress, submit, wait_for
from tests.support.settings import MakeSettings
from tests.support.waiting import eventually
from tests.support.worker_process import WorkerProcess
from worker.lifecycle import PASSES_PER_LEASE


def second_run_started(job: Json) -> bool:
    return len(job["runs"]) >= 2


@pytest.mark.slow  # waits out the killed worker's lease, by nature
def test_a_killed_workers_job_is_finished_by_another_worker_within_the_lease(
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings()
    api = start_api(settings)
    workers = {worker.name: worker for worker in (start_worker(settings), start_worker(settings))}
    with api.client() as http:
        job = submit(http, size=32, iterations=200).json()
        holder = workers[wait_for(http, job["id"], running_with_progress)["runs"][0]["worker"]]
        holder.kill()
        killed_at = datetime.now(UTC)
        again = wait_for(http, job["id"], second_run_started)
        done = wait_for(http, job["id"], finished)
        result = http.get(f"/v1/jobs/{job['id']}/result")
    lost, rerun = done["runs"]
    assert (lost["worker"], lost["outcome"]) == (holder.name, "lost")
    assert rerun["outcome"] == "succeeded" and rerun["worker"] != holder.name
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert Image.open(io.BytesIO(result.content)).size == (32, 27)
    # The documented bound: the lease, plus one housekeeping pass (a quarter lease), plus a second of slack.
    requeued_after = (datetime.fromisoformat(again["runs"][0]["ended_at"]) - killed_at).total_seconds()
    assert requeued_after <= settings.lease_seconds * (1 + 1 / PASSES_PER_LEASE) + 1


def test_a_frozen_workers_late_result_and_progress_are_refused(
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
    redis_client: redis.Redis[bytes],
) -> None:
    # A 3 s lease so the freeze outlasts it in seconds rather than tens of seconds.
    settings = make_settings(lease_seconds=3)
    store = JobStore(redis_client, settings.key_prefix, settings.retention_seconds)
    api = start_api(settings)
    frozen = start_worker(settings)
    with api.client() as http:
        job = submit(http, size=32, iterations=120).json()
        wait_for(http, job["id"], running_with_progress)
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            start_worker(settings)
            done = wait_for(http, job["id"], finished)
        finally:
            frozen.process.send_signal(signal.SIGCONT)
        # The frozen run's last act is one of these lines: after it, it writes nothing more.
        run_over = ("the run that replaced this one owns the job", "outcome not recorded")
        eventually(
            lambda: any(line in frozen.log() for line in run_over),
            lambda: f"the frozen run never ended:\n{frozen.log()}",
        )
        after = http.get(f"/v1/jobs/{job['id']}").json()
    assert store.stats().fenced_writes >= 1
    assert after == done
    assert [run["outcome"] for run in done["runs"]] == ["lost", "succeeded"]
    assert done["runs"][0]["worker"] == frozen.name
    assert "lost its lease" in frozen.log()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_worker_shutting_down_hands_its_job_back_to_the_queue(
    how: signal.Signals,
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    # An hour-long lease: the job can only come back this soon by being handed back.
    settings = make_settings(lease_seconds=3600)
    api = start_api(settings)
    first = start_worker(settings)
    with api.client() as http:
        job = submit(http, size=32, iterations=5000).json()
        wait_for(http, job["id"], running_with_progress)
        first.shut_down(how)
        handed_back = http.get(f"/v1/jobs/{job['id']}").json()
        start_worker(settings)
        running_again = wait_for(http, job["id"], running_with_progress)
        http.post(f"/v1/jobs/{job['id']}/cancel")  # the rest of the run proves nothing more
    assert handed_back["status"] == "queued", handed_back
    assert handed_back["progress"]["iteration"] == 0 and handed_back["attempts"] == 0
    assert [run["outcome"] for run in handed_back["runs"]] == ["handed_back"]
    assert running_again["attempts"] == 1
