"""JobStore: submitting, withdrawing, reading, listing and cancelling jobs, idempotency, unsent messages and
counters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from restyle.jobs import (
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    JobPublic,
    JobStore,
    Limits,
    Runs,
    input_keys,
    new_job_id,
    purge_expired,
)
from restyle.storage.local import LocalStorage
from tests.restyle.conftest import OWNER, new_record
from tests.restyle.jobs.conftest import claimed, queued


def test_a_created_job_is_queued_and_counted_in_the_queue(store: JobStore) -> None:
    record = queued(store)
    assert store.get_owned(record.id, OWNER).status == "queued"
    assert store.queue_depth() == 1


def test_an_admitted_job_is_not_claimable_until_released(store: JobStore, runs: Runs) -> None:
    record, _ = store.create(new_record())
    assert runs.claim("worker-1") is None  # its files may not be stored yet
    assert store.release(record)
    assert runs.claim("worker-1") is not None


def test_a_job_that_left_the_queue_is_not_released_again(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    assert not store.release(run.record)


def test_canceling_a_queued_job_cancels_it_at_once(store: JobStore) -> None:
    record = store.cancel(queued(store).id, OWNER)
    assert (record.status, record.cancel_requested) == ("canceled", True)
    assert store.queue_depth() == 0


def test_a_canceled_job_is_never_claimed(store: JobStore, runs: Runs) -> None:
    store.cancel(queued(store).id, OWNER)
    assert runs.claim("worker-1") is None


def test_canceling_a_running_job_flags_it_for_its_worker(store: JobStore, runs: Runs) -> None:
    record = store.cancel(claimed(store, runs).job_id, OWNER)
    assert (record.status, record.cancel_requested) == ("running", True)
    assert store.is_cancel_requested(record.id)


def test_canceling_a_canceled_job_changes_nothing(store: JobStore) -> None:
    first = store.cancel(queued(store).id, OWNER)
    assert store.cancel(first.id, OWNER).version == first.version


def test_a_succeeded_job_cannot_be_canceled(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    run.succeed(weights="w", run_seconds=0, losses={}, iterations=10)
    with pytest.raises(InvalidTransition):
        store.cancel(run.job_id, OWNER)


def test_another_owners_job_is_not_found(store: JobStore) -> None:
    record = queued(store)
    with pytest.raises(JobNotFound):
        store.get_owned(record.id, "key-bob")
    with pytest.raises(JobNotFound):
        store.cancel(record.id, "key-bob")


def test_a_jobs_other_keys_are_not_readable_as_jobs(store: JobStore, runs: Runs) -> None:
    record = store.cancel(claimed(store, runs).job_id, OWNER)
    assert store.get(f"{record.id}:cancel") is None
    assert store.get(f"{record.id}:lease") is None


def test_a_new_job_is_owed_its_message_until_it_is_sent(store: JobStore) -> None:
    sent, unsent = queued(store), queued(store)
    store.mark_sent(sent.id)
    assert store.claim_unsent(older_than=60, now=time.time() + 61) == [unsent.id]


def test_an_unsent_job_is_claimed_by_one_caller_at_a_time(store: JobStore) -> None:
    record = queued(store)
    later = time.time() + 61
    assert store.claim_unsent(older_than=60) == []
    assert store.claim_unsent(older_than=60, now=later) == [record.id]
    assert store.claim_unsent(older_than=60, now=later + 1) == []  # postponed for the one that claimed it


def test_an_unsent_job_whose_claimer_died_is_claimed_again_later(store: JobStore) -> None:
    record = queued(store)
    later = time.time() + 61
    store.claim_unsent(older_than=60, now=later)
    assert store.claim_unsent(older_than=60, now=later + 61) == [record.id]


def test_a_withdrawn_job_is_gone(store: JobStore) -> None:
    record, _ = store.create(new_record())
    store.withdraw(record)
    assert store.get(record.id) is None
    assert store.list_owned(OWNER, limit=10).jobs == []


def test_a_withdrawn_job_leaves_the_queue_and_owes_no_message(store: JobStore) -> None:
    record, _ = store.create(new_record())
    store.withdraw(record)
    assert store.queue_depth() == 0
    assert store.claim_unsent(older_than=60, now=time.time() + 61) == []


def test_a_withdrawn_job_no_longer_counts_against_its_keys_limit(store: JobStore) -> None:
    record, _ = store.create(new_record(), limits=Limits(per_key=1))
    store.withdraw(record)
    _, created = store.create(new_record(), limits=Limits(per_key=1))
    assert created


def test_a_withdrawn_jobs_idempotency_key_makes_a_new_job(store: JobStore) -> None:
    record, _ = store.create(new_record(), "key-1", "request-a")
    store.withdraw(record, "key-1")
    again, created = store.create(new_record(), "key-1", "request-a")
    assert created and again.id != record.id


def test_withdrawing_a_job_leaves_an_idempotency_key_that_names_another_job(store: JobStore) -> None:
    kept, _ = store.create(new_record(), "key-1", "request-a")
    withdrawn, _ = store.create(new_record())
    store.withdraw(withdrawn, "key-1")
    assert store.find_idempotent(OWNER, "key-1", "request-a") == kept


def test_the_files_of_a_withdrawn_job_are_removed_by_the_retention_purge(store: JobStore, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    record, _ = store.create(new_record())
    content, _ = input_keys(record.id, 1)
    storage.put(content, b"stored before the storage failed")
    store.withdraw(record)
    purge_expired(store.ledger, storage, now=time.time() + store.ledger.retention_seconds + 1)
    assert not storage.exists(content)


def test_jobs_are_listed_newest_first_in_pages(store: JobStore) -> None:
    ids = [queued(store).id for _ in range(5)]
    queued(store, owner="key-bob")
    first = store.list_owned(OWNER, limit=2)
    second = store.list_owned(OWNER, limit=2, cursor=first.next_cursor)
    last = store.list_owned(OWNER, limit=2, cursor=second.next_cursor)
    listed = [job.id for page in (first, second, last) for job in page.jobs]
    assert listed == ids[::-1]
    assert last.next_cursor is None


def test_job_ids_sort_in_creation_order() -> None:
    ids = [new_job_id() for _ in range(200)]
    assert ids == sorted(ids)


def test_an_idempotency_key_returns_the_job_it_created(store: JobStore) -> None:
    first, created = store.create(new_record(), "key-1", "request-a")
    again, created_again = store.create(new_record(), "key-1", "request-a")
    assert (created, created_again, again.id) == (True, False, first.id)


def test_an_idempotency_key_reused_for_another_request_is_refused(store: JobStore) -> None:
    store.create(new_record(), "key-1", "request-a")
    with pytest.raises(IdempotencyConflict):
        store.create(new_record(), "key-1", "request-b")


def test_idempotency_keys_are_per_owner(store: JobStore) -> None:
    alice, _ = store.create(new_record(OWNER), "key-1", "request-a")
    bob, created = store.create(new_record("key-bob"), "key-1", "request-a")
    assert created and bob.id != alice.id


def test_changes_are_published_on_the_jobs_channel(store: JobStore, runs: Runs) -> None:
    record = queued(store)
    with store.redis.pubsub() as pubsub:
        pubsub.subscribe(store.keys.events(record.id))
        pubsub.get_message(timeout=1)  # the subscription confirmation
        runs.claim("worker-1")
        message = pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == b"1"


def test_final_states_are_counted_by_outcome_with_run_durations(store: JobStore, runs: Runs) -> None:
    claimed(store, runs).fail("internal_error", "x")
    claimed(store, runs).succeed(weights="w", run_seconds=0, losses={}, iterations=10)
    stats = store.stats()
    assert stats.outcomes == {"canceled": 0, "failed": 1, "succeeded": 1}
    assert stats.duration_count == 2


def test_a_final_job_with_a_webhook_is_put_on_the_webhook_list(store: JobStore) -> None:
    record = queued(store, webhook_url="http://127.0.0.1:9/hook")
    store.cancel(record.id, OWNER)
    assert store.redis.zscore(store.keys.webhooks_due, record.id) is not None


def test_the_public_view_links_the_result_only_once_succeeded(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    assert JobPublic.from_record(run.record, "http://h").result_url is None
    done = run.succeed(weights="w", run_seconds=0, losses={}, iterations=10)
    assert JobPublic.from_record(done, "http://h").result_url == f"http://h/v1/jobs/{run.job_id}/result"


def test_the_public_view_shows_each_run_without_its_token(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs, worker="gpu-1")
    (attempt,) = JobPublic.from_record(run.record).runs
    assert (attempt.worker, attempt.outcome) == ("gpu-1", "running")
    assert "token" not in attempt.model_dump()
