"""The task's outcomes beyond success: typed engine errors, vanished inputs, surplus messages, time limits.

Some jobs are written straight into the store and queued by task name, as the API does, to reach states
the API would refuse to create.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import redis

from restyle.broker import create_celery, enqueue
from restyle.jobs import JobStore
from restyle.settings import Settings
from tests.support.api_server import ApiServer
from tests.support.jobs import finished, submit, wait_for
from tests.support.pictures import make_png
from tests.support.settings import MakeSettings
from tests.support.worker_process import WorkerProcess
from tests.worker.conftest import record_job


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis[bytes]) -> JobStore:
    return JobStore(redis_client, settings.key_prefix, settings.retention_seconds)


def queue_job(settings: Settings, store: JobStore, content: bytes | None, style: bytes, send: bool = True) -> str:
    """Store the inputs (no content file when ``content`` is None) and queue a job for them.

    ``send``: False records the job without releasing it or sending its message, as an API that died in
    between would.
    """
    record = record_job(settings, store, content, style)
    if send:
        store.release(record)
        enqueue(create_celery(settings), settings)
        store.mark_sent(record.id)
    return record.id


def test_an_engine_error_fails_the_job_with_its_code_and_message(
    settings: Settings, store: JobStore, client: httpx.Client, worker: WorkerProcess
) -> None:
    job_id = queue_job(settings, store, b"not a picture", make_png())
    done = wait_for(client, job_id, finished)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "not_an_image"
    assert done["error"]["message"].startswith("content ")


def test_a_vanished_input_fails_the_job_saying_so(
    settings: Settings, store: JobStore, client: httpx.Client, worker: WorkerProcess
) -> None:
    job_id = queue_job(settings, store, None, make_png())
    done = wait_for(client, job_id, finished)
    assert (done["status"], done["error"]["code"]) == ("failed", "input_missing")


def test_a_surplus_message_runs_nothing_twice(
    settings: Settings, store: JobStore, client: httpx.Client, worker: WorkerProcess
) -> None:
    job_id = submit(client).json()["id"]
    wait_for(client, job_id, finished)
    before = store.get(job_id)
    enqueue(create_celery(settings), settings)  # as a redelivery after the visibility timeout would
    # First in, first out: once a later job is done, the worker has taken the surplus message.
    wait_for(client, submit(client).json()["id"], finished)
    assert store.get(job_id) == before


def test_a_job_recorded_but_never_queued_is_queued_by_a_worker(
    settings: Settings, store: JobStore, client: httpx.Client, worker: WorkerProcess
) -> None:
    job_id = queue_job(settings, store, make_png(), make_png(), send=False)
    assert wait_for(client, job_id, finished)["status"] == "succeeded"


def test_a_run_over_the_time_limit_fails_the_job(
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(job_time_limit=1, visibility_timeout=2)
    api = start_api(settings)
    start_worker(settings)
    with api.client() as http:
        done = wait_for(http, submit(http, size=48, iterations=5000).json()["id"], finished)
    assert (done["status"], done["error"]["code"]) == ("failed", "time_limit_exceeded")


def test_a_memory_budget_that_not_even_one_tile_fits_fails_the_job_saying_so(
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(memory_budget=1024)
    api = start_api(settings)
    start_worker(settings)
    with api.client() as http:
        done = wait_for(http, submit(http).json()["id"], finished)
    assert (done["status"], done["error"]["code"]) == ("failed", "memory_budget_too_small")
    assert done["error"]["message"]
