"""Stands in for a deployed worker by being one: a real ``celery worker`` process (``worker.app``) for one
settings object, started in a subprocess, its output in a log file.

It consumes the settings' queue with the settings' weights (``random`` unless they say otherwise); it is ready
once its heartbeat is in Redis (``wait_ready``), which it sends only after loading its network. A test can kill
it, shut it down warm, or stop it cold. ``seed_imagenet_weights`` gives a worker whose weights are ``imagenet``
a file to load instead of a download.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from restyle.cli.servers import worker_argv
from restyle.settings import Settings
from restyle.workers import WorkerRegistry
from tests.support import PATIENCE_SECONDS, REPO_ROOT
from tests.support.settings import settings_env


class WorkerProcess:
    """A real ``celery worker`` process for one settings object, logging to a file."""

    def __init__(
        self, settings: Settings, log_path: Path, *, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
    ) -> None:
        """``env`` replaces the environment made from ``settings`` (a worker "on another host" gets its own)."""
        self.settings = settings
        self.log_path = log_path
        self._log = log_path.open("wb")
        self._stop_requested = False
        self.name = f"restyle-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        command = [sys.executable, "-m", "celery", "-A", "worker.app", *worker_argv(settings, 1, self.name)]
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env or settings_env(settings), stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, client: redis.Redis[bytes]) -> None:
        """Until the worker's heartbeat appears (it beats only after loading the network)."""
        registry = WorkerRegistry(client, self.settings.key_prefix)
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"worker exited with {self.process.returncode}:\n{self.log()}")
            if self.name in registry.alive(10):
                return
            time.sleep(0.1)
        pytest.fail(f"worker did not become ready:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, no goodbye."""
        self.process.kill()
        self.process.wait()

    def shut_down(self, how: signal.Signals = signal.SIGTERM) -> None:
        """Ask for a warm shutdown (SIGTERM from `docker stop` or `restyle up`, SIGINT from Ctrl-C) and wait for it."""
        self.process.send_signal(how)
        self.process.wait(PATIENCE_SECONDS)

    def request_stop(self) -> None:
        """Cold shutdown (SIGQUIT) begins: tests do not wait for a job still running when the session ends."""
        if self.process.poll() is None and not self._stop_requested:
            self._stop_requested = True
            self.process.send_signal(signal.SIGQUIT)

    def stop(self) -> None:
        """Cold shutdown, waited for (and a SIGKILL if it takes too long)."""
        if self.process.poll() is None:
            self.request_stop()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]


def seed_imagenet_weights(torch_home: Path) -> Path:
    """Seeded filters in the ImageNet VGG19 file's layout, where its download would be under ``torch_home``: a
    worker started with ``TORCH_HOME=torch_home`` loads ``imagenet`` from there (nothing is downloaded, and the
    real cache is untouched). The file's path."""
    from core.weights_download import imagenet_cache_path
    from tests.support.weights_files import write_vgg19_weights  # torch, only for the tests that need it

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        return write_vgg19_weights(imagenet_cache_path())
