"""The client installed alone, as a user of the service installs it: ``pip install <checkout>`` with no extras
into an empty virtual environment. torch and the rest of the server extra stay out, the ``restyle`` command
there says in one line to install the server extra, and ``restyle.client`` from that environment runs a job
against the real service (real Redis, a real worker process, random VGG weights).

Slow by nature: the install builds the project's wheel (pip fetches setuptools into an isolated build
environment) and fetches httpx, pydantic and their dependencies from the package index; nothing is cached
outside the test's temporary directory.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from tests.client.served import Served, key_of
from tests.support.pictures import make_png

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
INSTALL_TIMEOUT_SECONDS = 400

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# Run from the client-only venv: which of the server extra's distributions are installed, whether torch can be
# found, and where restyle.client comes from (the venv, never this checkout).
PROBE = """
import importlib.metadata, importlib.util, json, sys
import restyle.client
installed = []
for name in sys.argv[1:]:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        continue
    installed.append(name)
print(json.dumps({
    "server_distributions": installed,
    "torch_spec": repr(importlib.util.find_spec("torch")),
    "client_file": restyle.client.__file__,
    "imported": sorted(name for name in ("torch", "numpy", "PIL", "fastapi", "celery") if name in sys.modules),
}))
"""

# A user's script: submit a tiny job with restyle.client, wait for it, write the picture.
STYLIZE = """
import sys
from restyle.client import Client
url, key, content, style, out = sys.argv[1:]
with Client(url, api_key=key, timeout=60) as client:
    data = client.stylize(content, [style], size=32, iterations=3, timeout=240)
with open(out, "wb") as file:
    file.write(data)
print("torch" in sys.modules)
"""


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s=<>!~\[;]", requirement, maxsplit=1)[0]


def isolated_env(tmp: Path) -> dict[str, str]:
    """The environment for the venv's processes: no path into this checkout, pip's cache in ``tmp``."""
    env = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "PYTHONHOME"}}
    env["PIP_CACHE_DIR"] = str(tmp / "pip-cache")
    return env


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with the project installed from a copy of this checkout, no extras (the copy keeps the
    build's egg-info and build folders out of the checkout)."""
    tmp = tmp_path_factory.mktemp("client-install")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        env=isolated_env(tmp),
        cwd=tmp,
    )
    assert installed.returncode == 0, f"pip install failed:\n{installed.stdout}\n{installed.stderr}"
    return venv


def test_the_client_install_has_none_of_the_server_extra(client_venv: Path, tmp_path: Path) -> None:
    server = [requirement_name(requirement) for requirement in PYPROJECT["project"]["optional-dependencies"]["server"]]
    probe = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", PROBE, *server],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=isolated_env(tmp_path),
        cwd=tmp_path,
    )
    found = json.loads(probe.stdout)

    assert found["server_distributions"] == []
    assert found["torch_spec"] == "None"
    assert found["imported"] == []
    assert Path(found["client_file"]).is_relative_to(client_venv)


def test_the_restyle_command_there_names_the_server_extra_in_one_line(client_venv: Path, tmp_path: Path) -> None:
    for command in (["api"], ["stylize", "photo.png", "painting.png", "-o", "out.png"], ["--help"]):
        ran = subprocess.run(
            [str(client_venv / "bin" / "restyle"), *command],
            capture_output=True,
            text=True,
            timeout=60,
            env=isolated_env(tmp_path),
            cwd=tmp_path,
        )

        assert ran.returncode == 1, command
        assert ran.stdout == ""
        (line,) = ran.stderr.splitlines()
        assert "restyle[server]" in line
        assert line.startswith("restyle: error:")


def test_the_client_installed_alone_runs_a_job_on_the_service(
    client_venv: Path, worker: object, api: Served, tmp_path: Path
) -> None:
    content, style, out = tmp_path / "photo.png", tmp_path / "painting.png", tmp_path / "result.png"
    content.write_bytes(make_png(48, 40))
    style.write_bytes(make_png(40, 40, seed=1))
    script = tmp_path / "stylize.py"
    script.write_text(STYLIZE)

    ran = subprocess.run(
        [str(client_venv / "bin" / "python"), str(script), api.url, key_of(api), str(content), str(style), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=isolated_env(tmp_path),
        cwd=tmp_path,
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "False"  # torch was never imported
    picture = Image.open(io.BytesIO(out.read_bytes()))
    assert picture.format == "PNG"
    assert picture.size == (32, 27)  # 48×40 scaled to a longest side of 32
