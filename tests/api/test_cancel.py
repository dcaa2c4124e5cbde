"""Canceling: a queued job never starts, a running one stops within an iteration."""

from __future__ import annotations

import httpx

from tests.support.api_server import ApiServer
from tests.support.jobs import finished, running_with_progress, submit, wait_for
from tests.support.worker_process import WorkerProcess

# Far more work than any test waits for: such a job only ends by being canceled.
ENDLESS_ITERATIONS = 5000


def test_a_running_job_stops_and_ends_canceled(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client, size=48, iterations=ENDLESS_ITERATIONS).json()
    wait_for(client, job["id"], running_with_progress)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["cancel_requested"] is True
    done = wait_for(client, job["id"], finished)
    assert done["status"] == "canceled"
    assert done["progress"]["iteration"] < ENDLESS_ITERATIONS


def test_a_canceled_queued_job_never_starts(client: httpx.Client, worker: WorkerProcess) -> None:
    blocker = submit(client, size=48, iterations=ENDLESS_ITERATIONS).json()
    wait_for(client, blocker["id"], running_with_progress)
    waiting = submit(client).json()
    assert client.post(f"/v1/jobs/{waiting['id']}/cancel").json()["status"] == "canceled"
    client.post(f"/v1/jobs/{blocker['id']}/cancel")
    # The queue is first-in first-out: once a later job is done, the worker has seen the canceled one.
    later = submit(client).json()
    wait_for(client, later["id"], finished)
    never_started = client.get(f"/v1/jobs/{waiting['id']}").json()
    assert (never_started["status"], never_started["started_at"], never_started["attempts"]) == ("canceled", None, 0)


def test_canceling_a_canceled_job_answers_it_unchanged(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        job = submit(http).json()
        first = http.post(f"/v1/jobs/{job['id']}/cancel")
        again = http.post(f"/v1/jobs/{job['id']}/cancel")
    assert (again.status_code, again.json()) == (200, first.json())


def test_a_succeeded_job_cannot_be_canceled(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client).json()
    wait_for(client, job["id"], finished)
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["code"] == "job_already_finished"


def test_a_canceled_job_has_no_result(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        job = submit(http).json()
        http.post(f"/v1/jobs/{job['id']}/cancel")
        response = http.get(f"/v1/jobs/{job['id']}/result")
    assert (response.status_code, response.json()["code"]) == (409, "job_has_no_result")
