"""Job records in Redis, kept apart from Celery: the one source of truth for what happened to a job.

A job moves forward through its states, except that a worker shutting down hands its running job back::

    queued ──► running ──► succeeded
     ▲ │         │ │ ├─► failed
     │ │         │ │ └─► canceled
     │ │         │ └──► running   (redelivered after its worker died)
     └─┼─────────┘                (handed back by a worker shutting down)
       ├─────────────► failed     (e.g. the inputs vanished)
       └─────────────► canceled   (a queued job never starts)

Every change is an optimistic transaction on the record (WATCH/MULTI), so a worker's progress report can
never resurrect a job that was canceled a moment before, and two deliveries of one task cannot both finish
it. Each change bumps ``version`` and is published on the job's channel for live listeners. Final records
are kept for ``retention_seconds`` after their last change; ``purge_expired`` then removes them and their
files.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

import redis
from pydantic import BaseModel, ConfigDict, Field
from redis.client import Pipeline

from core.params import MAX_STYLES, StyleParams
from restyle.storage import Storage

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
# Upper bounds (seconds) of the run-duration histogram exposed on /metrics.
DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
# Final records outlive the purge schedule a little, so the purge still finds their owner and files.
_RECORD_GRACE_SECONDS = 3600
# The canonical text form of the UUIDs new_job_id makes.
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class JobNotFound(LookupError):
    """No such job for this caller: never created, cleaned up after retention, or someone else's."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class InvalidTransition(RuntimeError):
    """The job's current state does not allow the requested change (e.g. cancelling a finished job)."""

    def __init__(self, record: JobRecord, action: str) -> None:
        super().__init__(f"job {record.id} is {record.status} and cannot be {action}")
        self.record = record


class IdempotencyConflict(ValueError):
    """An idempotency key was reused for a different request."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"this Idempotency-Key was already used for job {job_id} with different files or parameters")
        self.job_id = job_id


class JobProgress(BaseModel):
    """How far the optimisation is: iterations done of the total."""

    iteration: int = 0
    total: int
    percent: float = 0.0


class JobError(BaseModel):
    """Why a job failed: ``code`` for programs to branch on, ``message`` for people."""

    code: str
    message: str


class JobRecord(BaseModel):
    """Everything stored about one job; immutable, every change writes a new version."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    status: JobStatus = "queued"
    params: StyleParams
    style_count: int = Field(ge=1, le=MAX_STYLES)
    progress: JobProgress
    losses: dict[str, float] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    weights: str | None = None
    run_seconds: float | None = None
    error: JobError | None = None
    result_key: str | None = None
    preview_key: str | None = None
    preview_iteration: int | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    cancel_requested: bool = False
    attempts: int = 0
    worker: str | None = None
    version: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


class JobLinks(BaseModel):
    """Where to go next; relative to the API's base URL unless a public URL is configured."""

    self: str
    cancel: str
    events: str
    result: str | None = None
    preview: str | None = None


