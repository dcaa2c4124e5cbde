"""Reading and writing clips (``core.video.codec``): MP4, WebM and GIF in, MP4 or WebM out at the clip's frame rate
with its sound, and every unusable clip refused with the error that names why, before any frame is stylised."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy
import pytest

from core.errors import EmptyVideo, NotAVideo, TruncatedVideo, VideoTooLarge, VideoTooLong
from core.video.codec import ClipLimits, inspect_clip, read_frames, write_clip
from tests.core.pictures import encoded, make_photo
from tests.core.test_video import panned_frames
from tests.support.clips import clip_streams, write_test_clip

Container = Literal["mp4", "webm", "gif"]
# Far above the test clips (a few frames of 64×48), so that only the limit a test narrows can refuse one.
LIMITS = ClipLimits(max_bytes=2**30, max_seconds=60.0, max_frames=1000, max_pixels=3840 * 2160)


def clip(tmp_path: Path, container: Container, *, count: int = 6, sound: bool = False) -> Path:
    return write_test_clip(tmp_path / f"clip.{container}", panned_frames(count), container, sound=sound)


@pytest.mark.parametrize("container", ["mp4", "webm", "gif"])
def test_a_clip_is_inspected_for_its_size_frames_and_rate(tmp_path: Path, container: Container) -> None:
    info = inspect_clip(clip(tmp_path, container), LIMITS)
    assert (info.container, info.width, info.height, info.frames, info.frame_rate) == (
        container,
        64,
        48,
        6,
        Fraction(10),
    )
    assert info.seconds == pytest.approx(0.6)


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_the_sound_a_clip_carries_is_named(tmp_path: Path, container: Container) -> None:
    assert (
        inspect_clip(clip(tmp_path, container, sound=True), LIMITS).audio == {"mp4": "aac", "webm": "opus"}[container]
    )


@pytest.mark.parametrize("container", ["mp4", "webm", "gif"])
def test_the_frames_read_are_the_frames_written(tmp_path: Path, container: Container) -> None:
    originals = panned_frames(6)
    frames = list(read_frames(clip(tmp_path, container)))
    assert [frame.size for frame in frames] == [(64, 48)] * 6
    for original, frame in zip(originals, frames, strict=True):
        difference = numpy.abs(numpy.asarray(original, float) - numpy.asarray(frame, float)).mean()
        # H.264, VP9 and the GIF's 256-colour palette are all lossy; a mean of 8 levels in 255 is far below the
        # difference between two frames of the pan (tens of levels), so a frame out of order would fail.
        assert difference < 8


def test_reading_can_start_after_the_frames_already_finished(tmp_path: Path) -> None:
    path = clip(tmp_path, "gif")
    assert [numpy.asarray(f).tolist() for f in read_frames(path, skip=4)] == [
        numpy.asarray(f).tolist() for f in list(read_frames(path))[4:]
    ]


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_a_written_clip_keeps_the_frames_and_their_rate(tmp_path: Path, container: Literal["mp4", "webm"]) -> None:
    out = tmp_path / f"out.{container}"
    assert write_clip(panned_frames(5), out, container, Fraction(10)) == 5
    written = clip_streams(out)
    assert (written["video"], written["frames"], written["rate"]) == ({"mp4": "h264", "webm": "vp9"}[container], 5, 10)


def test_frames_of_odd_sides_are_cropped_to_even_ones(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    write_clip(
        [frame.crop((0, 0, 63, 47)) for frame in panned_frames(2)],
        out,
        "mp4",
        Fraction(10),
    )
    assert clip_streams(out)["size"] == (62, 46)


def test_sound_that_the_container_carries_is_copied_as_it_was(tmp_path: Path) -> None:
    source = clip(tmp_path, "mp4", sound=True)
    out = tmp_path / "out.mp4"
    write_clip(panned_frames(6), out, "mp4", inspect_clip(source, LIMITS).frame_rate, sound_from=source)
    original, written = clip_streams(source), clip_streams(out)
    assert written["sound"] == "aac"
    assert written["sound_seconds"] == original["sound_seconds"]  # the same packets: the same samples


def test_sound_the_container_cannot_carry_is_encoded_again_for_it(tmp_path: Path) -> None:
    source = clip(tmp_path, "mp4", sound=True)
    out = tmp_path / "out.webm"
    write_clip(panned_frames(6), out, "webm", inspect_clip(source, LIMITS).frame_rate, sound_from=source)
    written = clip_streams(out)
    assert written["sound"] == "opus"
    # AAC pads its first and last frames (1024 samples each at 44.1 kHz, about 23 ms), Opus its own; the tone
    # lasts 0.6 s either way, to within those paddings.
    assert written["sound_seconds"] == pytest.approx(0.6, abs=0.08)


def test_a_silent_clip_stays_silent(tmp_path: Path) -> None:
    source = clip(tmp_path, "webm")
    out = tmp_path / "out.mp4"
    write_clip(panned_frames(6), out, "mp4", inspect_clip(source, LIMITS).frame_rate, sound_from=source)
    assert clip_streams(out)["sound"] is None


def test_a_picture_is_not_a_clip(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(encoded(make_photo()))
    with pytest.raises(NotAVideo, match="not an MP4, WebM or GIF clip"):
        inspect_clip(path, LIMITS)


def test_a_playlist_is_not_read_as_a_clip(tmp_path: Path) -> None:
    """FFmpeg would follow an HLS playlist to the addresses it lists; the operator's network is not the caller's."""
    path = tmp_path / "clip.mp4"
    path.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://169.254.169.254/latest/meta-data\n")
    with pytest.raises(NotAVideo):
        inspect_clip(path, LIMITS)


@pytest.mark.parametrize("container", ["mp4", "webm", "gif"])
def test_a_clip_cut_short_is_truncated(tmp_path: Path, container: Container) -> None:
    path = clip(tmp_path, container, count=10)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 7 // 10])
    with pytest.raises(TruncatedVideo, match=r"truncated|cut short"):
        inspect_clip(path, LIMITS)


def test_a_clip_with_no_frame_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "clip.gif"
    # A GIF with a screen and a trailer but no image in between: the smallest container that holds no frame.
    path.write_bytes(b"GIF89a" + (16).to_bytes(2, "little") * 2 + b"\x00\x00\x00" + b";")
    with pytest.raises(EmptyVideo, match="holds no frame"):
        inspect_clip(path, LIMITS)


def test_a_clip_longer_than_allowed_is_refused_by_its_seconds(tmp_path: Path) -> None:
    with pytest.raises(VideoTooLong, match=r"lasts 1\.0 s; the limit is 0\.5 s"):
        inspect_clip(clip(tmp_path, "mp4", count=10), replace(LIMITS, max_seconds=0.5))


def test_a_clip_with_more_frames_than_allowed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VideoTooLong, match="more than 5 frames"):
        inspect_clip(clip(tmp_path, "gif", count=10), replace(LIMITS, max_frames=5))


def test_frames_of_more_pixels_than_allowed_are_refused_from_the_header(tmp_path: Path) -> None:
    with pytest.raises(VideoTooLarge, match="64×48 = 3,072 pixels; the limit is 3,000"):
        inspect_clip(clip(tmp_path, "webm"), replace(LIMITS, max_pixels=3000))


def test_a_file_of_more_bytes_than_allowed_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    with pytest.raises(VideoTooLarge, match="the limit is 100"):
        inspect_clip(clip(tmp_path, "mp4"), replace(LIMITS, max_bytes=100))


def test_a_damaged_picture_inside_a_clip_is_refused(tmp_path: Path) -> None:
    path = clip(tmp_path, "gif", count=4)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(TruncatedVideo, match="truncated or damaged"):
        inspect_clip(path, LIMITS)


def test_every_frame_read_is_an_rgb_picture(tmp_path: Path) -> None:
    assert {frame.mode for frame in read_frames(clip(tmp_path, "gif"))} == {"RGB"}


def test_writing_no_frame_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        write_clip(iter(()), tmp_path / "out.mp4", "mp4", Fraction(10))
    assert not (tmp_path / "out.mp4").exists() or (tmp_path / "out.mp4").stat().st_size == 0
