"""The compose stack as a user runs it, started by these fixtures from the image scripts/compose-test.sh built.

Run only by that script (it says which compose command and images to use; the ordinary suite skips this
folder, see tests/conftest.py). The tests reach the stack only through the ports it publishes on 127.0.0.1
and through `docker compose` (exec, restart, down and up), never through a container's bridge address.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import REPO_ROOT
from tests.support.jobs import Json
from tests.support.jobs import submit as post_job
from tests.support.ports import free_port

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.cpu.yml", "tests/compose/docker-compose.test.yml")
PROJECT = "restyle-compose-test"
API_KEY = "compose-test-key"
METRICS_TOKEN = "compose-test-metrics-token"
SERVICES = ("redis", "api", "worker", "flower")
# The healthchecks run every 10 s, so a healthy stack takes at least that long; the rest is margin
# for a loaded two-core machine.
UP_SECONDS = 240
# A job on the CPU inside a container, with the time a killed worker's lease takes to lapse and a new worker
# to start, on a loaded two-core machine.
JOB_SECONDS = 300
# Slow enough to be caught mid-run: on an idle two-core machine it runs several times longer than a poll and a
# `docker compose exec` take, which is all the tests need between seeing it run and interrupting it. Every
# other second of it is paid again under load (a killed worker's job runs twice), so it is no longer than that.
SLOW_JOB = {"size": "128", "iterations": "120"}
QUICK_JOB = {"size": "48", "iterations": "5"}


class Stack:
    """The running stack: its compose command, and its API and Flower on their loopback ports."""

    def __init__(self, command: list[str], environment: dict[str, str], log_path: Path) -> None:
        self.command, self.environment, self.log_path = command, environment, log_path
        self.api_url = f"http://127.0.0.1:{environment['RESTYLE_TEST_API_PORT']}"
        self.flower_url = f"http://127.0.0.1:{environment['RESTYLE_TEST_FLOWER_PORT']}"

    def run(self, *args: str, timeout: float = UP_SECONDS) -> subprocess.CompletedProcess[str]:
        """Run ``docker compose`` for this project, whatever its exit status."""
        files = [arg for name in COMPOSE_FILES for arg in ("-f", name)]
        return subprocess.run(
            [*self.command, "-p", PROJECT, *files, *args],
            cwd=REPO_ROOT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def compose(self, *args: str, check: bool = True, timeout: float = UP_SECONDS) -> str:
        """Run ``docker compose`` for this project; its output, or a failed test quoting it."""
        done = self.run(*args, timeout=timeout)
        if check and done.returncode != 0:
            pytest.fail(f"docker compose {shlex.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def up(self) -> None:
        """Start (or start again) every service and wait until all their healthchecks pass."""
        self.compose("up", "--detach", "--no-build", "--wait", "--wait-timeout", str(UP_SECONDS))

    def down(self, *, volumes: bool = False) -> None:
        """Stop and remove the containers (and with ``volumes`` the data), keeping their logs first."""
        self.save_logs()
        self.compose("down", *(["--volumes"] if volumes else []))

    def exec(self, service: str, *command: str, check: bool = True) -> str:
        return self.compose("exec", "-T", service, *command, check=check)

    def inspect(self, service: str) -> Json:
        """``docker inspect`` of the service's container."""
        container = self.compose("ps", "--all", "--quiet", service).strip()
        found = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True)
        described: Json = json.loads(found.stdout)[0]
        return described

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)

    def save_logs(self) -> None:
        """Append the containers' logs to the stack's log (a ``down`` would take them away)."""
        with self.log_path.open("a") as log:
            log.write(self.compose("logs", "--no-color", "--timestamps", check=False))


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The stack, up and healthy; at the end its logs are kept and everything it made is removed."""
    environment = {
        **os.environ,
        "RESTYLE_API_KEYS": API_KEY,
        "RESTYLE_METRICS_TOKEN": METRICS_TOKEN,
        "RESTYLE_TEST_API_PORT": str(free_port()),
        "RESTYLE_TEST_FLOWER_PORT": str(free_port()),
    }
    log_path = REPO_ROOT / "var" / "compose-test" / "stack.log"
    running = Stack(shlex.split(os.environ["RESTYLE_COMPOSE_COMMAND"]), environment, log_path)
    log_path.unlink(missing_ok=True)
    try:
        running.up()
        yield running
    finally:
        running.down(volumes=True)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def submit(http: httpx.Client, fields: dict[str, Any]) -> str:
    """POST a generated photo and painting (the suite's ``submit``); the new job's id."""
    response = post_job(http, **fields)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_for(http: httpx.Client, job_id: str, until: Callable[[Json], bool], seconds: float = JOB_SECONDS) -> Json:
    """Poll the job until ``until(job)`` holds. Answers of 503 (Redis restarting) are waited out.

    ``seconds`` run from the record's last change, not from the call: a queued job behind a long one, on a loaded
    machine, is waited for while the queue moves, and a job that stands still fails as soon as on an idle one.
    """
    deadline = time.monotonic() + seconds
    job: Any = None
    while time.monotonic() < deadline:
        try:
            response = http.get(f"/v1/jobs/{job_id}")
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code != 503:
            assert response.status_code == 200, response.text
            seen, job = job, response.json()
            if until(job):
                return dict(job)
            if job != seen:
                deadline = time.monotonic() + seconds
        time.sleep(0.25)
    pytest.fail(f"job {job_id} stood still for {seconds:g} s short of the expected state; last seen: {job}")
