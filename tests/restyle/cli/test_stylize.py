"""``restyle stylize``: flags derived from the parameter model, a real run, and clean failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from restyle.cli import main
from tests.core.pictures import encoded, make_painting, make_photo


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "photo.jpg", tmp_path / "painting.png"
    content.write_bytes(encoded(make_photo(), "JPEG"))
    style.write_bytes(encoded(make_painting()))
    return content, style


def run(*argv: str | Path) -> int:
    return main(["stylize", *map(str, argv), "--weights", "random", "--device", "cpu"])


def test_every_parameter_has_a_flag_named_after_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    help_text = capsys.readouterr().out
    for flag in (
        "--size",
        "--iterations",
        "--content-weight",
        "--style-weight",
        "--tv-weight",
        "--style-blend",
        "--optimizer",
        "--preserve-colors",
        "--seed",
        "--no-multiscale",
        "--output-format",
    ):
        assert flag in help_text


def test_writes_the_result_and_reports_weights(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.webp"
    assert run(*inputs, "-o", out, "--size", "40", "--iterations", "3") == 0
    with Image.open(out) as image:
        assert (image.format, image.size) == ("WEBP", (40, 33))
    assert "3 iterations, weights random(seed=0)" in capsys.readouterr().out


def test_save_every_writes_intermediate_pictures(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert run(*inputs, "-o", out, "--size", "32", "--iterations", "4", "--save-every", "2") == 0
    assert sorted(p.name for p in tmp_path.glob("out_*.png")) == ["out_0002.png", "out_0004.png"]


def test_several_styles_with_a_blend(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    content, style = inputs
    out = tmp_path / "out.png"
    assert run(content, style, style, "-o", out, "--size", "32", "--iterations", "2", "--style-blend", "3,1") == 0


def test_a_file_that_is_not_an_image_fails_with_the_engines_message(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("shopping list")
    assert run(inputs[0], notes, "-o", tmp_path / "out.png") == 2
    err = capsys.readouterr().err
    assert "restyle: error: style 1" in err and "is not an image" in err and "Traceback" not in err


def test_an_out_of_range_parameter_names_the_flag(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*inputs, "-o", tmp_path / "out.png", "--size", "5") == 2
    assert "--size: Input should be greater than or equal to 32" in capsys.readouterr().err


def test_a_blend_that_does_not_match_the_styles_fails(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*inputs, "-o", tmp_path / "out.png", "--style-blend", "1,1") == 2
    assert "style_blend has 2 weights but 1 style image" in capsys.readouterr().err


def test_a_missing_weights_file_fails_cleanly(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["stylize", *map(str, inputs), "-o", str(tmp_path / "o.png"), "--weights", str(tmp_path / "no.pth")])
    assert code == 2
    assert "not found" in capsys.readouterr().err