class JobPublic(BaseModel):
    """A job as clients see it, in responses, event streams and webhooks."""

    id: str = Field(examples=["0190f5c2-7a1e-7c3b-9a4e-2f1d0c9b8a7f"])
    status: JobStatus = Field(examples=["running"])
    progress: JobProgress
    losses: dict[str, float] = Field(
        description="Latest losses (content, style, tv, total).",
        examples=[{"content": 0.41, "style": 0.08, "tv": 0.01, "total": 0.5}],
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    params: StyleParams = Field(description="The parameters used, defaults filled in.")
    style_count: int
    weights: str | None = Field(description="The VGG19 weights the worker used.", examples=["imagenet"])
    run_seconds: float | None = Field(description="Engine time of the successful run.")
    error: JobError | None
    cancel_requested: bool
    attempts: int = Field(description="How many times a worker started this job (more than 1 after a crash).")
    webhook_url: str | None
    result_url: str | None = Field(description="Download link, once the job has succeeded.")
    preview_url: str | None = Field(description="Latest in-progress snapshot, once one exists.")
    preview_iteration: int | None = Field(description="The iteration the preview shows; changes as it refreshes.")
    urls: JobLinks

    @classmethod
    def from_record(cls, record: JobRecord, base_url: str = "") -> JobPublic:
        """Render a record; ``base_url`` (no trailing slash) makes the links absolute."""
        path = f"{base_url}/v1/jobs/{record.id}"
        result = f"{path}/result" if record.status == "succeeded" else None
        preview = f"{path}/preview" if record.preview_key else None
        return cls(
            **record.model_dump(
                include={
                    "id",
                    "status",
                    "progress",
                    "losses",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "params",
                    "style_count",
                    "weights",
                    "run_seconds",
                    "error",
                    "cancel_requested",
                    "attempts",
                    "webhook_url",
                    "preview_iteration",
                }
            ),
            result_url=result,
            preview_url=preview,
            urls=JobLinks(self=path, cancel=f"{path}/cancel", events=f"{path}/events", result=result, preview=preview),
        )


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


def new_job_id() -> str:
    """A UUIDv7 (time-ordered, RFC 9562) with sub-millisecond precision, so ids sort newest-last as strings."""
    nanoseconds = time.time_ns()
    milliseconds, remainder = divmod(nanoseconds, 1_000_000)
    fraction = remainder * 4096 // 1_000_000  # RFC 9562 method 3: 12 bits of sub-millisecond time
    value = (milliseconds << 80) | (0x7 << 76) | (fraction << 64) | (0b10 << 62) | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def input_keys(job_id: str, style_count: int = MAX_STYLES) -> tuple[str, list[str]]:
    """Storage keys of a job's content image and its style images."""
    return f"jobs/{job_id}/content", [f"jobs/{job_id}/style-{index}" for index in range(style_count)]


def result_key(job_id: str) -> str:
    return f"jobs/{job_id}/result"


def preview_key(job_id: str) -> str:
    return f"jobs/{job_id}/preview"


def job_files(job_id: str) -> list[str]:
    """Every key a job can own, whether or not it was written; what retention cleanup deletes."""
    content, styles = input_keys(job_id)
    return [content, *styles, result_key(job_id), preview_key(job_id)]


def _now() -> datetime:
    return datetime.now(UTC)


def _run_cleared(record: JobRecord, **changes: object) -> JobRecord:
    """``record`` with ``changes`` and without what an earlier run left: progress, losses, preview."""
    return record.model_copy(
        update={
            "progress": JobProgress(total=record.params.iterations),
            "losses": {},
            "preview_key": None,
            "preview_iteration": None,
            **changes,
        }
    )


class JobStore:
    """Job records, their indexes and their counters under one Redis key prefix."""

    def __init__(self, client: redis.Redis[bytes], prefix: str, retention_seconds: int) -> None:
        self.redis = client
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self._queued = f"{prefix}:jobs:queued"
        self._running = f"{prefix}:jobs:running"
        self._expiry = f"{prefix}:jobs:expiry"
        self._unsent = f"{prefix}:jobs:unsent"
        self._stats = f"{prefix}:jobs:stats"
        self.webhooks_due = f"{prefix}:webhooks:due"

    # Keys -------------------------------------------------------------------------------------------

    def record_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def events_channel(self, job_id: str) -> str:
        """Pub/sub channel that receives the new version number whenever the record changes."""
        return f"{self.prefix}:job:{job_id}:events"

    def _cancel_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:cancel"

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:jobs"

    def _idempotency_key(self, owner: str, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{self.prefix}:idempotency:{owner}:{digest}"

    # Reading ----------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        """The record, or None; ids not shaped like ours are never looked up, as they could name the job's
        other keys (``<id>:cancel`` is a job's cancel flag)."""
        if not _JOB_ID.fullmatch(job_id):
            return None
        raw = self.redis.get(self.record_key(job_id))
        return None if raw is None else JobRecord.model_validate_json(raw)

    def get_owned(self, job_id: str, owner: str) -> JobRecord:
        """The job if it exists and belongs to ``owner``; others' jobs are indistinguishable from missing ones."""
        record = self.get(job_id)
        if record is None or record.owner != owner:
            raise JobNotFound(job_id)
        return record

    def list_owned(self, owner: str, limit: int, cursor: str | None = None) -> JobPage:
        """Newest first; ``cursor`` is the last id of the previous page (ids sort by creation time)."""
        upper = f"({cursor}" if cursor else "+"
        found = self.redis.zrevrangebylex(self._owner_key(owner), upper, "-", start=0, num=limit + 1)
        ids = [raw.decode() for raw in found]
        page_ids = ids[:limit]
        raws = self.redis.mget([self.record_key(job_id) for job_id in page_ids]) if page_ids else []
        jobs = [JobRecord.model_validate_json(raw) for raw in raws if raw is not None]
        return JobPage(jobs=jobs, next_cursor=page_ids[-1] if len(ids) > limit else None)

    def is_cancel_requested(self, job_id: str) -> bool:
        """Cheap enough to ask every iteration: one EXISTS on a flag key."""
        return bool(self.redis.exists(self._cancel_key(job_id)))

    def queue_depth(self) -> int:
        return int(self.redis.zcard(self._queued))

    # Creating ---------------------------------------------------------------------------------------

    def create(
        self, record: JobRecord, idempotency_key: str | None = None, fingerprint: str = ""
    ) -> tuple[JobRecord, bool]:
        """Store a new queued job; with an idempotency key already used, return that job instead.

        Returns ``(record, created)``. Reusing a key with a different ``fingerprint`` (another request)
        raises ``IdempotencyConflict``; the mapping expires with the retention period.
        """
        idempotency = self._idempotency_key(record.owner, idempotency_key) if idempotency_key else None
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    if idempotency:
                        pipe.watch(idempotency)
                        mapped = cast(bytes | None, pipe.get(idempotency))  # immediate while WATCHing
                        existing = None if mapped is None else self._replay(mapped, fingerprint)
                        if existing is not None:
                            pipe.unwatch()
                            return existing, False
                    pipe.multi()
                    self._write(pipe, record)
                    pipe.zadd(self._owner_key(record.owner), {record.id: 0})
                    pipe.zadd(self._queued, {record.id: record.created_at.timestamp()})
                    pipe.zadd(self._unsent, {record.id: time.time()})
                    if idempotency:
                        pipe.set(idempotency, f"{record.id} {fingerprint}", ex=self.retention_seconds)
                    pipe.execute()
                    return record, True
                except redis.WatchError:
                    continue

    def mark_sent(self, job_id: str) -> None:
        """The job's message is on the queue: it no longer needs ``claim_unsent``."""
        self.redis.zrem(self._unsent, job_id)

    def claim_unsent(self, older_than: float, now: float | None = None) -> list[str]:
        """Jobs created more than ``older_than`` seconds ago whose message was never sent (the API died between
        recording and queueing them), each claimed by exactly one caller, which must queue it or fail it."""
        cutoff = (time.time() if now is None else now) - older_than
        candidates = [job_id.decode() for job_id in self.redis.zrangebyscore(self._unsent, "-inf", cutoff)]
        return [job_id for job_id in candidates if self.redis.zrem(self._unsent, job_id)]

    def find_idempotent(self, owner: str, key: str, fingerprint: str) -> JobRecord | None:
        """The job an idempotency key already made, or None; ``IdempotencyConflict`` for another request."""
        mapped = self.redis.get(self._idempotency_key(owner, key))
        return None if mapped is None else self._replay(mapped, fingerprint)

    def _replay(self, mapped: bytes, fingerprint: str) -> JobRecord | None:
        job_id, _, original = mapped.decode().partition(" ")
        existing = self.get(job_id)
        if existing is not None and original != fingerprint:
            raise IdempotencyConflict(job_id)
        return existing

    # Transitions ------------------------------------------------------------------------------------

    def start(self, job_id: str, worker: str) -> JobRecord:
        """queued → running, or running → running when a redelivered job restarts after a crash."""

        def change(record: JobRecord) -> JobRecord:
            if record.finished:
                raise InvalidTransition(record, "started")
            return _run_cleared(
                record, status="running", started_at=_now(), attempts=record.attempts + 1, worker=worker
            )

        def index(pipe: Pipeline[bytes], record: JobRecord) -> None:
            pipe.zrem(self._queued, job_id)
            pipe.zadd(self._running, {job_id: time.time()})

        return self._update(job_id, change, index)

    def requeue(self, job_id: str) -> JobRecord:
        """running → queued, when a worker that is shutting down hands its job back.

        The interrupted run was nobody's fault, so it is not counted among the job's attempts, which exist to
        give up on jobs that keep killing their workers.
        """

        def change(record: JobRecord) -> JobRecord:
            if record.status != "running":
                raise InvalidTransition(record, "requeued")
            return _run_cleared(
                record, status="queued", started_at=None, attempts=max(0, record.attempts - 1), worker=None
            )

        def index(pipe: Pipeline[bytes], record: JobRecord) -> None:
            pipe.zrem(self._running, job_id)
            pipe.zadd(self._queued, {job_id: record.created_at.timestamp()})

        return self._update(job_id, change, index)

    def report_progress(self, job_id: str, iteration: int, total: int, losses: dict[str, float]) -> JobRecord | None:
        """Record progress of a running job; ignored (None) once the job has left ``running``."""

        def change(record: JobRecord) -> JobRecord | None:
            if record.status != "running":
                return None
            percent = round(100.0 * iteration / total, 1) if total else 0.0
            return record.model_copy(
                update={"progress": JobProgress(iteration=iteration, total=total, percent=percent), "losses": losses}
            )

        return self._update_if(job_id, change)

    def record_preview(self, job_id: str, key: str, iteration: int) -> JobRecord | None:
        """Point a running job at its newest snapshot image; ignored once the job has left ``running``."""

        def change(record: JobRecord) -> JobRecord | None:
            if record.status != "running":
                return None
            return record.model_copy(update={"preview_key": key, "preview_iteration": iteration})

        return self._update_if(job_id, change)

    def succeed(
        self, job_id: str, *, result: str, weights: str, run_seconds: float, losses: dict[str, float], iterations: int
    ) -> JobRecord:
        """running → succeeded, with where the result lives and how it was made."""

        def change(record: JobRecord) -> JobRecord:
            if record.status != "running":
                raise InvalidTransition(record, "marked succeeded")
            return self._finished(
                record,
                "succeeded",
                result_key=result,
                weights=weights,
                run_seconds=run_seconds,
                losses=losses or record.losses,
                progress=JobProgress(iteration=iterations, total=iterations, percent=100.0),
            )

        return self._update(job_id, change, self._on_final)

    def fail(self, job_id: str, code: str, message: str, *, weights: str | None = None) -> JobRecord:
        """queued|running → failed, carrying the error's code and message."""

        def change(record: JobRecord) -> JobRecord:
            if record.finished:
                raise InvalidTransition(record, "marked failed")
            return self._finished(
                record, "failed", error=JobError(code=code, message=message), weights=weights or record.weights
            )

        return self._update(job_id, change, self._on_final)

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
                return self._finished(record, "canceled", cancel_requested=True)
            return record.model_copy(update={"cancel_requested": True})

        def flag(pipe: Pipeline[bytes], record: JobRecord) -> None:
            if record.finished:
                self._on_final(pipe, record)
            else:
                pipe.set(self._cancel_key(job_id), 1, ex=self.retention_seconds)

        return self._update(job_id, change, flag)

    def mark_canceled(self, job_id: str) -> JobRecord:
        """queued|running → canceled, by the worker once the engine has stopped (or before it starts)."""

        def change(record: JobRecord) -> JobRecord:
            if record.finished:
                raise InvalidTransition(record, "marked canceled")
            return self._finished(record, "canceled", cancel_requested=True)

        return self._update(job_id, change, self._on_final)

    # Retention --------------------------------------------------------------------------------------

    def purge_expired(self, storage: Storage, now: float | None = None, batch: int = 100) -> list[str]:
        """Delete final jobs whose retention has passed, with their files and index entries.

        Unfinished jobs are never purged (they would be lost); their expiry is pushed back instead.
        Safe to run from several processes at once: every step tolerates having been done already.
        """
        now = time.time() if now is None else now
        purged: list[str] = []
        for raw in self.redis.zrangebyscore(self._expiry, "-inf", now, start=0, num=batch):
            member = raw.decode()
            job_id, _, owner = member.partition(" ")
            record = self.get(job_id)
            if record is not None and not record.finished:
                self.redis.zadd(self._expiry, {member: now + self.retention_seconds})
                continue
            for key in job_files(job_id):
                storage.delete(key)
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.record_key(job_id), self._cancel_key(job_id))
                pipe.zrem(self._owner_key(owner), job_id)
                pipe.zrem(self._queued, job_id)
                pipe.zrem(self._running, job_id)
                pipe.zrem(self._expiry, member)
                pipe.execute()
            purged.append(job_id)
        return purged

    # Metrics ----------------------------------------------------------------------------------------

    def stats(self) -> JobStats:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self._queued)
            pipe.zcard(self._running)
            pipe.hgetall(self._stats)
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
        )

    # Internals --------------------------------------------------------------------------------------

    def _finished(self, record: JobRecord, status: JobStatus, **changes: object) -> JobRecord:
        return record.model_copy(update={"status": status, "finished_at": _now(), **changes})

    def _on_final(self, pipe: Pipeline[bytes], record: JobRecord) -> None:
        """Bookkeeping shared by every final transition: indexes, counters, the webhook, the cancel flag."""
        pipe.zrem(self._queued, record.id)
        pipe.zrem(self._running, record.id)
        pipe.delete(self._cancel_key(record.id))
        pipe.hincrby(self._stats, f"outcome:{record.status}", 1)
        if record.started_at and record.finished_at:
            seconds = (record.finished_at - record.started_at).total_seconds()
            bound = next(bound for bound in DURATION_BUCKETS if seconds <= bound)
            pipe.hincrby(self._stats, f"duration_le:{bound}", 1)
            pipe.hincrbyfloat(self._stats, "duration_sum", seconds)
        if record.webhook_url:
            pipe.zadd(self.webhooks_due, {record.id: time.time()})

    def _write(self, pipe: Pipeline[bytes], record: JobRecord) -> None:
        """Store a version, refresh its retention, and tell listeners; always inside a MULTI."""
        ttl = self.retention_seconds + _RECORD_GRACE_SECONDS if record.finished else None
        pipe.set(self.record_key(record.id), record.model_dump_json(), ex=ttl)
        pipe.zadd(self._expiry, {f"{record.id} {record.owner}": time.time() + self.retention_seconds})
        pipe.publish(self.events_channel(record.id), str(record.version))

    def _update_if(self, job_id: str, change: Callable[[JobRecord], JobRecord | None]) -> JobRecord | None:
        """Like ``_update`` but None when ``change`` declined, for best-effort writes such as progress."""
        try:
            record = self._update(job_id, change)
        except JobNotFound:
            return None
        return record if record.status == "running" else None

    def _update(
        self,
        job_id: str,
        change: Callable[[JobRecord], JobRecord | None],
        also: Callable[[Pipeline[bytes], JobRecord], None] | None = None,
    ) -> JobRecord:
        """Apply ``change`` to the current record atomically, retrying if someone else wrote it meanwhile.

        ``change`` returns the new record, None to leave it as it is, or raises to refuse; ``also`` adds
        more commands to the same transaction.
        """
        key = self.record_key(job_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = cast(bytes | None, pipe.get(key))  # immediate while WATCHing
                    if raw is None:
                        raise JobNotFound(job_id)
                    current = JobRecord.model_validate_json(raw)
                    changed = change(current)
                    if changed is None:
                        pipe.unwatch()
                        return current
                    new = changed.model_copy(update={"version": current.version + 1})
                    pipe.multi()
                    self._write(pipe, new)
                    if also:
                        also(pipe, new)
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue
