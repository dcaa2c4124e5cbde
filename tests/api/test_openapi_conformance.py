"""The API holds to its own OpenAPI document, checked by Schemathesis with every check (``--checks all``) in every
phase: the schema's examples, coverage (boundary values, missing and wrong parameters, methods a path does not
serve), fuzzing, and the stateful phase, which follows the document's links from a job just submitted to its
status, events, preview, result and cancel.

It runs the engine that ``schemathesis run`` runs, in this process, against a real service: the API in uvicorn on
loopback, Redis, and a Celery worker that runs the jobs Schemathesis manages to submit. Generation is seeded and
derandomized, so the inputs repeat from run to run (the stateful phase's path also depends on how far the worker
has got); a failure lists each failed check with the answer and a curl command that repeats it.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
import schemathesis
from PIL import Image, ImageDraw
from schemathesis import Case, GenerationMode, HookContext
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.recorder import CheckFailureInfo, ScenarioRecorder

from core.params import ClipParams

SEED = 20_260_601
# Per operation in the examples and fuzzing phases; scenarios in the stateful phase, each up to STATEFUL_STEPS calls.
MAX_EXAMPLES = 25
STATEFUL_STEPS = 10
# What the links of POST /v1/jobs lead to (api/routes/jobs.py): the stateful phase may follow only these.
LINKED = {
    "GET /v1/jobs/{job_id}",
    "GET /v1/jobs/{job_id}/events",
    "GET /v1/jobs/{job_id}/preview",
    "GET /v1/jobs/{job_id}/result",
    "POST /v1/jobs/{job_id}/cancel",
}
SUBMIT = "POST /v1/jobs"


class RunningApi(Protocol):
    """What this module uses of the ``start_api`` fixture's servers."""

    url: str

    def client(self, key: str | None = ...) -> httpx.Client: ...


