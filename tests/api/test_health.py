"""Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI description."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis

from core.params import StyleParams
from restyle.jobs import JobStore, Reaper, Runs
from restyle.settings import Settings
from tests.conftest import ApiServer, MakeSettings, WorkerProcess, finished, submit, wait_for


def test_healthz_answers_while_the_process_lives(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}


def test_readyz_names_the_live_workers(api: ApiServer, worker: WorkerProcess) -> None:
    with api.client(key=None) as http:
        response = http.get("/readyz")
    assert response.status_code == 200
    assert worker.name in response.json()["workers"]


def test_readyz_is_503_without_a_worker(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        response = http.get("/readyz")
    assert response.status_code == 503
    assert "no worker" in response.json()["detail"]


def test_metrics_count_requests_by_route(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        http.get("/v1/jobs")
        text = http.get("/metrics").text
    assert 'restyle_http_requests_total{method="GET",route="/v1/jobs",status="200"} 1.0' in text


def test_metrics_report_the_queue_depth(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        submit(http)
        submit(http)
        assert "restyle_queue_depth 2.0" in http.get("/metrics").text


def test_metrics_count_jobs_by_outcome_with_their_duration(client: httpx.Client, worker: WorkerProcess) -> None:
    wait_for(client, submit(client).json()["id"], finished)
    text = client.get("/metrics").text
    counter = 'restyle_jobs_finished_total{outcome="succeeded"}'
    succeeded = next(line for line in text.splitlines() if line.startswith(counter))
    assert float(succeeded.split()[-1]) >= 1
    assert "restyle_job_duration_seconds_count" in text


def test_metrics_count_reclaimed_leases_and_fenced_writes(
    idle_api: ApiServer, redis_client: redis.Redis[bytes]
) -> None:
    settings = idle_api.settings
    store = JobStore(redis_client, settings.key_prefix, settings.retention_seconds)
    with idle_api.client() as http:
        submit(http)
        run = Runs(store.ledger, lease_seconds=30).claim("worker-1")
        assert run is not None
        redis_client.delete(store.keys.lease(run.job_id))  # as if its worker had died a lease ago
        Reaper(store.ledger, lease_seconds=0.001, max_attempts=3).reclaim()
        run.renew()  # the dead run, come back: refused
        text = http.get("/metrics").text
    assert "restyle_leases_reclaimed_total 1.0" in text
    assert "restyle_fenced_writes_total 1.0" in text


def test_every_style_parameter_is_a_documented_form_field(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        schema = http.get("/openapi.json").json()
    form = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(StyleParams.model_fields) | {"content", "style", "webhook_url"} == set(form["properties"])
    assert form["properties"]["size"] == StyleParams.model_json_schema()["properties"]["size"]


def test_the_interactive_docs_are_served(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        assert http.get("/docs").status_code == 200


def test_an_unreachable_redis_is_503_not_500(
    make_settings: MakeSettings, start_api: Callable[[Settings], ApiServer]
) -> None:
    server = start_api(make_settings(redis_url="redis://127.0.0.1:1/0"))
    with server.client() as http:
        response = http.get("/v1/jobs")
        ready = http.get("/readyz")
    assert (response.status_code, response.json()["code"]) == (503, "redis_unavailable")
    assert ready.status_code == 503


def test_configured_origins_may_call_the_api_from_a_browser(
    make_settings: MakeSettings, start_api: Callable[[Settings], ApiServer]
) -> None:
    server = start_api(make_settings(cors_origins=["https://app.example.com"]))
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    with server.client(key=None) as http:
        allowed = http.options("/v1/jobs", headers=preflight)
        stranger = http.options("/v1/jobs", headers={**preflight, "Origin": "https://evil.example.com"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in stranger.headers


def test_without_configured_origins_no_cors_headers_are_sent(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        response = http.get("/healthz", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers
