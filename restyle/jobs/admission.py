"""Whether a new job is accepted, decided and recorded in one Lua script, so caps hold under concurrency.

A check followed by a separate write lets every concurrent request pass the check before any of them
writes, so a burst of concurrent submissions admits more jobs than the cap allows. Here the idempotency key,
the queue-depth cap and the per-key cap are checked and the record written in one atomic step. An admitted job
is queued but not yet claimable: ``JobQueue.release`` makes it so once its files are stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from restyle.jobs.errors import KeyAtCapacity, QueueFull
from restyle.jobs.keys import JobKeys
from restyle.jobs.records import JobRecord

# KEYS: idempotency (or ""), queued, owner's active, record, owner's jobs, unsent, expiry.
# ARGV: idempotency value, its ttl, max depth (0: none), max active per key (0: none), record JSON, job id, created
# score, now, expiry member, expiry score, events channel.
# Returns {"replay", mapping} | {"queue_full"} | {"key_at_capacity"} | {"admitted"}.
_ADMIT = """
if KEYS[1] ~= '' then
  local mapped = redis.call('GET', KEYS[1])
  if mapped then return {'replay', mapped} end
end
local depth = tonumber(ARGV[3])
if depth > 0 and redis.call('ZCARD', KEYS[2]) >= depth then return {'queue_full'} end
local per_key = tonumber(ARGV[4])
if per_key > 0 and redis.call('ZCARD', KEYS[3]) >= per_key then return {'key_at_capacity'} end
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
redis.call('SET', KEYS[4], ARGV[5])
redis.call('ZADD', KEYS[5], 0, ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
redis.call('ZADD', KEYS[6], ARGV[8], ARGV[6])
redis.call('ZADD', KEYS[7], ARGV[10], ARGV[9])
redis.call('PUBLISH', ARGV[11], '0')
return {'admitted'}
"""


@dataclass(frozen=True)
class Limits:
    """The caps a submission must fit under; 0 means no cap."""

    queue_depth: int = 0
    per_key: int = 0


NO_LIMITS = Limits()


class Admission:
    """Atomic acceptance of new jobs."""

    def __init__(self, client: redis.Redis[bytes], keys: JobKeys, retention_seconds: int) -> None:
        self.keys = keys
        self.retention_seconds = retention_seconds
        self._admit = client.register_script(_ADMIT)

    def admit(self, record: JobRecord, limits: Limits, idempotency_key: str | None, fingerprint: str) -> str | None:
        """Record ``record`` as queued, or raise ``QueueFull`` / ``KeyAtCapacity``.

        Returns None when admitted, or the stored ``"<job id> <fingerprint>"`` mapping when the idempotency
        key was already used (the caller replays that job).
        """
        keys = self.keys
        now = time.time()
        answer = self._admit(
            keys=[
                keys.idempotency(record.owner, idempotency_key) if idempotency_key else "",
                keys.queued,
                keys.active(record.owner),
                keys.record(record.id),
                keys.owned(record.owner),
                keys.unsent,
                keys.expiry,
            ],
            args=[
                f"{record.id} {fingerprint}",
                self.retention_seconds,
                limits.queue_depth,
                limits.per_key,
                record.model_dump_json(),
                record.id,
                record.created_at.timestamp(),
                now,
                f"{record.id} {record.owner}",
                now + self.retention_seconds,
                keys.events(record.id),
            ],
        )
        verdict = bytes(answer[0]).decode()
        if verdict == "replay":
            return bytes(answer[1]).decode()
        if verdict == "queue_full":
            raise QueueFull(limits.queue_depth)
        if verdict == "key_at_capacity":
            raise KeyAtCapacity(limits.per_key)
        return None
