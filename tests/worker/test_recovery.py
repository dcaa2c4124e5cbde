"""Nothing lost: a job whose worker dies or shuts down mid-run is run again by another worker."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable

import pytest
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


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_worker_shutting_down_hands_its_job_back_to_the_queue(
    how: signal.Signals,
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    # The default visibility timeout is an hour: the job can only come back this soon by being handed back.
    settings = make_settings()
    api = start_api(settings)
    first = start_worker(settings)
    with api.client() as http:
        job = submit(http, size=32, iterations=5000).json()
        wait_for(http, job["id"], running_with_progress)
        first.shut_down(how)
        handed_back = http.get(f"/v1/jobs/{job['id']}").json()
        start_worker(settings)
        running_again = wait_for(http, job["id"], running_with_progress)
        http.post(f"/v1/jobs/{job['id']}/cancel")  # the rest of the run proves nothing more
    assert handed_back["status"] == "queued", handed_back
    assert handed_back["progress"]["iteration"] == 0 and handed_back["attempts"] == 0
    assert running_again["attempts"] == 1
