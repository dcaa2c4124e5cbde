"""``restyle api | worker | up``: the service's processes from the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from restyle.cli import build_parser
from restyle.cli.serve import (
    API_GRACE_SECONDS,
    WORKER_MIN_LIFETIME_SECONDS,
    WORKER_STOP_SECONDS,
    run_api,
    run_up,
    run_worker,
    worker_argv,
)
from restyle.settings import Settings
from tests.conftest import PATIENCE_SECONDS, REPO_ROOT, MakeSettings, settings_env, submit, wait_for


def test_api_listens_where_it_is_told() -> None:
    args = build_parser().parse_args(["api", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port, args.run) == ("0.0.0.0", 9000, run_api)


def test_up_takes_the_api_and_worker_options() -> None:
    args = build_parser().parse_args(["up", "--port", "9001", "--concurrency", "2"])
    assert (args.port, args.concurrency, args.run) == (9001, 2, run_up)


@pytest.mark.parametrize("command", ["api", "up"])
@pytest.mark.parametrize("port", ["0", "-1", "65536", "99999"])
def test_a_port_outside_1_to_65535_is_refused(command: str, port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--port", port])
    assert exit_.value.code == 2
    assert f"argument --port: must be from 1 to 65535, not {port}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["worker", "up"])
@pytest.mark.parametrize("concurrency", ["0", "-2"])
def test_a_concurrency_below_1_is_refused(command: str, concurrency: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--concurrency", concurrency])
    assert exit_.value.code == 2
    assert f"argument --concurrency: must be 1 or more, not {concurrency}" in capsys.readouterr().err


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
    """Child processes of ``pid``, whichever of its threads started them (Linux lists them per thread)."""
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]


@dataclass(frozen=True)
class Up:
    """A running `restyle up` and the URL of its API."""

    process: subprocess.Popen[bytes]
    url: str

    def worker(self) -> int:
        (pid,) = children(self.process.pid)
        return pid


@pytest.fixture
def service_up(make_settings: MakeSettings) -> Iterator[Up]:
    """A real `restyle up` on a free port, returned once it answers ready."""
    url = f"http://127.0.0.1:{free_port()}"
    restyle = Path(sys.executable).parent / "restyle"
    up = subprocess.Popen(
        [str(restyle), "up", "--port", url.rsplit(":", 1)[1]],
        cwd=REPO_ROOT,
        env=settings_env(make_settings(api_keys=[])),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert up.poll() is None and time.monotonic() < deadline, "restyle up never became ready"
            time.sleep(0.2)
        yield Up(up, url)
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
def test_sigterm_stops_the_api_and_its_worker(service_up: Up) -> None:
    worker = service_up.worker()
    service_up.process.send_signal(signal.SIGTERM)
    assert service_up.process.wait(PATIENCE_SECONDS) == 0
    assert gone(worker)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads child processes from /proc")
def test_sigterm_stops_the_worker_at_once_while_an_event_stream_is_open(service_up: Up) -> None:
    with httpx.Client(base_url=service_up.url, timeout=PATIENCE_SECONDS) as http:
        job_id = submit(http, size=128, iterations=5000).json()["id"]
        wait_for(http, job_id, lambda job: job["status"] == "running")
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as events:
            next(events.iter_lines())
            service_up.process.send_signal(signal.SIGTERM)
            assert service_up.process.wait(API_GRACE_SECONDS + WORKER_STOP_SECONDS) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads child processes from /proc")
def test_up_starts_another_worker_when_its_worker_dies(service_up: Up) -> None:
    time.sleep(WORKER_MIN_LIFETIME_SECONDS)  # younger, its death would count as a crash loop
    first = service_up.worker()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + PATIENCE_SECONDS
    while children(service_up.process.pid) in ([], [first]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service_up.process.poll() is None
    assert children(service_up.process.pid) not in ([], [first])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
def test_a_killed_up_does_not_leave_its_worker_behind(service_up: Up) -> None:
    worker = service_up.worker()
    service_up.process.kill()
    service_up.process.wait()
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not gone(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(worker)
