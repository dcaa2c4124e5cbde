"""scripts/wheel_mirror.py, the Docker build's package index: local wheels first, the upstream index for the
rest, and nothing of the disk that a local index does not list."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.support import REPO_ROOT


def load_mirror_module() -> ModuleType:
    """The script is no package module (it runs on the bare host), so it is loaded from its path."""
    spec = importlib.util.spec_from_file_location("wheel_mirror", REPO_ROOT / "scripts" / "wheel_mirror.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wheel_mirror = load_mirror_module()
LOCAL_WHEEL = "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl"
UPSTREAM_PAGE = (
    '<a href="../../packages/aa/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=remote">'
    f"{LOCAL_WHEEL}</a>\n"
    '<a href="../../packages/bb/torch-2.13.0-py3-none-any.whl" data-requires-python="&gt;=3.10">'
    "torch-2.13.0-py3-none-any.whl</a>\n"
)


@pytest.fixture
def local_index(tmp_path: Path) -> Path:
    """A local PEP 503 index laid out as pip's ``file://`` extra indexes are: simple/NAME/ and files/."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / LOCAL_WHEEL).write_bytes(b"local wheel bytes")
    (tmp_path / "secret.txt").write_text("not listed")
    page = tmp_path / "simple" / "torch" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<a href="../../files/{LOCAL_WHEEL}#sha256=local">{LOCAL_WHEEL}</a>\n')
    return tmp_path / "simple"


@pytest.fixture
def upstream() -> Iterator[str]:
    """An upstream index on loopback serving one page for ``torch`` (no real PyPI in tests)."""

    class Upstream(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = UPSTREAM_PAGE.encode() if self.path == "/simple/torch/" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    server.shutdown()


@pytest.fixture
def mirror_url(local_index: Path, upstream: str) -> Iterator[str]:
    mirror = wheel_mirror.Mirror([local_index], upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), wheel_mirror.handler_for(mirror))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_wheel_held_locally_is_served_from_disk_instead_of_upstream(mirror_url: str) -> None:
    page = httpx.get(f"{mirror_url}/simple/torch/").text
    assert f'href="/files/{LOCAL_WHEEL}#sha256=local"' in page
    assert "sha256=remote" not in page
    assert httpx.get(f"{mirror_url}/files/{LOCAL_WHEEL}").content == b"local wheel bytes"


def test_versions_only_upstream_has_link_there_with_their_attributes(mirror_url: str, upstream: str) -> None:
    page = httpx.get(f"{mirror_url}/simple/Torch/").text
    assert f'href="{upstream.removesuffix("simple/")}packages/bb/torch-2.13.0-py3-none-any.whl"' in page
    assert 'data-requires-python="&gt;=3.10"' in page


def test_files_no_local_index_lists_are_not_served(mirror_url: str) -> None:
    httpx.get(f"{mirror_url}/simple/torch/")
    assert httpx.get(f"{mirror_url}/files/secret.txt").status_code == 404
    assert httpx.get(f"{mirror_url}/files/..%2Fsecret.txt").status_code == 404


def test_an_unreachable_upstream_leaves_the_local_wheels(local_index: Path) -> None:
    with socket.socket() as bound_never_listening:
        bound_never_listening.bind(("127.0.0.1", 0))
        port = bound_never_listening.getsockname()[1]
        page = wheel_mirror.Mirror([local_index], f"http://127.0.0.1:{port}/simple/").page("torch")
    assert LOCAL_WHEEL in page
