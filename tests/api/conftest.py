"""Fixtures for the API tests: a server whose webhooks may go to public addresses only, APIs that hold a
metrics token, APIs on a storage double, and the API as a real ``restyle api`` process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from restyle.settings import Settings
from restyle.storage import Storage
from tests.support import PATIENCE_SECONDS, REPO_ROOT
from tests.support.api_server import ApiServer
from tests.support.ports import free_port
from tests.support.settings import ALICE, MakeSettings, settings_env


@pytest.fixture(scope="module")
def strict_api(make_settings: MakeSettings, start_api: Callable[[Settings], ApiServer]) -> ApiServer:
    """An API with no webhook allow-list (the session's allows the loopback receiver) and room for many jobs."""
    return start_api(make_settings(webhook_allow_hosts=[], max_queue_depth=10_000))


@pytest.fixture
def strict_client(strict_api: ApiServer) -> Iterator[httpx.Client]:
    """Alice's client of the strict API."""
    with strict_api.client(ALICE) as http:
        yield http


StartApiOn = Callable[[Settings, Storage], ApiServer]


@pytest.fixture(scope="session")
def start_api_on(start_api: Callable[[Settings], ApiServer]) -> StartApiOn:
    """Start an API for some settings that keeps its files in ``storage`` (a double from ``storage_doubles``)
    instead of the store its settings name."""

    def start(settings: Settings, storage: Storage) -> ApiServer:
        server = start_api(settings)
        cast(FastAPI, server.server.config.app).state.services.storage = storage
        return server

    return start


# The HTTP edge (metrics token, access log, connection limits) -------------------------------------------

METRICS_TOKEN = "metrics-test-token"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def metered_api(make_settings: MakeSettings, start_api: Callable[[Settings], ApiServer]) -> ApiServer:
    """An API of its own, with API keys and the metrics token, whose queue no worker consumes."""
    return start_api(make_settings(metrics_token=METRICS_TOKEN))


@pytest.fixture(scope="session")
def metered_replica(settings: Settings, start_api: Callable[[Settings], ApiServer]) -> ApiServer:
    """A second API of the session's service (same Redis keys and queue) that also holds the metrics token."""
    return start_api(settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)}))


class ApiProcess:
    """``restyle api`` in a process of its own on a free loopback port, its output (access log included) in a
    file: the server as deployed, with the protocol and limits that ``restyle.cli.servers`` configures."""

    def __init__(
        self, settings: Settings, log_path: Path, *, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
    ) -> None:
        """``env`` replaces the environment made from ``settings`` (an API "on another host" gets its own)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self._stop_requested = False
        restyle = Path(sys.executable).parent / "restyle"
        # Unbuffered: uvicorn writes its access log to stdout, which a file would otherwise hold back.
        env = {**(env or settings_env(settings)), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [str(restyle), "api", "--port", str(self.port)],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"restyle api did not start:\n{self.log()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request_stop(self) -> None:
        if self.process.poll() is None and not self._stop_requested:
            self._stop_requested = True
            self.process.terminate()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.request_stop()
            try:
                self.process.wait(PATIENCE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def start_api_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Settings], ApiProcess]]:
    """Start ``restyle api`` for some settings; each is stopped when the test module ends."""
    processes: list[ApiProcess] = []

    def start(settings: Settings) -> ApiProcess:
        process = ApiProcess(settings, tmp_path_factory.mktemp("api") / "api.log")
        processes.append(process)
        return process

    yield start
    for process in processes:  # all at once, then each waited for
        process.request_stop()
    for process in processes:
        process.stop()
