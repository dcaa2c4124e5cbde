"""``restyle fetch-weights`` and ``restyle up --fetch-weights``: the real weights on a first run, from the
download location the settings name, refused unless their SHA-256 matches; offline, random weights and a
notice instead of a hang."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from core.weights_download import FEATURES_FILENAME
from tests.conftest import PATIENCE_SECONDS, REPO_ROOT, MakeSettings, free_port, settings_env
from tests.restyle.cli.test_serve import run_restyle
from tests.weights_files import WeightsServer, vgg19_state_dict

RESTYLE = Path(sys.executable).parent / "restyle"


def environment(make_settings: MakeSettings, torch_home: Path, url: str, sha256: str) -> dict[str, str]:
    settings = make_settings(weights="auto", weights_url=url, weights_sha256=sha256, api_keys=[])
    return {**settings_env(settings), "TORCH_HOME": str(torch_home)}


def cached_files(torch_home: Path) -> list[Path]:
    return sorted(torch_home.rglob("*")) if torch_home.exists() else []


def test_a_wrong_digest_is_refused_in_one_line_and_nothing_is_cached(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path
) -> None:
    env = environment(make_settings, tmp_path / "torch", weights_server.url, "0" * 64)
    done = run_restyle(["fetch-weights"], env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("restyle: ImageNet VGG19 weights not fetched:")
    assert f"SHA-256 {weights_server.sha256}, not the expected {'0' * 64}: refused" in done.stderr
    assert [path for path in cached_files(tmp_path / "torch") if path.is_file()] == []


def test_the_right_file_is_cached_and_then_used_as_imagenet_weights(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(make_settings, tmp_path / "torch", weights_server.url, weights_server.sha256)
    done = run_restyle(["fetch-weights"], env)
    assert done.returncode == 0, done.stderr
    cached = tmp_path / "torch" / "hub" / "checkpoints" / FEATURES_FILENAME
    assert f"ImageNet VGG19 weights: {cached}" in done.stdout
    assert set(torch.load(cached, weights_only=True)) == {
        key for key in vgg19_state_dict() if key.startswith("features.")
    }

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from core.vgg import load_vgg

    assert load_vgg("auto", device="cpu").weights_name == "imagenet"


def test_weights_already_cached_are_not_downloaded_again(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path
) -> None:
    env = environment(make_settings, tmp_path / "torch", weights_server.url, weights_server.sha256)
    assert run_restyle(["fetch-weights"], env).returncode == 0
    again = run_restyle(["fetch-weights"], env)
    assert again.returncode == 0
    assert weights_server.requests == 1


def test_up_with_nothing_listening_goes_on_with_random_weights_within_10_s_and_says_so(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    env = environment(make_settings, tmp_path / "torch", f"http://127.0.0.1:{free_port()}/vgg19.pth", "0" * 64)
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
        fallback = output.wait_for("not fetched", deadline=started + 10)
        assert "cannot reach" in fallback and "`auto` runs on seeded random weights" in fallback
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


def test_up_fetches_nothing_for_weights_other_than_auto_or_imagenet(
    weights_server: WeightsServer, make_settings: MakeSettings, tmp_path: Path
) -> None:
    from restyle.cli.serve import _fetch_weights

    _fetch_weights(make_settings(weights="random", weights_url=weights_server.url))
    assert weights_server.requests == 0
