"""Offline-weights experiment (issue 16; prints figures, not a test): can VGG19 filters made from the inputs
themselves, with no dataset and no download, give better pictures than today's seeded random ones? Usage:

    .venv/bin/python bench/offline_weights.py [--pairs PHOTO:PAINTING ...] [--iterations 60] [--size 512]
                                              [--out bench/results] [--skip-determinism] [--report-only]
                                              [--variants VARIANT ...]

Variants, each a ``FeatureNet`` of VGG19's exact shape built deterministically from a seed and the two inputs:
- ``random(seed=0)``: today's offline net (``load_vgg("random")``), the baseline;
- ``patches(seed=0)``: data-dependent filters, layer by layer (Coates & Ng 2011; Krähenbühl et al. 2016):
  3×3 patches of the layer's input over photo and painting, PCA-whitened, spherical k-means centroids as
  filters, then each channel standardised over the inputs;
- ``scaled-random(seed=0)``: the random filters with only that per-channel standardisation (Krähenbühl's
  within-layer initialisation);
- ``patches(seed=0,eps=1)`` (``--variants patches-eps1``): a follow-up, patches with tenfold whitening damping.
Metrics come from pixels, not from any network being judged: colour and gradient-orientation histogram
distances to the painting (Hellinger; lower is better) and SSIM of the result's edges to the photo's (higher
is better). Runs append to a JSON-lines file per pair as they finish, so partial results survive and several
processes can split the pairs; ``--report-only`` rebuilds the table, the JSON and the contact sheet from them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor, nn

from core.engine import Progress, stylize
from core.images import decode_image, fit_longest_side
from core.networks import VGG19
from core.params import LAYER_NAMES, StyleParams
from core.schedule import style_side
from core.vgg import RANDOM_WEIGHTS_SEED, TORCHVISION, FeatureNet, _empty_convs, _random_convs, load_vgg

# The sibling helpers import as top-level modules, as a script's directory is on sys.path (bench/uploads.py's
# do the same); run with ``-m bench.offline_weights`` it is put there.
if __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import measure, to_tensor

# The team's demo pictures beside the checkout (never needed by the project itself).
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
DEFAULT_PAIRS = (
    "tubingen:starry_night",
    "tubingen:shipwreck",
    "golden_gate:the_scream",
    "golden_gate:frida_kahlo",
)
# Enough patches per image that the 27- to 2304-dimensional patch covariances of the early layers are well
# estimated; deep layers have fewer positions than this at 512 px and use all of them.
PATCHES_PER_IMAGE = 8192
# Whitening regulariser relative to the mean kept eigenvalue: Coates & Ng's 0.1 on unit-variance patches,
# which keeps near-empty directions (noise in two pictures) from dominating the centroids.
WHITENING_EPS = 0.1
# A follow-up after the first patches runs: tenfold damping of the weak directions, which the nets built
# with 0.1 amplified into a hypersensitivity to pixel noise (their L-BFGS runs barely moved off the photo).
STRONG_WHITENING_EPS = 1.0
# The variants every pair must have to count; others (follow-ups) are reported where they were run.
JUDGED = ("patches", "scaled-random")
KMEANS_ITERATIONS = 10
# Pre-ReLU mean of every channel after standardisation, in units of its standard deviation: zero lets each
# channel fire on about half of the inputs' positions, the most selective balance a fixed bias can give.
PRE_RELU_MEAN = 0.0
# The determinism check builds each variant twice; at this size it costs seconds yet runs every code path.
DETERMINISM_SIZE = 128
THUMBNAIL = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), metavar="PHOTO:PAINTING")
    parser.add_argument("--iterations", type=int, default=60)  # what bench/RESULTS.md's figures used
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=RANDOM_WEIGHTS_SEED)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--report-only", action="store_true", help="report the runs already recorded")
    parser.add_argument("--skip-determinism", action="store_true", help="skip building every variant twice")
    parser.add_argument("--variants", nargs="+", choices=list(variants(0)), help="rerun only these (default: all)")
    args = parser.parse_args()
    runs_dir = args.out / "offline_weights_runs"
    if not args.report_only:
        runs_dir.mkdir(parents=True, exist_ok=True)
        print(f"{torch.get_num_threads()} threads; {args.iterations} iterations at {args.size} px")
        if not args.skip_determinism:
            check_determinism(args.seed)
        params = StyleParams(size=args.size, iterations=args.iterations)
        for pair in args.pairs:
            run_pair(pair, params, args.seed, runs_dir, args.variants or ["random", *JUDGED])
    report(runs_dir, args.out)


def variants(seed: int) -> dict[str, Callable[[Image.Image, Image.Image], FeatureNet]]:
    """The nets under test by label; each builder takes the photo and the painting at the sizes the run uses."""
    return {
        "random": lambda photo, painting: load_vgg("random", "cpu"),
        "patches": lambda photo, painting: build_patches_net(photo, painting, seed=seed),
        "scaled-random": lambda photo, painting: build_scaled_random_net(photo, painting, seed=seed),
        "patches-eps1": lambda photo, painting: build_patches_net(
            photo, painting, seed=seed, whitening_eps=STRONG_WHITENING_EPS
        ),
    }


def build_patches_net(
    photo: Image.Image,
    painting: Image.Image,
    *,
    seed: int = 0,
    patches_per_image: int = PATCHES_PER_IMAGE,
    whitening_eps: float = WHITENING_EPS,
) -> FeatureNet:
    """VGG19 whose filters are spherical k-means centroids of the inputs' own whitened 3×3 patches, layer by layer.

    Coates & Ng (AISTATS 2011) learn single-layer filters this way from natural-image patches; Krähenbühl et al.
    (ICLR 2016) initialise deep nets layer by layer from data in the same spirit. Here the only data are the
    two pictures of the request, so each layer's filters respond to structures those pictures actually hold.
    The same seed and pictures give the same bytes (private generator, CPU, fixed thread count).
    """
    generator = torch.Generator().manual_seed(seed)
    eps = "" if whitening_eps == WHITENING_EPS else f",eps={whitening_eps:g}"
    net = FeatureNet(_empty_convs(VGG19), f"patches(seed={seed}{eps})", preprocessing=TORCHVISION)

    def fit(conv: nn.Conv2d, inputs: list[Tensor]) -> None:
        assert conv.bias is not None
        samples = torch.cat([_sample_patches(x, patches_per_image, generator) for x in inputs])
        mean = samples.mean(0)
        variances, axes = _principal_axes(samples - mean)
        # PCA whitening, not ZCA: the two differ by a rotation, which spherical k-means with an isotropic
        # start does not see, and PCA's basis drops the directions the inputs never occupy.
        gains = (variances + whitening_eps * variances.mean()).rsqrt()
        centroids = _spherical_kmeans((samples - mean) @ axes * gains, conv.out_channels, generator)
        filters = (centroids * gains) @ axes.T
        conv.weight.copy_(filters.view_as(conv.weight))
        conv.bias.copy_(-(filters @ mean))
        _standardise(conv, inputs)

    _fit_layer_by_layer(net, [photo, painting], fit)
    return _channels_last(net)


def build_scaled_random_net(photo: Image.Image, painting: Image.Image, *, seed: int = 0) -> FeatureNet:
    """Today's seeded He filters, each channel rescaled and biased so its pre-ReLU response over the inputs has
    zero mean and unit variance (Krähenbühl et al., ICLR 2016, within-layer initialisation).

    Random filters on post-ReLU (all-positive) inputs have channel means far from zero: some channels fire
    everywhere (linear, no selectivity), others nowhere (dead). Centring each on the inputs makes every
    channel a half-active detector while keeping the filters themselves.
    """
    net = FeatureNet(_random_convs(VGG19, seed), f"scaled-random(seed={seed})", preprocessing=TORCHVISION)
    _fit_layer_by_layer(net, [photo, painting], lambda conv, inputs: _standardise(conv, inputs))
    return _channels_last(net)


@torch.no_grad()
def _fit_layer_by_layer(
    net: FeatureNet, images: Sequence[Image.Image], fit: Callable[[nn.Conv2d, list[Tensor]], None]
) -> None:
    """Fit each conv on the inputs' features at its input, computed through the layers already fitted.

    The activations are carried forward one layer at a time, so the whole net costs one forward pass per
    picture beside the fitting itself. Pooling is max, the engine's default.
    """
    inputs = [net.normalize(to_tensor(image)) for image in images]
    convs = iter(net.convs)
    for name in LAYER_NAMES:
        if name.startswith("conv"):
            conv = next(convs)
            assert isinstance(conv, nn.Conv2d)
            fit(conv, inputs)
            inputs = [conv(x) for x in inputs]
        elif name.startswith("relu"):
            inputs = [F.relu(x) for x in inputs]
        else:
            inputs = [F.max_pool2d(x, 2) for x in inputs]


def _channels_last(net: FeatureNet) -> FeatureNet:
    """The layout ``load_vgg`` gives its nets (oneDNN's fastest kernels), so run times compare fairly."""
    return net.to(memory_format=torch.channels_last)


def _standardise(conv: nn.Conv2d, inputs: list[Tensor]) -> None:
    """Scale and bias each output channel so its response over all positions of the inputs is N(PRE_RELU_MEAN, 1)."""
    assert conv.bias is not None
    responses = torch.cat([conv(x).flatten(2)[0] for x in inputs], dim=1)
    mean, std = responses.mean(1), responses.std(1).clamp_min(1e-12)
    conv.weight.div_(std.view(-1, 1, 1, 1))
    conv.bias.copy_((conv.bias - mean) / std + PRE_RELU_MEAN)


def _sample_patches(x: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` random 3×3 patches (all positions if fewer) of a [1, C, H, W] map, zero-padded as the conv sees
    it, flattened in the conv weight's (C, dy, dx) order: [n, C·9]."""
    padded = F.pad(x, (1, 1, 1, 1))
    height, width = x.shape[-2:]
    chosen = torch.randperm(height * width, generator=generator)[: min(count, height * width)]
    ys, xs = chosen // width, chosen % width
    patches = torch.stack([padded[0, :, ys + dy, xs + dx] for dy in range(3) for dx in range(3)], dim=-1)
    return patches.permute(1, 0, 2).reshape(len(chosen), -1)


def _principal_axes(centred: Tensor) -> tuple[Tensor, Tensor]:
    """Variances and unit axes [D, r] of the non-empty principal directions of centred rows [n, D].

    Eigen-decomposes the smaller of the covariance (D×D) and the Gram matrix (n×n): deep layers have
    4608-dimensional patches but at 512 px only about 1600 positions, and a 4608² eigensolve takes ~20 s here.
    """
    rows, dims = centred.shape
    data = centred.double()
    if rows >= dims:
        variances, axes = torch.linalg.eigh(data.T @ data / rows)
    else:
        variances, vectors = torch.linalg.eigh(data @ data.T / rows)
        axes = data.T @ vectors / (rows * variances.clamp_min(1e-30)).sqrt()
    kept = variances > 1e-9 * variances.max()
    return variances[kept].float(), axes[:, kept].float()


def _spherical_kmeans(data: Tensor, clusters: int, generator: torch.Generator) -> Tensor:
    """Unit-norm centroids [k, D] by Coates & Ng's spherical k-means: each row votes, with its projection, for the
    centroid it projects on most strongly; adding the old centroid keeps empty clusters alive."""
    centroids = F.normalize(torch.randn(clusters, data.shape[1], generator=generator), dim=1)
    for _ in range(KMEANS_ITERATIONS):
        projections = data @ centroids.T
        best = projections.abs().argmax(1)
        votes = projections.gather(1, best[:, None]) * data
        centroids = F.normalize(centroids.index_add(0, best, votes), dim=1)
    return centroids


def check_determinism(seed: int) -> None:
    """Build each variant twice from the same small inputs and compare every weight byte for byte."""
    photo = fit_longest_side(_load("tubingen"), DETERMINISM_SIZE)
    painting = fit_longest_side(_load("starry_night"), DETERMINISM_SIZE)
    for label, build in variants(seed).items():
        first, second = (build(photo, painting).state_dict() for _ in range(2))
        same = all(torch.equal(first[key], second[key]) for key in first)
        print(f"determinism: {label} built twice: {'same bytes' if same else 'DIFFERENT'}")
        if not same:
            raise SystemExit(f"{label} is not deterministic")


def run_pair(pair: str, params: StyleParams, seed: int, runs_dir: Path, labels: Sequence[str]) -> None:
    """Stylise one pair with the chosen variants and record each run's figures as one JSON line.

    Each pair has its own log, so several processes can share a machine's cores, a pair each; the records of
    the variants being run are replaced, the others kept, so one variant can be rerun alone.
    """
    photo_name, painting_name = pair.split(":")
    log = runs_dir / f"{photo_name}__{painting_name}.jsonl"
    _forget(log, {"photo", *labels})
    photo, painting = _load(photo_name), _load(painting_name)
    # The pictures exactly as the engine sees them, so the nets are fitted to what they will be run on.
    photo_seen = fit_longest_side(photo, params.size)
    painting_seen = fit_longest_side(painting, style_side(params, params.size))
    reference = {"pair": pair, "variant": "photo", **measure(photo_seen, photo_seen, painting_seen)}
    _append(log, reference)
    for label in labels:
        build = variants(seed)[label]
        started = time.perf_counter()
        net = build(photo_seen, painting_seen)
        built = time.perf_counter() - started
        result = stylize(photo, [painting], params, net=net, on_progress=_print_progress)
        path = runs_dir / f"{photo_name}__{painting_name}__{label}.jpg"
        result.image.save(path, quality=92)
        record = {
            "pair": pair,
            "variant": label,
            "weights": net.weights_name,
            "build_s": round(built, 1),
            "run_s": round(result.seconds, 1),
            "iterations": result.iterations,
            "losses": result.losses,
            "image": str(path),
            **measure(result.image, photo_seen, painting_seen),
        }
        _append(log, record)
        print(
            f"{pair:28} {label:14} colour {record['colour']:.3f} orientation {record['orientation']:.3f} "
            f"edge SSIM {record['edge_ssim']:.3f}  build {built:.0f} s, run {result.seconds:.0f} s",
            flush=True,
        )


def _print_progress(progress: Progress) -> None:
    """A line every 25 iterations: on a shared machine it is the only sign of how fast a run goes."""
    if progress.iteration % 25 == 0:
        print(f"   iteration {progress.iteration}/{progress.total}, {progress.elapsed:.0f} s", flush=True)


def report(runs_dir: Path, out: Path) -> None:
    """Print the table and win counts, and write the JSON figures and the contact sheet, from complete pairs."""
    lines = [line for log in sorted(runs_dir.glob("*.jsonl")) for line in log.read_text().splitlines()]
    records = [json.loads(line) for line in lines if line.strip()]
    by_pair: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        by_pair.setdefault(record["pair"], {})[record["variant"]] = record
    complete = {pair: runs for pair, runs in by_pair.items() if {"random", *JUDGED} <= set(runs)}
    labels = [label for label in variants(0) if label != "random" and any(label in r for r in complete.values())]
    print(f"\n{'pair':28} {'variant':14} {'colour↓':>8} {'orient↓':>8} {'edgeSSIM↑':>10} {'build s':>8} {'run s':>6}")
    for pair, runs in complete.items():
        for label in ("photo", "random", *(label for label in labels if label in runs)):
            r = runs[label]
            timing = f"{r['build_s']:8.1f} {r['run_s']:6.0f}" if "run_s" in r else f"{'':8} {'':6}"
            print(f"{pair:28} {label:14} {r['colour']:8.3f} {r['orientation']:8.3f} {r['edge_ssim']:10.3f} {timing}")
    wins = {label: _wins({p: r for p, r in complete.items() if label in r}, label) for label in labels}
    print("\nwins against random (colour, orientation, edge SSIM, all three at once) of the pairs run:")
    for label, counts in wins.items():
        print(
            f"   {label:14} {counts['colour']}, {counts['orientation']}, {counts['edge_ssim']}, {counts['all']}"
            f" of {counts['pairs']}"
        )
    figures = {"pairs": complete, "wins_against_random": wins}
    (out / "offline_weights.json").write_text(json.dumps(figures, indent=2) + "\n")
    make_sheet(complete, ["random", *labels], out / "offline_weights_sheet.jpg")


def _wins(pairs: dict[str, dict[str, dict[str, Any]]], label: str) -> dict[str, int]:
    """On how many pairs ``label`` beats random on each metric, and on all three together."""
    better = {
        pair: {
            "colour": runs[label]["colour"] < runs["random"]["colour"],
            "orientation": runs[label]["orientation"] < runs["random"]["orientation"],
            "edge_ssim": runs[label]["edge_ssim"] > runs["random"]["edge_ssim"],
        }
        for pair, runs in pairs.items()
    }
    counts = {
        metric: sum(flags[metric] for flags in better.values()) for metric in ("colour", "orientation", "edge_ssim")
    }
    counts["all"] = sum(all(flags.values()) for flags in better.values())
    counts["pairs"] = len(better)
    return counts


def make_sheet(pairs: dict[str, dict[str, dict[str, Any]]], labels: list[str], path: Path) -> None:
    """One row per pair: photo, painting, then each variant's result, each fitted into a THUMBNAIL-px square."""
    label_height = 16
    names = {label: runs[label]["weights"] for runs in pairs.values() for label in labels if label in runs}
    columns = ["photo", "painting", *(names[label] for label in labels)]
    sheet = Image.new(
        "RGB", (THUMBNAIL * len(columns), label_height + len(pairs) * (THUMBNAIL + label_height)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for column, text in enumerate(columns):
        draw.text((column * THUMBNAIL + 4, 2), text, fill="black")
    for row, (pair, runs) in enumerate(pairs.items()):
        top = label_height + row * (THUMBNAIL + label_height)
        draw.text((4, top + 2), pair.replace(":", " x "), fill="black")  # the default font lacks ×
        photo_name, painting_name = pair.split(":")
        images = (Image.open(runs[label]["image"]) if label in runs else None for label in labels)
        for column, cell in enumerate([_load(photo_name), _load(painting_name), *images]):
            if cell is None:
                continue
            cell = cell.convert("RGB")
            cell.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
            x = column * THUMBNAIL + (THUMBNAIL - cell.width) // 2
            sheet.paste(cell, (x, top + label_height + (THUMBNAIL - cell.height) // 2))
    sheet.save(path, quality=85)
    print(f"sheet: {path} ({path.stat().st_size / 1e3:.0f} kB)")


def _load(name: str) -> Image.Image:
    path = IMAGES / f"{name}.jpg"
    return decode_image(path.read_bytes(), name=str(path))


def _forget(log: Path, labels: set[str]) -> None:
    """Drop a pair log's records of ``labels``, about to be rerun."""
    if log.exists():
        kept = [line for line in log.read_text().splitlines() if json.loads(line)["variant"] not in labels]
        log.write_text("".join(f"{line}\n" for line in kept))


def _append(log: Path, record: dict[str, Any]) -> None:
    with log.open("a") as file:
        file.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
