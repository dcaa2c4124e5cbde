"""``restyle stylize``: the engine on the command line, with one flag per StyleParams field."""

from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from core.errors import RestyleError
from core.images import OutputFormat, decode_image, decode_mask, encode_image
from core.params import ClipParams, StyleParams
from core.schedule import check_fits, plan_stages
from restyle.cli.arguments import byte_count, fail, int_in_range
from restyle.settings import get_settings
from restyle.weights_notice import untrained_notice

if TYPE_CHECKING:
    from PIL import Image

    from core.engine import Progress, Stylized
    from core.masks import StyleMask
    from core.vgg import FeatureNet

_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
# What --output-format's help shows as its default: the parameter model's own (png) applies only without one.
_FORMAT_DEFAULT = "from the -o extension, else png"
# tqdm's own bar without its time left: that extrapolates the mean rate, which the cheap coarse stages of a
# coarse-to-fine run make far too fast. The engine's estimate goes in the postfix instead, once it has one.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class Unusable(Exception):
    """An argument this command finds unusable before the engine sees it (the output path, its extension)."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand; its parameter flags are derived from StyleParams, never restated."""
    parser = commands.add_parser(
        "stylize",
        help="repaint CONTENT in the style of one or more STYLE images",
        description="Repaint CONTENT in the style of one to four STYLE images.",
    )
    parser.add_argument("content", type=Path, metavar="CONTENT")
    parser.add_argument("styles", type=Path, nargs="+", metavar="STYLE")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="where to write the result; its extension (.png, .jpg, .jpeg, .webp or none) sets the format",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="auto | vgg19-imagenet | vgg16-imagenet | vgg16-imagenet-keras | random | PATH | caffe:PATH | "
        "onnx:PATH (default: RESTYLE_WEIGHTS or auto)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    parser.add_argument(
        "--memory-budget",
        type=byte_count,
        default=None,
        metavar="BYTES",
        help="memory the run may take, counting what the process holds already, as bytes or 8GiB, 512MiB, 8GB; "
        "larger pictures are optimised in tiles to stay within it (default: RESTYLE_MEMORY_BUDGET, else the "
        "engine's choice for this machine)",
    )
    parser.add_argument(
        "--mask",
        dest="masks",
        action="append",
        default=[],
        metavar="STYLE=MASK",
        help="where on the photo style STYLE paints: MASK is a picture whose grey levels are weights (black and "
        "transparent none, white full), of any size (scaled to the photo); STYLE is the style's number from 1 or its "
        "file as given. Repeat for other styles; an all-black mask is refused",
    )
    parser.add_argument(
        "--source-mask",
        dest="source_masks",
        action="append",
        default=[],
        metavar="STYLE=MASK",
        help="the part of style STYLE's painting to draw its style from, a mask over that painting like --mask's",
    )
    parser.add_argument(
        "--save-every",
        type=int_in_range(0),
        default=0,
        metavar="N",
        help="also write the picture every N iterations, next to the output (default: 0, never)",
    )
    _add_model_flags(parser.add_argument_group("style parameters"), StyleParams)
    _add_model_flags(
        parser.add_argument_group("clip parameters", "used when CONTENT is a clip and -o names an .mp4 or .webm file"),
        ClipParams,
    )
    parser.set_defaults(run=run)


def _add_model_flags(group: argparse._ArgumentGroup, model: type[BaseModel]) -> None:
    """One flag per field of ``model``, with its description and default as help."""
    for name, info in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = info.get_default(call_default_factory=True)
        shown = ",".join(f"{k}:{v:g}" for k, v in default.items()) if isinstance(default, dict) else default
        if name == "output_format":
            shown = _FORMAT_DEFAULT
        is_switch = set(typing.get_args(info.annotation) or [info.annotation]) <= {bool, type(None)}
        if is_switch and default is None:
            shown = "automatic"
        # A field without a default says in its description what leaving it out means.
        help_text = info.description if shown is None else f"{info.description} (default: {shown})"
        if is_switch:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            choices = typing.get_args(info.annotation) if typing.get_origin(info.annotation) is typing.Literal else None
            # Values stay strings: pydantic parses and range-checks them, with the same messages as the API.
            group.add_argument(flag, dest=name, default=None, choices=choices, help=help_text)


