"""``restyle fetch-weights``: torchvision's ImageNet VGG19 into the torch hub cache, for the real pictures.

The only command that reaches the network for weights (``restyle up --fetch-weights`` runs it): loading
weights, the tests and a worker at job time never do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.weights_download import WeightsDownloadFailed, fetch_imagenet_features, imagenet_file
from restyle.settings import Settings, get_settings

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_NOT_FETCHED = 1


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``fetch-weights``."""
    parser = commands.add_parser(
        "fetch-weights",
        help="download ImageNet VGG19 into the torch hub cache",
        description="Download torchvision's ImageNet VGG19 from RESTYLE_WEIGHTS_URL, check it against "
        "RESTYLE_WEIGHTS_SHA256 and keep its convolutions in the torch hub cache, where `auto` weights find "
        "them. Nothing happens when they are there already.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 with the weights in the cache, 1 with one line saying why not (the service then runs on random)."""
    try:
        path = fetch(get_settings())
    except WeightsDownloadFailed as failure:
        print(
            f"restyle: ImageNet VGG19 weights not fetched: {failure}. Until they are, `auto` runs on seeded "
            "random weights.",
            file=sys.stderr,
        )
        return EXIT_NOT_FETCHED
    print(f"ImageNet VGG19 weights: {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    return 0


def fetch(settings: Settings) -> Path:
    """The cached file, downloaded first (with a progress bar on stderr) when there is none."""
    cached = imagenet_file()
    if cached.is_file():
        return cached
    bar = _DownloadBar()
    try:
        return fetch_imagenet_features(settings.weights_url, settings.weights_sha256, progress=bar.show)
    finally:
        bar.close()


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
