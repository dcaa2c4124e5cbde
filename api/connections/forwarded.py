"""Which address a request comes from: the peer's, or, when the peer is a trusted reverse proxy, the client's
that the proxy put in ``X-Forwarded-For``.

The rule is uvicorn's (``--forwarded-allow-ips``), which the API is given the same list for, so that the
address the connection limits count and the one the app and its access log see are the same: the right-most
entry that is not a trusted proxy (each proxy appends the address it was reached from, so entries to its
left are whatever the client chose to send), or the left-most entry when every one is trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache


class TrustedProxies:
    """The reverse proxies whose ``X-Forwarded-For`` is believed: addresses and CIDRs (``10.0.0.5``,
    ``10.0.0.0/8``, ``fd00::/8``), as the settings checked them; none by default."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(network) for network in networks)
        # A proxy's few addresses recur on every request; a bound keeps forged entries from growing the cache.
        self.trusts = lru_cache(maxsize=1024)(self._trusts)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def _trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[bytes]) -> str:
        """The client address of a request from ``peer`` with these ``X-Forwarded-For`` header values."""
        if not self.trusts(peer):
            return peer
        hosts = [_host(entry) for value in forwarded_for for entry in value.decode("latin-1").split(",")]
        hosts = [host for host in hosts if host]
        for host in reversed(hosts):
            if not self.trusts(host):
                return host
        return hosts[0] if hosts else peer


def client_key(host: str) -> str:
    """What a client's connections are counted under: its IPv4 address, or its IPv6 address's /64 (one
    subscriber's or host's network, whose 2^64 addresses one client may use as it likes)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host


def _host(entry: str) -> str:
    """``203.0.113.7``, ``203.0.113.7:4711``, ``[2001:db8::1]:4711`` or ``2001:db8::1``, without the port."""
    entry = entry.strip()
    if entry.startswith("["):
        return entry[1 : entry.find("]")] if "]" in entry else entry
    if entry.count(":") == 1:
        return entry.split(":")[0]
    return entry
