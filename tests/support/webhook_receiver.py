"""Stands in for the customer's endpoint that webhooks go to: a loopback HTTP server that records every POST
(headers and body, in order of arrival) and answers each with the next scripted status, then 200.

It listens from construction until ``stop()``; ``url`` is its address, on 127.0.0.1 (which the test settings
allow as a webhook host). ``next()`` waits up to ``PATIENCE_SECONDS`` for a delivery, or fails the test.
"""

from __future__ import annotations

import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support import PATIENCE_SECONDS


class WebhookReceiver:
    """A local HTTP server that records every POST and answers with scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.put((dict(self.headers.items()), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on what arrived."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next(self) -> tuple[dict[str, str], bytes]:
        """The next delivery; fails the test if none arrives."""
        try:
            return self.received.get(timeout=PATIENCE_SECONDS)
        except queue.Empty:
            pytest.fail("no webhook arrived")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
