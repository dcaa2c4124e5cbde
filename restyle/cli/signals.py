"""SIGTERM (``docker stop``, systemd) as a clean stop of a server run in this process, ending in status 0."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


@contextlib.contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """Make a SIGTERM (``docker stop``) a clean stop of the uvicorn server run inside.

    uvicorn shuts down gracefully on SIGTERM, then re-raises it to the handler it found at start-up: with the
    default one, that kills the process (status 143) after the graceful part. Ours unwinds to here instead.
    """
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        yield
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
