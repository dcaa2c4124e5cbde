"""Clip jobs through the real queue: every frame stylised in order and kept as a checkpoint, the result encoded
with the clip's rate and sound, a killed worker's clip resumed after its last kept frame, a cancel within a frame."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from restyle.settings import Settings
from tests.core.test_video import panned_frames
from tests.support.api_server import ApiServer
from tests.support.clips import clip_streams, write_test_clip
from tests.support.jobs import Json, finished, running_with_progress, submit_clip, succeeded, wait_for
from tests.support.settings import MakeSettings
from tests.support.worker_process import WorkerProcess


def clip_bytes(tmp_path: Path, count: int, *, sound: bool = False) -> bytes:
    return write_test_clip(tmp_path / "clip.mp4", panned_frames(count), "mp4", sound=sound).read_bytes()


def test_a_clip_job_ends_as_a_clip_of_the_same_frames_rate_and_sound(
    client: httpx.Client, worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    job = submit_clip(client, clip_bytes(tmp_path, 3, sound=True), iterations=4).json()
    done = wait_for(client, job["id"], succeeded)
    result = client.get(done["result_url"])
    assert result.headers["content-type"] == "video/mp4"
    (tmp_path / "result.mp4").write_bytes(result.content)
    written = clip_streams(tmp_path / "result.mp4")
    assert (written["frames"], written["rate"], written["size"], written["sound"]) == (3, 10, (32, 24), "aac")
    assert (done["frames_done"], done["runs"][0]["frames"]) == (3, 3)
    assert (done["progress"]["frame"], done["progress"]["frames"], done["progress"]["percent"]) == (3, 3, 100.0)


def test_the_preview_of_a_clip_is_its_newest_finished_frame(
    client: httpx.Client, worker: WorkerProcess, tmp_path: Path
) -> None:
    job = submit_clip(client, clip_bytes(tmp_path, 2), iterations=4).json()
    done = wait_for(client, job["id"], succeeded)
    preview = Image.open(io.BytesIO(client.get(done["preview_url"]).content))
    assert (preview.format, preview.size) == ("JPEG", (32, 24))


def test_a_finished_clips_frames_are_removed_once_its_result_holds_them(
    client: httpx.Client, worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    job = submit_clip(client, clip_bytes(tmp_path, 2), iterations=4).json()
    wait_for(client, job["id"], succeeded)
    assert not (settings.storage_dir / "jobs" / job["id"] / "frames").exists()


def test_a_canceled_clip_stops_within_its_frame(
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    api = start_api(settings)
    start_worker(settings)
    with api.client() as http:
        # Thousands of iterations for the first frame: it is still running whenever the cancel arrives.
        job = submit_clip(http, clip_bytes(tmp_path, 3), iterations=5000).json()
        wait_for(http, job["id"], running_with_progress)
        http.post(job["urls"]["cancel"])
        done = wait_for(http, job["id"], finished)
    assert (done["status"], done["frames_done"]) == ("canceled", 0)
    assert done["progress"]["iteration"] < 5000


def frames_kept(job: Json) -> bool:
    return job["status"] == "running" and job["frames_done"] >= 1


@pytest.mark.slow  # waits out the killed worker's lease, by nature
def test_a_killed_workers_clip_resumes_after_its_last_kept_frame(
    make_settings: MakeSettings,
    start_api: Callable[[Settings], ApiServer],
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    api = start_api(settings)
    workers = {worker.name: worker for worker in (start_worker(settings), start_worker(settings))}
    frames = 6
    with api.client() as http:
        # Later frames of 60 iterations each: the clip is still mid-way when the kill follows its first kept frame.
        job = submit_clip(http, clip_bytes(tmp_path, frames), iterations=20, frame_iterations=60).json()
        running = wait_for(http, job["id"], frames_kept)
        workers[running["runs"][0]["worker"]].kill()
        done = wait_for(http, job["id"], finished)
    lost, rerun = done["runs"]
    assert (done["status"], lost["outcome"], rerun["outcome"]) == ("succeeded", "lost", "succeeded")
    assert 1 <= lost["frames"] < frames
    # No frame was stylised twice: the run after the kill started after the frames the killed run kept. (The sum
    # may fall one short: a frame kept in the instant between storing it and counting it is counted by neither.)
    assert frames - 1 <= lost["frames"] + rerun["frames"] <= frames
