"""The HTTP edge: connections a slow or greedy client cannot hold (see ``protocol``), per-client counts
(``tally``), client addresses behind trusted proxies (``forwarded``) and the limits themselves (``limits``)."""

from api.connections.limits import ConnectionLimits
from api.connections.protocol import GuardedProtocol

__all__ = ["ConnectionLimits", "GuardedProtocol"]
