"""API keys: each key sees only its own jobs; without configured keys the service runs open."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.main import create_app
from tests.support.api_server import ApiServer
from tests.support.jobs import submit
from tests.support.settings import BOB, MakeSettings


@pytest.fixture
def bob(api: ApiServer) -> Iterator[httpx.Client]:
    with api.client(BOB) as http:
        yield http


@pytest.fixture
def alices_job(idle_api: ApiServer) -> str:
    with idle_api.client() as http:
        job_id: str = submit(http).json()["id"]
    return job_id


def test_a_request_without_a_key_is_401_with_a_bearer_challenge(api: ApiServer) -> None:
    with api.client(key=None) as anonymous:
        response = anonymous.get("/v1/jobs")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_key_is_401(api: ApiServer) -> None:
    with api.client(key="guess") as stranger:
        assert stranger.get("/v1/jobs").json()["code"] == "unauthorized"


def test_another_keys_job_is_404(idle_api: ApiServer, alices_job: str) -> None:
    with idle_api.client(BOB) as bob:
        assert bob.get(f"/v1/jobs/{alices_job}").status_code == 404


def test_another_keys_job_cannot_be_canceled(idle_api: ApiServer, alices_job: str) -> None:
    with idle_api.client(BOB) as bob:
        assert bob.post(f"/v1/jobs/{alices_job}/cancel").status_code == 404
    with idle_api.client() as alice:
        assert alice.get(f"/v1/jobs/{alices_job}").json()["status"] == "queued"


def test_another_keys_result_is_404(idle_api: ApiServer, alices_job: str) -> None:
    with idle_api.client(BOB) as bob:
        assert bob.get(f"/v1/jobs/{alices_job}/result").status_code == 404


def test_a_key_lists_only_its_own_jobs(idle_api: ApiServer, alices_job: str) -> None:
    with idle_api.client(BOB) as bob:
        bobs_job = submit(bob).json()["id"]
        assert [job["id"] for job in bob.get("/v1/jobs").json()["jobs"]] == [bobs_job]


def test_browsers_may_pass_the_key_as_access_token_on_get(api: ApiServer, alices_job: str) -> None:
    with api.client(key=None) as anonymous:
        assert anonymous.get("/v1/jobs", params={"access_token": BOB}).status_code == 200


def test_access_token_is_not_accepted_for_changes(api: ApiServer) -> None:
    with api.client(key=None) as anonymous:
        assert anonymous.post("/v1/jobs", params={"access_token": BOB}).status_code == 401


def test_without_keys_anyone_may_submit(make_settings: MakeSettings, start_api: Any) -> None:
    server: ApiServer = start_api(make_settings(api_keys=[]))
    with server.client(key=None) as anonymous:
        assert submit(anonymous).status_code == 202


def test_without_keys_the_api_warns_that_it_is_open(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="api.main"):
        create_app(make_settings(api_keys=[]))
    assert "open to anyone" in caplog.text
