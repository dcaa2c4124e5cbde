"""The layout of the job store in Redis: every key name, under one prefix, in one place.

Per job: the record (JSON), its events channel, its cancel flag and its lease (the token of the run that
holds it, with a TTL). Per owner: all their jobs (for listing), their active jobs (queued or running, for the
per-key limit) and their waiting jobs (ready for a worker, oldest first). Service-wide: queued and running
indexes, the rotation of owners with waiting jobs (for fair scheduling), jobs whose queue message is not sent
yet, the retention schedule, counters, and webhooks due. The Lua scripts build per-owner and per-job names from
``owner_prefix``/``job_prefix`` and the suffixes below, so the layout is still defined here only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

WAITING_SUFFIX = ":waiting"
LEASE_SUFFIX = ":lease"


@dataclass(frozen=True)
class JobKeys:
    prefix: str

    @property
    def owner_prefix(self) -> str:
        return f"{self.prefix}:owner:"

    @property
    def job_prefix(self) -> str:
        return f"{self.prefix}:job:"

    def record(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}"

    def events(self, job_id: str) -> str:
        """Pub/sub channel that receives the new version number whenever the record changes."""
        return f"{self.job_prefix}{job_id}:events"

    def cancel(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}:cancel"

    def lease(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}{LEASE_SUFFIX}"

    def owned(self, owner: str) -> str:
        return f"{self.owner_prefix}{owner}:jobs"

    def active(self, owner: str) -> str:
        return f"{self.owner_prefix}{owner}:active"

    def waiting(self, owner: str) -> str:
        return f"{self.owner_prefix}{owner}{WAITING_SUFFIX}"

    def idempotency(self, owner: str, key: str) -> str:
        return f"{self.prefix}:idempotency:{owner}:{hashlib.sha256(key.encode()).hexdigest()}"

    @property
    def queued(self) -> str:
        return f"{self.prefix}:jobs:queued"

    @property
    def running(self) -> str:
        return f"{self.prefix}:jobs:running"

    @property
    def rotation(self) -> str:
        return f"{self.prefix}:jobs:rotation"

    @property
    def unsent(self) -> str:
        return f"{self.prefix}:jobs:unsent"

    @property
    def expiry(self) -> str:
        return f"{self.prefix}:jobs:expiry"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:jobs:stats"

    @property
    def webhooks_due(self) -> str:
        return f"{self.prefix}:webhooks:due"
