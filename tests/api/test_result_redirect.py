"""``RESTYLE_RESULT_REDIRECT``: downloads answered with 307 to the store's own short-lived URL when it has
one, streamed by the API otherwise; the job JSON always links the API."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from restyle.jobs.records import preview_key, result_key
from restyle.settings import Settings
from restyle.storage.local import LocalStorage
from tests.api.conftest import StartApiOn
from tests.api.storage_doubles import URL_BASE, PresigningStorage
from tests.support.api_server import ApiServer
from tests.support.jobs import Json, finished, submit, wait_for
from tests.support.worker_process import WorkerProcess

URL_SECONDS = 120


@pytest.fixture(scope="module")
def done(api: ApiServer, worker: WorkerProcess) -> Json:
    """A job of the session's service that succeeded, with a preview (snapshots every 2 of its 3 iterations)."""
    with api.client() as http:
        return wait_for(http, submit(http).json()["id"], finished)


@pytest.fixture(scope="module")
def redirecting(settings: Settings, start_api_on: StartApiOn) -> ApiServer:
    """The session's service with redirects on, over a store that has download URLs."""
    configured = settings.model_copy(update={"result_redirect": True, "result_url_seconds": URL_SECONDS})
    return start_api_on(configured, PresigningStorage(settings.storage_dir))


def download(api: ApiServer, job: Json, what: str) -> httpx.Response:
    with api.client() as http:
        return http.get(f"/v1/jobs/{job['id']}/{what}", follow_redirects=False)


def presigned(key: str, media_type: str, filename: str) -> str:
    return f"{URL_BASE}{key}?{urlencode({'type': media_type, 'name': filename, 'expires': URL_SECONDS})}"


def test_the_result_redirects_to_the_stores_url_for_it(redirecting: ApiServer, done: Json) -> None:
    response = download(redirecting, done, "result")
    assert response.status_code == 307
    job_id = done["id"]
    assert response.headers["Location"] == presigned(result_key(job_id, 1), "image/png", f"restyle-{job_id}.png")


def test_the_preview_redirects_to_the_stores_url_for_it(redirecting: ApiServer, done: Json) -> None:
    response = download(redirecting, done, "preview")
    assert response.status_code == 307
    job_id = done["id"]
    expected = presigned(preview_key(job_id, 1), "image/jpeg", f"restyle-{job_id}-preview.jpg")
    assert response.headers["Location"] == expected


def test_a_redirect_is_never_cached_as_its_url_expires(redirecting: ApiServer, done: Json) -> None:
    assert download(redirecting, done, "result").headers["Cache-Control"] == "no-store"


def test_the_job_links_the_apis_result_url_not_the_stores(redirecting: ApiServer, done: Json) -> None:
    with redirecting.client() as http:
        job = http.get(f"/v1/jobs/{done['id']}").json()
    assert job["result_url"] == f"{redirecting.url}/v1/jobs/{done['id']}/result"


def test_a_store_without_download_urls_is_streamed_with_redirects_on(
    settings: Settings, start_api_on: StartApiOn, done: Json
) -> None:
    api = start_api_on(settings.model_copy(update={"result_redirect": True}), LocalStorage(settings.storage_dir))
    response = download(api, done, "result")
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png")


def test_without_redirects_a_store_with_download_urls_is_streamed(
    settings: Settings, start_api_on: StartApiOn, done: Json
) -> None:
    response = download(start_api_on(settings, PresigningStorage(settings.storage_dir)), done, "result")
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png")


@pytest.mark.parametrize("what", ["result", "preview"])
def test_the_redirect_is_documented_with_its_location(api: ApiServer, what: str) -> None:
    with api.client(key=None) as http:
        responses = http.get("/openapi.json").json()["paths"][f"/v1/jobs/{{job_id}}/{what}"]["get"]["responses"]
    assert "Location" in responses["307"]["headers"]
