"""Fixtures for the unit tests of restyle/: a JobStore on the test Redis, and record builders."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from core.params import StyleParams
from restyle.jobs import JobProgress, JobRecord, JobStore, new_job_id
from tests.conftest import MakeSettings

OWNER = "key-alice"


@pytest.fixture
def store(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> JobStore:
    """A store under a fresh key prefix, so every test starts from an empty service."""
    settings = make_settings()
    return JobStore(redis_client, settings.key_prefix, settings.retention_seconds)


def new_record(owner: str = OWNER, webhook_url: str | None = None) -> JobRecord:
    """A job record as the API would create it (10 iterations at 32 px, one style)."""
    params = StyleParams(iterations=10, size=32)
    return JobRecord(
        id=new_job_id(),
        owner=owner,
        params=params,
        style_count=1,
        progress=JobProgress(total=params.iterations),
        created_at=datetime.now(UTC),
        webhook_url=webhook_url,
    )
