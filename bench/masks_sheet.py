"""Spatial-control sheet (a picture to look at; not a test): the shared photos with paintings on masked regions, on
trained filters, to judge by eye whether each style stays in its region and the uncovered photo stays itself.
Usage, from the repository root:

    .venv/bin/python -m bench.masks_sheet [--weights vgg16-imagenet-keras] [--size 384] [--iterations 150]
                                          [--device cpu|cuda] [--out bench/results/masks_sheet.jpg]

The masks are made in code from the photos: the sky by its colour (blue well above red, in the upper half of the
picture), or geometric halves, one with a feathered edge. A row per case: the photo; its regions, each style's
tinted in that style's colour (blue the first, red the second) and the uncovered part left as it is; the result;
and how far the result moved from the photo, per pixel (black: not at all; white: by ``DIFFERENCE_SPAN`` levels
or more, averaged over the channels). Each label gives the mean distance inside and outside the first region.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from core.engine import Progress, stylize
from core.images import decode_image, fit_longest_side
from core.masks import StyleMask
from core.params import StyleParams
from core.vgg import FeatureNet, load_vgg

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
CELL = 320
LABEL_HEIGHT = 30
LINE_HEIGHT = 13
TINTS = ((40, 90, 255), (255, 50, 40))
TINT_SHARE = 0.55
DIFFERENCE_SPAN = 64
# The sky: bluer than red by this many levels, and above this share of the picture's height.
SKY_BLUE_OVER_RED = 40
SKY_ABOVE = 0.55
FEATHER = 0.1
PROGRESS_EVERY = 50

MaskMaker = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True)
class Case:
    """One row: a photo, up to two paintings, and the masks (made from the photo) that say where each paints."""

    title: str
    photo: str
    paintings: tuple[str, ...]
    masks: tuple[MaskMaker, ...]


def sky(photo: Image.Image) -> Image.Image:
    """White where the photo is sky: bluer than red by ``SKY_BLUE_OVER_RED`` and in the upper ``SKY_ABOVE`` of the
    picture; a 2 px blur softens the staircase of the threshold."""
    pixels = np.asarray(photo.convert("RGB")).astype(np.int32)
    blue = pixels[..., 2] - pixels[..., 0] > SKY_BLUE_OVER_RED
    blue[int(SKY_ABOVE * photo.height) :] = False
    return Image.fromarray((blue * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))


def not_sky(photo: Image.Image) -> Image.Image:
    return ImageOps.invert(sky(photo))


def left_half(photo: Image.Image) -> Image.Image:
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (0, 0, photo.width // 2, photo.height))
    return mask


def top_feathered(photo: Image.Image) -> Image.Image:
    """White over the top half, fading to black across ``FEATHER`` of the height about the middle."""
    rows = np.arange(photo.height) / photo.height
    column = np.clip((0.5 + FEATHER / 2 - rows) / FEATHER, 0, 1) * 255
    return Image.fromarray(np.repeat(column[:, None], photo.width, axis=1).astype(np.uint8))


def bottom_feathered(photo: Image.Image) -> Image.Image:
    return ImageOps.invert(top_feathered(photo))


CASES = (
    Case("starry night on the sky; the rest kept", "tubingen", ("starry_night",), (sky,)),
    Case("starry night on the sky, the scream below", "tubingen", ("starry_night", "the_scream"), (sky, not_sky)),
    Case("the scream on the left half; the right kept", "golden_gate", ("the_scream",), (left_half,)),
    Case(
        "starry night above, the scream below, feathered",
        "golden_gate",
        ("starry_night", "the_scream"),
        (top_feathered, bottom_feathered),
    ),
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=IMAGES)
    parser.add_argument("--weights", default="vgg16-imagenet-keras", help="weights spec (load_vgg)")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: load_vgg's choice)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/masks_sheet.jpg"))
    args = parser.parse_args(argv)
    net = load_vgg(args.weights, args.device)
    params = StyleParams(size=args.size, iterations=args.iterations)
    print(f"weights {net.weights_name} on {net.device}; {params.iterations} iterations at {params.size} px", flush=True)
    rows = [run_case(case, args.images, params, net) for case in CASES]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    make_sheet(rows).save(args.out, quality=85)  # quality: JPEG only (the README shows it); PNG ignores it
    print(f"sheet: {args.out}")


@dataclass(frozen=True)
class Row:
    title: str
    photo: Image.Image
    regions: Image.Image
    result: Image.Image
    difference: Image.Image
    inside: float
    outside: float


def run_case(case: Case, images: Path, params: StyleParams, net: FeatureNet) -> Row:
    """Stylise one case and measure how far the result moved from the photo inside and outside its first mask."""
    photo = load(images, case.photo)
    paintings = [load(images, name) for name in case.paintings]
    masks = [make(photo) for make in case.masks]
    started = time.perf_counter()
    result = stylize(
        photo, paintings, params, net=net, masks=[StyleMask(photo=mask) for mask in masks], on_progress=_progress
    ).image
    seen = fit_longest_side(photo, params.size).resize(result.size)
    moved = np.abs(np.asarray(result).astype(np.float64) - np.asarray(seen).astype(np.float64)).mean(axis=2)
    first = np.asarray(masks[0].resize(result.size, Image.Resampling.BILINEAR)).astype(np.float64) / 255
    inside = float((moved * first).sum() / max(first.sum(), 1e-9))
    outside = float((moved * (1 - first)).sum() / max((1 - first).sum(), 1e-9))
    print(
        f"{case.title}: {time.perf_counter() - started:.0f} s; moved {inside:.1f} levels inside the first mask, "
        f"{outside:.1f} outside",
        flush=True,
    )
    difference = Image.fromarray(np.clip(moved * 255 / DIFFERENCE_SPAN, 0, 255).astype(np.uint8)).convert("RGB")
    return Row(case.title, seen, tinted(seen, masks), result, difference, inside, outside)


def tinted(photo: Image.Image, masks: Sequence[Image.Image]) -> Image.Image:
    """The photo with each mask's region washed in its style's tint, in proportion to the mask's weight."""
    pixels = np.asarray(photo).astype(np.float64)
    for mask, tint in zip(masks, TINTS, strict=False):
        weight = np.asarray(mask.resize(photo.size, Image.Resampling.BILINEAR)).astype(np.float64)[..., None] / 255
        pixels = pixels * (1 - TINT_SHARE * weight) + np.array(tint) * TINT_SHARE * weight
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_sheet(rows: Sequence[Row]) -> Image.Image:
    """Four columns (photo, regions, result, distance from the photo), a row per case, each cell labelled."""
    sheet = Image.new("RGB", (4 * CELL, len(rows) * (CELL + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, row in enumerate(rows):
        top = index * (CELL + LABEL_HEIGHT)
        cells = [
            (row.photo, [row.title, "the photo"]),
            (row.regions, ["regions: blue the first style,", "red the second, untinted: kept"]),
            (row.result, ["the result", ""]),
            (
                row.difference,
                [
                    f"moved from the photo (white: {DIFFERENCE_SPAN}+ levels)",
                    f"in {row.inside:.1f}, out {row.outside:.1f}",
                ],
            ),
        ]
        for column, (picture, lines) in enumerate(cells):
            thumbnail = ImageOps.contain(picture, (CELL - 4, CELL - 4), Image.Resampling.LANCZOS)
            left = column * CELL
            sheet.paste(thumbnail, (left + (CELL - thumbnail.width) // 2, top + (CELL - thumbnail.height) // 2))
            for number, text in enumerate(lines):
                draw.text((left + 4, top + CELL + 2 + number * LINE_HEIGHT), text, fill="black")
    return sheet


def load(images: Path, stem: str) -> Image.Image:
    path = next(iter(sorted(images.glob(f"{stem}.*"))), None)
    if path is None:
        raise SystemExit(f"no picture named {stem!r} in {images}")
    return decode_image(path.read_bytes(), name=str(path))


def _progress(progress: Progress) -> None:
    if progress.iteration % PROGRESS_EVERY == 0:
        print(f"   iteration {progress.iteration}/{progress.total}, {progress.elapsed:.0f} s", flush=True)


if __name__ == "__main__":
    main()
