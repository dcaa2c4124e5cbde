"""Stands in for download.pytorch.org (or a mirror of it): a loopback HTTP server that serves one weights file at
``/vgg19.pth`` (404 elsewhere), counts every request, and can announce more bytes than it sends (a connection
cut mid-download). It listens from construction until ``stop()``."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WeightsServer:
    """A loopback HTTP server standing in for download.pytorch.org (or a mirror): it serves ``body`` at
    ``url``, counts the requests, and can announce more bytes than it sends (a cut connection)."""

    def __init__(self, body: bytes) -> None:
        self.body, self.requests, self.announce_extra = body, 0, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                if self.path != "/vgg19.pth":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.body) + server.announce_extra))
                self.end_headers()
                self.wfile.write(server.body)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests assert on what the client did."""

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/vgg19.pth"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
