"""Following a job live: every record change is published on its Redis channel, and listeners re-read it.

Used by the server-sent event stream and by ``Prefer: wait=N``. Listeners subscribe before their first
read, so no change between the read and the subscription can be missed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

from redis.asyncio import Redis as AsyncRedis

from restyle.jobs import JobPublic, JobRecord, JobStore

KEEPALIVE_SECONDS = 15.0


class JobWatcher:
    """Async view of job records for long-lived requests (one pub/sub connection per listener)."""

    def __init__(self, client: AsyncRedis[bytes], store: JobStore) -> None:
        self.client = client
        self.store = store

    async def changes(self, job_id: str, idle: float = KEEPALIVE_SECONDS) -> AsyncGenerator[JobRecord | None]:
        """Yield the record now and after each change, ending after a final state or when it disappears.

        Yields None after ``idle`` quiet seconds, so a stream can send a keep-alive.
        """
        async with self.client.pubsub() as pubsub:
            await pubsub.subscribe(self.store.keys.events(job_id))
            seen = -1
            while True:
                raw = await self.client.get(self.store.keys.record(job_id))
                if raw is None:
                    return
                record = JobRecord.model_validate_json(raw)
                if record.version != seen:
                    seen = record.version
                    yield record
                if record.finished:
                    return
                # Any message (a change, or the subscription's confirmation) means: read the record again.
                if await pubsub.get_message(timeout=idle) is None:
                    yield None


def server_sent_event(record: JobRecord, base_url: str) -> str:
    """One ``job`` event whose data is the job as GET /v1/jobs/{id} shows it."""
    data = JobPublic.from_record(record, base_url).model_dump_json()
    return f"event: job\nid: {record.version}\ndata: {data}\n\n"


KEEPALIVE_EVENT = ": keep-alive\n\n"
END_EVENT = f"event: end\ndata: {json.dumps({'reason': 'final state reached'})}\n\n"
