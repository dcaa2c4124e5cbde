"""Submitting a clip: a video sent as ``clip`` is queued as a clip's job, and every unusable clip is refused with a
422 naming the problem before anything is stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import httpx
import pytest

from restyle.settings import Settings
from tests.core.pictures import encoded, make_photo
from tests.core.test_video import panned_frames
from tests.support.api_server import ApiServer
from tests.support.clips import write_test_clip
from tests.support.jobs import submit, submit_clip
from tests.support.settings import MakeSettings

MAX_FRAMES = 8
Container = Literal["mp4", "webm", "gif"]


@pytest.fixture(scope="module")
def clip_settings(make_settings: MakeSettings) -> Settings:
    """An API of its own (no worker takes its jobs), with a frame limit a test clip can pass."""
    return make_settings(max_clip_frames=MAX_FRAMES, max_clip_pixels=64 * 48)


@pytest.fixture(scope="module")
def clip_api(clip_settings: Settings, start_api: Callable[[Settings], ApiServer]) -> ApiServer:
    return start_api(clip_settings)


@pytest.fixture
def http(clip_api: ApiServer) -> Iterator[httpx.Client]:
    with clip_api.client() as client:
        yield client


def clip_bytes(tmp_path: Path, container: Container = "mp4", *, count: int = 4, sound: bool = False) -> bytes:
    return write_test_clip(tmp_path / f"clip.{container}", panned_frames(count), container, sound=sound).read_bytes()


def refused(response: httpx.Response, code: str) -> str:
    assert (response.status_code, response.json()["code"]) == (422, code), response.text
    return str(response.json()["detail"])


def stored_files(settings: Settings) -> list[Path]:
    return [path for path in settings.storage_dir.rglob("*") if path.is_file()]


def test_a_clip_is_queued_with_its_frames_and_clip_parameters(http: httpx.Client, tmp_path: Path) -> None:
    response = submit_clip(http, clip_bytes(tmp_path, sound=True), iterations=8, temporal_weight=2, clip_format="webm")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["clip"] == {"temporal_weight": 2.0, "frame_iterations": None, "clip_format": "webm"}
    # 8 iterations for the first frame, a quarter of them for each of the three after it.
    assert (job["progress"]["total"], job["progress"]["frames"], job["frames_done"]) == (14, 4, 0)
    http.post(job["urls"]["cancel"])


def test_a_gif_is_taken_as_a_clip(http: httpx.Client, tmp_path: Path) -> None:
    response = submit_clip(http, clip_bytes(tmp_path, "gif"), filename="clip.gif", media_type="image/gif")
    assert response.status_code == 202, response.text
    assert response.json()["progress"]["frames"] == 4
    http.post(response.json()["urls"]["cancel"])


def test_a_picture_sent_as_a_clip_is_refused(http: httpx.Client, clip_settings: Settings) -> None:
    before = stored_files(clip_settings)
    detail = refused(submit_clip(http, encoded(make_photo())), "not_a_video")
    assert detail == "clip (clip.mp4) is not an MP4, WebM or GIF clip"
    assert stored_files(clip_settings) == before


def test_a_truncated_clip_is_refused(http: httpx.Client, tmp_path: Path, clip_settings: Settings) -> None:
    data = clip_bytes(tmp_path, "webm", count=6)
    before = stored_files(clip_settings)
    assert "truncated" in refused(submit_clip(http, data[: len(data) * 7 // 10]), "truncated_video")
    assert stored_files(clip_settings) == before


def test_a_clip_with_more_frames_than_the_server_takes_is_refused(http: httpx.Client, tmp_path: Path) -> None:
    detail = refused(submit_clip(http, clip_bytes(tmp_path, count=MAX_FRAMES + 2)), "video_too_long")
    assert f"more than {MAX_FRAMES} frames" in detail


def test_a_clip_without_frames_is_refused(http: httpx.Client) -> None:
    empty_gif = b"GIF89a" + (16).to_bytes(2, "little") * 2 + b"\x00\x00\x00;"
    assert "holds no frame" in refused(submit_clip(http, empty_gif, filename="clip.gif"), "empty_video")


def test_a_clip_of_larger_frames_than_the_server_takes_is_refused(http: httpx.Client, tmp_path: Path) -> None:
    large = write_test_clip(tmp_path / "large.mp4", panned_frames(2, width=96, height=64), "mp4").read_bytes()
    assert "96×64 = 6,144 pixels" in refused(submit_clip(http, large), "video_too_large")


def test_clip_fields_with_a_photo_are_refused_naming_the_field(http: httpx.Client) -> None:
    response = submit(http, temporal_weight=2)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "temporal_weight"


def test_a_photo_and_a_clip_together_are_refused(http: httpx.Client, tmp_path: Path) -> None:
    files = [
        ("content", ("photo.png", encoded(make_photo()), "image/png")),
        ("clip", ("clip.mp4", clip_bytes(tmp_path), "video/mp4")),
        ("style", ("painting.png", encoded(make_photo()), "image/png")),
    ]
    response = http.post("/v1/jobs", files=files)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_upload")
    assert "exactly one 'content' file (a photo) or one 'clip' file" in response.json()["detail"]


def test_a_clip_option_out_of_range_is_refused_naming_it(http: httpx.Client, tmp_path: Path) -> None:
    response = submit_clip(http, clip_bytes(tmp_path), frame_iterations=0)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "frame_iterations"
