"""Runs: a claimed job runs under a lease, and only the run that holds it can write to it."""

from __future__ import annotations

import pytest

from restyle.jobs import InvalidTransition, JobProgress, JobRecord, JobStore, Reaper, Runs, RunSuperseded
from tests.restyle.conftest import OWNER, new_record
from tests.restyle.jobs.conftest import claimed, queued


def lapse(store: JobStore, job_id: str) -> None:
    """What a dead worker's silence amounts to once the lease period has passed."""
    store.redis.delete(store.keys.lease(job_id))


def take_over(store: JobStore, runs: Runs, job_id: str) -> None:
    """The first run's lease lapses and another worker's reaper hands the job on."""
    lapse(store, job_id)
    assert Reaper(store.ledger, lease_seconds=0.001, max_attempts=5).reclaim() == [job_id]


def test_claiming_a_job_starts_its_first_run(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs, worker="worker-1")
    record = store.get_owned(run.job_id, OWNER)
    assert (record.status, record.attempts, run.number) == ("running", 1, 1)
    assert [(attempt.worker, attempt.outcome) for attempt in record.runs] == [("worker-1", "running")]
    assert record.started_at is not None
    assert store.queue_depth() == 0


def test_a_claimed_job_holds_a_lease_with_the_runs_token(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    assert store.redis.get(store.keys.lease(run.job_id)) == run.token.encode()
    assert 0 < store.redis.pttl(store.keys.lease(run.job_id)) <= runs.lease_milliseconds


def test_nothing_to_claim_when_no_job_waits(runs: Runs) -> None:
    assert runs.claim("worker-1") is None


def test_progress_is_recorded_with_its_percentage(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    run.report_progress(4, 10, {"content": 0.5, "total": 0.7})
    record = store.get_owned(run.job_id, OWNER)
    assert record.progress == JobProgress(iteration=4, total=10, percent=40.0)
    assert record.losses == {"content": 0.5, "total": 0.7}


def test_progress_carries_the_stage_its_size_and_the_time_left(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    run.report_progress(4, 10, {}, stage=2, stages=3, size=1024, remaining_seconds=12.5)
    progress = store.get_owned(run.job_id, OWNER).progress
    assert (progress.stage, progress.stages, progress.size, progress.remaining_seconds) == (2, 3, 1024, 12.5)


def test_a_succeeded_job_keeps_its_last_stage_with_no_time_left(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    run.report_progress(9, 10, {}, stage=3, stages=3, size=2048, remaining_seconds=1.0)
    done = run.succeed(weights="random(seed=0)", run_seconds=1.5, losses={}, iterations=10)
    assert done.progress == JobProgress(
        iteration=10, total=10, percent=100.0, stage=3, stages=3, size=2048, remaining_seconds=0.0
    )


def test_a_record_written_before_stages_existed_still_loads() -> None:
    old = new_record().model_dump(mode="json")
    old["progress"] = {"iteration": 3, "total": 10, "percent": 30.0}
    progress = JobRecord.model_validate(old).progress
    assert (progress.iteration, progress.stage, progress.remaining_seconds) == (3, None, None)


def test_every_change_bumps_the_version(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    assert run.record.version == 1
    run.report_progress(1, 10, {})
    assert store.get_owned(run.job_id, OWNER).version == 2


def test_a_succeeded_job_keeps_its_runs_result_weights_and_losses(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    done = run.succeed(weights="random(seed=0)", run_seconds=1.5, losses={"total": 0.1}, iterations=10)
    assert (done.status, done.result_key, done.weights, done.losses) == (
        "succeeded",
        f"jobs/{run.job_id}/result-1",
        "random(seed=0)",
        {"total": 0.1},
    )
    assert (done.progress.percent, done.runs[-1].outcome) == (100.0, "succeeded")
    assert done.finished_at is not None and done.runs[-1].ended_at is not None


def test_a_finished_job_leaves_no_lease_behind(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    run.fail("not_an_image", "content is not an image")
    assert not store.redis.exists(store.keys.lease(run.job_id))
    assert store.stats().running == 0


def test_a_failed_job_carries_the_error_code_and_message(store: JobStore, runs: Runs) -> None:
    failed = claimed(store, runs).fail("not_an_image", "content is not an image")
    assert failed.error is not None
    assert (failed.status, failed.error.code, failed.error.message) == (
        "failed",
        "not_an_image",
        "content is not an image",
    )


def test_a_final_job_cannot_fail_again(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    run.fail("internal_error", "first")
    with pytest.raises(InvalidTransition):
        run.fail("internal_error", "second")


def test_the_worker_confirms_a_cancellation(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    store.cancel(run.job_id, OWNER)
    assert run.cancel().status == "canceled"
    assert not store.is_cancel_requested(run.job_id)


def test_progress_after_a_cancellation_does_not_revive_the_job(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    store.cancel(run.job_id, OWNER)
    run.cancel()
    with pytest.raises(InvalidTransition):
        run.report_progress(3, 10, {})
    assert store.get_owned(run.job_id, OWNER).status == "canceled"


def test_a_job_handed_back_is_queued_again_without_using_an_attempt(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    run.report_progress(5, 10, {"total": 1.0})
    requeued = run.hand_back()
    assert (requeued.status, requeued.attempts, requeued.started_at) == ("queued", 0, None)
    assert requeued.progress.iteration == 0 and requeued.losses == {}
    assert [attempt.outcome for attempt in requeued.runs] == ["handed_back"]
    assert store.queue_depth() == 1


def test_a_job_handed_back_is_claimable_at_once_and_owed_a_message(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    run.hand_back()
    assert store.redis.zscore(store.keys.unsent, run.job_id) is not None
    again = runs.claim("worker-2")
    assert again is not None and (again.job_id, again.number) == (run.job_id, 2)


def test_a_run_renews_the_lease_it_holds(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    store.redis.pexpire(store.keys.lease(run.job_id), 50)
    assert run.renew()
    assert store.redis.pttl(store.keys.lease(run.job_id)) > 1000


def test_a_lease_lost_with_a_redis_restart_comes_back_if_nobody_took_the_job(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    lapse(store, run.job_id)
    assert run.renew()
    assert store.redis.get(store.keys.lease(run.job_id)) == run.token.encode()


def test_a_run_whose_job_was_taken_over_cannot_renew(store: JobStore, runs: Runs) -> None:
    first = claimed(store, runs)
    take_over(store, runs, first.job_id)
    runs.claim("worker-2")
    assert not first.renew()


def test_a_superseded_runs_late_result_is_refused(store: JobStore, runs: Runs) -> None:
    first = claimed(store, runs, worker="worker-1")
    take_over(store, runs, first.job_id)
    second = runs.claim("worker-2")
    assert second is not None
    with pytest.raises(RunSuperseded):
        first.succeed(weights="w", run_seconds=1, losses={}, iterations=10)
    record = store.get_owned(first.job_id, OWNER)
    assert (record.status, record.runs[-1].worker, record.result_key) == ("running", "worker-2", None)


def test_a_superseded_runs_progress_is_refused(store: JobStore, runs: Runs) -> None:
    first = claimed(store, runs)
    take_over(store, runs, first.job_id)
    second = runs.claim("worker-2")
    assert second is not None
    second.report_progress(2, 10, {"total": 2.0})
    with pytest.raises(RunSuperseded):
        first.report_progress(9, 10, {"total": 9.0})
    assert store.get_owned(first.job_id, OWNER).progress.iteration == 2


def test_refused_writes_are_counted_as_fenced(store: JobStore, runs: Runs) -> None:
    first = claimed(store, runs)
    take_over(store, runs, first.job_id)
    with pytest.raises(RunSuperseded):
        first.report_progress(1, 10, {})
    first.renew()
    assert store.stats().fenced_writes == 2


def test_each_run_writes_its_files_under_its_own_number(store: JobStore, runs: Runs) -> None:
    first = claimed(store, runs)
    take_over(store, runs, first.job_id)
    second = runs.claim("worker-2")
    assert second is not None
    assert (first.result_key, second.result_key) == (
        f"jobs/{first.job_id}/result-1",
        f"jobs/{first.job_id}/result-2",
    )
    assert first.preview_key != second.preview_key


def test_a_job_canceled_between_its_claim_and_its_start_is_passed_over(store: JobStore, runs: Runs) -> None:
    doomed, next_one = queued(store), queued(store)
    # Cancel the first job once the claim has taken it off its line, before its start is written.
    original = runs.ledger.queue.claim

    def claim_then_cancel(token: str, lease_milliseconds: int) -> str | None:
        job_id = original(token, lease_milliseconds)
        if job_id == doomed.id:
            store.cancel(doomed.id, OWNER)
        return job_id

    runs.ledger.queue.claim = claim_then_cancel  # type: ignore[method-assign]
    run = runs.claim("worker-1")
    assert run is not None and run.job_id == next_one.id
    assert not store.redis.exists(store.keys.lease(doomed.id))
