"""``restyle api | worker | up``: the service's processes from the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from restyle.cli import build_parser
from restyle.cli.serve import run_api, run_up, run_worker
from restyle.cli.servers import API_GRACE_SECONDS, worker_argv
from restyle.cli.supervision import WORKER_MIN_LIFETIME_SECONDS, WORKER_STOP_SECONDS, WorkerSupervisor, restart_delay
from restyle.settings import Settings
from tests.api.conftest import ApiProcess
from tests.support import PATIENCE_SECONDS, REPO_ROOT
from tests.support.jobs import submit, wait_for
from tests.support.ports import free_port
from tests.support.settings import MakeSettings, settings_env
from tests.support.waiting import eventually


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


def test_a_worker_that_keeps_dying_early_waits_longer_before_each_restart_up_to_30_s() -> None:
    delays, delay = [], 0.0
    for _ in range(8):
        delay = restart_delay(lifetime=1.0, previous=delay)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_worker_that_lived_past_the_minimum_lifetime_is_replaced_at_once() -> None:
    assert restart_delay(lifetime=WORKER_MIN_LIFETIME_SECONDS, previous=16.0) == 0


def test_the_backoff_starts_over_once_a_worker_lived_past_the_minimum_lifetime() -> None:
    after_a_long_life = restart_delay(lifetime=WORKER_MIN_LIFETIME_SECONDS, previous=16.0)
    assert restart_delay(lifetime=1.0, previous=after_a_long_life) == 1


class Supervision:
    """`restyle up`'s supervisor on its own thread, watching a worker that exits with status 3 at once."""

    def __init__(self) -> None:
        # Never run: it only carries the flag with which `restyle up` tells the supervisor to stop.
        self.server = uvicorn.Server(uvicorn.Config("api.main:create_app", factory=True, log_config=None))
        self.starts: list[list[str]] = []
        self.supervisor = WorkerSupervisor(self._command, dict(os.environ), niceness=0)
        self.thread = threading.Thread(target=self.supervisor.watch, args=(self.server,), daemon=True)
        self.thread.start()

    def _command(self) -> list[str]:
        self.starts.append(command := [sys.executable, "-c", "raise SystemExit(3)"])
        return command

    def wait_for_the_first_death(self) -> None:
        """Until the supervisor has noticed that the worker died and waits to start the next."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while self.supervisor.process is not None:
            assert time.monotonic() < deadline, "the supervisor never noticed its worker's death"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(PATIENCE_SECONDS)


def test_the_supervised_worker_runs_below_the_apis_priority_by_the_configured_niceness(tmp_path: Path) -> None:
    reported = tmp_path / "niceness"
    report = "import os, pathlib, sys; pathlib.Path(sys.argv[1]).write_text(str(os.nice(0)))"
    server = uvicorn.Server(uvicorn.Config("api.main:create_app", factory=True, log_config=None))  # never run
    supervisor = WorkerSupervisor(lambda: [sys.executable, "-c", report, str(reported)], dict(os.environ), niceness=5)
    watcher = threading.Thread(target=supervisor.watch, args=(server,), daemon=True)
    watcher.start()
    try:
        eventually(lambda: reported.exists() and reported.read_text(), "the supervised command never ran")
    finally:
        server.should_exit = True
        watcher.join(PATIENCE_SECONDS)
    assert int(reported.read_text()) == min(os.nice(0) + 5, 19)


@pytest.fixture
def supervision() -> Iterator[Supervision]:
    watching = Supervision()
    yield watching
    watching.stop()


def test_a_worker_death_is_logged_with_the_wait_before_the_next_worker(
    supervision: Supervision, caplog: pytest.LogCaptureFixture
) -> None:
    supervision.wait_for_the_first_death()
    (record,) = [record for record in caplog.records if record.name == "restyle.cli.supervision"]
    assert record.getMessage().startswith("the worker exited (status 3) after ")
    assert record.getMessage().endswith(" s; starting another in 1 s")


def test_a_stop_cuts_the_wait_before_a_restart_short(supervision: Supervision) -> None:
    supervision.wait_for_the_first_death()
    supervision.server.should_exit = True
    supervision.thread.join(0.5)  # the first wait is 1 s
    assert not supervision.thread.is_alive()
    assert len(supervision.starts) == 1


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


@pytest.fixture
def api_process(make_settings: MakeSettings, tmp_path: Path) -> Iterator[ApiProcess]:
    """A real `restyle api` on a free port, returned once it answers ``/healthz``."""
    process = ApiProcess(make_settings(), tmp_path / "api.log")
    yield process
    process.stop()


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process may not create files in: a read-only one, or sysfs for root, whom file
    permissions do not stop."""
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux's permissions and sysfs")
    if os.geteuid() == 0:
        return Path("/sys")
    directory = tmp_path / "read-only"
    directory.mkdir(mode=0o500)
    return directory


