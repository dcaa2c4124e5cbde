"""Reaper: a job whose lease lapsed goes back to the queue, but a Redis outage is no proof of death."""

from __future__ import annotations

import pytest
import redis

from restyle.jobs import JobStore, Reaper, Runs
from tests.restyle.conftest import OWNER
from tests.restyle.jobs.conftest import claimed, queued

LEASE = 10.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reaper(store: JobStore, clock: Clock) -> Reaper:
    return Reaper(store.ledger, lease_seconds=LEASE, max_attempts=3, clock=clock)


def lapse(store: JobStore, job_id: str) -> None:
    store.redis.delete(store.keys.lease(job_id))


def test_a_job_whose_lease_lapsed_is_queued_again(store: JobStore, runs: Runs, reaper: Reaper) -> None:
    run = claimed(store, runs, worker="worker-1")
    run.report_progress(4, 10, {"total": 1.0})
    lapse(store, run.job_id)
    assert reaper.reclaim() == [run.job_id]
    record = store.get_owned(run.job_id, OWNER)
    assert (record.status, record.attempts, record.progress.iteration) == ("queued", 1, 0)
    assert [(attempt.worker, attempt.outcome) for attempt in record.runs] == [("worker-1", "lost")]


def test_a_reclaimed_job_is_claimable_and_owed_a_message(store: JobStore, runs: Runs, reaper: Reaper) -> None:
    run = claimed(store, runs)
    store.mark_sent(run.job_id)
    lapse(store, run.job_id)
    reaper.reclaim()
    assert store.redis.zscore(store.keys.unsent, run.job_id) is not None
    again = runs.claim("worker-2")
    assert again is not None and again.number == 2 and again.record.attempts == 2


def test_reclaims_are_counted(store: JobStore, runs: Runs, reaper: Reaper) -> None:
    lapse(store, claimed(store, runs).job_id)
    reaper.reclaim()
    assert store.stats().leases_reclaimed == 1


def test_a_job_whose_lease_is_renewed_is_left_alone(store: JobStore, runs: Runs, reaper: Reaper) -> None:
    run = claimed(store, runs)
    assert reaper.reclaim() == []
    assert store.get_owned(run.job_id, OWNER).status == "running"


def test_a_job_claimed_by_a_worker_that_died_before_starting_it_waits_again(
    store: JobStore, runs: Runs, reaper: Reaper
) -> None:
    record = queued(store)
    job_id = store.ledger.queue.claim(
        "token-of-a-dead-worker", round(LEASE * 1000)
    )  # the claim, never followed by the start
    assert job_id == record.id
    lapse(store, record.id)
    assert reaper.reclaim() == [record.id]
    run = runs.claim("worker-2")
    assert run is not None and run.job_id == record.id and run.record.attempts == 1


def test_a_job_whose_workers_keep_dying_fails_instead_of_running_forever(
    store: JobStore, runs: Runs, reaper: Reaper
) -> None:
    job_id = queued(store).id
    for _ in range(3):
        assert runs.claim("doomed-worker") is not None
        lapse(store, job_id)
        reaper.reclaim()
    record = store.get_owned(job_id, OWNER)
    assert record.error is not None
    assert (record.status, record.error.code) == ("failed", "worker_lost")
    assert [attempt.outcome for attempt in record.runs] == ["lost"] * 3


def test_a_lost_job_its_owner_canceled_ends_canceled(store: JobStore, runs: Runs, reaper: Reaper) -> None:
    run = claimed(store, runs)
    store.cancel(run.job_id, OWNER)
    lapse(store, run.job_id)
    assert reaper.reclaim() == []
    assert store.get_owned(run.job_id, OWNER).status == "canceled"


def test_nothing_is_reclaimed_until_redis_has_been_up_for_a_lease(store: JobStore, runs: Runs) -> None:
    run = claimed(store, runs)
    lapse(store, run.job_id)
    uptime = int(store.redis.info("server")["uptime_in_seconds"])
    young = Reaper(store.ledger, lease_seconds=uptime + 3600, max_attempts=3)  # as if Redis had just restarted
    assert young.reclaim() == []


def test_after_a_redis_outage_workers_get_a_full_lease_to_renew(
    store: JobStore, runs: Runs, reaper: Reaper, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = claimed(store, runs)
    reaper.reclaim()
    with monkeypatch.context() as outage:
        outage.setattr(store.redis, "info", lambda *_: (_ for _ in ()).throw(redis.ConnectionError("refused")))
        with pytest.raises(redis.ConnectionError):
            reaper.reclaim()
    lapse(store, run.job_id)  # its TTL ran out while Redis was away
    clock.now += 1
    assert reaper.reclaim() == []  # Redis is back: the first pass only starts the lease of grace
    clock.now += LEASE / 4
    assert reaper.reclaim() == []
    run.renew()  # the worker was alive all along and renews within the grace
    clock.now += LEASE
    assert reaper.reclaim() == []
    assert store.get_owned(run.job_id, OWNER).status == "running"


def test_a_lease_still_lapsed_after_the_grace_is_reclaimed(
    store: JobStore, runs: Runs, reaper: Reaper, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = claimed(store, runs)
    with monkeypatch.context() as outage:
        outage.setattr(store.redis, "info", lambda *_: (_ for _ in ()).throw(redis.ConnectionError("refused")))
        with pytest.raises(redis.ConnectionError):
            reaper.reclaim()
    lapse(store, run.job_id)
    for _ in range(5):
        clock.now += LEASE / 4
        reaper.reclaim()
    assert store.get_owned(run.job_id, OWNER).status == "queued"


def test_a_reaper_that_was_frozen_waits_a_lease_before_reclaiming(
    store: JobStore, runs: Runs, reaper: Reaper, clock: Clock
) -> None:
    run = claimed(store, runs)
    reaper.reclaim()
    clock.now += 10 * LEASE  # this process was stopped: every other worker may have been too
    lapse(store, run.job_id)
    assert reaper.reclaim() == []
    clock.now += LEASE / 4
    assert reaper.reclaim() == []
