"""JobStore: job records in Redis, their one-way state machine, pagination, idempotency and retention."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from restyle.jobs import (
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    JobProgress,
    JobPublic,
    JobRecord,
    JobStore,
    job_files,
    new_job_id,
)
from restyle.storage import LocalStorage
from tests.restyle.conftest import OWNER, new_record


def queued(store: JobStore, owner: str = OWNER) -> JobRecord:
    record, _ = store.create(new_record(owner))
    return record


def running(store: JobStore) -> JobRecord:
    return store.start(queued(store).id, "worker-1")


def test_a_created_job_is_queued_and_counted_in_the_queue(store: JobStore) -> None:
    record = queued(store)
    assert store.get_owned(record.id, OWNER).status == "queued"
    assert store.queue_depth() == 1


def test_starting_a_job_makes_it_running_on_its_first_attempt(store: JobStore) -> None:
    record = running(store)
    assert (record.status, record.attempts, record.worker) == ("running", 1, "worker-1")
    assert record.started_at is not None
    assert store.queue_depth() == 0


def test_a_running_job_restarts_cleanly_when_redelivered(store: JobStore) -> None:
    record = running(store)
    store.report_progress(record.id, 5, 10, {"total": 1.0})
    restarted = store.start(record.id, "worker-2")
    assert (restarted.status, restarted.attempts, restarted.worker) == ("running", 2, "worker-2")
    assert restarted.progress.iteration == 0


def test_a_redelivered_job_stays_out_of_the_queue(store: JobStore) -> None:
    record = running(store)
    store.start(record.id, "worker-2")
    assert store.get_owned(record.id, OWNER).status == "running"
    assert store.queue_depth() == 0


def test_a_job_handed_back_by_a_worker_shutting_down_is_queued_without_using_an_attempt(store: JobStore) -> None:
    record = running(store)
    store.report_progress(record.id, 5, 10, {"total": 1.0})
    requeued = store.requeue(record.id)
    assert (requeued.status, requeued.attempts, requeued.worker, requeued.started_at) == ("queued", 0, None, None)
    assert requeued.progress.iteration == 0 and requeued.losses == {}
    assert store.queue_depth() == 1


def test_only_a_running_job_can_be_handed_back(store: JobStore) -> None:
    with pytest.raises(InvalidTransition):
        store.requeue(queued(store).id)


def test_progress_of_a_running_job_is_recorded_with_its_percentage(store: JobStore) -> None:
    record = running(store)
    updated = store.report_progress(record.id, 4, 10, {"content": 0.5, "total": 0.7})
    assert updated is not None
    assert updated.progress == JobProgress(iteration=4, total=10, percent=40.0)
    assert updated.losses == {"content": 0.5, "total": 0.7}


def test_every_change_bumps_the_version(store: JobStore) -> None:
    record = running(store)
    assert record.version == 1
    assert store.report_progress(record.id, 1, 10, {}).version == 2  # type: ignore[union-attr]


def test_a_succeeded_job_keeps_its_result_weights_and_losses(store: JobStore) -> None:
    record = running(store)
    done = store.succeed(
        record.id,
        result="jobs/x/result",
        weights="random(seed=0)",
        run_seconds=1.5,
        losses={"total": 0.1},
        iterations=10,
    )
    assert (done.status, done.result_key, done.weights, done.losses) == (
        "succeeded",
        "jobs/x/result",
        "random(seed=0)",
        {"total": 0.1},
    )
    assert done.progress.percent == 100.0
    assert done.finished_at is not None


def test_a_failed_job_carries_the_error_code_and_message(store: JobStore) -> None:
    record = running(store)
    failed = store.fail(record.id, "not_an_image", "content is not an image")
    assert failed.status == "failed"
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("not_an_image", "content is not an image")


def test_a_queued_job_can_fail_without_running(store: JobStore) -> None:
    assert store.fail(queued(store).id, "input_missing", "gone").status == "failed"


def test_only_a_running_job_can_succeed(store: JobStore) -> None:
    record = queued(store)
    with pytest.raises(InvalidTransition):
        store.succeed(record.id, result="r", weights="w", run_seconds=0, losses={}, iterations=1)


def test_a_final_job_cannot_fail_again(store: JobStore) -> None:
    record = running(store)
    store.fail(record.id, "internal_error", "first")
    with pytest.raises(InvalidTransition):
        store.fail(record.id, "internal_error", "second")


def test_canceling_a_queued_job_cancels_it_at_once(store: JobStore) -> None:
    record = store.cancel(queued(store).id, OWNER)
    assert (record.status, record.cancel_requested) == ("canceled", True)
    assert store.queue_depth() == 0


def test_a_canceled_job_never_starts(store: JobStore) -> None:
    record = store.cancel(queued(store).id, OWNER)
    with pytest.raises(InvalidTransition):
        store.start(record.id, "worker-1")


def test_canceling_a_running_job_flags_it_for_its_worker(store: JobStore) -> None:
    record = store.cancel(running(store).id, OWNER)
    assert (record.status, record.cancel_requested) == ("running", True)
    assert store.is_cancel_requested(record.id)


def test_the_worker_confirms_a_cancellation(store: JobStore) -> None:
    record = store.cancel(running(store).id, OWNER)
    assert store.mark_canceled(record.id).status == "canceled"
    assert not store.is_cancel_requested(record.id)


def test_progress_after_a_cancellation_does_not_revive_the_job(store: JobStore) -> None:
    record = store.cancel(queued(store).id, OWNER)
    assert store.report_progress(record.id, 3, 10, {}) is None
    assert store.get_owned(record.id, OWNER).status == "canceled"


def test_canceling_a_canceled_job_changes_nothing(store: JobStore) -> None:
    first = store.cancel(queued(store).id, OWNER)
    assert store.cancel(first.id, OWNER).version == first.version


def test_a_succeeded_job_cannot_be_canceled(store: JobStore) -> None:
    record = running(store)
    store.succeed(record.id, result="r", weights="w", run_seconds=0, losses={}, iterations=10)
    with pytest.raises(InvalidTransition):
        store.cancel(record.id, OWNER)


def test_another_owners_job_is_not_found(store: JobStore) -> None:
    record = queued(store)
    with pytest.raises(JobNotFound):
        store.get_owned(record.id, "key-bob")
    with pytest.raises(JobNotFound):
        store.cancel(record.id, "key-bob")


def test_a_jobs_other_keys_are_not_readable_as_jobs(store: JobStore) -> None:
    record = store.cancel(running(store).id, OWNER)
    assert store.get(f"{record.id}:cancel") is None


def test_a_new_job_is_unsent_until_its_message_is_sent(store: JobStore) -> None:
    sent, unsent = queued(store), queued(store)
    store.mark_sent(sent.id)
    assert store.claim_unsent(older_than=60, now=time.time() + 61) == [unsent.id]


def test_an_unsent_job_is_claimed_once_and_only_once_old_enough(store: JobStore) -> None:
    record = queued(store)
    assert store.claim_unsent(older_than=60) == []
    assert store.claim_unsent(older_than=60, now=time.time() + 61) == [record.id]
    assert store.claim_unsent(older_than=60, now=time.time() + 61) == []


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


def test_changes_are_published_on_the_jobs_channel(store: JobStore) -> None:
    record = queued(store)
    with store.redis.pubsub() as pubsub:
        pubsub.subscribe(store.events_channel(record.id))
        pubsub.get_message(timeout=1)  # the subscription confirmation
        store.start(record.id, "worker-1")
        message = pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == b"1"


def test_retention_removes_finished_jobs_and_their_files(store: JobStore, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    record = running(store)
    for key in job_files(record.id):
        storage.put(key, b"x")
    store.succeed(record.id, result="r", weights="w", run_seconds=0, losses={}, iterations=10)
    purged = store.purge_expired(storage, now=time.time() + store.retention_seconds + 1)
    assert purged == [record.id]
    assert store.get(record.id) is None
    assert not any(storage.exists(key) for key in job_files(record.id))
    assert store.list_owned(OWNER, limit=10).jobs == []


def test_retention_keeps_jobs_that_have_not_finished(store: JobStore, tmp_path: Path) -> None:
    record = queued(store)
    assert store.purge_expired(LocalStorage(tmp_path), now=time.time() + store.retention_seconds + 1) == []
    assert store.get_owned(record.id, OWNER).status == "queued"


def test_retention_leaves_recent_jobs_alone(store: JobStore, tmp_path: Path) -> None:
    record = running(store)
    store.fail(record.id, "internal_error", "x")
    assert store.purge_expired(LocalStorage(tmp_path)) == []


def test_final_states_are_counted_by_outcome_with_run_durations(store: JobStore) -> None:
    store.fail(running(store).id, "internal_error", "x")
    record = running(store)
    store.succeed(record.id, result="r", weights="w", run_seconds=0, losses={}, iterations=10)
    stats = store.stats()
    assert stats.outcomes == {"canceled": 0, "failed": 1, "succeeded": 1}
    assert stats.duration_count == 2


def test_a_final_job_with_a_webhook_is_put_on_the_webhook_list(store: JobStore) -> None:
    record, _ = store.create(new_record(webhook_url="http://127.0.0.1:9/hook"))
    store.cancel(record.id, OWNER)
    assert store.redis.zscore(store.webhooks_due, record.id) is not None


def test_the_public_view_links_the_result_only_once_succeeded(store: JobStore) -> None:
    record = running(store)
    assert JobPublic.from_record(record, "http://h").result_url is None
    done = store.succeed(record.id, result="r", weights="w", run_seconds=0, losses={}, iterations=10)
    assert JobPublic.from_record(done, "http://h").result_url == f"http://h/v1/jobs/{record.id}/result"
