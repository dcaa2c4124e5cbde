"""Fixtures for the worker's tests: a Redis of the test's own, which the test may kill and start again, a
worker that cannot load its network, and jobs written straight into the store.

The shared Redis must never go down (other tests and other people use it), so tests of what a Redis outage
does run against a private ``redis-server`` instead.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from api.deps import owner_of
from core.params import StyleParams
from restyle.jobs import JobProgress, JobRecord, JobStore, input_keys, new_job_id
from restyle.settings import Settings
from restyle.storage import open_storage
from tests.support import PATIENCE_SECONDS
from tests.support.settings import ALICE, MakeSettings
from tests.support.worker_process import WorkerProcess

# Below Linux's ephemeral range (32768–60999 by default): a client retrying a connection to a port inside that
# range while nothing listens can be given that very port as its own source port and connect to itself (TCP
# simultaneous open), which would keep the restarted server from binding it.
_PORTS = range(20_000, 32_000)


def _free_port() -> int:
    """A loopback port outside the ephemeral range that nothing listens on now."""
    for _ in range(100):
        port = random.choice(_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free loopback port for a private Redis")


class RedisServer:
    """A private ``redis-server`` on a fixed loopback port, durable across a SIGKILL and a restart.

    Every write is in the append-only file before Redis answers it (``appendfsync always``) and nothing else
    persists (no RDB snapshots), so a restart on the same directory has exactly what was acknowledged: what a
    crash of a well-configured production Redis leaves.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path = directory / "redis.log"

    def start(self) -> None:
        """Start (or restart) the server on the same port and data, and wait until it answers."""
        assert self.process is None, "already running"
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
                    *("--dir", str(self.directory)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        probe: redis.Redis[bytes] = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + PATIENCE_SECONDS
        try:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if probe.ping():
                        return
                except redis.BusyLoadingError:
                    pass  # replaying its append-only file
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer on port {self.port}:\n{self.log()}")
                time.sleep(0.05)
        finally:
            probe.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients; only the append-only file survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self) -> redis.Redis[bytes]:
        return redis.Redis.from_url(self.url)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")[-5000:]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A running Redis of this test's own (``redis-server`` must be installed); killed when the test ends."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def networkless_worker(make_settings: MakeSettings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker whose VGG19 weights file is missing, returned once it has said that it takes no jobs."""
    worker = WorkerProcess(make_settings(weights=str(tmp_path / "missing-vgg19.pth")), tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while "takes no jobs" not in worker.log():
            assert worker.process.poll() is None, worker.log()
            assert time.monotonic() < deadline, f"the worker never gave up on its network:\n{worker.log()}"
            time.sleep(0.1)
        yield worker
    finally:
        worker.stop()


def record_job(settings: Settings, store: JobStore, content: bytes | None, style: bytes) -> JobRecord:
    """Store the inputs (no content file when ``content`` is None) and admit a tiny job of Alice's for them; it
    is claimable once released, as the API releases a job once its files are stored."""
    job_id = new_job_id()
    storage = open_storage(settings)
    content_key, style_keys = input_keys(job_id, 1)
    if content is not None:
        storage.put(content_key, content)
    storage.put(style_keys[0], style)
    params = StyleParams(size=32, iterations=3)
    record = JobRecord(
        id=job_id,
        owner=owner_of(ALICE),
        params=params,
        style_count=1,
        progress=JobProgress(total=params.iterations),
        created_at=datetime.now(UTC),
    )
    store.create(record)
    return record
