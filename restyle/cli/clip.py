"""``restyle stylize`` on a clip: CONTENT an MP4, WebM or GIF clip and -o an .mp4 or .webm file.

The frames are stylised in order, each after the first held to its predecessor (``core.video``), and encoded as
they finish, with the clip's frame rate and sound, into a file beside the output that replaces it only once
complete: a run that fails or is interrupted leaves no half-written clip under the output's name. One progress
bar counts every frame's iterations.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pydantic import ValidationError

from core.errors import RestyleError
from core.params import ClipParams, StyleParams
from restyle.cli.arguments import fail
from restyle.cli.stylize import (
    BAR_FORMAT,
    Unusable,
    check_sizes,
    check_writable,
    flag_problems,
    read_image,
    read_masks,
    report,
    stage_text,
    style_params,
)
from restyle.settings import get_settings

if TYPE_CHECKING:
    from PIL import Image

    from core.engine import Progress
    from core.masks import StyleMask
    from core.vgg import FeatureNet
    from core.video.codec import ClipInfo, OutputContainer

_CLIP_SUFFIXES: dict[str, OutputContainer] = {".mp4": "mp4", ".webm": "webm"}


class _Finished(NamedTuple):
    """What the summary line needs of a finished frame."""

    iterations: int
    size: tuple[int, int]


def is_clip_output(output: Path) -> bool:
    """Whether -o names a clip, which makes CONTENT one."""
    return output.suffix.lower() in _CLIP_SUFFIXES


def refuse_clip_content(content: Path, output: Path) -> None:
    """An MP4 or WebM content with a picture's -o is a mistake: say how to stylise the clip rather than fail to read
    a picture. An animated GIF stays a picture there (its first frame), as it always was."""
    from core.video.codec import sniff_container

    try:
        with content.open("rb") as file:
            kind = sniff_container(file.read(16))
    except OSError:
        return  # reading it as a picture reports what is wrong with the file
    if kind in _CLIP_SUFFIXES.values():
        raise Unusable(f"{content} is a clip; name an .mp4 or .webm file with -o to stylise it, not {output.name}")


def run(args: argparse.Namespace) -> int:
    """Stylise the clip CONTENT into -o; user errors exit 2 before any frame is stylised."""
    from core.video.codec import even_size, inspect_clip

    settings = get_settings()
    content_name = f"content ({args.content})"
    try:
        if args.save_every:
            raise Unusable("--save-every writes pictures of one run; a clip has none to write")
        if args.output_format is not None:
            raise Unusable(f"--output-format is for pictures; -o {args.output} names the clip's format")
        implied = _CLIP_SUFFIXES[args.output.suffix.lower()]
        if args.clip_format not in (None, implied):
            raise Unusable(f"-o {args.output} names a {implied} clip but --clip-format is {args.clip_format}")
        params = style_params(args, None)
        clip = ClipParams.from_mapping({name: getattr(args, name) for name in ClipParams.model_fields})
        check_writable(args.output)
        info = inspect_clip(args.content, settings.clip_limits(), name=content_name)
        styles = [read_image(path, f"style {i}") for i, path in enumerate(args.styles, start=1)]
        params.blend_weights(len(styles))
        masks = read_masks(args.masks, args.source_masks, args.styles)
        check_sizes(params, content_name, (info.width, info.height), args.styles, styles)
    except ValidationError as error:
        return fail(flag_problems(error))
    except (RestyleError, Unusable, OSError) as error:
        return fail(str(error))

    from core.vgg import load_vgg

    try:
        net = load_vgg(args.weights or settings.weights, args.device or settings.device)
        budget = settings.memory_budget if args.memory_budget is None else args.memory_budget
        started = time.perf_counter()
        finished = _stylize_clip(args.content, args.output, info, styles, masks, params, clip, net, budget)
    except (RestyleError, Unusable) as error:
        return fail(str(error))
    first, *later = finished
    later_text = f", later frames {later[0].iterations} each" if later else ""
    width, height = even_size(first.size)
    sound = ", with sound" if info.audio else ""
    report(
        f"wrote {args.output} ({width}×{height}, {len(finished)} frames at "
        f"{float(info.frame_rate):g} fps{sound}) in {time.perf_counter() - started:.1f} s, "
        f"first frame {first.iterations} iterations{later_text}, weights {net.weights_name}",
        net.weights_name,
    )
    return 0


def _stylize_clip(
    content: Path,
    output: Path,
    info: ClipInfo,
    styles: Sequence[Image.Image],
    masks: Sequence[StyleMask | None],
    params: StyleParams,
    clip: ClipParams,
    net: FeatureNet,
    memory_budget: int | None,
) -> list[_Finished]:
    """Every frame stylised behind one progress bar and encoded into ``output``; returns the finished frames'
    records, without their pictures: the encoder has those, and a long clip's would not fit in memory."""
    import av
    from tqdm import tqdm

    from core.video.clip import stylize_frames
    from core.video.codec import read_frames, write_clip

    total = clip.total_iterations(params, info.frames)
    finished: list[_Finished] = []
    with (
        tqdm(total=total, unit="it", dynamic_ncols=True, file=sys.stderr, bar_format=BAR_FORMAT) as bar,
        _replacing(output) as partial,
    ):

        def show(index: int, progress: Progress) -> None:
            before = clip.total_iterations(params, index)  # the frames before this one
            where = f"frame {index + 1}/{info.frames}"
            bar.set_description_str(f"{where}, {stage_text(progress)}" if index == 0 else where, refresh=False)
            bar.set_postfix_str(f"content={progress.content_loss:.3g}, style={progress.style_loss:.3g}", refresh=False)
            bar.update(before + progress.iteration - bar.n)

        def pictures() -> Iterator[Image.Image]:
            frames = read_frames(content, name=f"content ({content})")
            for frame in stylize_frames(
                frames, styles, params, clip, net=net, masks=masks, on_progress=show, memory_budget=memory_budget
            ):
                finished.append(_Finished(frame.iterations, frame.image.size))
                yield frame.image

        try:
            write_clip(pictures(), partial, _CLIP_SUFFIXES[output.suffix.lower()], info.frame_rate, sound_from=content)
        except (OSError, av.FFmpegError) as error:
            raise Unusable(f"cannot write {output}: {error.strerror}") from error
    return finished


@contextlib.contextmanager
def _replacing(output: Path) -> Iterator[Path]:
    """A file beside ``output`` to write, moved onto it when the block ends well and removed when it does not."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        yield partial
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
