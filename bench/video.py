"""Video without flicker (prints figures; not a test): a camera pan made from a real photo, stylised with the
temporal term (``core.video``) and, as the baseline in the same run, frame by frame on its own with the same
parameters. Usage, from the repository root:

    .venv/bin/python -m bench.video [--photo PATH] [--painting PATH] [--size 256] [--frames 6] [--pan 6]
                                    [--iterations 100] [--temporal-weight W] [--weights PATH] [--device cpu|cuda]
                                    [--sheet PATH.jpg] [--gif PATH.gif]

Printed per run: seconds for the first frame and per later frame, iterations of each, mean style error, and the
temporal error as Ruder et al. report it: the mean squared difference (0–1 scale, per channel value) between each
result frame and the previous result warped along the photo frames' flow, over the pixels the flow is trusted in.
The target (issue 27): temporal error at least ``TARGET_RATIO`` × lower than the independent frames', at a similar
style error, with later frames at most a third of the first's iterations. PASS or MISS is printed beside it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from core.engine import stylize
from core.params import DEFAULT_TEMPORAL_WEIGHT, ClipParams, StyleParams
from core.vgg import FeatureNet, load_vgg
from core.video.clip import stylize_frames
from core.video.flow import temporal_error

TARGET_RATIO = 3.0
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=IMAGES / "tubingen.jpg")
    parser.add_argument("--painting", type=Path, default=IMAGES / "starry_night.jpg")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--pan", type=int, default=6, help="pixels the camera moves per frame, at --size")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--temporal-weight", type=float, default=DEFAULT_TEMPORAL_WEIGHT)
    parser.add_argument("--weights", default="auto")
    parser.add_argument("--device", default=None)
    parser.add_argument("--sheet", type=Path, default=None, help="also save both runs' frames, one row each")
    parser.add_argument(
        "--gif", type=Path, default=None, help="also save both runs as one looping GIF, side by side, at 10 fps"
    )
    args = parser.parse_args(argv)

    net = load_vgg(args.weights, args.device)
    frames = panned_clip(Image.open(args.photo).convert("RGB"), args.size, args.frames, args.pan)
    painting = Image.open(args.painting).convert("RGB")
    params = StyleParams(size=args.size, iterations=args.iterations)
    print(f"{net.weights_name} on {net.device}, {len(frames)} frames of {frames[0].size}, pan {args.pan} px/frame")

    started = time.perf_counter()
    temporal = list(
        stylize_frames(frames, [painting], params, ClipParams(temporal_weight=args.temporal_weight), net=net)
    )
    temporal_seconds = [frame.seconds for frame in temporal]
    temporal_images = [frame.image for frame in temporal]
    temporal_style = statistics.mean(frame.losses["style"] for frame in temporal)
    print(f"temporal run: {time.perf_counter() - started:.1f} s")

    independent_images, independent_style, independent_seconds = [], [], []
    for frame in frames:
        begun = time.perf_counter()
        result = stylize(frame, [painting], params, net=net)
        _sync(net)
        independent_seconds.append(time.perf_counter() - begun)
        independent_images.append(result.image)
        independent_style.append(result.losses["style"])

    photos = [frame.checkpoint.photo for frame in temporal]
    rows = [
        (
            "independent",
            independent_images,
            statistics.mean(independent_style),
            independent_seconds,
            [params.iterations] * len(frames),
        ),
        (
            f"temporal w={args.temporal_weight:g}",
            temporal_images,
            temporal_style,
            temporal_seconds,
            [frame.iterations for frame in temporal],
        ),
    ]
    errors = {}
    for name, images, style, seconds, iterations in rows:
        errors[name] = temporal_error(photos, images)
        later = statistics.mean(seconds[1:]) if len(seconds) > 1 else float("nan")
        print(
            f"{name:>22}: temporal error {errors[name]:.6f}, style error {style:.4f}, first frame {seconds[0]:.2f} s "
            f"({iterations[0]} it), later frames {later:.2f} s ({iterations[-1]} it)"
        )
    ratio = errors["independent"] / max(errors[rows[1][0]], 1e-12)
    share = temporal[-1].iterations / temporal[0].iterations
    verdict = "PASS" if ratio >= TARGET_RATIO and share <= 1 / 3 else "MISS"
    print(f"temporal error {ratio:.1f}× lower; later frames take {share:.2f} of the first's iterations: {verdict}")
    if args.sheet is not None:
        save_sheet(args.sheet, [independent_images, temporal_images])
        print(f"wrote {args.sheet}")
    if args.gif is not None:
        save_gif(args.gif, independent_images, temporal_images)
        print(f"wrote {args.gif}")


def panned_clip(photo: Image.Image, size: int, count: int, pan: int) -> list[Image.Image]:
    """``count`` frames of a ``size``-wide window moving right across ``photo`` by ``pan`` pixels a frame."""
    width = size + pan * (count - 1)
    scaled = photo.resize((width, round(photo.height * width / photo.width)), Image.Resampling.LANCZOS)
    height = min(scaled.height, round(size * 3 / 4))
    top = (scaled.height - height) // 2
    return [scaled.crop((pan * i, top, pan * i + size, top + height)) for i in range(count)]


def save_sheet(path: Path, rows: Sequence[Sequence[Image.Image]]) -> None:
    width, height = rows[0][0].size
    sheet = Image.new("RGB", (width * len(rows[0]), height * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            sheet.paste(image, (c * width, r * height))
    sheet.save(path, quality=85)


def save_gif(path: Path, left: Sequence[Image.Image], right: Sequence[Image.Image]) -> None:
    """Each pair of frames side by side, looping at 10 frames a second: flicker shows as it does in a player."""
    width, height = left[0].size
    pairs = []
    for one, other in zip(left, right, strict=True):
        pair = Image.new("RGB", (width * 2 + 4, height), "white")
        pair.paste(one, (0, 0))
        pair.paste(other, (width + 4, 0))
        pairs.append(pair)
    first, *rest = pairs
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=100, loop=0)


def _sync(net: FeatureNet) -> None:
    if net.device.type == "cuda":
        torch.cuda.synchronize(net.device)


if __name__ == "__main__":
    main()
