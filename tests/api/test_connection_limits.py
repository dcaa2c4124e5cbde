"""The connection layer's parts on their own: deadlines, per-client counts, client addresses behind proxies,
and the raw problem responses."""

from __future__ import annotations

import json

import pytest

from api.connections.forwarded import TrustedProxies, client_key
from api.connections.limits import ConnectionLimits
from api.connections.tally import ClientTally, Held
from api.problems import TooManyConnections, http_response
from restyle.settings import Settings

LIMITS = ConnectionLimits.from_settings(Settings(http_read_timeout=30, http_min_rate=4096))


def test_a_part_that_keeps_to_the_minimum_rate_has_until_its_size_at_that_rate_after_the_grace() -> None:
    fifty_mib = 50 * 2**20
    # Received at exactly the minimum rate after the grace, the last byte arrives on the deadline.
    finished = 30 + fifty_mib / 4096
    assert LIMITS.deadline(started=0, last_read=finished, received=fifty_mib) == pytest.approx(finished)


def test_a_trickle_is_late_about_a_read_timeout_after_it_began() -> None:
    # A byte every 2 s: after 30 s, 15 bytes, worth under 4 ms at the minimum rate.
    assert LIMITS.deadline(started=0, last_read=30, received=15) == pytest.approx(30, abs=0.01)


def test_a_pause_as_long_as_the_read_timeout_is_late_however_far_ahead_the_client_was() -> None:
    assert LIMITS.deadline(started=0, last_read=10, received=10_000_000) == 40


def test_a_count_is_held_up_to_its_limit_and_each_release_counts_once() -> None:
    tally = ClientTally()
    slots = [tally.take(Held.CLIENT_CONNECTION, "192.0.2.1", 2) for _ in range(3)]
    assert slots[2] is None
    assert tally.take(Held.CLIENT_CONNECTION, "192.0.2.2", 2) is not None  # another address counts apart
    held = [slot for slot in slots if slot is not None]
    held[0].release()
    held[0].release()
    assert tally.held(Held.CLIENT_CONNECTION, "192.0.2.1") == 1
    held[1].release()
    assert tally.held(Held.CLIENT_CONNECTION, "192.0.2.1") == 0


PROXIES = TrustedProxies(["10.0.0.0/8", "192.0.2.5"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("198.51.100.1", [b"203.0.113.9"], "198.51.100.1"),  # not a proxy: its header is anybody's
        ("192.0.2.5", [], "192.0.2.5"),  # a proxy that names nobody
        ("192.0.2.5", [b"203.0.113.9"], "203.0.113.9"),
        ("10.1.2.3", [b"203.0.113.66, 203.0.113.9, 10.9.9.9"], "203.0.113.9"),  # the right-most untrusted
        ("10.1.2.3", [b"203.0.113.66", b"203.0.113.9:4711"], "203.0.113.9"),  # headers repeated; a port
        ("10.1.2.3", [b"[2001:db8::1]:4711"], "2001:db8::1"),
        ("10.1.2.3", [b"10.0.0.7, 192.0.2.5"], "10.0.0.7"),  # all trusted: the left-most
    ],
)
def test_the_client_behind_trusted_proxies(peer: str, forwarded_for: list[bytes], client: str) -> None:
    assert PROXIES.client(peer, forwarded_for) == client


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # one client may hold a whole /64
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("", ""),  # a Unix socket's peer
    ],
)
def test_clients_are_counted_by_address_and_by_ipv6_network(host: str, key: str) -> None:
    assert client_key(host) == key


def test_a_raw_refusal_is_a_whole_problem_response_that_closes_the_connection() -> None:
    raw = http_response(TooManyConnections("too many", headers={"Retry-After": "5"}))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 429 Too Many Requests"
    assert {"content-type: application/problem+json", "connection: close", "Retry-After: 5"} <= set(lines)
    assert f"content-length: {len(body)}" in lines
    assert json.loads(body) == {
        "type": "urn:restyle:problem:too_many_connections",
        "title": "Too many connections from this client",
        "status": 429,
        "code": "too_many_connections",
        "detail": "too many",
    }
