"""What one server holds for its clients: open connections, in all and per client address, and uploads in
flight per address. Counted in the event loop's thread only, so without locks."""

from __future__ import annotations

from collections import Counter
from enum import Enum


class Held(Enum):
    """Kinds of things a client holds, each with a limit of its own."""

    CONNECTION = "connection"  # admitted connections of every client (the key is empty)
    CLIENT_CONNECTION = "client connection"  # per client address
    CLIENT_UPLOAD = "client upload"  # request bodies being received, per client address
    REFUSAL = "refusal"  # refused connections still being drained before they close (the key is empty)


class Slot:
    """One thing held; given back once, however often ``release`` is called."""

    __slots__ = ("_counts", "_key")

    def __init__(self, counts: Counter[tuple[Held, str]], key: tuple[Held, str]) -> None:
        self._counts: Counter[tuple[Held, str]] | None = counts
        self._key = key

    def release(self) -> None:
        if self._counts is not None:
            self._counts[self._key] -= 1
            if self._counts[self._key] <= 0:
                del self._counts[self._key]  # an address that left costs no memory
            self._counts = None


class ClientTally:
    """The counts of one server's connections; a ``Slot`` is taken only while its count is under its limit."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[Held, str]] = Counter()

    def take(self, kind: Held, client: str, limit: int) -> Slot | None:
        key = (kind, client)
        if self._counts[key] >= limit:
            if not self._counts[key]:
                del self._counts[key]
            return None
        self._counts[key] += 1
        return Slot(self._counts, key)

    def held(self, kind: Held, client: str = "") -> int:
        return self._counts.get((kind, client), 0)
