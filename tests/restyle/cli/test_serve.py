"""``restyle api | worker | up``: the service's processes from the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from restyle.cli import build_parser
from restyle.cli.serve import run_api, run_up, run_worker, worker_argv
from restyle.settings import Settings
from tests.conftest import PATIENCE_SECONDS, REPO_ROOT, MakeSettings, settings_env


def test_api_listens_where_it_is_told() -> None:
    args = build_parser().parse_args(["api", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port, args.run) == ("0.0.0.0", 9000, run_api)


def test_up_takes_the_api_and_worker_options() -> None:
    args = build_parser().parse_args(["up", "--port", "9001", "--concurrency", "2"])
    assert (args.port, args.concurrency, args.run) == (9001, 2, run_up)


def test_a_worker_runs_one_job_at_a_time_in_its_own_process_by_default() -> None:
    args = build_parser().parse_args(["worker"])
    assert args.run == run_worker
    argv = worker_argv(Settings(queue="jobs"), args.concurrency)
    assert argv[argv.index("--queues") + 1] == "jobs"
    assert argv[argv.index("--pool") + 1] == "solo"


def test_several_jobs_at_once_use_a_prefork_pool() -> None:
    argv = worker_argv(Settings(), 3)
    assert argv[argv.index("--pool") + 1 :][:3] == ["prefork", "--concurrency", "3"]


def test_workers_get_distinct_node_names() -> None:
    first, second = worker_argv(Settings(), 1), worker_argv(Settings(), 1)
    assert first[first.index("--hostname") + 1] != second[second.index("--hostname") + 1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def service_up(make_settings: MakeSettings) -> Iterator[subprocess.Popen[bytes]]:
    """A real `restyle up` on a free port, returned once it answers ready."""
    port = free_port()
    restyle = Path(sys.executable).parent / "restyle"
    up = subprocess.Popen(
        [str(restyle), "up", "--port", str(port)],
        cwd=REPO_ROOT,
        env=settings_env(make_settings(api_keys=[])),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert up.poll() is None and time.monotonic() < deadline, "restyle up never became ready"
            time.sleep(0.2)
        yield up
    finally:
        if up.poll() is None:
            up.kill()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads child processes from /proc")
def test_sigterm_stops_the_api_and_its_worker(service_up: subprocess.Popen[bytes]) -> None:
    workers = children(service_up.pid)
    service_up.send_signal(signal.SIGTERM)
    assert service_up.wait(PATIENCE_SECONDS) == 0
    assert workers and all(gone(pid) for pid in workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
def test_a_killed_up_does_not_leave_its_worker_behind(service_up: subprocess.Popen[bytes]) -> None:
    workers = children(service_up.pid)
    service_up.kill()
    service_up.wait()
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and all(gone(pid) for pid in workers)
