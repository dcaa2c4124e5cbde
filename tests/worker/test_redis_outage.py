"""Redis unreachable around a run: its outcome waits for Redis to come back, and its message is never dropped."""

from __future__ import annotations

import pytest
import redis
from celery.exceptions import Reject

from worker import tasks


def test_an_outcome_is_recorded_once_redis_answers_again() -> None:
    attempts: list[int] = []

    def write() -> None:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise redis.ConnectionError("Connection refused")

    tasks._record_outcome("a-job", write, patience=10)
    assert len(attempts) == 3


def test_an_outcome_redis_never_takes_is_given_up_after_the_patience() -> None:
    def write() -> None:
        raise redis.ConnectionError("Connection refused")

    with pytest.raises(redis.ConnectionError):
        tasks._record_outcome("a-job", write, patience=0.5)


def test_a_job_whose_outcome_redis_cannot_take_goes_back_to_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    def redis_gone(*args: object, **kwargs: object) -> None:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(tasks, "runtime", lambda: None)
    monkeypatch.setattr(tasks, "run_job", redis_gone)
    monkeypatch.setattr(tasks, "REDIS_RETRY_SECONDS", 0)
    with pytest.raises(Reject) as rejected:
        tasks.stylize_job("a-job")
    assert rejected.value.requeue