def run_restyle(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``restyle ARGV`` to its end (a service that does not stop at once fails the test at the timeout)."""
    restyle = Path(sys.executable).parent / "restyle"
    return subprocess.run(
        [str(restyle), *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=PATIENCE_SECONDS
    )


@pytest.mark.parametrize("command", ["api", "worker", "up"])
def test_a_storage_directory_that_cannot_be_written_stops_a_service_at_once_with_one_line(
    command: str, make_settings: MakeSettings, unwritable_dir: Path
) -> None:
    ports = [] if command == "worker" else ["--port", str(free_port())]
    ended = run_restyle([command, *ports], settings_env(make_settings(storage_dir=unwritable_dir)))
    assert ended.returncode == 1
    assert ended.stderr.splitlines() == [
        f"restyle: storage: storage directory {unwritable_dir} is not writable: Permission denied"
    ]


@pytest.mark.parametrize("command", ["api", "worker"])
def test_a_missing_bucket_stops_a_service_at_once_with_one_line_naming_it(
    command: str, s3_settings: Settings, s3_env: dict[str, str]
) -> None:
    ports = [] if command == "worker" else ["--port", str(free_port())]
    env = settings_env(s3_settings) | s3_env | {"RESTYLE_STORAGE_URL": "s3://no-such-bucket-here/restyle"}
    ended = run_restyle([command, *ports], env)
    assert ended.returncode == 1
    (line,) = ended.stderr.splitlines()
    assert line.startswith("restyle: storage: ") and "no-such-bucket-here" in line


def test_a_storage_url_of_an_unknown_kind_stops_the_api_at_once_naming_the_setting(make_settings: MakeSettings) -> None:
    env = {**settings_env(make_settings()), "RESTYLE_STORAGE_URL": "ftp://files.example/restyle"}
    ended = run_restyle(["api", "--port", str(free_port())], env)
    assert ended.returncode == 2
    (line,) = ended.stderr.splitlines()
    assert line.startswith("restyle: error: RESTYLE_STORAGE_URL: ")


def test_sigterm_stops_the_api_with_status_0(api_process: ApiProcess) -> None:
    # `docker stop` sends SIGTERM: a clean stop must not read as a crash (status 143) to Docker or systemd.
    api_process.process.send_signal(signal.SIGTERM)
    assert api_process.process.wait(PATIENCE_SECONDS) == 0, api_process.log()


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


def watch_service(up: Up, until: Callable[[httpx.Response], bool]) -> httpx.Response:
    """Poll ``/readyz`` until its answer satisfies ``until``, checking all the while that `restyle up` still
    runs and its API answers ``/healthz``."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        assert up.process.poll() is None, "restyle up stopped"
        assert httpx.get(f"{up.url}/healthz").status_code == 200
        readiness = httpx.get(f"{up.url}/readyz")
        if until(readiness):
            return readiness
        assert time.monotonic() < deadline, f"/readyz never answered as expected; last: {readiness.text}"
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads child processes from /proc")
def test_up_keeps_its_api_answering_but_not_ready_after_its_worker_dies_early(service_up: Up) -> None:
    os.kill(service_up.worker(), signal.SIGKILL)  # moments after it became ready: an early death
    not_ready = watch_service(service_up, until=lambda readiness: readiness.status_code == 503)
    assert not_ready.json()["code"] == "not_ready"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads child processes from /proc")
def test_up_replaces_a_worker_that_died_early_with_one_of_another_name(service_up: Up) -> None:
    first = httpx.get(f"{service_up.url}/readyz").json()["workers"]
    os.kill(service_up.worker(), signal.SIGKILL)  # moments after it became ready: an early death

    def ready_without_the_dead_worker(readiness: httpx.Response) -> bool:
        return readiness.status_code == 200 and set(readiness.json()["workers"]).isdisjoint(first)

    watch_service(service_up, until=ready_without_the_dead_worker)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
def test_a_killed_up_does_not_leave_its_worker_behind(service_up: Up) -> None:
    worker = service_up.worker()
    service_up.process.kill()
    service_up.process.wait()
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not gone(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(worker)
