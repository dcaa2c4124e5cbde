"""The job store as callers of the API see it: submit, read, list, cancel, and the figures for /metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import redis

from restyle.jobs.admission import NO_LIMITS, Admission, Limits
from restyle.jobs.errors import IdempotencyConflict, InvalidTransition, JobNotFound
from restyle.jobs.keys import JobKeys
from restyle.jobs.ledger import DURATION_BUCKETS, Ledger, finished
from restyle.jobs.records import FINAL_STATUSES, JobRecord


@dataclass(frozen=True)
class JobPage:
    """One page of a caller's jobs, newest first; ``next_cursor`` is None on the last page."""

    jobs: list[JobRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class JobStats:
    """Counters for /metrics, shared by every API and worker process through Redis."""

    queued: int
    running: int
    outcomes: dict[str, int]
    duration_buckets: list[tuple[float, int]]  # cumulative, as Prometheus wants them
    duration_sum: float
    duration_count: int
    leases_reclaimed: int
    fenced_writes: int


class JobStore:
    """Job records, their indexes and their counters under one Redis key prefix."""

    def __init__(self, client: redis.Redis[bytes], prefix: str, retention_seconds: int) -> None:
        self.redis = client
        self.keys = JobKeys(prefix)
        self.ledger = Ledger(client, self.keys, retention_seconds)
        self._admission = Admission(client, self.keys, retention_seconds)

    # Reading ----------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        return self.ledger.get(job_id)

    def get_owned(self, job_id: str, owner: str) -> JobRecord:
        """The job if it exists and belongs to ``owner``; others' jobs are indistinguishable from missing ones."""
        record = self.get(job_id)
        if record is None or record.owner != owner:
            raise JobNotFound(job_id)
        return record

    def list_owned(self, owner: str, limit: int, cursor: str | None = None) -> JobPage:
        """Newest first; ``cursor`` is the last id of the previous page (ids sort by creation time)."""
        upper = f"({cursor}" if cursor else "+"
        found = self.redis.zrevrangebylex(self.keys.owned(owner), upper, "-", start=0, num=limit + 1)
        ids = [raw.decode() for raw in found]
        page_ids = ids[:limit]
        raws = self.redis.mget([self.keys.record(job_id) for job_id in page_ids]) if page_ids else []
        jobs = [JobRecord.model_validate_json(raw) for raw in raws if raw is not None]
        return JobPage(jobs=jobs, next_cursor=page_ids[-1] if len(ids) > limit else None)

    def is_cancel_requested(self, job_id: str) -> bool:
        """Cheap enough to ask every iteration: one EXISTS on a flag key."""
        return bool(self.redis.exists(self.keys.cancel(job_id)))

    def queue_depth(self) -> int:
        return int(self.redis.zcard(self.keys.queued))

    # Submitting -------------------------------------------------------------------------------------

    def create(
        self,
        record: JobRecord,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        limits: Limits = NO_LIMITS,
    ) -> tuple[JobRecord, bool]:
        """Admit a new queued job within ``limits``; with an idempotency key already used, return that job instead.

        Returns ``(record, created)``. Reusing a key with a different ``fingerprint`` (another request) raises
        ``IdempotencyConflict``; a full queue or key raises ``QueueFull`` or ``KeyAtCapacity``. The job is not
        claimable until ``release``.
        """
        while True:
            mapped = self._admission.admit(record, limits, idempotency_key, fingerprint)
            if mapped is None:
                return record, True
            existing = self._replay(mapped, fingerprint)
            if existing is not None:
                return existing, False
            # The key's job was purged after retention while its mapping lived on: forget it and admit anew.
            self.redis.delete(self.keys.idempotency(record.owner, idempotency_key or ""))

    def find_idempotent(self, owner: str, key: str, fingerprint: str) -> JobRecord | None:
        """The job an idempotency key already made, or None; ``IdempotencyConflict`` for another request."""
        mapped = self.redis.get(self.keys.idempotency(owner, key))
        return None if mapped is None else self._replay(mapped.decode(), fingerprint)

    def _replay(self, mapped: str, fingerprint: str) -> JobRecord | None:
        job_id, _, original = mapped.partition(" ")
        existing = self.get(job_id)
        if existing is not None and original != fingerprint:
            raise IdempotencyConflict(job_id)
        return existing

    def release(self, record: JobRecord) -> bool:
        """Make an admitted job claimable (its files are stored); False if it already left the queue."""
        return self.ledger.queue.release(record)

    def withdraw(self, record: JobRecord, idempotency_key: str | None = None) -> None:
        """Forget an admitted job that was never released, because its files could not be stored.

        The submitter was refused and never learnt the job's id, so the job goes as if it had never been
        admitted: record, indexes, the message it is owed, and its idempotency key (if it still names this job),
        so that a retry with that key submits anew instead of replaying a job without inputs. A failed record
        instead would be listed, counted, send its webhook and be replayed. Its retention entry stays: the purge
        then removes whatever files it did store, should the caller fail to.
        """
        keys = self.keys
        idempotency = keys.idempotency(record.owner, idempotency_key) if idempotency_key else None

        def step(pipe: redis.client.Pipeline[bytes], _: JobRecord | None) -> None:
            mapped = cast(bytes | None, pipe.get(idempotency)) if idempotency else None  # immediate while WATCHing
            pipe.multi()
            pipe.delete(keys.record(record.id), keys.cancel(record.id))
            pipe.zrem(keys.owned(record.owner), record.id)
            pipe.zrem(keys.unsent, record.id)
            self.ledger.queue.leave(pipe, record)
            if idempotency and mapped is not None and mapped.decode().partition(" ")[0] == record.id:
                pipe.delete(idempotency)
            pipe.execute()

        self.ledger.transact(record.id, step, watch=[idempotency] if idempotency else [])

    def mark_sent(self, job_id: str) -> None:
        """The job's queue message is sent: it no longer needs ``claim_unsent``."""
        self.redis.zrem(self.keys.unsent, job_id)

    def claim_unsent(self, older_than: float, now: float | None = None) -> list[str]:
        """Jobs owed a queue message for more than ``older_than`` seconds (their sender died before sending it).

        Each is postponed by ``older_than`` for other callers, which then leave it alone; the caller releases
        it, sends its message and marks it sent. Dying midway leaves it to be claimed again later: a message
        too many does no harm (the worker finds nothing to claim), one too few would strand a job.
        """
        now = time.time() if now is None else now
        candidates = [raw.decode() for raw in self.redis.zrangebyscore(self.keys.unsent, "-inf", now - older_than)]
        return [job_id for job_id in candidates if self.redis.zadd(self.keys.unsent, {job_id: now}, xx=True, ch=True)]

    # Owner actions ----------------------------------------------------------------------------------

    def cancel(self, job_id: str, owner: str) -> JobRecord:
        """Ask a job to stop: a queued one is canceled now, a running one is flagged for its worker.

        Cancelling a canceled job changes nothing; a succeeded or failed job cannot be canceled.
        """

        def change(record: JobRecord) -> JobRecord | None:
            if record.owner != owner:
                raise JobNotFound(job_id)
            if record.status == "canceled" or (record.status == "running" and record.cancel_requested):
                return None
            if record.finished:
                raise InvalidTransition(record, "canceled")
            if record.status == "queued":
                return finished(record, "canceled", cancel_requested=True)
            return record.model_copy(update={"cancel_requested": True})

        def flag(pipe: redis.client.Pipeline[bytes], record: JobRecord) -> None:
            if not record.finished:
                pipe.set(self.keys.cancel(job_id), 1, ex=self.ledger.retention_seconds)

        return self.ledger.update(job_id, change, flag)

    # Metrics ----------------------------------------------------------------------------------------

    def stats(self) -> JobStats:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.queued)
            pipe.zcard(self.keys.running)
            pipe.hgetall(self.keys.stats)
            queued, running, raw = pipe.execute()
        values = {key.decode(): float(value) for key, value in raw.items()}
        outcomes = {status: int(values.get(f"outcome:{status}", 0)) for status in sorted(FINAL_STATUSES)}
        cumulative, buckets = 0, []
        for bound in DURATION_BUCKETS:
            cumulative += int(values.get(f"duration_le:{bound}", 0))
            buckets.append((bound, cumulative))
        return JobStats(
            queued=int(queued),
            running=int(running),
            outcomes=outcomes,
            duration_buckets=buckets,
            duration_sum=values.get("duration_sum", 0.0),
            duration_count=cumulative,
            leases_reclaimed=int(values.get("leases_reclaimed", 0)),
            fenced_writes=int(values.get("fenced_writes", 0)),
        )
