"""Forgetting finished jobs once their retention has passed: records, index entries and files."""

from __future__ import annotations

import time

from restyle.jobs.ledger import Ledger
from restyle.jobs.records import job_folder
from restyle.storage import Storage


def purge_expired(ledger: Ledger, storage: Storage, now: float | None = None, batch: int = 100) -> list[str]:
    """Delete final jobs whose retention has passed, with their files and index entries.

    Unfinished jobs are never purged (they would be lost); their expiry is pushed back instead.
    Safe to run from several processes at once: every step tolerates having been done already.
    """
    keys = ledger.keys
    now = time.time() if now is None else now
    purged: list[str] = []
    for raw in ledger.redis.zrangebyscore(keys.expiry, "-inf", now, start=0, num=batch):
        member = raw.decode()
        job_id, _, owner = member.partition(" ")
        record = ledger.get(job_id)
        if record is not None and not record.finished:
            ledger.redis.zadd(keys.expiry, {member: now + ledger.retention_seconds})
            continue
        storage.delete_folder(job_folder(job_id))
        with ledger.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.record(job_id), keys.cancel(job_id), keys.lease(job_id))
            pipe.zrem(keys.owned(owner), job_id)
            pipe.zrem(keys.active(owner), job_id)
            pipe.zrem(keys.waiting(owner), job_id)
            pipe.zrem(keys.queued, job_id)
            pipe.zrem(keys.running, job_id)
            pipe.zrem(keys.unsent, job_id)
            pipe.zrem(keys.expiry, member)
            pipe.execute()
        purged.append(job_id)
    return purged
