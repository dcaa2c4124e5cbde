"""Waiting for something to happen, by polling against a deadline: never a fixed sleep as synchronisation."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.support import PATIENCE_SECONDS


def eventually(
    condition: Callable[[], object], failure: str | Callable[[], str], *, seconds: float = PATIENCE_SECONDS
) -> None:
    """Return once ``condition()`` is true; fail the test with ``failure`` (a message, or a function that makes
    one, such as a process's log) if it is not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(failure if isinstance(failure, str) else failure())
        time.sleep(0.05)
