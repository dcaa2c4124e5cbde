"""Nothing lost: a job whose worker is SIGKILLed mid-run is redelivered and finished by another worker."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image

from restyle.settings import Settings
from tests.conftest import ApiServer, MakeSettings, WorkerProcess, finished, running_with_progress, submit, wait_for


def test_a_job_survives_its_worker_being_killed(
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    # A short visibility timeout (it must exceed the job time limit) so the test waits seconds, not an hour.
    settings = make_settings(job_time_limit=60, visibility_timeout=61)
    api = start_api(settings)
    first = start_worker(settings)
    with api.client() as http:
        job = submit(http, size=32, iterations=20).json()
        wait_for(http, job["id"], running_with_progress)
        first.kill()
        assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"  # killed mid-run, not after
        start_worker(settings)
        done = wait_for(http, job["id"], finished)
        result = http.get(f"/v1/jobs/{job['id']}/result")
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    assert Image.open(io.BytesIO(result.content)).size == (32, 27)
