"""The limits a connection is held to, from the settings, and the deadline a request's parts must meet.

A request's headers, and then its body, must arrive within ``read_timeout`` plus their size at ``min_rate``,
and with no pause longer than ``read_timeout``: a client that keeps to the minimum rate is never cut off,
however large its upload (the total time scales with the size allowed, at most ``max_header_bytes`` and
``RESTYLE_MAX_UPLOAD_BYTES``), while one that trickles a byte at a time is cut about ``read_timeout`` after
it began, whatever length it declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.connections.forwarded import TrustedProxies
from restyle.settings import Settings

# What a connection refused for load is told to wait: a slot frees as soon as any connection ends, usually
# within seconds; the same wait as a refusal for a dependency's short outage.
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class ConnectionLimits:
    """The settings' ``http_…`` limits and trusted proxies, in the form the protocol uses."""

    read_timeout: float
    min_rate: float
    max_header_bytes: int
    max_connections: int
    max_connections_per_client: int
    max_uploads_per_client: int
    trusted_proxies: TrustedProxies

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            read_timeout=settings.http_read_timeout,
            min_rate=settings.http_min_rate,
            max_header_bytes=settings.http_max_header_bytes,
            max_connections=settings.http_max_connections,
            max_connections_per_client=settings.http_max_connections_per_client,
            max_uploads_per_client=settings.http_max_uploads_per_client,
            trusted_proxies=TrustedProxies(settings.trusted_proxies),
        )

    def deadline(self, started: float, last_read: float, received: int) -> float:
        """When a part (headers or body) begun at ``started``, of which ``received`` bytes came, the last at
        ``last_read``, is late: at the read timeout after its last byte, or once it falls behind the minimum
        rate after the read timeout's grace, whichever is first."""
        return min(last_read + self.read_timeout, started + self.read_timeout + received / self.min_rate)
