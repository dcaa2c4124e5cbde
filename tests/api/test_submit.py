"""Submitting jobs and getting results: the happy paths of POST /v1/jobs, end to end through a real worker."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis
from PIL import Image

from api.routes import jobs as job_routes
from restyle.jobs import input_keys
from restyle.settings import Settings
from restyle.storage.local import LocalStorage
from tests.support.api_server import ApiServer
from tests.support.jobs import finished, submit, wait_for
from tests.support.pictures import make_png
from tests.support.settings import MakeSettings
from tests.support.worker_process import WorkerProcess


def test_a_submitted_job_is_accepted_with_its_location(client: httpx.Client) -> None:
    response = submit(client)
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"
    assert response.headers["Location"].endswith(f"/v1/jobs/{job['id']}")


def test_an_upload_spooled_to_disk_is_stored_byte_for_byte(
    make_settings: MakeSettings, start_api: Callable[[Settings], ApiServer]
) -> None:
    settings = make_settings(max_upload_bytes=8 * 2**20)
    noise = Image.frombytes("RGB", (800, 800), random.Random(7).randbytes(800 * 800 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    photo = buffer.getvalue()  # about 1.9 MB: past the parser's 1 MB in-memory spool
    with start_api(settings).client() as http:
        job = submit(http, content=photo).json()
    content_key, _ = input_keys(job["id"], 1)
    assert LocalStorage(settings.storage_dir).get(content_key) == photo


def test_a_job_runs_to_a_result_of_the_requested_size(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client, content=make_png(48, 40), size=32).json()
    done = wait_for(client, job["id"], finished)
    assert done["status"] == "succeeded", done
    result = client.get(done["result_url"])
    assert result.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(result.content)).size == (32, 27)


def test_a_finished_job_reports_weights_losses_and_parameters(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client, style_weight="5000", iterations=4).json()
    done = wait_for(client, job["id"], finished)
    assert done["weights"] == "random(seed=0)"
    assert set(done["losses"]) == {"content", "style", "tv", "total"}
    assert (done["params"]["style_weight"], done["params"]["iterations"]) == (5000, 4)
    assert done["params"]["multiscale"] is None  # left out: automatic, one scale at this size
    assert done["progress"] == {
        "iteration": 4,
        "total": 4,
        "percent": 100.0,
        "stage": 1,
        "stages": 1,
        "size": 32,
        "remaining_seconds": 0.0,
        "frame": None,  # a picture has no frames
        "frames": None,
    }


def test_several_styles_are_blended_into_one_result(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client, styles=3, style_blend="3,1,1").json()
    done = wait_for(client, job["id"], finished)
    assert (done["status"], done["style_count"]) == ("succeeded", 3)
    assert done["params"]["style_blend"] == [3, 1, 1]


def test_the_result_has_the_content_type_of_the_output_format(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client, output_format="jpeg").json()
    done = wait_for(client, job["id"], finished)
    result = client.get(done["result_url"])
    assert result.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(result.content)).format == "JPEG"


def test_prefer_wait_answers_with_the_finished_job(client: httpx.Client, worker: WorkerProcess) -> None:
    response = submit(client, headers={"Prefer": "wait=60"})
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    assert response.headers["Preference-Applied"] == "wait=60"


def test_prefer_wait_gives_up_after_the_wait_and_answers_the_job_as_it_stands(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        response = submit(http, headers={"Prefer": "wait=1"})
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


def test_prefer_wait_answers_the_accepted_job_when_redis_goes_away_meanwhile(
    idle_api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    class RedisGone:
        def __init__(self, *args: object) -> None:
            pass

        async def changes(self, job_id: str) -> AsyncIterator[None]:
            raise redis.ConnectionError("Connection closed by server.")
            yield

    monkeypatch.setattr(job_routes, "JobWatcher", RedisGone)
    with idle_api.client() as http:
        response = submit(http, headers={"Prefer": "wait=5"})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"


def test_the_result_is_refused_while_the_job_is_unfinished(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        job = submit(http).json()
        response = http.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 409
    assert response.json()["code"] == "job_not_finished"


def test_the_same_idempotency_key_returns_the_same_job(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        first = submit(http, headers={"Idempotency-Key": "order-42"})
        again = submit(http, headers={"Idempotency-Key": "order-42"})
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"


def test_an_idempotency_key_reused_for_another_request_is_refused(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        submit(http, headers={"Idempotency-Key": "order-43"}, size=32)
        response = submit(http, headers={"Idempotency-Key": "order-43"}, size=48)
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"


def test_jobs_are_listed_newest_first_in_pages(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        ids = [submit(http).json()["id"] for _ in range(3)]
        first = http.get("/v1/jobs", params={"limit": 2}).json()
        second = http.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [job["id"] for job in first["jobs"] + second["jobs"]] == ids[::-1]
    assert second["next_cursor"] is None
