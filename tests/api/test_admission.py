"""Admission of new jobs under load: the queue-depth cap and the per-key cap hold under concurrency, and a free
worker serves the keys with waiting jobs in turn, so one key's flood neither overfills the queue nor starves
another key. End to end: real API, real Redis, real workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
import redis

from restyle.jobs import JobStore
from restyle.settings import Settings
from tests.support.api_server import ApiServer
from tests.support.jobs import Json, finished, submit, wait_for
from tests.support.settings import ALICE, BOB, MakeSettings
from tests.support.worker_process import WorkerProcess

StartApi = Callable[[Settings], ApiServer]
StartWorker = Callable[[Settings], WorkerProcess]

# The flood: 50 concurrent clients, 10 submissions each, against a queue that holds 100 and no worker. The
# flood takes about 5 s; the 100 admitted jobs (1 iteration at 32 px) then run in 15–20 s, worker start-up
# included, on one CPU worker of a quiet 2-core machine (about a minute when other tests share its cores).
CLIENTS, SUBMISSIONS_PER_CLIENT, QUEUE_DEPTH = 50, 10, 100


def _tiny_job(http: httpx.Client) -> httpx.Response:
    return submit(http, size=32, iterations=1)


def _start_of_first_run(job: Json) -> datetime:
    return datetime.fromisoformat(job["runs"][0]["started_at"])


def _problem_code(response: httpx.Response) -> str:
    code: str = response.json()["code"]
    return code


# The queue-depth cap -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flood:
    """What a flood of concurrent submissions got back, and the queue depths seen while it lasted."""

    settings: Settings
    api: ApiServer
    responses: list[tuple[str, httpx.Response]]  # (API key, answer)
    depths: list[int]

    @property
    def admitted(self) -> list[tuple[str, httpx.Response]]:
        return [(key, response) for key, response in self.responses if response.status_code == 202]

    @property
    def refused(self) -> list[httpx.Response]:
        return [response for _, response in self.responses if response.status_code != 202]


@pytest.fixture(scope="module")
def flood(make_settings: MakeSettings, start_api: StartApi, redis_client: redis.Redis[bytes]) -> Flood:
    """Every client (half of them Alice's, half Bob's) submits at once, while a thread samples the queue depth;
    no worker consumes the queue meanwhile, so every admitted job is still queued at the end."""
    settings = make_settings(max_queue_depth=QUEUE_DEPTH)
    api = start_api(settings)
    store = JobStore(redis_client, settings.key_prefix, settings.retention_seconds)
    depths: list[int] = []
    flooding = threading.Event()

    def sample() -> None:
        while flooding.is_set():
            depths.append(store.queue_depth())
            time.sleep(0.005)

    start = threading.Barrier(CLIENTS)

    def submissions(index: int) -> list[tuple[str, httpx.Response]]:
        key = (ALICE, BOB)[index % 2]
        with api.client(key) as http:
            start.wait()
            return [(key, _tiny_job(http)) for _ in range(SUBMISSIONS_PER_CLIENT)]

    flooding.set()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = [answer for answers in pool.map(submissions, range(CLIENTS)) for answer in answers]
    finally:
        flooding.clear()
        sampler.join()
    depths.append(store.queue_depth())
    return Flood(settings, api, answers, depths)


def test_a_flood_of_concurrent_submissions_admits_exactly_as_many_jobs_as_the_queue_holds(flood: Flood) -> None:
    assert len(flood.responses) == CLIENTS * SUBMISSIONS_PER_CLIENT
    assert len(flood.admitted) == QUEUE_DEPTH
    assert flood.depths[-1] == QUEUE_DEPTH


def test_the_rest_of_a_flood_is_refused_as_queue_full_with_a_retry_after(flood: Flood) -> None:
    refused = flood.refused
    assert len(refused) == CLIENTS * SUBMISSIONS_PER_CLIENT - QUEUE_DEPTH
    assert {response.status_code for response in refused} == {503}
    assert {_problem_code(response) for response in refused} == {"queue_full"}
    assert {response.headers["Retry-After"] for response in refused} == {str(flood.settings.retry_after_seconds)}


def test_the_queue_never_holds_more_than_its_cap_during_a_flood(flood: Flood) -> None:
    assert len(flood.depths) > 10, "the sampler barely ran; the flood was not observed"
    assert max(flood.depths) <= QUEUE_DEPTH


def test_a_refused_submission_leaves_no_job_behind(flood: Flood) -> None:
    listed = []
    for key in (ALICE, BOB):
        with flood.api.client(key) as http:
            listed += [job["id"] for job in http.get("/v1/jobs", params={"limit": 100}).json()["jobs"]]
    assert sorted(listed) == sorted(response.json()["id"] for _, response in flood.admitted)


@pytest.mark.slow  # every admitted job of the flood runs, one after another on one worker
def test_every_job_admitted_in_a_flood_runs_to_success(flood: Flood, start_worker: StartWorker) -> None:
    start_worker(flood.settings)
    outcomes = []
    for key, response in flood.admitted:
        with flood.api.client(key) as http:
            outcomes.append(wait_for(http, response.json()["id"], finished)["status"])
    assert outcomes == ["succeeded"] * QUEUE_DEPTH


# The per-key cap ---------------------------------------------------------------------------------------------

PER_KEY = 3


def test_a_key_at_its_limit_of_active_jobs_is_refused_with_429_and_a_retry_after(
    make_settings: MakeSettings, start_api: StartApi
) -> None:
    settings = make_settings(max_active_jobs_per_key=PER_KEY)
    with start_api(settings).client(ALICE) as alice:
        admitted = [_tiny_job(alice).status_code for _ in range(PER_KEY)]
        refused = _tiny_job(alice)
    assert admitted == [202] * PER_KEY
    assert refused.status_code == 429
    assert _problem_code(refused) == "too_many_active_jobs"
    assert refused.headers["Retry-After"] == str(settings.retry_after_seconds)


def test_concurrent_submissions_of_one_key_never_exceed_its_limit(
    make_settings: MakeSettings, start_api: StartApi
) -> None:
    api = start_api(make_settings(max_active_jobs_per_key=PER_KEY))
    start = threading.Barrier(20)

    def one() -> httpx.Response:
        with api.client(ALICE) as alice:
            start.wait()
            return _tiny_job(alice)

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(future.result().status_code for future in [pool.submit(one) for _ in range(20)])
    assert statuses == [202] * PER_KEY + [429] * (20 - PER_KEY)


def test_another_key_is_admitted_and_served_while_one_key_is_at_its_limit(
    make_settings: MakeSettings, start_api: StartApi, start_worker: StartWorker
) -> None:
    settings = make_settings(max_active_jobs_per_key=PER_KEY)
    api = start_api(settings)
    with api.client(ALICE) as alice, api.client(BOB) as bob:
        alices = [_tiny_job(alice).json() for _ in range(PER_KEY)]
        assert _tiny_job(alice).status_code == 429
        bobs = _tiny_job(bob)
        assert bobs.status_code == 202
        start_worker(settings)
        bobs_done = wait_for(bob, bobs.json()["id"], finished)
        alices_done = [wait_for(alice, job["id"], finished) for job in alices]
    assert bobs_done["status"] == "succeeded", bobs_done
    # Bob's job did not wait for Alice's: it started while her second and third were still queued.
    assert _start_of_first_run(bobs_done) < min(_start_of_first_run(job) for job in alices_done[1:])


def test_a_key_is_admitted_again_once_its_active_jobs_finish(
    make_settings: MakeSettings, start_api: StartApi, start_worker: StartWorker
) -> None:
    settings = make_settings(max_active_jobs_per_key=PER_KEY)
    api = start_api(settings)
    with api.client(ALICE) as alice:
        jobs = [_tiny_job(alice).json() for _ in range(PER_KEY)]
        start_worker(settings)
        for job in jobs:
            wait_for(alice, job["id"], finished)
        again = _tiny_job(alice)
    assert again.status_code == 202, again.text


# Fair order --------------------------------------------------------------------------------------------------


def test_a_free_worker_serves_the_keys_with_waiting_jobs_in_turn(
    make_settings: MakeSettings, start_api: StartApi, start_worker: StartWorker
) -> None:
    """Least recently served key first: Alice, who queued first, is served first; then each claim goes to the
    key served longest ago, so Bob's two jobs come second and fourth, and Alice's rest once Bob has none left.
    Within a key, oldest first."""
    settings = make_settings()
    api = start_api(settings)
    with api.client(ALICE) as alice, api.client(BOB) as bob:
        alices = [_tiny_job(alice).json()["id"] for _ in range(4)]
        bobs = [_tiny_job(bob).json()["id"] for _ in range(2)]
        start_worker(settings)
        done = [wait_for(alice, job_id, finished) for job_id in alices]
        done += [wait_for(bob, job_id, finished) for job_id in bobs]
    order = [job["id"] for job in sorted(done, key=_start_of_first_run)]
    a1, a2, a3, a4 = alices
    b1, b2 = bobs
    assert order == [a1, b1, a2, b2, a3, a4]
