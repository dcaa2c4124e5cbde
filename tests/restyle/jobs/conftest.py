"""Builders for the job store's unit tests: jobs queued as the API queues them, runs as a worker claims them."""

from __future__ import annotations

import pytest

from restyle.jobs import JobRecord, JobStore, Run, Runs
from tests.restyle.conftest import OWNER, new_record

# Long enough that no lease lapses during a unit test unless the test lets it.
LEASE_SECONDS = 30.0


@pytest.fixture
def runs(store: JobStore) -> Runs:
    return Runs(store.ledger, LEASE_SECONDS)


def queued(store: JobStore, owner: str = OWNER, webhook_url: str | None = None) -> JobRecord:
    """A job admitted and released, as the API leaves it once its files are stored."""
    record, _ = store.create(new_record(owner, webhook_url=webhook_url))
    store.release(record)
    return record


def claimed(store: JobStore, runs: Runs, worker: str = "worker-1") -> Run:
    """The run a worker gets for a newly queued job."""
    record = queued(store)
    run = runs.claim(worker)
    assert run is not None and run.job_id == record.id
    return run
