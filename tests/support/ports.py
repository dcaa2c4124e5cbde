"""Stands in for a port picked by hand: a loopback TCP port that nothing listens on at the moment of asking
(something else may take it before the caller binds it)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
