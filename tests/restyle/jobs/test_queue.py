"""JobQueue: owners with waiting jobs are served round robin, each owner's jobs oldest first."""

from __future__ import annotations

from restyle.jobs import JobStore, Runs
from tests.restyle.jobs.conftest import queued

ALICE, BOB, CAROL = "key-alice", "key-bob", "key-carol"


def claim_order(store: JobStore, runs: Runs) -> list[str]:
    """The owners of the jobs workers get, claim after claim, until none waits."""
    owners = []
    while (run := runs.claim("worker-1")) is not None:
        owners.append(run.record.owner)
    return owners


def test_one_owners_jobs_run_oldest_first(store: JobStore, runs: Runs) -> None:
    ids = [queued(store, ALICE).id for _ in range(3)]
    claimed = []
    while (run := runs.claim("worker-1")) is not None:
        claimed.append(run.job_id)
    assert claimed == ids


def test_a_key_queued_behind_a_flood_is_served_next(store: JobStore, runs: Runs) -> None:
    for _ in range(4):
        queued(store, ALICE)
    for _ in range(2):
        queued(store, BOB)
    assert claim_order(store, runs) == [ALICE, BOB, ALICE, BOB, ALICE, ALICE]


def test_three_keys_take_turns(store: JobStore, runs: Runs) -> None:
    for owner in (ALICE, ALICE, ALICE, BOB, BOB, CAROL, CAROL):
        queued(store, owner)
    assert claim_order(store, runs) == [ALICE, BOB, CAROL, ALICE, BOB, CAROL, ALICE]


def test_a_key_that_was_just_served_goes_behind_one_that_waits(store: JobStore, runs: Runs) -> None:
    queued(store, ALICE)
    queued(store, BOB)
    assert runs.claim("worker-1").record.owner == ALICE  # type: ignore[union-attr]
    queued(store, ALICE)
    assert claim_order(store, runs) == [BOB, ALICE]


def test_a_canceled_job_leaves_its_owners_turn_to_the_next_job(store: JobStore, runs: Runs) -> None:
    first, second = queued(store, ALICE), queued(store, ALICE)
    store.cancel(first.id, ALICE)
    run = runs.claim("worker-1")
    assert run is not None and run.job_id == second.id
