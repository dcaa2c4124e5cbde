"""The job store's refusals, each a value the caller can act on::

LookupError
 └── JobNotFound            no such job for this caller
RuntimeError
 └── InvalidTransition      the job's state does not allow the change
      └── RunSuperseded     the run lost its lease; another run owns the job now
ValueError
 └── IdempotencyConflict    an Idempotency-Key reused for another request
AdmissionRefused            a new job was not accepted
 ├── QueueFull              the whole queue is at its cap
 └── KeyAtCapacity          this key has its limit of queued and running jobs
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from restyle.jobs.records import JobRecord


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


class RunSuperseded(InvalidTransition):
    """A write from a run that no longer holds the job: its lease lapsed and the job was reclaimed."""

    def __init__(self, record: JobRecord, action: str) -> None:
        RuntimeError.__init__(self, f"job {record.id}: this run lost its lease and cannot be {action}")
        self.record = record


class IdempotencyConflict(ValueError):
    """An idempotency key was reused for a different request."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"this Idempotency-Key was already used for job {job_id} with different files or parameters")
        self.job_id = job_id


class AdmissionRefused(Exception):
    """A new job was refused because of load; the caller may try again later."""


class QueueFull(AdmissionRefused):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} jobs are already waiting; try again later")
        self.limit = limit


class KeyAtCapacity(AdmissionRefused):
    def __init__(self, limit: int) -> None:
        super().__init__(f"this API key already has {limit} jobs queued or running; wait for one to finish")
        self.limit = limit