def picture(width: int, height: int) -> bytes:
    """A small PNG with some structure, big enough for the engine at this service's sizes."""
    image = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 6):
        draw.line([(x, 0), (x + height, height)], fill=(230, 200, 60), width=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def left_half_mask(width: int, height: int) -> bytes:
    """A greyscale mask, white over its left half and black over the rest."""
    image = Image.new("L", (width, height), 0)
    image.paste(255, (0, 0, width // 2, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


PHOTO, PAINTING, MASK = picture(64, 48), picture(48, 64), left_half_mask(32, 24)


@pytest.fixture(scope="module")
def service(make_settings: Callable[..., Any], start_api: Callable[[Any], Any], start_worker: Any) -> Iterator[Any]:
    """A service of its own (the session's ``api`` takes webhooks, and its shared worker would get jobs of up to
    2048 px): webhooks off, as a server without RESTYLE_WEBHOOK_SECRET has them, and a 64 px size cap with room in
    the queue, so the jobs Schemathesis submits stay small for this worker; Prefer: wait holds an answer 1 s at
    most. Jobs still queued or running at the end are canceled, to leave the machine idle."""
    settings = make_settings(max_size=64, max_queue_depth=10_000, max_wait_seconds=1, webhook_secret=None)
    api = start_api(settings)
    start_worker(settings)
    yield api
    cancel_unfinished_jobs(api)


def cancel_unfinished_jobs(api: RunningApi) -> None:
    with api.client() as http:
        cursor: str | None = None
        while True:
            page = http.get("/v1/jobs", params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
            for job in page["jobs"]:
                if job["status"] in ("queued", "running"):
                    http.post(f"/v1/jobs/{job['id']}/cancel")
            cursor = page["next_cursor"]
            if cursor is None:
                return


def conformance_config(authorization: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": authorization},
            "continue-on-failure": True,  # report every failed check, not the first of each operation
            "checks": {"enabled": True},  # --checks all
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            # An event stream stays open until its job ends; its first event (the job) is what there is to check.
            "max-stream-events": 1,
            "operations": [
                {
                    "include-operation-id": "create_job",
                    # Whether an upload is a picture (or a mask) the engine can use, and style_blend's count of the
                    # style files and whether a mask's style was sent, are beyond JSON Schema: schema-valid forms are
                    # refused (422) for them by design.
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
                {
                    "include-operation-id": "get_preview",
                    # The worker makes the preview at its first snapshot, not POST /v1/jobs; until then the
                    # documented answer is 404 (and preview_url is null), which this check takes for a lost job.
                    "checks": {"ensure_resource_availability": {"enabled": False}},
                },
            ],
        }
    )


def submit_real_pictures(context: HookContext, case: Case[Any]) -> Case[Any]:
    """Schema-valid submissions carry decodable pictures: Schemathesis makes 1×1 images, which the engine cannot
    use (image_too_small), and a job has to be accepted for the stateful phase to follow it. Its masks become a
    usable mask, kept only for styles that were sent; a clip's form becomes a photo's (clip jobs are tested through
    the queue in tests/worker/test_clips.py). Negative cases keep whatever Schemathesis made."""
    meta = case.meta
    if case.operation.label != SUBMIT or meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    if isinstance(case.body, dict) and isinstance(case.body.get("style"), list):
        form: dict[str, Any] = case.body  # file fields hold bytes, which the JSON-typed Body leaves out
        for name in ["clip", *ClipParams.model_fields]:  # a clip job would take this run's worker minutes
            form.pop(name, None)
        form["content"] = PHOTO
        form["style"] = [PAINTING] * len(form["style"])
        for field in [name for name in form if name.startswith(("mask_", "source_mask_"))]:
            if int(field.rpartition("_")[2]) <= len(form["style"]):
                form[field] = MASK
            else:
                del form[field]
    return case


@dataclass
class Outcome:
    """What a run did and found."""

    cases: Counter[str] = field(default_factory=Counter)  # requests sent, by phase
    submitted: int = 0  # jobs accepted (2xx to POST /v1/jobs)
    followed: Counter[str] = field(default_factory=Counter)  # stateful steps along a link from a submitted job
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, phase: str, recorder: ScenarioRecorder) -> None:
        self.cases[phase] += len(recorder.cases)
        for case_id, node in recorder.cases.items():
            response = recorder.find_response(case_id=case_id)
            label = node.value.operation.label
            if label == SUBMIT and response is not None and response.status_code < 300:
                self.submitted += 1
            parent = recorder.cases.get(node.parent_id) if node.parent_id else None
            if node.transition is not None and parent is not None and parent.value.operation.label == SUBMIT:
                self.followed[label] += 1
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status is Status.FAILURE and check.failure_info is not None:
                    self.failures.append(describe(phase, check.name, check.failure_info, recorder, case_id))

    def summary(self) -> str:
        phases = ", ".join(f"{phase} {count}" for phase, count in self.cases.items())
        return (
            f"{self.cases.total()} requests ({phases}); {self.submitted} jobs accepted; "
            f"{self.followed.total()} stateful steps along links from a submitted job ({dict(self.followed)})"
        )


def describe(phase: str, check: str, info: CheckFailureInfo, recorder: ScenarioRecorder, case_id: str) -> str:
    """One failed check: what it says, the answer, and the curl command that repeats the request."""
    response = recorder.find_response(case_id=case_id)
    answer = "no response" if response is None else f"{response.status_code} {response.content[:500]!r}"
    failure = info.failure
    return f"[{phase}] {failure.operation}: {check}: {failure.title}\n{failure.message}\n{answer}\n{info.code_sample}"


def run_schemathesis(api: RunningApi) -> Outcome:
    """Every phase of ``schemathesis run`` against ``api`` as Alice, with ``conformance_config``."""
    with api.client() as http:
        authorization = http.headers["Authorization"]  # Alice's key
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json", config=conformance_config(authorization))
    schema.hook("map_case")(submit_real_pictures)
    outcome = Outcome()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            outcome.record(event.phase.value, event.recorder)
        elif isinstance(event, events.NonFatalError):
            outcome.errors.append(f"[{event.phase}] {event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return outcome


def test_the_api_conforms_to_its_openapi_document(service: RunningApi) -> None:
    outcome = run_schemathesis(service)
    print(outcome.summary())
    assert not outcome.errors, "\n\n".join(outcome.errors)
    assert not outcome.failures, f"{len(outcome.failures)} failed checks:\n\n" + "\n\n".join(outcome.failures)
    assert outcome.submitted, "no job was accepted, so the stateful phase had none to follow"
    # Which links a scenario takes depends on how far the worker has got when it asks (on a loaded machine a job
    # may still be queued throughout, and its result is never offered), so the run must follow links, and
    # test_the_document_says_what_this_server_does pins that each operation has its link.
    assert outcome.followed and set(outcome.followed) <= LINKED, outcome.summary()


# What Schemathesis found, pinned down on their own ----------------------------------------------------------------


def test_a_refused_method_is_answered_with_every_method_the_path_serves(service: RunningApi) -> None:
    with service.client() as http:
        answers = {path: http.request("OPTIONS", path) for path in ("/v1/jobs", "/v1/jobs/some-job")}
    assert {path: (answer.status_code, answer.headers["allow"]) for path, answer in answers.items()} == {
        "/v1/jobs": (405, "GET, POST"),
        "/v1/jobs/some-job": (405, "GET"),
    }


def test_the_document_says_what_this_server_does(service: RunningApi) -> None:
    with service.client(key=None) as http:
        submit = http.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]
    form = submit["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert (form["properties"]["webhook_url"]["maxLength"], form["additionalProperties"]) == (0, False)
    assert "RESTYLE_WEBHOOK_SECRET" in form["properties"]["webhook_url"]["description"]
    assert "webhook_url" in submit["responses"]["422"]["description"]
    assert (form["properties"]["size"]["default"], form["properties"]["size"]["maximum"]) == (64, 64)
    for status in ("201", "202"):
        links = submit["responses"][status]["links"].values()
        assert {link["operationId"] for link in links} == {
            "get_job",
            "follow_job",
            "get_preview",
            "get_result",
            "cancel_job",
        }
        assert {link["parameters"]["job_id"] for link in links} == {"$response.body#/id"}
    assert set(submit["responses"]["422"]["content"]) == {"application/problem+json"}


def test_a_job_that_leaves_size_out_gets_this_servers_largest(service: RunningApi) -> None:
    files = [("content", ("photo.png", PHOTO, "image/png")), ("style", ("painting.png", PAINTING, "image/png"))]
    with service.client() as http:
        response = http.post("/v1/jobs", files=files, data={"iterations": "1"})
        http.post(f"/v1/jobs/{response.json()['id']}/cancel")
    assert (response.status_code, response.json()["params"]["size"]) == (202, 64)
