"""The one way a job record changes: an optimistic transaction (WATCH/MULTI) on the record key.

Every change reads the record, decides in Python, and writes the new version only if nobody wrote it
meanwhile; otherwise it reads again. Conditions that decide a change (the job's state, the run that holds it)
are therefore checked atomically with the write. Each version is published on the job's channel for live
listeners, and final versions get their bookkeeping (indexes, counters, the webhook) in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar, cast

import redis
from redis.client import Pipeline

from restyle.jobs.errors import JobNotFound
from restyle.jobs.keys import JobKeys
from restyle.jobs.queue import JobQueue
from restyle.jobs.records import JOB_ID, JobRecord, JobStatus

# Upper bounds (seconds) of the run-duration histogram exposed on /metrics.
DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
# Final records outlive the purge schedule a little, so the purge still finds their owner and files.
_RECORD_GRACE_SECONDS = 3600

T = TypeVar("T")
# Given the current record: the new version to write, None to leave the record as it is, or raise to refuse.
RecordChange = Callable[[JobRecord], JobRecord | None]
# Given the transaction's pipeline (inside its MULTI) and the new version: queue further commands that must
# land with that version or not at all (index entries, flags, counters).
ExtraWrites = Callable[["Pipeline[bytes]", JobRecord], None]


def now() -> datetime:
    return datetime.now(UTC)


def finished(record: JobRecord, status: JobStatus, **changes: object) -> JobRecord:
    """``record`` in a final ``status``."""
    return record.model_copy(update={"status": status, "finished_at": now(), **changes})


def run_cleared(record: JobRecord, **changes: object) -> JobRecord:
    """``record`` with ``changes`` and without what an earlier run left: progress, losses, preview."""
    return record.model_copy(
        update={
            "progress": record.fresh_progress(),
            "losses": {},
            "preview_key": None,
            "preview_iteration": None,
            **changes,
        }
    )


class Ledger:
    """Reads and transactional writes of job records, shared by everything that changes a job."""

    def __init__(self, client: redis.Redis[bytes], keys: JobKeys, retention_seconds: int) -> None:
        self.redis = client
        self.keys = keys
        self.retention_seconds = retention_seconds
        self.queue = JobQueue(client, keys)

    def get(self, job_id: str) -> JobRecord | None:
        """The record, or None; ids not shaped like ours are never looked up, as they could name the job's
        other keys (``<id>:cancel`` is a job's cancel flag)."""
        if not JOB_ID.fullmatch(job_id):
            return None
        raw = self.redis.get(self.keys.record(job_id))
        return None if raw is None else JobRecord.model_validate_json(raw)

    def count(self, counter: str) -> None:
        """Bump one of the service's counters (see ``JobStore.stats``)."""
        self.redis.hincrby(self.keys.stats, counter, 1)

    def update(
        self,
        job_id: str,
        change: RecordChange,
        extra_writes: ExtraWrites | None = None,
        *,
        watch: Sequence[str] = (),
    ) -> JobRecord:
        """Apply ``change`` to the current record atomically, retrying if someone else wrote it meanwhile.

        ``change`` returns the new record, None to leave it as it is, or raises to refuse; ``extra_writes`` adds
        more commands to the same transaction; ``watch`` names further keys whose change meanwhile retries it.
        """

        def step(pipe: Pipeline[bytes], current: JobRecord | None) -> JobRecord:
            if current is None:
                raise JobNotFound(job_id)
            changed = change(current)
            if changed is None:
                pipe.unwatch()
                return current
            new = changed.model_copy(update={"version": current.version + 1})
            pipe.multi()
            self.write(pipe, new)
            if new.finished and not current.finished:
                self.on_final(pipe, new)
            if extra_writes:
                extra_writes(pipe, new)
            pipe.execute()
            return new

        return self.transact(job_id, step, watch=watch)

    def transact(
        self, job_id: str, step: Callable[[Pipeline[bytes], JobRecord | None], T], *, watch: Sequence[str] = ()
    ) -> T:
        """Run ``step`` with the job's current record (None if there is none) while the record and ``watch`` are
        WATCHed; ``step`` ends with its MULTI executed or UNWATCH, and runs again if anyone wrote them meanwhile."""
        key = self.keys.record(job_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key, *watch)
                    raw = cast(bytes | None, pipe.get(key))  # immediate while WATCHing
                    return step(pipe, None if raw is None else JobRecord.model_validate_json(raw))
                except redis.WatchError:
                    continue

    def write(self, pipe: Pipeline[bytes], record: JobRecord) -> None:
        """Store a version, refresh its retention, and tell listeners; always inside a MULTI."""
        ttl = self.retention_seconds + _RECORD_GRACE_SECONDS if record.finished else None
        pipe.set(self.keys.record(record.id), record.model_dump_json(), ex=ttl)
        pipe.zadd(self.keys.expiry, {f"{record.id} {record.owner}": time.time() + self.retention_seconds})
        pipe.publish(self.keys.events(record.id), str(record.version))

    def on_final(self, pipe: Pipeline[bytes], record: JobRecord) -> None:
        """Bookkeeping shared by every final transition: indexes, lease, counters, the webhook, the cancel flag."""
        self.queue.leave(pipe, record)
        pipe.delete(self.keys.cancel(record.id))
        pipe.hincrby(self.keys.stats, f"outcome:{record.status}", 1)
        if record.started_at and record.finished_at:
            seconds = (record.finished_at - record.started_at).total_seconds()
            bound = next(bound for bound in DURATION_BUCKETS if seconds <= bound)
            pipe.hincrby(self.keys.stats, f"duration_le:{bound}", 1)
            pipe.hincrbyfloat(self.keys.stats, "duration_sum", seconds)
        if record.webhook_url:
            pipe.zadd(self.keys.webhooks_due, {record.id: time.time()})
