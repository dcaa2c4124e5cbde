"""Which job a free worker runs next: per-owner waiting lines served round robin.

Celery's messages carry no job: each is a doorbell, one sent for every job that becomes claimable, and
the worker that receives it claims the next job here. That keeps the order ours to choose. The policy is
*least recently served owner first*: owners with waiting jobs sit in a rotation scored by when they were last
served (or joined), and each claim takes the oldest waiting job of the owner at the front, then moves that
owner to the back. With several keys queued, each gets every n-th worker; within a key, jobs run oldest first.

A claim also takes the job's lease (see ``leases``) in the same script, so a job is never out of the queue
without a lease that lets it come back. Rotation scores come from Redis's own clock (``TIME``), never from
the hosts', so APIs and workers whose clocks disagree still take turns fairly.
"""

from __future__ import annotations

import time

import redis
from redis.client import Pipeline

from restyle.jobs.keys import LEASE_SUFFIX, WAITING_SUFFIX, JobKeys
from restyle.jobs.records import JobRecord

# Redis's clock in seconds, for the scripts below.
_NOW = "local clock = redis.call('TIME') local now = clock[1] + clock[2] / 1e6\n"

# KEYS: rotation, queued, running. ARGV: owner prefix, waiting suffix, job prefix, lease suffix, token,
# lease in ms. Returns the claimed job id, or nil when nothing waits.
_CLAIM = (
    _NOW
    + """
local rotation, queued, running = KEYS[1], KEYS[2], KEYS[3]
while true do
  local front = redis.call('ZRANGE', rotation, 0, 0)
  if #front == 0 then return false end
  local owner = front[1]
  local waiting = ARGV[1] .. owner .. ARGV[2]
  local popped = redis.call('ZPOPMIN', waiting)
  if #popped == 0 then
    redis.call('ZREM', rotation, owner)
  else
    local job = popped[1]
    if redis.call('ZCARD', waiting) > 0 then
      redis.call('ZADD', rotation, now, owner)
    else
      redis.call('ZREM', rotation, owner)
    end
    redis.call('ZREM', queued, job)
    redis.call('ZADD', running, now, job)
    redis.call('SET', ARGV[3] .. job .. ARGV[4], ARGV[5], 'PX', ARGV[6])
    return job
  end
end
"""
)

# KEYS: queued, running, waiting, rotation. ARGV: job id, its created score, owner. Makes an admitted job
# claimable, unless it left the queue meanwhile (claimed, canceled). Returns 1 if it is waiting now.
_RELEASE = (
    _NOW
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[3], 'NX', ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], 'NX', now, ARGV[3])
return 1
"""
)

# KEYS: rotation. ARGV: owner. An owner joins the rotation, behind those already in it, unless it is there.
_JOIN = _NOW + "return redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1])"


class JobQueue:
    """The waiting lines and the claim that serves them."""

    def __init__(self, client: redis.Redis[bytes], keys: JobKeys) -> None:
        self.redis = client
        self.keys = keys
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._join = client.register_script(_JOIN)

    def release(self, record: JobRecord) -> bool:
        """Let workers claim an admitted job, once its files are stored."""
        keys = [self.keys.queued, self.keys.running, self.keys.waiting(record.owner), self.keys.rotation]
        args = [record.id, record.created_at.timestamp(), record.owner]
        return bool(self._release(keys=keys, args=args))

    def claim(self, token: str, lease_milliseconds: int) -> str | None:
        """The next job in fair order, now leased to ``token``; None when no job waits."""
        keys = self.keys
        claimed = self._claim(
            keys=[keys.rotation, keys.queued, keys.running],
            args=[
                keys.owner_prefix,
                WAITING_SUFFIX,
                keys.job_prefix,
                LEASE_SUFFIX,
                token,
                lease_milliseconds,
            ],
        )
        return None if claimed is None else bytes(claimed).decode()

    def enter(self, pipe: Pipeline[bytes], record: JobRecord) -> None:
        """Put a job (back) in the queue, claimable at once, and owed a message (inside a MULTI)."""
        score = record.created_at.timestamp()
        pipe.zadd(self.keys.queued, {record.id: score})
        pipe.zadd(self.keys.active(record.owner), {record.id: score})
        pipe.zadd(self.keys.waiting(record.owner), {record.id: score})
        self._join(keys=[self.keys.rotation], args=[record.owner], client=pipe)
        pipe.zadd(self.keys.unsent, {record.id: time.time()})

    def leave(self, pipe: Pipeline[bytes], record: JobRecord) -> None:
        """Take a job off every line and index it is on, and drop its lease (inside a MULTI)."""
        pipe.zrem(self.keys.queued, record.id)
        pipe.zrem(self.keys.waiting(record.owner), record.id)
        pipe.zrem(self.keys.active(record.owner), record.id)
        pipe.zrem(self.keys.running, record.id)
        pipe.delete(self.keys.lease(record.id))
