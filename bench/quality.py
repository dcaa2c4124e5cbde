"""Quality sheet (prints figures; not a test): each photo × painting pair stylised at a few marks of the
style-weight dial, scored by figures that do not come from the network doing the work, so that a change to the
engine (weights, loss normalisation, defaults) can be judged by eye and by number. Usage, from the repository root:

    .venv/bin/python -m bench.quality [--photos NAME ...] [--paintings NAME ...] [--dial 0.01,1,100]
                                      [--weights auto] [--measure-weights SPEC] [--size 512] [--iterations N]
                                      [--device cpu|cuda] [--set KEY=VALUE ...] [--out bench/results]
                                      [--name quality] [--runs-dir DIR]

The dial's marks multiply the default style weight (``StyleParams``'s, or the one ``--set style_weight=…``
gives); every other parameter is the default unless ``--set`` says otherwise. Each pair also gets a baseline
row, the untouched photo, to show where "nothing happened" sits. Figures (``bench.metrics``):
- colour: Hellinger distance of the result's colours to the painting's (lower: nearer its palette);
- edge SSIM: of the result's edges to the photo's (higher: more of its structure kept);
- content error: relative relu4_2 feature error to the photo, measured with the ``--measure-weights`` net
  (lower: nearer the photo's content); it means most with trained weights other than the ones being run;
- orientation (table and JSON only): Hellinger distance of gradient orientations to the painting's.
Writes OUT/NAME.json (every figure, the parameters, weights, device, torch version, date), rewritten after each
pair so a stopped run keeps what it did, and OUT/NAME_sheet.jpg: a row per pair with the painting, the photo,
then one labelled result per dial mark.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageOps
from pydantic import ValidationError

from core.engine import Progress, stylize
from core.images import decode_image, fit_longest_side
from core.params import StyleParams
from core.schedule import style_side
from core.vgg import FeatureNet, load_vgg

# The sibling helpers import as top-level modules, as a script's directory is on sys.path (bench/uploads.py's
# do the same); run with ``-m bench.quality`` it is put there.
if __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import content_error, measure

# The team's demo pictures beside the checkout (never needed by the project itself).
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
PHOTOS = ("tubingen", "golden_gate")
PAINTINGS = ("starry_night", "the_scream", "shipwreck", "frida_kahlo", "escher_sphere", "starry_night_crop")
# The default setting and the two ends of the style slider; 0.01,0.1,1,10,100 gives all five of its marks.
DEFAULT_DIAL = "0.01,1,100"
THUMBNAIL = 256
MARGIN = 3
LINE_HEIGHT = 12
LABEL_HEIGHT = 2 * LINE_HEIGHT + 4
SHEET_QUALITY = 85
RESULT_QUALITY = 92
PROGRESS_EVERY = 50


@dataclass
class PairRow:
    """One photo × painting pair: its thumbnails, the baseline record and one record and thumbnail per dial mark."""

    photo: str
    painting: str
    photo_thumbnail: Image.Image
    painting_thumbnail: Image.Image
    baseline: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    thumbnails: list[Image.Image] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    photos, paintings = _names(args.photos), _names(args.paintings)
    settings = {"size": args.size, "iterations": args.iterations, **_settings(parser, args.set)}
    dial = _dial(parser, args.dial)
    try:
        base = StyleParams.from_mapping(settings)
        dial_params = {multiplier: params_for(settings, multiplier) for multiplier in dial}
    except ValidationError as error:
        parser.error(f"parameters: {error}")
    for name in (*photos, *paintings):  # a misspelt name fails now, not after hours of runs
        picture_path(args.images, name)
    net = load_vgg(args.weights, args.device)
    measure_weights = args.measure_weights or args.weights
    measure_net = net if measure_weights == args.weights else load_vgg(measure_weights, args.device)
    print(
        f"weights {net.weights_name}, content error with {measure_net.weights_name}, on {net.device} "
        f"({torch.get_num_threads()} threads); {base.iterations} iterations at {base.size} px, "
        f"style weight {base.style_weight:g} × {', '.join(f'{m:g}' for m in dial)}",
        flush=True,
    )
    if args.runs_dir:
        args.runs_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    print(_HEADER, flush=True)
    rows: list[PairRow] = []
    for photo_name in photos:
        for painting_name in paintings:
            rows.append(run_pair(args.images, photo_name, painting_name, dial_params, net, measure_net, args.runs_dir))
            write_figures(args.out / f"{args.name}.json", rows, base, dial, net, measure_net)
    sheet = args.out / f"{args.name}_sheet.jpg"
    make_sheet(rows, sheet)
    print(f"figures: {args.out / f'{args.name}.json'}\nsheet: {sheet} ({sheet.stat().st_size / 1e3:.0f} kB)")


def build_parser() -> argparse.ArgumentParser:
    """The command line described in the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=IMAGES, help="folder of the pictures (default: %(default)s)")
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), metavar="NAME", help="file stems, or NAME,NAME")
    parser.add_argument("--paintings", nargs="+", default=list(PAINTINGS), metavar="NAME", help="as --photos")
    parser.add_argument("--weights", default="auto", help="weights spec of the net that runs (load_vgg)")
    parser.add_argument("--measure-weights", help="weights spec of the net for the content error (default: --weights)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, help="default: StyleParams's")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: load_vgg's choice)")
    parser.add_argument("--dial", default=DEFAULT_DIAL, help="multipliers of the style weight (default: %(default)s)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any StyleParams field, repeatable; applied after --size and --iterations",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--name", default="quality", help="stem of the JSON and sheet files")
    parser.add_argument("--runs-dir", type=Path, help="also save every full-size result here as JPEG")
    return parser


def run_pair(
    images: Path,
    photo_name: str,
    painting_name: str,
    dial_params: dict[float, StyleParams],
    net: FeatureNet,
    measure_net: FeatureNet,
    runs_dir: Path | None,
) -> PairRow:
    """Measure the untouched photo, then stylise the pair once per dial mark (multiplier: parameters, which
    differ in their style weight only), printing a table row for each."""
    photo, painting = load_picture(images, photo_name), load_picture(images, painting_name)
    first = next(iter(dial_params.values()))
    # The pictures as the engine sees them, so every figure compares like with like.
    photo_seen = fit_longest_side(photo, first.size)
    painting_seen = fit_longest_side(painting, style_side(first, first.size))
    baseline = {
        "photo": photo_name,
        "painting": painting_name,
        "multiplier": None,
        **figures(photo_seen, photo_seen, painting_seen, measure_net),
    }
    print_row(baseline)
    row = PairRow(photo_name, painting_name, _thumbnail(photo), _thumbnail(painting), baseline)
    for multiplier, params in dial_params.items():
        result = stylize(photo, [painting], params, net=net, on_progress=_print_progress)
        record: dict[str, Any] = {
            "photo": photo_name,
            "painting": painting_name,
            "multiplier": multiplier,
            "style_weight": params.style_weight,
            "seconds": round(result.seconds, 2),
            "iterations": result.iterations,
            "losses": result.losses,
            **figures(result.image, photo_seen, painting_seen, measure_net),
        }
        if runs_dir:
            path = runs_dir / f"{photo_name}__{painting_name}__x{multiplier:g}.jpg"
            result.image.save(path, quality=RESULT_QUALITY)
            record["image"] = str(path)
        row.runs.append(record)
        row.thumbnails.append(_thumbnail(result.image))
        print_row(record)
    return row


def params_for(settings: dict[str, Any], multiplier: float) -> StyleParams:
    """The run's parameters: ``settings`` over the defaults, with their style weight times ``multiplier``."""
    base = StyleParams.from_mapping(settings)
    return StyleParams.from_mapping({**settings, "style_weight": base.style_weight * multiplier})


def figures(result: Image.Image, photo: Image.Image, painting: Image.Image, net: FeatureNet) -> dict[str, float]:
    """Every figure of a result against the photo and painting as the engine saw them (``bench.metrics``)."""
    return {**measure(result, photo, painting), "content_error": content_error(result, photo, net)}


def load_picture(images: Path, stem: str) -> Image.Image:
    """The picture ``images/stem.*`` as 8-bit RGB (greyscale ones too)."""
    path = picture_path(images, stem)
    return decode_image(path.read_bytes(), name=str(path))


def picture_path(images: Path, stem: str) -> Path:
    """The file ``images/stem.*``; exits naming the folder if there is none."""
    found = sorted(images.glob(f"{stem}.*"))
    if not found:
        raise SystemExit(f"no picture named {stem!r} in {images}")
    return found[0]


_HEADER = (
    f"{'photo':12} {'painting':18} {'dial':>6} {'style w':>8} {'s':>6} {'loss c':>8} {'loss s':>8} "
    f"{'colour↓':>8} {'orient↓':>8} {'edgeSSIM↑':>9} {'content↓':>9}"
)


def print_row(record: dict[str, Any]) -> None:
    """One table line; the baseline (no multiplier) shows as 'photo' with no run figures."""
    if record["multiplier"] is None:
        run = f"{'photo':>6} {'':8} {'':6} {'':8} {'':8}"
    else:
        losses = record["losses"]
        run = (
            f"{record['multiplier']:>6g} {record['style_weight']:>8g} {record['seconds']:6.1f} "
            f"{losses.get('content', float('nan')):8.3g} {losses.get('style', float('nan')):8.3g}"
        )
    print(
        f"{record['photo']:12} {record['painting']:18} {run} {record['colour']:8.3f} {record['orientation']:8.3f} "
        f"{record['edge_ssim']:9.3f} {record['content_error']:9.3f}",
        flush=True,
    )


def write_figures(
    path: Path,
    rows: Sequence[PairRow],
    base: StyleParams,
    dial: Sequence[float],
    net: FeatureNet,
    measure_net: FeatureNet,
) -> None:
    """Every figure so far, with what produced them: parameters, dial, weights, device, torch version, date."""
    device = net.device
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "weights": net.weights_name,
        "measure_weights": measure_net.weights_name,
        "params": base.model_dump(mode="json"),
        "dial": list(dial),
        "pairs": [
            {"photo": row.photo, "painting": row.painting, "baseline": row.baseline, "runs": row.runs} for row in rows
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def make_sheet(rows: Sequence[PairRow], path: Path) -> None:
    """A row per pair: painting, photo (with its baseline figures), then each dial mark's result and figures,
    each in a THUMBNAIL-px square above a two-line label."""
    columns = 2 + max((len(row.runs) for row in rows), default=0)
    cell_height = THUMBNAIL + LABEL_HEIGHT
    sheet = Image.new("RGB", (columns * THUMBNAIL, len(rows) * cell_height), "white")
    draw = ImageDraw.Draw(sheet)
    for index, row in enumerate(rows):
        top = index * cell_height
        cells = [
            (row.painting_thumbnail, [row.painting, ""]),
            (row.photo_thumbnail, [f"{row.photo}, untouched", _figures_line(row.baseline)]),
            *(
                (thumbnail, [f"x{run['multiplier']:g} (style weight {run['style_weight']:g})", _figures_line(run)])
                for run, thumbnail in zip(row.runs, row.thumbnails, strict=True)
            ),
        ]
        for column, (thumbnail, lines) in enumerate(cells):
            left = column * THUMBNAIL
            sheet.paste(
                thumbnail, (left + (THUMBNAIL - thumbnail.width) // 2, top + (THUMBNAIL - thumbnail.height) // 2)
            )
            for line_number, text in enumerate(lines):
                draw.text((left + 4, top + THUMBNAIL + 2 + line_number * LINE_HEIGHT), text, fill="black")
    sheet.save(path, quality=SHEET_QUALITY)


def _figures_line(record: dict[str, Any]) -> str:
    return f"colour {record['colour']:.3f}  edge {record['edge_ssim']:.3f}  content {record['content_error']:.3f}"


def _thumbnail(image: Image.Image) -> Image.Image:
    """The picture scaled, up or down, to fit its sheet cell with a margin, so every column compares at one scale."""
    side = THUMBNAIL - 2 * MARGIN
    return ImageOps.contain(image.convert("RGB"), (side, side), Image.Resampling.LANCZOS)


def _print_progress(progress: Progress) -> None:
    """A line every PROGRESS_EVERY iterations: on a slow machine the only sign of how fast a run goes."""
    if progress.iteration % PROGRESS_EVERY == 0:
        print(f"   iteration {progress.iteration}/{progress.total}, {progress.elapsed:.0f} s", flush=True)


def _names(values: Sequence[str]) -> list[str]:
    """Picture stems given as separate arguments, comma-separated lists, or both."""
    return [name for value in values for name in value.split(",") if name]


def _settings(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` items as a mapping; StyleParams validates the values."""
    pairs = [item.partition("=") for item in items]
    malformed = [item for item, (key, sign, _) in zip(items, pairs, strict=True) if not key or not sign]
    if malformed:
        parser.error(f"--set takes KEY=VALUE, not {', '.join(malformed)}")
    return {key.strip(): value.strip() for key, _, value in pairs}


def _dial(parser: argparse.ArgumentParser, text: str) -> list[float]:
    """The dial's multipliers, each a positive number."""
    try:
        dial = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--dial takes comma-separated numbers, not {text!r}")
    if not dial or any(not multiplier > 0 for multiplier in dial):
        parser.error(f"--dial takes positive multipliers, not {text!r}")
    return dial


if __name__ == "__main__":
    main()
