"""Retention: finished jobs are forgotten after the retention period, with every file any run wrote."""

from __future__ import annotations

import time
from pathlib import Path

from restyle.jobs import JobStore, Runs, input_keys, mask_key, purge_expired
from restyle.storage import Storage
from restyle.storage.local import LocalStorage
from tests.restyle.conftest import OWNER
from tests.restyle.jobs.conftest import claimed, queued


def later(store: JobStore) -> float:
    return time.time() + store.ledger.retention_seconds + 1


def test_retention_removes_finished_jobs_and_the_files_of_all_their_runs(
    store: JobStore, runs: Runs, storage: Storage
) -> None:
    run = claimed(store, runs)
    content, styles = input_keys(run.job_id, 1)
    files = [content, *styles, run.result_key, run.preview_key, f"jobs/{run.job_id}/result-0"]
    for key in files:
        storage.put(key, b"x")
    run.succeed(weights="w", run_seconds=0, losses={}, iterations=10)
    assert purge_expired(store.ledger, storage, now=later(store)) == [run.job_id]
    assert store.get(run.job_id) is None
    assert not any(storage.exists(key) for key in files)
    assert store.list_owned(OWNER, limit=10).jobs == []


def test_retention_removes_a_jobs_masks_with_it(store: JobStore, runs: Runs, storage: Storage) -> None:
    run = claimed(store, runs)
    masks = [mask_key(run.job_id, 1), mask_key(run.job_id, 1, source=True)]
    for key in masks:
        storage.put(key, b"x")
    run.succeed(weights="w", run_seconds=0, losses={}, iterations=10)
    purge_expired(store.ledger, storage, now=later(store))
    assert not any(storage.exists(key) for key in masks)


def test_retention_keeps_jobs_that_have_not_finished(store: JobStore, tmp_path: Path) -> None:
    record = queued(store)
    assert purge_expired(store.ledger, LocalStorage(tmp_path), now=later(store)) == []
    assert store.get_owned(record.id, OWNER).status == "queued"


def test_retention_leaves_recent_jobs_alone(store: JobStore, runs: Runs, tmp_path: Path) -> None:
    claimed(store, runs).fail("internal_error", "x")
    assert purge_expired(store.ledger, LocalStorage(tmp_path)) == []
