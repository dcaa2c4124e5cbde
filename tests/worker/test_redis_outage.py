"""Redis unreachable around a run: a claim or an outcome waits for Redis to come back, however long it takes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis
from celery.exceptions import Reject

from worker import tasks


class _State:
    """The one thing ``_retry_through_redis_outage`` asks of the runtime: whether the worker is shutting down."""

    def __init__(self) -> None:
        self.stopping = threading.Event()


def flaky(failures: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def write() -> str:
        calls.append(len(calls))
        if len(calls) <= failures:
            raise redis.ConnectionError("Connection refused")
        return "written"

    return calls, write


def test_a_write_lands_once_redis_answers_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "REDIS_RETRY_SECONDS", 0.01)
    calls, write = flaky(failures=5)
    assert tasks._retry_through_redis_outage(write, "write", _State()) == "written"  # type: ignore[arg-type]  # a stand-in state
    assert len(calls) == 6


def test_a_claim_waiting_for_redis_gives_way_to_a_shutdown() -> None:
    state = _State()
    state.stopping.set()
    _, write = flaky(failures=1)
    with pytest.raises(tasks._ShuttingDown):
        tasks._retry_through_redis_outage(write, "claim a job", state)  # type: ignore[arg-type]


def test_an_outcome_waiting_for_redis_is_kept_through_a_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "REDIS_RETRY_SECONDS", 0.01)
    state = _State()
    state.stopping.set()
    _, write = flaky(failures=3)
    assert tasks._retry_through_redis_outage(write, "record", state, give_up_when_stopping=False) == "written"  # type: ignore[arg-type]


def test_a_message_whose_claim_redis_cannot_take_goes_back_to_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    class Runs:
        def claim(self, worker: str) -> None:
            raise redis.ConnectionError("Connection refused")

    state = _State()
    state.stopping.set()
    state.runs = Runs()  # type: ignore[attr-defined]
    monkeypatch.setattr(tasks, "runtime", lambda: state)
    with pytest.raises(Reject) as rejected:
        tasks.stylize_job()
    assert rejected.value.requeue
