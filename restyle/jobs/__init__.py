"""Job records in Redis, kept apart from Celery: the one source of truth for what happened to a job.

A job moves forward through its states; only a run that ends without an outcome sends it back::

    queued ──► running ──► succeeded
     ▲ │         │ ├─► failed
     │ │         │ └─► canceled
     └─┼─────────┘     (its lease lapsed: reclaimed; or its worker shut down and handed it back)
       └────────────► canceled   (a queued job never starts)

Who owns what:

- ``records``: the record, its runs and the public view; job ids and file keys.
- ``keys``: the Redis key layout.
- ``ledger``: the one transactional way a record changes, and the bookkeeping of final states.
- ``admission``: accepting a job atomically within the queue and per-key caps.
- ``queue``: the waiting lines per owner and the fair claim that serves them.
- ``runs``: a worker's run of a job: its lease and its fenced writes.
- ``leases``: reclaiming the jobs of runs whose lease lapsed.
- ``retention``: forgetting finished jobs after the retention period.
- ``store``: what the API does with jobs: submit, read, list, cancel, count.
"""

from restyle.jobs.admission import Limits
from restyle.jobs.errors import (
    AdmissionRefused,
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    KeyAtCapacity,
    QueueFull,
    RunSuperseded,
)
from restyle.jobs.leases import Reaper
from restyle.jobs.records import (
    FINAL_STATUSES,
    JobAttempt,
    JobError,
    JobLinks,
    JobProgress,
    JobPublic,
    JobRecord,
    JobRun,
    JobStatus,
    WebhookStatus,
    frame_key,
    frames_folder,
    input_keys,
    job_folder,
    mask_key,
    mask_name,
    new_job_id,
)
from restyle.jobs.retention import purge_expired
from restyle.jobs.runs import Run, Runs
from restyle.jobs.store import JobPage, JobStats, JobStore

__all__ = [
    "FINAL_STATUSES",
    "AdmissionRefused",
    "IdempotencyConflict",
    "InvalidTransition",
    "JobAttempt",
    "JobError",
    "JobLinks",
    "JobNotFound",
    "JobPage",
    "JobProgress",
    "JobPublic",
    "JobRecord",
    "JobRun",
    "JobStats",
    "JobStatus",
    "JobStore",
    "KeyAtCapacity",
    "Limits",
    "QueueFull",
    "Reaper",
    "Run",
    "RunSuperseded",
    "Runs",
    "WebhookStatus",
    "frame_key",
    "frames_folder",
    "input_keys",
    "job_folder",
    "mask_key",
    "mask_name",
    "new_job_id",
    "purge_expired",
]
