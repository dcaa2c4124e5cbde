"""Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI description."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis

from core.params import ClipParams, StyleParams
from restyle.jobs import JobStore, Reaper, Runs
from restyle.settings import Settings
from restyle.weights_notice import WEIGHTS_DESCRIPTION, untrained_notice
from tests.api.conftest import METRICS_TOKEN, SCRAPER, StartApiOn
from tests.api.storage_doubles import OUTAGE_MESSAGE, UnavailableStorage
from tests.support.api_server import ApiServer
from tests.support.jobs import finished, submit, wait_for
from tests.support.settings import ALICE, MakeSettings
from tests.support.worker_process import WorkerProcess


def test_healthz_answers_while_the_process_lives(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}


def test_readyz_names_the_live_workers(api: ApiServer, worker: WorkerProcess) -> None:
    with api.client(key=None) as http:
        response = http.get("/readyz")
    assert response.status_code == 200
    assert worker.name in response.json()["workers"]


def test_readyz_names_the_weights_the_workers_run(api: ApiServer, worker: WorkerProcess) -> None:
    with api.client(key=None) as http:
        response = http.get("/readyz")
    assert response.json()["weights"] == ["random(seed=0)"]


def test_readyz_says_what_random_weights_cost_and_how_to_fix_it(api: ApiServer, worker: WorkerProcess) -> None:
    with api.client(key=None) as http:
        response = http.get("/readyz")
    assert response.json()["weights_notice"] == untrained_notice("random(seed=0)")


def test_readyz_has_no_weights_notice_when_the_workers_run_imagenet_weights(
    imagenet_api: ApiServer, imagenet_worker: WorkerProcess
) -> None:
    with imagenet_api.client(key=None) as http:
        ready = http.get("/readyz").json()
    assert (ready["weights"], ready["weights_notice"]) == (["vgg19-imagenet"], None)


def test_the_weights_fields_say_what_each_name_means(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        schemas = http.get("/openapi.json").json()["components"]["schemas"]
    assert WEIGHTS_DESCRIPTION in schemas["Readiness"]["properties"]["weights"]["description"]
    assert WEIGHTS_DESCRIPTION in schemas["JobPublic"]["properties"]["weights"]["description"]


def test_readyz_names_the_storage(api: ApiServer, worker: WorkerProcess) -> None:
    with api.client(key=None) as http:
        response = http.get("/readyz")
    assert response.json()["storage"] == f"file://{api.settings.storage_dir.resolve()}"


def test_readyz_is_503_naming_a_storage_that_is_unavailable(
    make_settings: MakeSettings, start_api_on: StartApiOn
) -> None:
    settings = make_settings()
    api = start_api_on(settings, UnavailableStorage(settings.storage_dir, failing={"check"}))
    with api.client(key=None) as http:
        response = http.get("/readyz")
    assert response.status_code == 503
    where = f"file://{settings.storage_dir.resolve()}"
    assert response.json()["detail"] == f"the storage at {where} is unavailable: {OUTAGE_MESSAGE}"


def test_readyz_is_503_without_a_worker(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        response = http.get("/readyz")
    assert response.status_code == 503
    assert "no worker" in response.json()["detail"]


def test_metrics_count_requests_by_route(metered_api: ApiServer) -> None:
    with metered_api.client() as http:
        http.get("/v1/jobs")
        text = http.get("/metrics", headers=SCRAPER).text
    assert 'restyle_http_requests_total{method="GET",route="/v1/jobs",status="200"} 1.0' in text


def test_metrics_report_the_queue_depth(metered_api: ApiServer) -> None:
    with metered_api.client() as http:
        submit(http)
        submit(http)
        assert "restyle_queue_depth 2.0" in http.get("/metrics", headers=SCRAPER).text


def test_metrics_count_jobs_by_outcome_with_their_duration(
    client: httpx.Client, worker: WorkerProcess, metered_replica: ApiServer
) -> None:
    wait_for(client, submit(client).json()["id"], finished)
    with metered_replica.client(METRICS_TOKEN) as scraper:
        text = scraper.get("/metrics").text
    counter = 'restyle_jobs_finished_total{outcome="succeeded"}'
    succeeded = next(line for line in text.splitlines() if line.startswith(counter))
    assert float(succeeded.split()[-1]) >= 1
    assert "restyle_job_duration_seconds_count" in text


def test_metrics_count_reclaimed_leases_and_fenced_writes(
    metered_api: ApiServer, redis_client: redis.Redis[bytes]
) -> None:
    settings = metered_api.settings
    store = JobStore(redis_client, settings.key_prefix, settings.retention_seconds)
    with metered_api.client() as http:
        submit(http)
        run = Runs(store.ledger, lease_seconds=30).claim("worker-1")
        assert run is not None
        redis_client.delete(store.keys.lease(run.job_id))  # as if its worker had died a lease ago
        Reaper(store.ledger, lease_seconds=0.001, max_attempts=3).reclaim()
        run.renew()  # the dead run, come back: refused
        text = http.get("/metrics", headers=SCRAPER).text
    assert "restyle_leases_reclaimed_total 1.0" in text
    assert "restyle_fenced_writes_total 1.0" in text


def test_metrics_are_open_in_open_mode(make_settings: MakeSettings, start_api: Callable[[Settings], ApiServer]) -> None:
    with start_api(make_settings(api_keys=[])).client(key=None) as anonymous:
        assert anonymous.get("/metrics").status_code == 200


def test_metrics_need_the_metrics_token_when_api_keys_are_configured(metered_api: ApiServer) -> None:
    with metered_api.client(key=None) as anonymous:
        response = anonymous.get("/metrics")
    assert response.status_code == 401
    assert response.json()["detail"] == "send the metrics token: Authorization: Bearer <token>"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_metrics_token_is_401(metered_api: ApiServer) -> None:
    with metered_api.client(key="guess") as stranger:
        response = stranger.get("/metrics")
    assert (response.status_code, response.json()["detail"]) == (401, "unknown metrics token")


def test_an_api_key_does_not_open_the_metrics(metered_api: ApiServer) -> None:
    with metered_api.client(ALICE) as alice:
        assert alice.get("/metrics").status_code == 401


def test_an_api_key_as_access_token_does_not_open_the_metrics(metered_api: ApiServer) -> None:
    with metered_api.client(key=None) as anonymous:
        assert anonymous.get("/metrics", params={"access_token": ALICE}).status_code == 401


def test_with_api_keys_but_no_metrics_token_configured_metrics_are_401_saying_what_to_set(
    idle_api: ApiServer,
) -> None:
    with idle_api.client(ALICE) as alice:
        response = alice.get("/metrics")
    assert response.status_code == 401
    assert "set RESTYLE_METRICS_TOKEN" in response.json()["detail"]


def test_every_style_and_clip_parameter_is_a_documented_form_field(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        schema = http.get("/openapi.json").json()
    form = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    masks = {f"{kind}_{number}" for kind in ("mask", "source_mask") for number in range(1, 5)}
    files = {"content", "clip", "style", "webhook_url"}
    assert set(StyleParams.model_fields) | set(ClipParams.model_fields) | files | masks == set(form["properties"])
    size = StyleParams.model_json_schema()["properties"]["size"]
    assert form["properties"]["size"] == {
        **size,
        "maximum": 2048,
        "description": f"{size['description']} This server accepts up to 2048 px (RESTYLE_MAX_SIZE).",
    }


def test_multiscale_is_a_form_boolean_left_out_for_automatic(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        schema = http.get("/openapi.json").json()
    form = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    multiscale = form["properties"]["multiscale"]
    assert (multiscale["type"], "default" in multiscale) == ("boolean", False)
    assert "automatic" in multiscale["description"]


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
