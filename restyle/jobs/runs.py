"""A worker's side of a job: claim the next one, hold its lease, and write what the run does, fenced.

Each run gets a random token, stored in the job's lease and in the record's current run. Every write a run
makes (its lease renewal, progress, preview, outcome, handing the job back) is a transaction on the record
that first checks the record still names that token. A run whose lease lapsed and whose job was reclaimed
(its worker froze, or lost Redis, then came back) therefore cannot touch the run that replaced it: its writes
raise ``RunSuperseded`` and are counted as fenced. Each run also writes its result and previews under keys of
its own number, so not even its files can overwrite its successor's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from redis.client import Pipeline

from restyle.jobs.errors import InvalidTransition, JobNotFound, RunSuperseded
from restyle.jobs.ledger import ExtraWrites, Ledger, RecordChange, finished, now, run_cleared
from restyle.jobs.records import JobError, JobProgress, JobRecord, JobRun, preview_key, result_key

# KEYS: lease. ARGV: token. Drops the lease only if this run still holds it.
_DROP_LEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Runs:
    """Where workers claim jobs; ``lease_seconds`` is how long a run may go without renewing its lease."""

    def __init__(self, ledger: Ledger, lease_seconds: float) -> None:
        self.ledger = ledger
        self.lease_milliseconds = max(1, round(lease_seconds * 1000))
        self._drop_lease = ledger.redis.register_script(_DROP_LEASE)

    def claim(self, worker: str) -> Run | None:
        """Start the next job in fair order as a run of ``worker``; None when nothing waits."""
        while True:
            token = secrets.token_hex(8)
            job_id = self.ledger.queue.claim(token, self.lease_milliseconds)
            if job_id is None:
                return None
            try:
                record = self.ledger.update(job_id, _start(token, worker))
            except (InvalidTransition, JobNotFound):
                self._abandon(job_id, token)  # canceled or purged between the claim and the start: take another
                continue
            return Run(self, record, token)

    def _abandon(self, job_id: str, token: str) -> None:
        self._drop_lease(keys=[self.ledger.keys.lease(job_id)], args=[token])
        self.ledger.redis.zrem(self.ledger.keys.running, job_id)


def _start(token: str, worker: str) -> RecordChange:
    """queued → running as a new run holding ``token``."""

    def start(record: JobRecord) -> JobRecord:
        if record.status != "queued":
            raise InvalidTransition(record, "started")
        run = JobRun(token=token, worker=worker, started_at=now())
        return run_cleared(
            record, status="running", started_at=run.started_at, attempts=record.attempts + 1, runs=[*record.runs, run]
        )

    return start


@dataclass
class Run:
    """One run of one job, as its worker holds it."""

    runs: Runs
    record: JobRecord  # as it was when the run started
    token: str

    @property
    def job_id(self) -> str:
        return self.record.id

    @property
    def number(self) -> int:
        """1 for a job's first run, 2 for the run after it, and so on."""
        return len(self.record.runs)

    @property
    def result_key(self) -> str:
        return result_key(self.job_id, self.number)

    @property
    def preview_key(self) -> str:
        return preview_key(self.job_id, self.number)

    @property
    def _ledger(self) -> Ledger:
        return self.runs.ledger

    def renew(self) -> bool:
        """Extend the lease; False once the job belongs to another run (this run should stop).

        The lease is set again rather than extended, so a lease that expired while Redis was away (a restart
        loses every TTL'd key whose time passed) comes back as long as nobody reclaimed the job.
        """

        def step(pipe: Pipeline[bytes], current: JobRecord | None) -> bool:
            if current is None or not current.held_by(self.token):
                pipe.unwatch()
                return False
            pipe.multi()
            pipe.set(self._ledger.keys.lease(self.job_id), self.token, px=self.runs.lease_milliseconds)
            pipe.execute()
            return True

        if self._ledger.transact(self.job_id, step):
            return True
        self._ledger.count("fenced_writes")
        return False

    def report_progress(
        self,
        iteration: int,
        total: int,
        losses: dict[str, float],
        *,
        stage: int | None = None,
        stages: int | None = None,
        size: int | None = None,
        remaining_seconds: float | None = None,
        frame: int | None = None,
        frames: int | None = None,
    ) -> None:
        """Record how far the run is: iterations, the stage of the schedule, the estimated time left, and for a
        clip the frame (from 1) of how many."""
        percent = round(100.0 * iteration / total, 1) if total else 0.0
        progress = JobProgress(
            iteration=iteration,
            total=total,
            percent=percent,
            stage=stage,
            stages=stages,
            size=size,
            remaining_seconds=remaining_seconds,
            frame=frame,
            frames=frames,
        )
        self._write("given progress", lambda record: record.model_copy(update={"progress": progress, "losses": losses}))

    def record_preview(self, iteration: int) -> None:
        """Point the job at this run's newest snapshot (already stored under ``preview_key``)."""
        changes = {"preview_key": self.preview_key, "preview_iteration": iteration}
        self._write("given a preview", lambda record: record.model_copy(update=changes))

    def record_frame(self, done: int, iteration: int) -> None:
        """Count a clip's first ``done`` frames as finished (the last of them already stored under ``frame_key``) and
        point the job's preview at it (already stored under ``preview_key``)."""
        changes = {"frames_done": done, "preview_key": self.preview_key, "preview_iteration": iteration}

        def count(record: JobRecord) -> JobRecord:
            current = record.runs[-1]
            counted = current.model_copy(update={"frames": (current.frames or 0) + 1})
            return record.model_copy(update={**changes, "runs": [*record.runs[:-1], counted]})

        self._write("given a frame", count)

    def succeed(self, *, weights: str, run_seconds: float, losses: dict[str, float], iterations: int) -> JobRecord:
        """running → succeeded, with this run's result (already stored under ``result_key``)."""
        return self._write(
            "marked succeeded",
            lambda record: finished(
                record,
                "succeeded",
                result_key=self.result_key,
                weights=weights,
                run_seconds=run_seconds,
                losses=losses or record.losses,
                # The stage it ended in stays: a client that saw "stage 3/3" should not see the stage vanish.
                progress=record.progress.model_copy(
                    update={"iteration": iterations, "total": iterations, "percent": 100.0, "remaining_seconds": 0.0}
                ),
                runs=record.with_last_run("succeeded"),
            ),
        )

    def fail(self, code: str, message: str) -> JobRecord:
        return self._write(
            "marked failed",
            lambda record: finished(
                record, "failed", error=JobError(code=code, message=message), runs=record.with_last_run("failed")
            ),
        )

    def cancel(self) -> JobRecord:
        """running → canceled, once the engine has stopped for the owner's request."""
        return self._write(
            "marked canceled",
            lambda record: finished(record, "canceled", cancel_requested=True, runs=record.with_last_run("canceled")),
        )

    def hand_back(self) -> JobRecord:
        """running → queued, when this run's worker shuts down: the job is claimable again at once.

        The interrupted run was nobody's fault, so it is not counted among the job's attempts, which exist to
        give up on jobs that keep killing their workers. The caller owes the queue a message for it.
        """

        def requeue(pipe: Pipeline[bytes], record: JobRecord) -> None:
            pipe.zrem(self._ledger.keys.running, record.id)
            pipe.delete(self._ledger.keys.lease(record.id))
            self._ledger.queue.enter(pipe, record)

        return self._write(
            "handed back",
            lambda record: run_cleared(
                record,
                status="queued",
                started_at=None,
                attempts=max(0, record.attempts - 1),
                runs=record.with_last_run("handed_back"),
            ),
            requeue,
        )

    def _write(self, action: str, change: RecordChange, extra_writes: ExtraWrites | None = None) -> JobRecord:
        def fenced(record: JobRecord) -> JobRecord | None:
            if not record.held_by(self.token):
                raise RunSuperseded(record, action)
            return change(record)

        try:
            return self._ledger.update(self.job_id, fenced, extra_writes)
        except (RunSuperseded, JobNotFound):
            self._ledger.count("fenced_writes")
            raise
