"""The Python client against the real service: real Redis, a real worker process, random VGG weights."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from restyle.client import (
    AuthError,
    Client,
    Conflict,
    InvalidInput,
    Job,
    JobCanceled,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    WaitTimeout,
)
from restyle.jobs import JobPublic, input_keys
from restyle.settings import Settings
from tests.client.served import Served, key_of
from tests.core.pictures import encoded
from tests.core.test_video import panned_frames
from tests.support.clips import clip_streams, write_test_clip

TINY: dict[str, Any] = {"size": 32, "iterations": 3}


# A job from start to finish ---------------------------------------------------------------------------------


def test_stylize_returns_the_picture_at_the_requested_size(
    worker: object, restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    data = restyle.stylize(photo, paintings, **TINY)

    picture = Image.open(io.BytesIO(data))
    assert picture.format == "PNG"
    assert picture.size == (32, 27)  # 48×40 scaled to a longest side of 32


def test_stylize_with_a_mask_returns_the_picture(
    worker: object, restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    left_half = Image.new("L", (48, 40), 0)
    left_half.paste(255, (0, 0, 24, 40))

    data = restyle.stylize(photo, paintings[:1], masks={1: left_half}, **TINY)

    assert Image.open(io.BytesIO(data)).size == (32, 27)


def test_on_progress_sees_the_iterations_rise_to_the_total(
    worker: object, restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    seen: list[Job] = []

    restyle.stylize(photo, paintings[:1], on_progress=seen.append, size=32, iterations=8)

    iterations = [job.progress.iteration for job in seen]
    assert iterations == sorted(iterations)
    assert len(set(iterations)) >= 2
    assert iterations[-1] == 8
    assert seen[-1].status == "succeeded"
    last = seen[-1].progress
    assert (last.stage, last.stages, last.size, last.remaining_seconds) == (1, 1, 32, 0.0)


def test_stylize_with_clip_returns_a_video_of_every_frame_with_progress_by_frame(
    worker: object, restyle: Client, paintings: list[bytes], tmp_path: Path
) -> None:
    clip = write_test_clip(tmp_path / "clip.gif", panned_frames(3), "gif")
    seen: list[Job] = []

    data = restyle.stylize(clip, paintings[:1], on_progress=seen.append, clip=True, size=32, iterations=4)

    (tmp_path / "result.mp4").write_bytes(data)
    assert clip_streams(tmp_path / "result.mp4")["frames"] == 3
    frames = [job.progress.frame for job in seen if job.progress.frame is not None]
    assert frames == sorted(frames) and frames[-1] == 3
    assert (seen[-1].frames_done, seen[-1].runs[-1].frames) == (3, 3)


def test_a_submitted_clip_reports_its_frames_and_clip_parameters(
    idle_restyle: Client, paintings: list[bytes], tmp_path: Path
) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", panned_frames(3), "mp4")

    job = idle_restyle.submit(clip, paintings[:1], clip=True, temporal_weight=3, **TINY)

    assert (job.progress.frames, job.clip) == (
        3,
        {"temporal_weight": 3.0, "frame_iterations": None, "clip_format": "mp4"},
    )
    idle_restyle.cancel(job.id)


def test_a_job_canceled_while_running_raises_job_canceled(
    worker: object, restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    def cancel_once_running(job: Job) -> None:
        if job.status == "running" and job.progress.iteration >= 1 and not job.cancel_requested:
            restyle.cancel(job.id)

    with pytest.raises(JobCanceled) as raised:
        restyle.stylize(photo, paintings[:1], on_progress=cancel_once_running, size=32, iterations=5000)

    assert raised.value.job.status == "canceled"
    assert raised.value.job.progress.iteration < 5000


def test_a_job_that_fails_raises_job_failed_with_its_code_and_message(
    make_settings: Callable[..., Settings],
    start_api: Callable[[Settings], Served],
    start_worker: Callable[[Settings], object],
    photo: bytes,
    paintings: list[bytes],
) -> None:
    api = start_api(make_settings())
    with Client(api.url, api_key=key_of(api)) as client:
        job = client.submit(photo, paintings[:1], **TINY)
        content, _ = input_keys(job.id)
        (api.settings.storage_dir / content).unlink()  # the job's photo vanishes before any worker runs it
        start_worker(api.settings)

        with pytest.raises(JobFailed) as raised:
            client.wait(job.id)

    assert raised.value.code == "input_missing"
    assert "gone" in raised.value.message
    assert raised.value.job.status == "failed"


# Submitting -------------------------------------------------------------------------------------------------


def test_submit_accepts_a_path_bytes_and_an_open_file(
    idle_restyle: Client, photo_file: Path, paintings: list[bytes]
) -> None:
    with io.BytesIO(paintings[1]) as painting_file:
        job = idle_restyle.submit(photo_file, [paintings[0], painting_file], **TINY)

    assert job.status == "queued"
    assert job.style_count == 2


def test_submit_sends_parameters_under_the_models_names(
    idle_restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    job = idle_restyle.submit(
        photo,
        paintings,
        style_weight=2500,
        content_layers={"relu4_2": 1, "relu3_1": 0.5},
        style_blend=[3, 1],
        multiscale=True,
        **TINY,
    )

    assert job.params["style_weight"] == 2500
    assert job.params["content_layers"] == {"relu4_2": 1.0, "relu3_1": 0.5}
    assert job.params["style_blend"] == [3.0, 1.0]
    assert job.params["multiscale"] is True


def test_a_single_style_need_not_be_wrapped_in_a_list(
    idle_restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    job = idle_restyle.submit(photo, paintings[0], **TINY)

    assert job.style_count == 1


def test_submit_sends_masks_by_style_number_as_paths_bytes_files_and_pillow_images(
    idle_restyle: Client, photo: bytes, paintings: list[bytes], tmp_path: Path
) -> None:
    path = tmp_path / "sky.png"
    path.write_bytes(encoded(Image.new("L", (48, 40), 255)))
    with io.BytesIO(encoded(Image.new("L", (20, 20), 200))) as file:
        job = idle_restyle.submit(
            photo,
            paintings,
            masks={1: path, 2: Image.new("L", (10, 10), 255)},
            source_masks={2: file},
            **TINY,
        )

    assert (job.masks, job.source_masks) == ([1, 2], [2])


def test_a_mask_for_a_style_that_was_not_given_is_refused_before_anything_is_sent(
    photo: bytes, paintings: list[bytes]
) -> None:
    with Client("http://127.0.0.1:9") as client, pytest.raises(ValueError, match="masks: 3 is not a style's number"):
        client.submit(photo, paintings, masks={3: encoded(Image.new("L", (8, 8), 255))})


def test_an_unknown_parameter_is_refused_before_anything_is_sent(photo: bytes, paintings: list[bytes]) -> None:
    with Client("http://127.0.0.1:9") as client, pytest.raises(TypeError, match="styel_weight"):
        client.submit(photo, paintings, styel_weight=10)


# Errors from the service ------------------------------------------------------------------------------------


def test_a_non_image_upload_raises_invalid_input_with_the_services_message(
    idle_restyle: Client, paintings: list[bytes]
) -> None:
    with pytest.raises(InvalidInput) as raised:
        idle_restyle.submit(b"these are notes, not a picture", paintings, **TINY)

    assert raised.value.status == 422
    assert raised.value.code == "not_an_image"
    assert raised.value.message.startswith("content")
    assert "not an image" in raised.value.message


def test_an_all_black_mask_raises_invalid_input_with_the_engines_code(
    idle_restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    with pytest.raises(InvalidInput) as raised:
        idle_restyle.submit(photo, paintings, masks={2: Image.new("L", (48, 40), 0)}, **TINY)

    assert raised.value.code == "mask_all_black"
    assert raised.value.message.startswith("mask_2 (mask-2.png): the mask for style 2 is all black")


def test_an_out_of_range_parameter_raises_invalid_input_naming_it(
    idle_restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    with pytest.raises(InvalidInput) as raised:
        idle_restyle.submit(photo, paintings, size=4)

    assert raised.value.message.startswith("size:")


def test_an_upload_over_the_limit_raises_payload_too_large(idle_restyle: Client, paintings: list[bytes]) -> None:
    with pytest.raises(PayloadTooLarge) as raised:
        idle_restyle.submit(bytes(512 * 1024), paintings)

    assert "limit" in raised.value.message


def test_a_full_queue_raises_service_unavailable_with_retry_after(
    make_settings: Callable[..., Settings],
    start_api: Callable[[Settings], Served],
    photo: bytes,
    paintings: list[bytes],
) -> None:
    api = start_api(make_settings(max_queue_depth=1, retry_after_seconds=7))
    with Client(api.url, api_key=key_of(api)) as client:
        client.submit(photo, paintings, **TINY)

        with pytest.raises(ServiceUnavailable) as raised:
            client.submit(photo, paintings, **TINY)

    assert raised.value.retry_after == 7


def test_a_missing_api_key_raises_auth_error(idle_api: Served) -> None:
    with Client(idle_api.url) as client, pytest.raises(AuthError) as raised:
        client.get("0190f5c2-7a1e-7c3b-9a4e-2f1d0c9b8a7f")

    assert raised.value.status == 401
    assert "API key" in raised.value.message


def test_an_unknown_job_raises_not_found(idle_restyle: Client) -> None:
    with pytest.raises(NotFound):
        idle_restyle.get("0190f5c2-7a1e-7c3b-9a4e-2f1d0c9b8a7f")


def test_the_result_of_an_unfinished_job_raises_conflict(
    idle_restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    job = idle_restyle.submit(photo, paintings, **TINY)

    with pytest.raises(Conflict) as raised:
        idle_restyle.result(job.id)

    assert "queued" in raised.value.message


# Waiting and canceling ----------------------------------------------------------------------------------------


def test_cancel_stops_a_queued_job_and_wait_returns_it(
    idle_restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    job = idle_restyle.submit(photo, paintings, **TINY)

    idle_restyle.cancel(job.id)

    assert idle_restyle.wait(job.id).status == "canceled"


def test_wait_gives_up_after_its_timeout_and_leaves_the_job_alone(
    idle_restyle: Client, photo: bytes, paintings: list[bytes]
) -> None:
    job = idle_restyle.submit(photo, paintings, **TINY)

    with pytest.raises(WaitTimeout) as raised:
        idle_restyle.wait(job.id, timeout=0.5)

    assert raised.value.job.status == "queued"
    assert idle_restyle.get(job.id).status == "queued"


# The client itself --------------------------------------------------------------------------------------------


def test_the_job_model_has_every_field_the_api_sends() -> None:
    assert set(Job.model_fields) == set(JobPublic.model_fields)


def test_importing_the_client_does_not_import_torch() -> None:
    probe = "import sys, restyle.client; print('torch' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert shown.stdout.strip() == "False"


def test_a_closed_client_refuses_to_send() -> None:
    with Client("http://127.0.0.1:9") as client:
        pass

    with pytest.raises(RuntimeError):
        client.get("any")
