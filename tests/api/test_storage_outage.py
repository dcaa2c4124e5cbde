"""The storage failing under the API: a request it breaks is answered 503 ``storage_unavailable`` with a
Retry-After, and a submission it breaks leaves nothing behind: no job, no queue message, no files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

from restyle.jobs import JobStore
from restyle.settings import Settings
from tests.api.conftest import StartApiOn
from tests.api.storage_doubles import OUTAGE_MESSAGE, UnavailableStorage
from tests.support.api_server import ApiServer
from tests.support.jobs import finished, submit, wait_for
from tests.support.pictures import make_mask
from tests.support.settings import MakeSettings
from tests.support.worker_process import WorkerProcess


@pytest.fixture
def outage_settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


@pytest.fixture
def broken_mid_submission(outage_settings: Settings, start_api_on: StartApiOn) -> ApiServer:
    """An API whose storage takes a job's content, then fails on its first style: an outage mid-submission."""
    storage = UnavailableStorage(outage_settings.storage_dir, failing={"put"}, keys_containing="style")
    return start_api_on(outage_settings, storage)


def assert_storage_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["code"], response.json()["detail"]) == ("storage_unavailable", OUTAGE_MESSAGE)
    assert response.headers["Retry-After"] == "5"


def test_a_submission_the_storage_cannot_take_is_answered_503_storage_unavailable(
    broken_mid_submission: ApiServer,
) -> None:
    with broken_mid_submission.client() as http:
        assert_storage_unavailable(submit(http))


def test_a_submission_the_storage_cannot_take_leaves_no_job_behind(broken_mid_submission: ApiServer) -> None:
    with broken_mid_submission.client() as http:
        submit(http)
        assert http.get("/v1/jobs").json()["jobs"] == []


def test_a_submission_the_storage_cannot_take_is_never_queued(
    broken_mid_submission: ApiServer, redis_client: redis.Redis[bytes]
) -> None:
    settings = broken_mid_submission.settings
    store = JobStore(redis_client, settings.key_prefix, settings.retention_seconds)
    with broken_mid_submission.client() as http:
        submit(http)
    assert store.queue_depth() == 0
    assert redis_client.zcard(store.keys.unsent) == 0  # or a worker's housekeeping would queue it after all


def test_the_files_a_broken_submission_did_store_are_removed(broken_mid_submission: ApiServer) -> None:
    with broken_mid_submission.client() as http:
        submit(http)
    assert [path for path in Path(broken_mid_submission.settings.storage_dir).rglob("*") if path.is_file()] == []


def test_a_submission_whose_mask_the_storage_cannot_take_leaves_no_file_behind(
    outage_settings: Settings, start_api_on: StartApiOn
) -> None:
    storage = UnavailableStorage(outage_settings.storage_dir, failing={"put"}, keys_containing="mask")
    api = start_api_on(outage_settings, storage)
    with api.client() as http:
        assert_storage_unavailable(submit(http, masks={"mask_1": make_mask()}))
    assert [path for path in Path(outage_settings.storage_dir).rglob("*") if path.is_file()] == []


def test_a_retry_with_the_same_idempotency_key_once_the_storage_is_back_submits_anew(
    outage_settings: Settings, start_api_on: StartApiOn
) -> None:
    storage = UnavailableStorage(outage_settings.storage_dir, failing={"put"})
    api = start_api_on(outage_settings, storage)
    with api.client() as http:
        refused = submit(http, headers={"Idempotency-Key": "order-7"})
        storage.failing.clear()
        retried = submit(http, headers={"Idempotency-Key": "order-7"})
    assert refused.status_code == 503
    assert retried.status_code == 202, retried.text
    assert "Idempotent-Replayed" not in retried.headers


def test_a_download_the_storage_cannot_serve_is_answered_503_storage_unavailable(
    settings: Settings, client: httpx.Client, worker: WorkerProcess, start_api_on: StartApiOn
) -> None:
    job_id = submit(client).json()["id"]
    wait_for(client, job_id, finished)
    api = start_api_on(settings, UnavailableStorage(settings.storage_dir, failing={"get"}))
    with api.client() as http:
        assert_storage_unavailable(http.get(f"/v1/jobs/{job_id}/result"))
