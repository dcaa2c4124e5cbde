"""A package index on loopback for the Docker build: this machine's local wheels first, PyPI for the rest.

The image's torch layer is several GB. Where this machine keeps the pinned torch wheels in local PEP 503
indexes (pip's ``extra-index-url = file://…``), a build pointed here (``TORCH_INDEX_URL``) installs them from
disk instead of downloading them; a dependency the local indexes lack (or a version they do not hold) comes
from PyPI's page for the project, merged in. A wheel on both is taken from disk. Only files listed by a
local index page are served, so the mirror exposes nothing else of the disk.

Usage: python3 scripts/wheel_mirror.py PORT DIR [DIR ...]   (DIR: a local ``simple/`` directory)
Standard library only: it runs on the host before any virtual environment exists.
"""

from __future__ import annotations

import re
import sys
import urllib.request
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

PYPI_SIMPLE = "https://pypi.org/simple/"
PYPI_TIMEOUT_SECONDS = 30
CHUNK_BYTES = 1 << 20
# An anchor of a simple page, in three parts: before the href's value, the value, and the rest (the other
# attributes, such as data-requires-python, which pip needs, and the file name).
_ANCHOR = re.compile(r"(<a\s[^>]*?href=\")([^\"]+)(\"[^>]*>([^<]*)</a>)", re.IGNORECASE)


def normalise(project: str) -> str:
    """PEP 503's name normalisation, so ``Jinja2`` and ``jinja2`` find one page."""
    return re.sub(r"[-_.]+", "-", project).lower()


class Mirror:
    """The local indexes' pages and the files they list."""

    def __init__(self, roots: list[Path], upstream: str = PYPI_SIMPLE) -> None:
        self.roots, self.upstream = roots, upstream
        self.files: dict[str, Path] = {}

    def page(self, project: str) -> str:
        """One simple page: the local wheels of ``project``, then PyPI's files of other names."""
        anchors: dict[str, str] = {}
        for root in self.roots:
            index = root / project / "index.html"
            if index.is_file():
                for before, href, after, name in _ANCHOR.findall(index.read_text()):
                    target = urlsplit(urljoin(index.as_uri(), href))
                    path = Path(unquote(target.path))
                    if path.is_file():
                        self.files[path.name] = path
                        local = f"/files/{path.name}" + (f"#{target.fragment}" if target.fragment else "")
                        anchors.setdefault(name, before + escape(local) + after)
        upstream = f"{self.upstream}{project}/"
        for before, href, after, name in _ANCHOR.findall(_upstream_page(upstream)):
            anchors.setdefault(name, before + urljoin(upstream, href) + after)
        links = "<br>\n".join(anchors.values())
        return f"<!DOCTYPE html><html><body>\n{links}\n</body></html>\n"


def _upstream_page(url: str) -> str:
    """PyPI's page at ``url`` (empty when PyPI has none or cannot be reached: the local files still serve)."""
    request = urllib.request.Request(url, headers={"Accept": "text/html"})
    try:
        with urllib.request.urlopen(request, timeout=PYPI_TIMEOUT_SECONDS) as response:
            return response.read().decode()
    except OSError:
        return ""


def handler_for(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = [part for part in urlsplit(self.path).path.split("/") if part]
            if len(parts) == 2 and parts[0] == "simple":
                self._send_page(mirror.page(normalise(parts[1])))
            elif len(parts) == 2 and parts[0] == "files" and parts[1] in mirror.files:
                self._send_file(mirror.files[parts[1]])
            else:
                self.send_error(404)

        def _send_page(self, body: str) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_file(self, path: Path) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with path.open("rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    self.wfile.write(chunk)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the build's own log says what was installed."""

    return Handler


def main(argv: list[str]) -> None:
    port, *roots = argv
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler_for(Mirror([Path(root) for root in roots])))
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
