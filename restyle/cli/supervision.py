"""`restyle up`'s worker in a child process: started, started again when it dies (with a backoff when it
keeps dying early), and stopped when the API stops."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

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
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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


class WorkerSupervisor:
    """Keeps `restyle up`'s worker alive while the API runs, and stops it the moment the API begins to stop.

    Stopping it then, not after the API has closed its connections, matters: the API waits for open event
    streams, and meanwhile a worker left running would take the next job from the queue. A worker that dies
    (killed, out of memory) is started again, because an API without one accepts jobs nobody runs.
    """

    def __init__(self, command: Callable[[], list[str]], environment: dict[str, str], *, niceness: int) -> None:
        """``niceness``: how far below ours the worker's priority is (``RESTYLE_WORKER_NICENESS``), so that on a
        shared CPU the engine does not starve the API."""
        # A command per start: each worker needs a node name of its own, or /readyz would count the
        # heartbeats of a new worker as those of the dead one it replaced.
        self.command, self.environment = command, environment
        self._prepare = functools.partial(_prepare_worker_process, niceness)
        self.delay, self.restart_at = 0.0, 0.0
        self.process: subprocess.Popen[bytes] | None = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.started = time.monotonic()
        return subprocess.Popen(self.command(), env=self.environment, preexec_fn=self._prepare)

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


def _prepare_worker_process(niceness: int) -> None:
    """Runs in the worker's process before Celery starts: lower its priority, and tie its life to ours."""
    os.nice(niceness)
    if sys.platform.startswith("linux"):
        # If `restyle up` dies without stopping it (SIGKILL, the OOM killer), the worker gets SIGTERM instead
        # of living on and taking jobs for an API that is gone.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


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
