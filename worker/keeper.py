"""Keeps a run's lease alive on a thread of its own, so a long engine step never lets it lapse.

The thread lives in the process that runs the job (a prefork child, or the solo worker itself): if that
process dies or freezes, renewals stop with it and the lease lapses, which is the whole point.
"""

from __future__ import annotations

import logging
import threading

import redis

from restyle.jobs import Run

log = logging.getLogger(__name__)

# Renewals per lease period: one or two can fail (a Redis blip) before the lease is at risk.
RENEWALS_PER_LEASE = 4


class LeaseKeeper:
    """Renews ``run``'s lease until stopped; ``lost`` is set once the job belongs to another run."""

    def __init__(self, run: Run, lease_seconds: float) -> None:
        self.run = run
        self.interval = lease_seconds / RENEWALS_PER_LEASE
        self.lost = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{run.job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _keep(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                if not self.run.renew():
                    log.warning("job %s: this run lost its lease; another worker has the job now", self.run.job_id)
                    self.lost.set()
                    return
            except redis.RedisError as error:
                log.warning("job %s: lease not renewed, Redis unavailable (%s)", self.run.job_id, error)
