"""Stands in for a user of the HTTP API: submits jobs with generated pictures and polls them until they reach
a state, failing the test (with the job) if they do not within ``PATIENCE_SECONDS``.

``Json`` is a job as GET /v1/jobs/{id} returns it; ``finished``, ``running_with_progress`` and ``succeeded`` are
predicates for ``wait_for``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from tests.support import PATIENCE_SECONDS
from tests.support.pictures import make_png

Json = dict[str, Any]


def submit(
    http: httpx.Client,
    *,
    styles: int = 1,
    content: bytes | None = None,
    masks: Mapping[str, bytes] | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """POST /v1/jobs with generated pictures; ``masks`` are mask files by field (``mask_1``, ``source_mask_2``),
    sent as ``<field>.png``; ``fields`` are form fields (tiny fast defaults)."""
    form = {"size": "32", "iterations": "3", **{key: str(value) for key, value in fields.items()}}
    files = [("content", ("photo.png", content or make_png(), "image/png"))]
    files += [
        ("style", (f"painting{index}.png", make_png(40, 40, seed=index + 1), "image/png")) for index in range(styles)
    ]
    files += [(field, (f"{field}.png", data, "image/png")) for field, data in (masks or {}).items()]
    return http.post("/v1/jobs", data=form, files=files, headers=headers or {})


def wait_for(http: httpx.Client, job_id: str, until: Callable[[Json], bool]) -> Json:
    """Poll the job until ``until(job)`` holds; fails (with the job) once it has stood still for PATIENCE_SECONDS.

    Patience runs from the record's last change, not from the call: a long job on a loaded machine keeps moving
    (its progress is in the record) and is waited for, while a job that is stuck fails as soon as on an idle one.
    """
    last: Json | None = None
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        response = http.get(f"/v1/jobs/{job_id}")
        response.raise_for_status()
        job: Json = response.json()
        if until(job):
            return job
        if job != last:
            last, deadline = job, time.monotonic() + PATIENCE_SECONDS
        if time.monotonic() > deadline:
            pytest.fail(f"job stood still for {PATIENCE_SECONDS:g} s short of the expected state: {job}")
        time.sleep(0.05)


def finished(job: Json) -> bool:
    return job["status"] in ("succeeded", "failed", "canceled")


def running_with_progress(job: Json) -> bool:
    return job["status"] == "running" and job["progress"]["iteration"] >= 1


def succeeded(job: Json) -> bool:
    """Whether the job has succeeded; a job that failed or was canceled fails the test at once, with the job."""
    assert job["status"] in ("queued", "running", "succeeded"), job
    return bool(job["status"] == "succeeded")


def submit_clip(
    http: httpx.Client, clip: bytes, *, filename: str = "clip.mp4", media_type: str = "video/mp4", **fields: Any
) -> httpx.Response:
    """POST /v1/jobs with ``clip`` as the video and a generated painting; ``fields`` are form fields (tiny fast
    defaults)."""
    form = {"size": "32", "iterations": "3", **{key: str(value) for key, value in fields.items()}}
    files = [("clip", (filename, clip, media_type)), ("style", ("painting.png", make_png(40, 40, seed=1), "image/png"))]
    return http.post("/v1/jobs", data=form, files=files)
