"""Fetching ImageNet VGG19: checked against its SHA-256, trimmed to the convolutions, cached only when whole."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from torchvision.models import VGG19_Weights

from core.vgg import load_vgg
from core.weights_download import (
    IMAGENET_SHA256,
    IMAGENET_URL,
    WeightsDownloadFailed,
    fetch_imagenet_features,
    imagenet_cache_path,
)
from tests.support.ports import free_port
from tests.support.weights_files import vgg19_state_dict
from tests.support.weights_server import WeightsServer


def fetch(server: WeightsServer, destination: Path, sha256: str | None = None) -> Path:
    return fetch_imagenet_features(server.url, sha256 or server.sha256, destination)


def test_the_defaults_are_torchvisions_file_and_a_digest_agreeing_with_its_own_check() -> None:
    url = VGG19_Weights.IMAGENET1K_V1.url
    assert url == IMAGENET_URL
    assert IMAGENET_SHA256.startswith(url.rsplit("-", 1)[1].removesuffix(".pth"))  # torchvision checks 8 digits


@pytest.mark.parametrize("variable", ["TORCH_HOME", "XDG_CACHE_HOME", None])
def test_the_cache_is_where_torch_hub_keeps_checkpoints(
    variable: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    if variable is not None:
        monkeypatch.setenv(variable, str(tmp_path))
    assert imagenet_cache_path().parent == Path(torch.hub.get_dir()) / "checkpoints"


def test_the_right_file_is_cached_with_its_convolutions_alone(weights_server: WeightsServer, tmp_path: Path) -> None:
    cached = fetch(weights_server, tmp_path / "vgg19-features.pth")
    kept = torch.load(cached, weights_only=True)
    expected = {key: value for key, value in vgg19_state_dict(classifier=True).items() if key.startswith("features.")}
    assert kept.keys() == expected.keys()
    assert all(torch.equal(kept[key], expected[key]) for key in expected)


def test_the_cached_file_loads_as_imagenet_weights(
    weights_server: WeightsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    fetch(weights_server, imagenet_cache_path())
    net = load_vgg("auto", device="cpu")
    assert net.weights_name == "vgg19-imagenet"
    assert torch.equal(net.state_dict()["convs.0.weight"], vgg19_state_dict()["features.0.weight"])


def test_progress_counts_up_to_the_announced_size(weights_server: WeightsServer, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    fetch_imagenet_features(weights_server.url, weights_server.sha256, tmp_path / "w.pth", lambda *at: seen.append(at))
    assert seen[-1] == (len(weights_server.body), len(weights_server.body))
    assert [received for received, _ in seen] == sorted(received for received, _ in seen)


def test_a_wrong_digest_is_refused_and_nothing_is_kept(weights_server: WeightsServer, tmp_path: Path) -> None:
    with pytest.raises(WeightsDownloadFailed, match=rf"SHA-256 {weights_server.sha256}, not the expected 0+: refused"):
        fetch(weights_server, tmp_path / "w.pth", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_cut_download_is_refused_and_nothing_is_kept(weights_server: WeightsServer, tmp_path: Path) -> None:
    weights_server.announce_extra = 1000
    with pytest.raises(
        WeightsDownloadFailed,
        match=rf"ended after {len(weights_server.body)} of {len(weights_server.body) + 1000} bytes",
    ):
        fetch(weights_server, tmp_path / "w.pth")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_state_dict_is_refused_even_with_its_digest(tmp_path: Path) -> None:
    server = WeightsServer(b"<html>a captive portal</html>")
    try:
        with pytest.raises(WeightsDownloadFailed, match="not a PyTorch state dict"):
            fetch(server, tmp_path / "w.pth")
    finally:
        server.stop()
    assert list(tmp_path.iterdir()) == []


def test_a_state_dict_without_vgg19s_convolutions_is_refused(tmp_path: Path) -> None:
    from tests.support.weights_files import torch_file_bytes

    server = WeightsServer(torch_file_bytes({"features.0.weight": torch.zeros(64, 3, 3, 3)}))
    try:
        with pytest.raises(WeightsDownloadFailed, match=r"holds 1 features\.\* tensors, VGG19's convolutions are 32"):
            fetch(server, tmp_path / "w.pth")
    finally:
        server.stop()


def test_an_http_error_is_reported_with_its_status(weights_server: WeightsServer, tmp_path: Path) -> None:
    with pytest.raises(WeightsDownloadFailed, match="answered 404"):
        fetch_imagenet_features(weights_server.url.replace("vgg19", "nothing"), weights_server.sha256, tmp_path / "w")


def test_nothing_listening_fails_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(WeightsDownloadFailed, match="cannot reach"):
        fetch_imagenet_features(f"http://127.0.0.1:{free_port()}/vgg19.pth", IMAGENET_SHA256, tmp_path / "w.pth")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/vgg19.pth"])
def test_only_http_and_https_urls_are_fetched(url: str, tmp_path: Path) -> None:
    with pytest.raises(WeightsDownloadFailed, match="must be http:// or https://"):
        fetch_imagenet_features(url, IMAGENET_SHA256, tmp_path / "w.pth")
