"""Admission: the queue-depth cap and the per-key cap are decided with the write, in one step."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from restyle.jobs import JobStore, KeyAtCapacity, Limits, QueueFull, Runs
from tests.restyle.conftest import new_record
from tests.restyle.jobs.conftest import queued

ALICE, BOB = "key-alice", "key-bob"


def test_a_job_beyond_the_queue_cap_is_refused(store: JobStore) -> None:
    for _ in range(3):
        store.create(new_record(ALICE), limits=Limits(queue_depth=3))
    with pytest.raises(QueueFull, match="3 jobs are already waiting"):
        store.create(new_record(BOB), limits=Limits(queue_depth=3))
    assert store.queue_depth() == 3


def test_concurrent_submissions_never_overshoot_the_cap(store: JobStore) -> None:
    def submit(_: int) -> bool:
        try:
            store.create(new_record(ALICE), limits=Limits(queue_depth=25))
        except QueueFull:
            return False
        return True

    with ThreadPoolExecutor(max_workers=20) as pool:
        accepted = sum(pool.map(submit, range(200)))
    assert (accepted, store.queue_depth()) == (25, 25)


def test_a_key_at_its_limit_is_refused_while_others_are_admitted(store: JobStore) -> None:
    limits = Limits(queue_depth=100, per_key=2)
    for _ in range(2):
        store.create(new_record(ALICE), limits=limits)
    with pytest.raises(KeyAtCapacity, match="already has 2 jobs queued or running"):
        store.create(new_record(ALICE), limits=limits)
    _, created = store.create(new_record(BOB), limits=limits)
    assert created


def test_running_jobs_count_towards_the_key_limit(store: JobStore, runs: Runs) -> None:
    queued(store, ALICE)
    runs.claim("worker-1")
    with pytest.raises(KeyAtCapacity):
        store.create(new_record(ALICE), limits=Limits(queue_depth=100, per_key=1))


def test_a_finished_job_frees_its_keys_place(store: JobStore, runs: Runs) -> None:
    queued(store, ALICE)
    run = runs.claim("worker-1")
    assert run is not None
    run.succeed(weights="w", run_seconds=0, losses={}, iterations=10)
    _, created = store.create(new_record(ALICE), limits=Limits(queue_depth=100, per_key=1))
    assert created


def test_a_replay_is_answered_even_when_the_queue_is_full(store: JobStore) -> None:
    first, _ = store.create(new_record(ALICE), "key-1", "request-a", Limits(queue_depth=1))
    again, created = store.create(new_record(ALICE), "key-1", "request-a", Limits(queue_depth=1))
    assert (again.id, created) == (first.id, False)