def run(args: argparse.Namespace) -> int:
    """Stylise, showing a progress bar; user errors exit 2 with the engine's message, never a traceback.

    Everything that can be checked without the network is checked first, so a mistake never costs a whole run.
    An output named .mp4 or .webm makes CONTENT a clip, stylised frame by frame (``restyle.cli.clip``).
    """
    from restyle.cli import clip

    if clip.is_clip_output(args.output):
        return clip.run(args)
    try:
        clip.refuse_clip_content(args.content, args.output)
        params = _params_from(args)
        check_writable(args.output)
        content = read_image(args.content, "content")
        styles = [read_image(path, f"style {i}") for i, path in enumerate(args.styles, start=1)]
        params.blend_weights(len(styles))
        masks = read_masks(args.masks, args.source_masks, args.styles)
        check_sizes(params, f"content ({args.content})", content.size, args.styles, styles)
    except ValidationError as error:
        return fail(flag_problems(error))
    except (RestyleError, Unusable, OSError) as error:
        return fail(str(error))

    from core.vgg import load_vgg

    settings = get_settings()
    try:
        net = load_vgg(args.weights or settings.weights, args.device or settings.device)
        budget = settings.memory_budget if args.memory_budget is None else args.memory_budget
        result = _stylize_with_progress(content, styles, masks, params, net, args.output, args.save_every, budget)
        _write(args.output, result.image, params.output_format)
    except (RestyleError, Unusable) as error:
        return fail(str(error))
    _report(args.output, result)
    return 0


def _stylize_with_progress(
    content: Image.Image,
    styles: Sequence[Image.Image],
    masks: Sequence[StyleMask | None],
    params: StyleParams,
    net: FeatureNet,
    output: Path,
    save_every: int,
    memory_budget: int | None,
) -> Stylized:
    """The engine run behind a progress bar on stderr, closed however the run ends."""
    from tqdm import tqdm

    from core.engine import stylize

    total = sum(stage.iterations for stage in plan_stages(params))
    with tqdm(total=total, unit="it", dynamic_ncols=True, file=sys.stderr, bar_format=BAR_FORMAT) as bar:

        def show(progress: Progress) -> None:
            bar.set_description_str(stage_text(progress), refresh=False)
            losses = f"content={progress.content_loss:.3g}, style={progress.style_loss:.3g}, tv={progress.tv_loss:.3g}"
            left = "" if progress.remaining is None else f"{tqdm.format_interval(progress.remaining)} left, "
            bar.set_postfix_str(left + losses, refresh=False)
            bar.update(progress.iteration - bar.n)

        def save_snapshot(iteration: int, image: Image.Image) -> None:
            _write(output.with_name(f"{output.stem}_{iteration:04d}{output.suffix}"), image, params.output_format)

        return stylize(
            content,
            styles,
            params,
            net=net,
            masks=masks,
            on_progress=show,
            on_snapshot=save_snapshot if save_every else None,
            snapshot_every=save_every,
            memory_budget=memory_budget,
        )


def check_sizes(
    params: StyleParams,
    content_name: str,
    content_size: tuple[int, int],
    style_paths: Sequence[Path],
    styles: Sequence[Image.Image],
) -> None:
    """Refuse now, naming the file, a picture the run's sizes would shrink below what the network can see."""
    pairs = enumerate(zip(style_paths, styles, strict=True), 1)
    named = [(f"style {i} ({path})", style.size) for i, (path, style) in pairs]
    check_fits(params, (content_name, content_size), named)


def stage_text(progress: Progress) -> str:
    """Where the schedule stands: "stage 2/4 at 1024 px", or only the size when the run has one stage."""
    at = f"{progress.size} px"
    return f"stage {progress.stage}/{progress.stages} at {at}" if progress.stages > 1 else at


def _params_from(args: argparse.Namespace) -> StyleParams:
    return style_params(args, _output_format(args.output, args.output_format))


def style_params(args: argparse.Namespace, output_format: str | None) -> StyleParams:
    """The StyleParams the flags give, with ``output_format`` for the format flag."""
    values = {name: getattr(args, name) for name in StyleParams.model_fields}
    values["output_format"] = output_format
    return StyleParams.from_mapping(values)


def _output_format(output: Path, requested: str | None) -> str | None:
    """The format the output's name implies; bytes that contradict the name would mislead every later reader."""
    suffix = output.suffix.lower()
    if not suffix:
        return requested
    implied = _SUFFIX_FORMATS.get(suffix)
    if implied is None:
        known = ", ".join(_SUFFIX_FORMATS)
        raise Unusable(f"-o {output}: unknown extension {suffix} (use {known}, or none and --output-format)")
    if requested not in (None, implied):
        raise Unusable(f"-o {output} names a {implied} file but --output-format is {requested}")
    return implied


