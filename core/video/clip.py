"""A clip's frames stylised in order, each after the first held to its predecessor (Ruder et al., GCPR 2016).

Frame t starts from frame t−1's result carried along the photo frames' motion and is pulled towards it wherever
that motion is trusted (``core.temporal``), so it settles in the same minimum instead of flickering to another
one, in a fraction of the first frame's iterations (``ClipParams.later_frames``). The frames come out one by one:
a caller that keeps each as a checkpoint can resume a clip after its last finished frame (``after``), and the
frames before it are never computed again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from core.engine import CancelCheck, Progress, stylize
from core.images import fit_longest_side
from core.masks import StyleMask
from core.params import ClipParams, StyleParams
from core.temporal import TemporalTarget
from core.vgg import FeatureNet
from core.video.flow import motion

FrameProgressCallback = Callable[[int, Progress], None]


@dataclass(frozen=True)
class Checkpoint:
    """What the next frame needs of a finished one: its index, its photo frame at the result's size (the motion is
    measured on photo frames) and its result."""

    index: int
    photo: Image.Image
    result: Image.Image


@dataclass(frozen=True)
class StylizedFrame:
    """One finished frame and how it was made; ``reliable`` is the share of it held to its predecessor (None for
    the first frame of a run)."""

    checkpoint: Checkpoint
    iterations: int
    seconds: float
    losses: dict[str, float]
    reliable: float | None

    @property
    def index(self) -> int:
        return self.checkpoint.index

    @property
    def image(self) -> Image.Image:
        return self.checkpoint.result


def stylize_frames(
    frames: Iterable[Image.Image],
    styles: Sequence[Image.Image],
    params: StyleParams,
    clip: ClipParams,
    *,
    net: FeatureNet,
    masks: Sequence[StyleMask | None] | None = None,
    after: Checkpoint | None = None,
    on_progress: FrameProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
    memory_budget: int | None = None,
) -> Iterator[StylizedFrame]:
    """Stylise ``frames`` in order, yielding each as it is finished; raises ``Cancelled`` between iterations when
    asked to stop, so a cancel waits for one frame's iteration at most.

    ``after`` resumes a clip: ``frames`` are then the ones after its frame, which the first of them is held to.
    ``on_progress`` hears each iteration with the index of the frame it belongs to.
    """
    previous = after
    later = clip.later_frames(params)
    first_index = 0 if after is None else after.index + 1
    for index, frame in enumerate(frames, start=first_index):
        started = time.perf_counter()
        photo = fit_longest_side(frame.convert("RGB"), params.size)
        report = _for_frame(on_progress, index)
        if previous is None:
            result = stylize(
                photo,
                styles,
                params,
                net=net,
                masks=masks,
                on_progress=report,
                is_cancelled=is_cancelled,
                memory_budget=memory_budget,
            )
            reliable = None
        else:
            target = temporal_target(previous, photo, clip.temporal_weight)
            reliable = float(target.reliability.mean())
            result = stylize(
                photo,
                styles,
                later,
                net=net,
                masks=masks,
                on_progress=report,
                is_cancelled=is_cancelled,
                memory_budget=memory_budget,
                temporal=target,
            )
        finished = StylizedFrame(
            Checkpoint(index, photo, result.image),
            result.iterations,
            time.perf_counter() - started,
            result.losses,
            reliable,
        )
        yield finished
        previous = finished.checkpoint


def temporal_target(previous: Checkpoint, photo: Image.Image, weight: float) -> TemporalTarget:
    """What frame ``photo`` is held to: ``previous``' result carried along the motion from its photo to this one."""
    moved = motion(_same_size(previous.photo, photo), photo)
    result = pil_to_tensor(_same_size(previous.result, photo)).float().div_(255.0)[None]
    return TemporalTarget(moved.warp(result), moved.reliability, weight)


def _same_size(image: Image.Image, like: Image.Image) -> Image.Image:
    """Frames of one clip share a size; a checkpoint kept at another (rounding of another run) is brought to it."""
    return image if image.size == like.size else image.resize(like.size, Image.Resampling.BICUBIC)


def _for_frame(on_progress: FrameProgressCallback | None, index: int) -> Callable[[Progress], None] | None:
    if on_progress is None:
        return None

    def report(progress: Progress) -> None:
        on_progress(index, progress)

    return report
