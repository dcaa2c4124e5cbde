"""Spatial control's cost (prints figures; not a test): seconds per iteration of two styles on two masked halves
of the photo against one style on all of it, at the same size and in the same process. Usage, from the
repository root:

    .venv/bin/python -m bench.masks [--photo PATH] [--paintings PATH PATH] [--size 256] [--iterations 12]
                                    [--repeats 3] [--weights random] [--device cpu|cuda]

The target (issue 26): two masked styles within ``TARGET_RATIO`` × one unmasked style. Each run's pace is taken
from its progress reports after ``WARMUP`` iterations (the stage's targets, the balancing of the terms and, on a
GPU, the CUDA graph's capture come before them); the two kinds of run alternate ``--repeats`` times so that a
machine's drift hits both, and the median of each is compared. Both clocks are read: wall time, which the target
is about, and the process's CPU time, which other work on a shared machine hardly moves (on a GPU only the wall
time means anything). PASS or MISS is printed beside each ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image

from core.engine import Progress, stylize
from core.images import decode_image
from core.masks import StyleMask
from core.params import StyleParams
from core.vgg import FeatureNet, load_vgg

TARGET_RATIO = 1.3
WARMUP = 2
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=IMAGES / "tubingen.jpg")
    parser.add_argument(
        "--paintings", type=Path, nargs=2, default=[IMAGES / "starry_night.jpg", IMAGES / "the_scream.jpg"]
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=12, help="per run, of which the first WARMUP are not timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", default="random", help="weights spec (load_vgg); the pace hardly depends on it")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: load_vgg's choice)")
    args = parser.parse_args(argv)
    if args.iterations <= WARMUP:
        parser.error(f"--iterations must be more than the {WARMUP} warm-up iterations")
    net = load_vgg(args.weights, args.device)
    photo = decode_image(args.photo.read_bytes(), name=str(args.photo))
    paintings = [decode_image(path.read_bytes(), name=str(path)) for path in args.paintings]
    params = StyleParams(size=args.size, iterations=args.iterations, multiscale=False)
    left, right = halves(photo.size)
    masked = [StyleMask(photo=left), StyleMask(photo=right)]
    print(
        f"weights {net.weights_name} on {net.device} ({torch.get_num_threads()} threads), torch {torch.__version__}; "
        f"{args.size} px, {args.iterations} iterations a run ({WARMUP} untimed), {args.repeats} runs of each",
        flush=True,
    )
    plain: list[Pace] = []
    guided: list[Pace] = []
    for repeat in range(1, args.repeats + 1):
        plain.append(pace(net, photo, paintings[:1], params, None))
        guided.append(pace(net, photo, paintings, params, masked))
        print(f"  run {repeat}: one style {plain[-1]}; two masked styles {guided[-1]}", flush=True)
    for clock, index in (("wall", 0), ("CPU", 1)):
        one = statistics.median(run[index] for run in plain)
        two = statistics.median(run[index] for run in guided)
        ratio = two / one
        verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
        print(
            f"median {clock} time: one unmasked style {one:.4f} s/it, two masked styles {two:.4f} s/it; "
            f"ratio {ratio:.3f} (target ≤ {TARGET_RATIO}): {verdict}"
        )


class Pace(NamedTuple):
    """Seconds per iteration of one run, by the wall clock and by the process's CPU time."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.4f} s/it wall, {self.cpu:.4f} s/it CPU"


def halves(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    """Masks of the left and the right half of a picture of ``size``."""
    width, height = size
    left = Image.new("L", size, 0)
    left.paste(255, (0, 0, width // 2, height))
    right = Image.new("L", size, 255)
    right.paste(0, (0, 0, width // 2, height))
    return left, right


def pace(
    net: FeatureNet,
    photo: Image.Image,
    paintings: Sequence[Image.Image],
    params: StyleParams,
    masks: Sequence[StyleMask | None] | None,
) -> Pace:
    """One run's pace: the time between the WARMUP-th iteration's report and the last one's, per iteration."""
    stamps: list[tuple[float, float]] = []

    def on_progress(_: Progress) -> None:
        if net.device.type == "cuda":
            torch.cuda.synchronize(net.device)
        stamps.append((time.perf_counter(), time.process_time()))

    stylize(photo, paintings, params, net=net, masks=masks, on_progress=on_progress)
    timed = len(stamps) - WARMUP
    (wall_start, cpu_start), (wall_end, cpu_end) = stamps[WARMUP - 1], stamps[-1]
    return Pace((wall_end - wall_start) / timed, (cpu_end - cpu_start) / timed)


if __name__ == "__main__":
    main()