def check_writable(path: Path) -> None:
    """Fail before the run, not after it; snapshots go to the same directory, so this covers them too.

    Opening the file is the only reliable test: permission bits say nothing for root or for /proc.
    """
    if not path.parent.is_dir():
        raise Unusable(f"cannot write {path}: directory {path.parent} does not exist")
    existed = path.exists()
    try:
        with path.open("ab"):  # appending leaves an existing file as it is until the result replaces it
            pass
    except OSError as error:
        raise Unusable(f"cannot write {path}: {error.strerror}") from error
    if not existed:
        path.unlink()


def _write(path: Path, image: Image.Image, output_format: OutputFormat) -> None:
    try:
        path.write_bytes(encode_image(image, output_format))
    except OSError as error:
        raise Unusable(f"cannot write {path}: {error.strerror}") from error


def _report(output: Path, result: Stylized) -> None:
    report(
        f"wrote {output} ({result.image.width}×{result.image.height}) in {result.seconds:.1f} s, "
        f"{result.iterations} iterations, weights {result.weights}",
        result.weights,
    )


def report(summary: str, weights: str) -> None:
    """The summary line on stdout, then, for untrained weights, what they cost and how to fix it on a line of
    its own: the last thing a person reads is why the picture looks weak. A reader that left early (``| true``)
    does not undo the written result, so a closed pipe is no error."""
    lines = [summary]
    notice = untrained_notice(weights)
    if notice is not None:
        lines.append(notice)
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:
        # Python flushes stdout again at exit and would report the broken pipe there; let that flush go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def read_image(path: Path, name: str) -> Image.Image:
    return decode_image(path.read_bytes(), name=f"{name} ({path})")


def read_masks(masks: Sequence[str], source_masks: Sequence[str], styles: Sequence[Path]) -> list[StyleMask | None]:
    """The --mask and --source-mask pictures as the engine takes them, one entry per style (None for a style with
    neither); each read now, and refused now as the engine would refuse it, so a wrong one never costs a run."""
    from core.masks import StyleMask, check_masks

    found: dict[tuple[int, bool], Image.Image] = {}
    for source, given in ((False, masks), (True, source_masks)):
        flag = "--source-mask" if source else "--mask"
        for text in given:
            number, path = _mask_argument(flag, text, styles)
            if (number, source) in found:
                raise Unusable(f"{flag} {text}: style {number} has a {flag} already; give one per style")
            found[number, source] = decode_mask(path.read_bytes(), name=f"{flag} {text}")
    return check_masks(
        [
            StyleMask(photo=found.get((number, False)), painting=found.get((number, True)))
            for number in range(1, len(styles) + 1)
        ],
        len(styles),
    )


def _mask_argument(flag: str, text: str, styles: Sequence[Path]) -> tuple[int, Path]:
    """The style number (from 1) and the mask file that ``STYLE=MASK`` names. STYLE is a number or a style file as
    given, which may itself hold "=": the first split whose left side names a style wins."""
    splits = [index for index, character in enumerate(text) if character == "="]
    if not splits:
        raise Unusable(f"{flag} {text}: give STYLE=MASK, STYLE being the style's number or its file")
    for index in splits:
        number = _style_number(flag, text, text[:index], styles)
        if number is not None:
            return number, Path(text[index + 1 :])
    style = text[: splits[0]]
    raise Unusable(
        f"{flag} {text}: there is no style {style!r}; give its number (1 to {len(styles)}) or its file as given"
    )


def _style_number(flag: str, text: str, style: str, styles: Sequence[Path]) -> int | None:
    """The number of the style that ``style`` names, by number or by file; None when it names none."""
    if style.isdigit():
        number = int(style)
        return number if 1 <= number <= len(styles) else None
    numbers = [number for number, path in enumerate(styles, 1) if style and Path(style) == path]
    if len(numbers) > 1:
        listed = " and ".join(map(str, numbers))
        raise Unusable(f"{flag} {text}: {style} is styles {listed}; name the style by its number instead")
    return numbers[0] if numbers else None


def flag_problems(error: ValidationError) -> str:
    """Name the flag as typed, then the item inside it (a layer, or the n-th number of a list)."""
    problems = []
    for item in error.errors():
        field, *inner = item["loc"]
        parts = [
            "--" + str(field).replace("_", "-"),
            *(f"item {i + 1}" if isinstance(i, int) else str(i) for i in inner),
        ]
        problems.append(f"{': '.join(parts)}: {item['msg']}")
    return "; ".join(problems)
