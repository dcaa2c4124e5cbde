"""``restyle stylize``: flags derived from the parameter model, a real run, and clean failures."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
from PIL import Image

import core.engine
from restyle.cli import main
from restyle.weights_notice import untrained_notice
from tests.core.pictures import encoded, make_painting, make_photo
from tests.support import REPO_ROOT
from tests.support.pictures import make_mask
from tests.support.weights_files import write_vgg19_weights


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "photo.jpg", tmp_path / "painting.png"
    content.write_bytes(encoded(make_photo(), "JPEG"))
    style.write_bytes(encoded(make_painting()))
    return content, style


def run(*argv: str | Path) -> int:
    return main(["stylize", *map(str, argv), "--weights", "random", "--device", "cpu"])


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the command gets as far as loading the network."""

    def load_vgg(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("the run started")

    monkeypatch.setattr("core.vgg.load_vgg", load_vgg)


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


def test_on_random_weights_the_last_line_says_what_they_cost_and_how_to_fix_it(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*inputs, "-o", tmp_path / "out.png", "--size", "32", "--iterations", "1") == 0
    summary, last = capsys.readouterr().out.splitlines()[-2:]
    assert summary.endswith("weights random(seed=0)")
    assert last == untrained_notice("random(seed=0)")


def test_on_trained_weights_the_summary_is_the_last_line(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = write_vgg19_weights(tmp_path / "vgg19.pth")
    argv = [*map(str, inputs), "-o", str(tmp_path / "out.png"), "--size", "32", "--iterations", "1"]
    assert main(["stylize", *argv, "--weights", str(weights), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("1 iterations, weights file:vgg19.pth")


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


def test_a_device_that_does_not_exist_fails_cleanly(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stylize", *map(str, inputs), "-o", str(tmp_path / "o.png"), "--weights", "random", "--device", "bogus"]
    assert main(argv) == 2
    assert capsys.readouterr().err == "restyle: error: 'bogus' is not a torch device (use cpu, cuda or cuda:N)\n"


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("nodir/sub/out.png", "directory {tmp}/nodir/sub does not exist"),
        ("a-directory", "Is a directory"),
    ],
    ids=["missing directory", "directory"],
)
def test_an_output_that_cannot_be_written_fails_before_the_run(
    output: str, reason: str, inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-directory").mkdir()
    assert run(*inputs, "-o", tmp_path / output) == 2
    assert (
        capsys.readouterr().err == f"restyle: error: cannot write {tmp_path / output}: {reason.format(tmp=tmp_path)}\n"
    )


@pytest.mark.usefixtures("no_run")
def test_checking_the_output_leaves_no_file_behind(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    assert run(inputs[0], tmp_path / "missing.png", "-o", tmp_path / "out.png") == 2
    assert not (tmp_path / "out.png").exists()


def test_an_output_that_goes_away_during_the_run_fails_cleanly(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results" / "out.png"
    out.parent.mkdir()
    stylize = core.engine.stylize

    def stylize_then_remove_the_directory(*args: Any, **kwargs: Any) -> Any:
        result = stylize(*args, **kwargs)
        shutil.rmtree(out.parent)
        return result

    monkeypatch.setattr("core.engine.stylize", stylize_then_remove_the_directory)
    assert run(*inputs, "-o", out, "--size", "32", "--iterations", "1") == 2
    assert capsys.readouterr().err.endswith(f"restyle: error: cannot write {out}: No such file or directory\n")


def test_an_intermediate_that_cannot_be_written_fails_cleanly(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out_0002.png").mkdir()
    assert run(*inputs, "-o", tmp_path / "out.png", "--size", "32", "--iterations", "4", "--save-every", "2") == 2
    err = capsys.readouterr().err
    assert err.endswith(f"restyle: error: cannot write {tmp_path / 'out_0002.png'}: Is a directory\n")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("where", ["core.vgg.load_vgg", "restyle.cli.stylize.encode_image"], ids=["start-up", "write"])
def test_ctrl_c_at_any_point_exits_130_without_a_traceback(
    where: str,
    inputs: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> NoReturn:
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupted)
    assert run(*inputs, "-o", tmp_path / "out.png", "--size", "32", "--iterations", "1") == 130
    assert capsys.readouterr().err.endswith("restyle: interrupted\n")


@pytest.mark.parametrize(
    ("flag", "value", "reason"),
    [("--save-every", "-3", "must be 0 or more, not -3"), ("--memory-budget", "plenty", "'plenty' is not an amount")],
)
def test_a_bad_flag_value_is_refused_naming_the_flag(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, reason: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(*inputs, "-o", tmp_path / "out.png", flag, value)
    assert exit_.value.code == 2
    assert f"argument {flag}: {reason}" in capsys.readouterr().err


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize(
    ("output", "flags", "reason"),
    [
        ("mm.png", ["--output-format", "jpeg"], "-o {out} names a png file but --output-format is jpeg"),
        ("out.gif", [], "-o {out}: unknown extension .gif (use .png, .jpg, .jpeg, .webp, or none and --output-format)"),
    ],
    ids=["disagrees with --output-format", "unknown"],
)
def test_an_output_extension_that_does_not_name_the_format_is_refused(
    output: str,
    flags: list[str],
    reason: str,
    inputs: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(*inputs, "-o", tmp_path / output, *flags) == 2
    assert capsys.readouterr().err == f"restyle: error: {reason.format(out=tmp_path / output)}\n"


def test_an_output_without_extension_takes_the_output_format(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "result"
    assert run(*inputs, "-o", out, "--size", "32", "--iterations", "1", "--output-format", "jpeg") == 0
    with Image.open(out) as image:
        assert image.format == "JPEG"


def test_the_output_format_help_says_the_extension_decides_first(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Encoding of the result. (default: from the -o extension, else png)" in help_text


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--style-layers", "relu1_1:abc", "--style-layers: relu1_1: Input should be a valid number"),
        ("--style-blend", "abc", "--style-blend: item 1: Input should be a valid number"),
    ],
)
def test_an_invalid_item_names_the_flag_and_the_item(
    flag: str, value: str, problem: str, inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*inputs, "-o", tmp_path / "out.png", flag, value) == 2
    assert capsys.readouterr().err.startswith(f"restyle: error: {problem}")


def test_a_reader_that_closes_stdout_early_is_no_error(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    read, write = os.pipe()
    os.close(read)  # like `restyle stylize … | true`
    argv = [*map(str, inputs), "-o", str(out), "--size", "32", "--iterations", "1", "--weights", "random"]
    restyle = Path(sys.executable).parent / "restyle"
    try:
        done = subprocess.run(
            [str(restyle), "stylize", *argv], cwd=REPO_ROOT, stdout=write, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write)
    assert (done.returncode, "Traceback" in done.stderr, "Broken pipe" in done.stderr) == (0, False, False)
    assert out.is_file()


def test_the_progress_bar_shows_the_whole_run_from_the_start(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*inputs, "-o", tmp_path / "out.png", "--size", "32", "--iterations", "3") == 0
    totals = re.findall(r"\| *\d+/(\d+) \[", capsys.readouterr().err)
    assert totals and set(totals) == {"3"}


@pytest.mark.usefixtures("fresh_settings")
@pytest.mark.parametrize(
    ("environment", "flags", "budget"),
    # Budgets cover the test process too (torch and all), so they are a few GiB.
    [({}, ["--memory-budget", "8GiB"], 8 * 2**30), ({"RESTYLE_MEMORY_BUDGET": "6GiB"}, [], 6 * 2**30), ({}, [], None)],
    ids=["flag", "setting", "engine default"],
)
def test_the_memory_budget_reaches_the_engine(
    environment: dict[str, str],
    flags: list[str],
    budget: int | None,
    inputs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RESTYLE_MEMORY_BUDGET", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    budgets = []
    stylize = core.engine.stylize

    def recording(*args: Any, memory_budget: int | None = None, **kwargs: Any) -> Any:
        budgets.append(memory_budget)
        return stylize(*args, memory_budget=memory_budget, **kwargs)

    monkeypatch.setattr("core.engine.stylize", recording)
    assert run(*inputs, "-o", tmp_path / "out.png", "--size", "32", "--iterations", "1", *flags) == 0
    assert budgets == [budget]


def test_the_progress_bar_shows_the_stage_and_the_engines_time_left(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stylize = core.engine.stylize

    def reporting(*args: Any, on_progress: Callable[[core.engine.Progress], None], **kwargs: Any) -> Any:
        def report(progress: core.engine.Progress) -> None:
            on_progress(dataclasses.replace(progress, stage=2, stages=4, size=1024, remaining=95.0))

        return stylize(*args, on_progress=report, **kwargs)

    monkeypatch.setattr("core.engine.stylize", reporting)
    assert run(*inputs, "-o", tmp_path / "out.png", "--size", "32", "--iterations", "2") == 0
    err = capsys.readouterr().err
    assert "stage 2/4 at 1024 px: " in err and "01:35 left, content=" in err


def test_a_one_stage_run_shows_its_size_without_a_stage(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*inputs, "-o", tmp_path / "out.png", "--size", "32", "--iterations", "2") == 0
    err = capsys.readouterr().err
    assert "32 px: " in err and "stage" not in err


# Masks --------------------------------------------------------------------------------------------------------


@pytest.fixture
def paintings(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A photo and two different paintings, as files."""
    content, first, second = tmp_path / "photo.jpg", tmp_path / "first.png", tmp_path / "second.png"
    content.write_bytes(encoded(make_photo(), "JPEG"))
    first.write_bytes(encoded(make_painting()))
    second.write_bytes(encoded(make_painting(phase=1.5)))
    return content, first, second


@pytest.fixture
def mask_file(tmp_path: Path) -> Path:
    """A mask white over the left half of the picture."""
    path = tmp_path / "left.png"
    path.write_bytes(make_mask())
    return path


@pytest.fixture
def engine_masks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The masks each run passes to the engine, which does not run (nor is the network loaded)."""
    calls: list[Any] = []

    def recording(content: Image.Image, styles: Any, params: Any, *, masks: Any, **kwargs: Any) -> Any:
        calls.append(masks)
        return core.engine.Stylized(image=content, weights="random(seed=0)", iterations=1, seconds=0.0)

    monkeypatch.setattr("core.vgg.load_vgg", lambda *args: None)
    monkeypatch.setattr("core.engine.stylize", recording)
    return calls


def test_masks_reach_the_engine_for_the_styles_they_name_by_number_or_by_file(
    paintings: tuple[Path, Path, Path], mask_file: Path, tmp_path: Path, engine_masks: list[Any]
) -> None:
    content, first, second = paintings
    flags = ["--mask", f"2={mask_file}", "--source-mask", f"{first}={mask_file}"]
    assert run(content, first, second, "-o", tmp_path / "out.png", *flags) == 0
    (masks,) = engine_masks
    assert [(mask.photo is None, mask.painting is None) for mask in masks] == [(True, False), (False, True)]
    assert masks[1].photo.size == (48, 40)


def test_a_run_without_masks_passes_the_engine_none_for_every_style(
    paintings: tuple[Path, Path, Path], tmp_path: Path, engine_masks: list[Any]
) -> None:
    assert run(*paintings, "-o", tmp_path / "out.png") == 0
    assert engine_masks == [[None, None]]


def test_a_masked_run_writes_its_result(
    inputs: tuple[Path, Path], mask_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    assert run(*inputs, "-o", out, "--size", "32", "--iterations", "2", "--mask", f"1={mask_file}") == 0
    with Image.open(out) as image:
        assert image.size == (32, 27)


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize(
    ("argument", "problem"),
    [
        ("3={mask}", "--mask 3={mask}: there is no style '3'; give its number (1 to 1) or its file as given"),
        (
            "other.png={mask}",
            "--mask other.png={mask}: there is no style 'other.png'; give its number (1 to 1) or its file as given",
        ),
        ("{mask}", "--mask {mask}: give STYLE=MASK, STYLE being the style's number or its file"),
    ],
    ids=["number", "file", "no style"],
)
def test_a_mask_for_a_style_that_was_not_given_fails_naming_it(
    argument: str,
    problem: str,
    inputs: tuple[Path, Path],
    mask_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(*inputs, "-o", tmp_path / "out.png", "--mask", argument.format(mask=mask_file)) == 2
    assert capsys.readouterr().err == f"restyle: error: {problem.format(mask=mask_file)}\n"


@pytest.mark.usefixtures("no_run")
def test_a_mask_that_is_not_an_image_fails_naming_the_flag(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "sky.png"
    notes.write_text("the sky, roughly")
    assert run(*inputs, "-o", tmp_path / "out.png", "--source-mask", f"1={notes}") == 2
    assert capsys.readouterr().err.startswith(f"restyle: error: --source-mask 1={notes} is not an image")


@pytest.mark.usefixtures("no_run")
def test_a_missing_mask_file_fails_cleanly(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*inputs, "-o", tmp_path / "out.png", "--mask", f"1={tmp_path / 'none.png'}") == 2
    err = capsys.readouterr().err
    assert "No such file or directory" in err and "Traceback" not in err


@pytest.mark.usefixtures("no_run")
def test_an_all_black_mask_fails_before_the_run_with_the_engines_message(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    black = tmp_path / "black.png"
    black.write_bytes(make_mask(covered=0))
    assert run(*inputs, "-o", tmp_path / "out.png", "--mask", f"1={black}") == 2
    assert capsys.readouterr().err == "restyle: error: the mask for style 1 is all black: it would paint nothing\n"


@pytest.mark.usefixtures("no_run")
def test_two_masks_for_one_style_are_refused(
    inputs: tuple[Path, Path], mask_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    style = inputs[1]
    assert run(*inputs, "-o", tmp_path / "out.png", "--mask", f"1={mask_file}", "--mask", f"{style}={mask_file}") == 2
    assert capsys.readouterr().err == (
        f"restyle: error: --mask {style}={mask_file}: style 1 has a --mask already; give one per style\n"
    )


@pytest.mark.usefixtures("no_run")
def test_a_painting_given_twice_is_named_by_its_number(
    inputs: tuple[Path, Path], mask_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, style = inputs
    assert run(content, style, style, "-o", tmp_path / "out.png", "--mask", f"{style}={mask_file}") == 2
    assert capsys.readouterr().err == (
        f"restyle: error: --mask {style}={mask_file}: {style} is styles 1 and 2; name the style by its number instead\n"
    )


def test_the_help_documents_the_mask_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--mask STYLE=MASK where on the photo style STYLE paints" in help_text
    assert "--source-mask STYLE=MASK the part of style STYLE's painting" in help_text
