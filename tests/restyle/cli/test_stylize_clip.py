"""``restyle stylize`` on a clip: an .mp4 or .webm output stylises every frame of CONTENT into a clip of the same
frame rate and sound, and a clip that cannot be used fails before any frame is stylised, leaving no file behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from restyle.cli import main
from tests.core.pictures import encoded, make_painting
from tests.core.test_video import panned_frames
from tests.support.clips import clip_streams, write_test_clip

FAST = ("--weights", "random", "--device", "cpu", "--size", "48", "--iterations", "4")


@pytest.fixture
def painting(tmp_path: Path) -> Path:
    path = tmp_path / "painting.png"
    path.write_bytes(encoded(make_painting()))
    return path


def stylize(*argv: str | Path) -> int:
    return main(["stylize", *map(str, argv), *FAST])


@pytest.mark.parametrize("output", ["out.mp4", "out.webm"])
def test_a_clip_is_stylised_into_a_clip_of_the_same_frames_rate_and_sound(
    tmp_path: Path, painting: Path, output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_test_clip(tmp_path / "clip.mp4", panned_frames(3), "mp4", sound=True)
    assert stylize(source, painting, "-o", tmp_path / output) == 0
    written = clip_streams(tmp_path / output)
    assert (written["frames"], written["rate"], written["size"]) == (3, 10, (48, 36))
    assert written["sound"] == {"out.mp4": "aac", "out.webm": "opus"}[output]
    assert "3 frames at 10 fps, with sound" in capsys.readouterr().out


def test_the_progress_bar_counts_frames(tmp_path: Path, painting: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_test_clip(tmp_path / "clip.gif", panned_frames(3), "gif")
    assert stylize(source, painting, "-o", tmp_path / "out.mp4") == 0
    progress = capsys.readouterr().err
    assert "frame 1/3" in progress and "frame 3/3" in progress
    assert "6/6" in progress  # 4 iterations for the first frame, one each (a quarter) for the two after it


def test_a_clip_with_a_picture_output_is_refused_with_what_to_do(
    tmp_path: Path, painting: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_test_clip(tmp_path / "clip.webm", panned_frames(2), "webm")
    assert stylize(source, painting, "-o", tmp_path / "out.png") == 2
    assert "is a clip; name an .mp4 or .webm file with -o" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_a_picture_with_a_clip_output_is_refused(
    tmp_path: Path, painting: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stylize(painting, painting, "-o", tmp_path / "out.mp4") == 2
    assert "is not an MP4, WebM or GIF clip" in capsys.readouterr().err


def test_a_truncated_clip_fails_before_any_frame_and_leaves_no_file(
    tmp_path: Path, painting: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_test_clip(tmp_path / "clip.webm", panned_frames(6), "webm")
    source.write_bytes(source.read_bytes()[:-200])
    assert stylize(source, painting, "-o", tmp_path / "out.mp4") == 2
    assert "truncated" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.webm", "painting.png"]


def test_a_clip_over_the_configured_length_is_refused(
    tmp_path: Path,
    painting: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fresh_settings: None,
) -> None:
    monkeypatch.setenv("RESTYLE_MAX_CLIP_FRAMES", "2")
    source = write_test_clip(tmp_path / "clip.mp4", panned_frames(3), "mp4")
    assert stylize(source, painting, "-o", tmp_path / "out.mp4") == 2
    assert "more than 2 frames" in capsys.readouterr().err


def test_a_frame_option_out_of_range_names_its_flag(
    tmp_path: Path, painting: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_test_clip(tmp_path / "clip.mp4", panned_frames(2), "mp4")
    assert stylize(source, painting, "-o", tmp_path / "out.mp4", "--frame-iterations", "0") == 2
    assert "--frame-iterations: Input should be greater than or equal to 1" in capsys.readouterr().err


def test_snapshots_are_refused_for_a_clip(tmp_path: Path, painting: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_test_clip(tmp_path / "clip.mp4", panned_frames(2), "mp4")
    assert stylize(source, painting, "-o", tmp_path / "out.mp4", "--save-every", "2") == 2
    assert "--save-every" in capsys.readouterr().err
