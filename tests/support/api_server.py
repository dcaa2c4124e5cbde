"""Stands in for a deployed API by being one: the real app (``api.main.create_app``) in a real uvicorn server,
on a loopback port of its own, in a background thread of the test process.

The constructor returns once the server has started (or fails the test); ``client(key)`` gives an HTTP client
that sends that API key; ``stop()`` asks the server to exit and closes its socket.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from restyle.settings import Settings
from tests.support import PATIENCE_SECONDS
from tests.support.settings import ALICE


class ApiServer:
    """The real app in a real uvicorn server on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        from api.main import create_app

        self.settings = settings
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                pytest.fail("the API server did not start")
            time.sleep(0.02)

    def client(self, key: str | None = ALICE) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=PATIENCE_SECONDS)

    def request_stop(self) -> None:
        """Ask the server to exit now, without waiting for open connections (a test's streams among them)."""
        self.server.should_exit = self.server.force_exit = True

    def stop(self) -> None:
        self.request_stop()
        self.thread.join(PATIENCE_SECONDS)
        self.socket.close()
