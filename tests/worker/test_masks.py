"""A job's masks reach the engine: read from the store, one entry per style in the styles' order, each over the
photo or over its painting as it was sent; and a masked job runs through the real queue to a result."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from core.engine import Stylized
from restyle.jobs import Run
from tests.support.api_server import ApiServer
from tests.support.jobs import submit, succeeded, wait_for
from tests.support.pictures import make_mask
from tests.support.worker_process import WorkerProcess
from worker import tasks
from worker.runtime import Runtime, build_runtime


@pytest.fixture
def runtime(idle_api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A worker's resources for ``idle_api``'s service, in this process, whose task claims that API's jobs (no
    worker process does); the network is never loaded."""
    state = build_runtime(idle_api.settings)
    monkeypatch.setattr(state, "network", lambda: None)
    yield state
    state.redis.close()


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the task passes to ``stylize``, call by call; the engine itself does not run."""
    calls: list[dict[str, Any]] = []

    def stylize(content: Image.Image, styles: list[Image.Image], params: Any, **options: Any) -> Stylized:
        calls.append({"styles": styles, **options})
        return Stylized(image=content, weights="none", iterations=params.iterations, seconds=0.0)

    monkeypatch.setattr(tasks, "stylize", stylize)
    return calls


def claim(runtime: Runtime) -> Run:
    run = runtime.runs.claim("test-worker")
    assert run is not None
    return run


def masks_passed(api: ApiServer, runtime: Runtime, engine_calls: list[dict[str, Any]], **submission: Any) -> Any:
    """Submit a job to ``api``, run it with this process's task, and return the masks the engine got."""
    with api.client() as http:
        job = submit(http, **submission).json()
        tasks.run_job(runtime, claim(runtime))
        assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    assert len(engine_calls) == 1
    return engine_calls[0]["masks"]


def grey_pixels(image: Image.Image) -> bytes:
    return image.convert("L").tobytes()


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_the_engine_gets_each_styles_masks_in_the_styles_order(
    idle_api: ApiServer, runtime: Runtime, engine_calls: list[dict[str, Any]]
) -> None:
    sky, region = make_mask(covered=0.25), make_mask(covered=0.75)
    masks = masks_passed(idle_api, runtime, engine_calls, styles=3, masks={"mask_2": sky, "source_mask_3": region})
    assert masks[0] is None
    assert (masks[1].painting, masks[2].photo) == (None, None)
    assert grey_pixels(masks[1].photo) == grey_pixels(decoded(sky))
    assert grey_pixels(masks[2].painting) == grey_pixels(decoded(region))


def test_a_style_with_both_masks_gets_them_in_one_entry(
    idle_api: ApiServer, runtime: Runtime, engine_calls: list[dict[str, Any]]
) -> None:
    masks = masks_passed(idle_api, runtime, engine_calls, masks={"mask_1": make_mask(), "source_mask_1": make_mask()})
    assert len(masks) == 1
    assert isinstance(masks[0].photo, Image.Image) and isinstance(masks[0].painting, Image.Image)


def test_a_job_without_masks_passes_none(
    idle_api: ApiServer, runtime: Runtime, engine_calls: list[dict[str, Any]]
) -> None:
    assert masks_passed(idle_api, runtime, engine_calls, styles=2) is None


def test_a_masked_job_runs_through_the_queue_to_a_result(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client, styles=2, masks={"mask_1": make_mask(), "source_mask_2": make_mask(covered=0.6)}).json()
    done = wait_for(client, job["id"], succeeded)
    assert (done["masks"], done["source_masks"]) == ([1], [2])
    assert Image.open(io.BytesIO(client.get(done["result_url"]).content)).size == (32, 27)
