"""Following a job live: server-sent events and the in-progress preview image."""

from __future__ import annotations

import io
import json

import httpx
from PIL import Image

from tests.support.api_server import ApiServer
from tests.support.jobs import submit, wait_for
from tests.support.worker_process import WorkerProcess


def read_events(http: httpx.Client, job_id: str) -> list[tuple[str, str]]:
    """(event, data) pairs of the whole stream, which ends by itself after a final state."""
    events, name = [], ""
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, line.removeprefix("data: ")))
    return events


def test_the_event_stream_follows_a_job_to_its_end(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client, iterations=6).json()
    events = read_events(client, job["id"])
    statuses = [json.loads(data)["status"] for name, data in events if name == "job"]
    assert statuses[-1] == "succeeded"
    assert events[-1][0] == "end"


def test_the_event_stream_of_a_finished_job_sends_it_once_and_ends(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        job = submit(http).json()
        http.post(f"/v1/jobs/{job['id']}/cancel")
        events = read_events(http, job["id"])
    assert [name for name, _ in events] == ["job", "end"]
    assert json.loads(events[0][1])["status"] == "canceled"


def test_there_is_no_preview_before_the_first_snapshot(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        job = submit(http).json()
        assert http.get(f"/v1/jobs/{job['id']}/preview").status_code == 404


def test_a_running_job_shows_a_preview_image(client: httpx.Client, worker: WorkerProcess) -> None:
    job = submit(client, size=48, iterations=5000).json()
    with_preview = wait_for(client, job["id"], lambda job: job["preview_url"] is not None)
    response = client.get(with_preview["preview_url"])
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.content)).size) <= 48
