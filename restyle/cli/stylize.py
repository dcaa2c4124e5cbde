"""``restyle stylize``: the engine on the command line, with one flag per StyleParams field."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.errors import RestyleError
from core.images import decode_image, encode_image
from core.params import StyleParams

_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand; its parameter flags are derived from StyleParams, never restated."""
    parser = commands.add_parser(
        "stylize",
        help="repaint CONTENT in the style of one or more STYLE images",
        description="Repaint CONTENT in the style of one to four STYLE images.",
    )
    parser.add_argument("content", type=Path, metavar="CONTENT")
    parser.add_argument("styles", type=Path, nargs="+", metavar="STYLE")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the result")
    parser.add_argument(
        "--weights",
        default=None,
        help="auto | imagenet | random | PATH | caffe:PATH (default: RESTYLE_WEIGHTS or auto)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    parser.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also write the picture every N iterations, next to the output",
    )
    group = parser.add_argument_group("style parameters")
    for name, info in StyleParams.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = info.get_default(call_default_factory=True)
        shown = ",".join(f"{k}:{v:g}" for k, v in default.items()) if isinstance(default, dict) else default
        help_text = f"{info.description} (default: {shown})"
        if info.annotation is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            choices = typing.get_args(info.annotation) if typing.get_origin(info.annotation) is typing.Literal else None
            # Values stay strings: pydantic parses and range-checks them, with the same messages as the API.
            group.add_argument(flag, dest=name, default=None, choices=choices, help=help_text)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Stylise, showing a progress bar; user errors exit 2 with the engine's message, never a traceback."""
    try:
        params = _params_from(args)
        content = _read_image(args.content, "content")
        styles = [_read_image(path, f"style {i}") for i, path in enumerate(args.styles, start=1)]
        params.blend_weights(len(styles))
    except ValidationError as error:
        return _fail(
            "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in error.errors())
        )
    except (RestyleError, OSError) as error:
        return _fail(str(error))

    from tqdm import tqdm

    from core.engine import Progress, stylize
    from core.vgg import load_vgg
    from restyle.settings import get_settings

    settings = get_settings()
    try:
        net = load_vgg(args.weights or settings.weights, args.device or settings.device)
    except RestyleError as error:
        return _fail(str(error))
    bar = tqdm(total=1, unit="it", dynamic_ncols=True, file=sys.stderr)

    def show(progress: Progress) -> None:
        bar.total = progress.total
        bar.set_postfix(
            size=progress.size,
            content=f"{progress.content_loss:.3g}",
            style=f"{progress.style_loss:.3g}",
            tv=f"{progress.tv_loss:.3g}",
            refresh=False,
        )
        bar.update(progress.iteration - bar.n)

    def save_snapshot(iteration: int, image: Any) -> None:
        path = args.output.with_name(f"{args.output.stem}_{iteration:04d}{args.output.suffix}")
        path.write_bytes(encode_image(image, params.output_format))

    try:
        result = stylize(
            content,
            styles,
            params,
            net=net,
            on_progress=show,
            on_snapshot=save_snapshot if args.save_every else None,
            snapshot_every=args.save_every,
        )
    except RestyleError as error:
        bar.close()
        return _fail(str(error))
    except KeyboardInterrupt:
        bar.close()
        return _fail("interrupted")
    bar.close()
    args.output.write_bytes(encode_image(result.image, params.output_format))
    print(
        f"wrote {args.output} ({result.image.width}×{result.image.height}) in {result.seconds:.1f} s, "
        f"{result.iterations} iterations, weights {result.weights}"
    )
    return 0


def _params_from(args: argparse.Namespace) -> StyleParams:
    values = {name: getattr(args, name) for name in StyleParams.model_fields}
    if values["output_format"] is None:
        values["output_format"] = _SUFFIX_FORMATS.get(args.output.suffix.lower())
    return StyleParams.from_mapping(values)


def _read_image(path: Path, name: str) -> Any:
    return decode_image(path.read_bytes(), name=f"{name} ({path})")


def _fail(message: str) -> int:
    print(f"restyle: error: {message}", file=sys.stderr)
    return 2
