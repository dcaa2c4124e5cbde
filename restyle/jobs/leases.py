"""Getting jobs back from runs that stopped renewing their lease: the worker is gone, frozen or cut off.

A run's lease is a key holding its token with a TTL of ``lease_seconds``, renewed by the run about four
times per lease. Every worker's housekeeping runs a ``Reaper`` each pass: a job in the running index with no
lease is reclaimed, in one transaction conditional on the lease still being absent: its run is ended
``lost``, and the job goes back to the queue (or fails as ``worker_lost`` after ``max_attempts`` counted
runs, or ends canceled if its owner had asked). So a dead worker's job is queued again at most
``lease_seconds`` after the run's last renewal, plus one housekeeping pass.

A Redis outage must not pass for the death of every worker: while Redis is away no lease can be renewed,
and a restarted Redis drops every lease whose TTL ran out meanwhile. So a reaper reclaims nothing until
Redis has been up, and this reaper has reached it on every pass, for a full lease period: time Redis was
away never counts against a run, whose worker gets a whole lease to renew before anyone may reclaim it.
A pass that comes long after the previous one (this process was frozen) starts that period anew too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis
from redis.client import Pipeline

from restyle.jobs.ledger import Ledger, finished, run_cleared
from restyle.jobs.records import JobError, JobRecord

log = logging.getLogger(__name__)


class Reaper:
    """Reclaims the jobs of lapsed leases; one per worker process, called from its housekeeping loop."""

    def __init__(
        self,
        ledger: Ledger,
        lease_seconds: float,
        max_attempts: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.clock = clock
        self._last_pass = -math.inf
        self._trusted_from = -math.inf

    def reclaim(self) -> list[str]:
        """Reclaim what lapsed; returns the jobs put back in the queue, each owed a queue message."""
        moment = self.clock()
        if moment - self._last_pass > self.lease_seconds / 2 and self._last_pass > -math.inf:
            self._trusted_from = moment + self.lease_seconds  # a gap in our own watch: wait a lease again
        try:
            uptime = int(self.ledger.redis.info("server")["uptime_in_seconds"])
            if self._trusted_from == math.inf:
                self._trusted_from = moment + self.lease_seconds  # Redis is back: from now, a full lease
            self._last_pass = moment
            if moment < self._trusted_from or uptime < self.lease_seconds:
                return []
            return [job_id for job_id in self._lapsed() if self._reclaim(job_id)]
        except redis.RedisError:
            self._trusted_from = math.inf  # until Redis answers again, then a full lease
            self._last_pass = -math.inf
            raise

    def _lapsed(self) -> list[str]:
        keys = self.ledger.keys
        running = [raw.decode() for raw in self.ledger.redis.zrange(keys.running, 0, -1)]
        with self.ledger.redis.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.exists(keys.lease(job_id))
            alive = pipe.execute()
        return [job_id for job_id, held in zip(running, alive, strict=True) if not held]

    def _reclaim(self, job_id: str) -> bool:
        """True when the job went back to the queue; the whole change is void if the lease reappears meanwhile."""
        keys, queue = self.ledger.keys, self.ledger.queue
        lease = keys.lease(job_id)
        reclaimed = False

        def change(record: JobRecord) -> JobRecord | None:
            nonlocal reclaimed
            reclaimed = False  # as decided by the last try of the transaction, the one that counts
            if self.ledger.redis.exists(lease) or record.finished:
                return None
            reclaimed = True
            if record.status == "queued":
                return record  # claimed, then its worker died before starting it: only the indexes change
            runs = record.with_last_run("lost")
            if record.cancel_requested:
                return finished(record, "canceled", runs=runs)
            if record.attempts >= self.max_attempts:
                message = f"the runs of this job were interrupted {record.attempts} times; giving up"
                return finished(record, "failed", error=JobError(code="worker_lost", message=message), runs=runs)
            return run_cleared(record, status="queued", started_at=None, runs=runs)

        def requeue(pipe: Pipeline[bytes], record: JobRecord) -> None:
            pipe.hincrby(keys.stats, "leases_reclaimed", 1)
            if not record.finished:
                pipe.zrem(keys.running, job_id)
                queue.enter(pipe, record)

        try:
            record = self.ledger.update(job_id, change, requeue, watch=[lease])
        except LookupError:
            self.ledger.redis.zrem(keys.running, job_id)  # a leftover of a purged job
            return False
        if record.finished:
            self.ledger.redis.zrem(keys.running, job_id)  # finished meanwhile, or by this reclaim
        if reclaimed:
            worker = record.runs[-1].worker if record.runs else "its worker"
            log.warning("job %s: the lease of %s lapsed; the job is %s now", job_id, worker, record.status)
        return reclaimed and record.status == "queued"
