"""The edge bounds its clients: slow clients are cut off at the read timeout, connections are capped.

Every test talks to a real ``restyle api`` process over raw loopback sockets, as a hostile client would.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from restyle.settings import Settings
from tests.api.conftest import ApiProcess
from tests.conftest import MakeSettings, make_png

READ_TIMEOUT = 2.0
# A loaded machine may be late to close; closing more than this early would be a bug all the same.
SLACK = 2.0
EARLY = 0.5


@pytest.fixture(scope="module")
def guarded_api(make_settings: MakeSettings, start_api_process: Callable[[Settings], ApiProcess]) -> ApiProcess:
    return start_api_process(make_settings(api_keys=[], http_read_timeout=READ_TIMEOUT))


@pytest.fixture(scope="module")
def capped_api(make_settings: MakeSettings, start_api_process: Callable[[Settings], ApiProcess]) -> ApiProcess:
    """At most three connections; idle ones are not cut off during a test."""
    return start_api_process(make_settings(api_keys=[], http_max_connections=3, http_read_timeout=60))


def connect(api: ApiProcess, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port))
    sock.sendall(first)
    return sock


def until_closed(sock: socket.socket, trickle: bytes = b"", every: float = 0.5) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock``, and what it sent; sends ``trickle`` every ``every`` seconds
    meanwhile. Gives up (the test then fails on the time) well past the read timeout."""
    started, received = time.monotonic(), b""
    while time.monotonic() - started < READ_TIMEOUT + 3 * SLACK:
        readable, _, _ = select.select([sock], [], [], every)
        try:
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            elif trickle:
                sock.sendall(trickle)
        except (ConnectionResetError, BrokenPipeError):
            break
    sock.close()
    return time.monotonic() - started, received


def is_open(sock: socket.socket) -> bool:
    """Whether the server has not closed ``sock``; reads (and drops) what it has sent so far."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    return False


def multipart_job() -> tuple[dict[str, str], bytes]:
    """Headers and body of a valid job submission, for sending by hand."""
    request = httpx.Request(
        "POST",
        "http://api/v1/jobs",
        data={"size": "32", "iterations": "3"},
        files=[
            ("content", ("photo.png", make_png(), "image/png")),
            ("style", ("art.png", make_png(seed=1), "image/png")),
        ],
    )
    return {"Content-Type": request.headers["Content-Type"]}, request.read()


def post_head(length: int, headers: dict[str, str]) -> bytes:
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    return f"POST /v1/jobs HTTP/1.1\r\nHost: api\r\nContent-Length: {length}\r\n{''.join(lines)}\r\n".encode()


def test_a_connection_that_sends_nothing_is_answered_408_and_closed_at_the_read_timeout(
    guarded_api: ApiProcess,
) -> None:
    seconds, answer = until_closed(connect(guarded_api))
    assert READ_TIMEOUT - EARLY < seconds < READ_TIMEOUT + SLACK
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_headers_trickled_a_line_at_a_time_are_cut_off_at_the_read_timeout(guarded_api: ApiProcess) -> None:
    sock = connect(guarded_api, b"GET /healthz HTTP/1.1\r\nHost: api\r\n")
    seconds, answer = until_closed(sock, trickle=b"X-Slow: 1\r\n")
    assert READ_TIMEOUT - EARLY < seconds < READ_TIMEOUT + SLACK
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_body_that_stalls_is_cut_off_at_the_read_timeout(guarded_api: ApiProcess) -> None:
    headers, body = multipart_job()
    sock = connect(guarded_api, post_head(len(body), headers) + body[:100])
    seconds, answer = until_closed(sock)
    assert READ_TIMEOUT - EARLY < seconds < READ_TIMEOUT + SLACK
    assert not answer.startswith(b"HTTP/1.1 2")


def test_a_body_that_takes_longer_than_the_timeout_but_never_pauses_as_long_is_accepted(
    guarded_api: ApiProcess,
) -> None:
    headers, body = multipart_job()
    sock = connect(guarded_api, post_head(len(body), headers))
    pieces = 6
    step = -(-len(body) // pieces)
    for start in range(0, len(body), step):
        time.sleep(READ_TIMEOUT / 2)  # in all, three times the read timeout
        sock.sendall(body[start : start + step])
    sock.settimeout(READ_TIMEOUT + SLACK)
    assert sock.recv(65536).startswith(b"HTTP/1.1 202 ")
    sock.close()


def test_a_response_may_take_longer_than_the_read_timeout(guarded_api: ApiProcess) -> None:
    with httpx.Client(base_url=guarded_api.url) as http:
        job_id = http.post(
            "/v1/jobs",
            data={"size": "32", "iterations": "3"},
            files=[
                ("content", ("p.png", make_png(), "image/png")),
                ("style", ("s.png", make_png(seed=1), "image/png")),
            ],
        ).json()["id"]
    sock = connect(guarded_api, f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: api\r\n\r\n".encode())
    sock.settimeout(READ_TIMEOUT)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")  # the job stays queued: its stream stays open
    time.sleep(READ_TIMEOUT + SLACK)
    assert is_open(sock)
    sock.close()


def test_healthz_answers_while_slow_clients_hold_connections(guarded_api: ApiProcess) -> None:
    slow = [connect(guarded_api, b"GET / HTTP/1.1\r\nHost: api\r\n") for _ in range(50)]
    deadline = time.monotonic() + READ_TIMEOUT + SLACK
    with httpx.Client(base_url=guarded_api.url, timeout=1.0) as http:
        while time.monotonic() < deadline:
            assert http.get("/healthz").status_code == 200
            time.sleep(0.1)
    assert not any(is_open(sock) for sock in slow)
    for sock in slow:
        sock.close()


def test_http_max_connections_are_served_at_once(capped_api: ApiProcess) -> None:
    idle = [connect(capped_api) for _ in range(2)]
    time.sleep(0.2)  # until the server has taken them
    assert httpx.get(f"{capped_api.url}/healthz").status_code == 200
    for sock in idle:
        sock.close()


def test_a_request_beyond_http_max_connections_is_answered_503(capped_api: ApiProcess) -> None:
    idle = [connect(capped_api) for _ in range(3)]
    time.sleep(0.2)
    assert httpx.get(f"{capped_api.url}/healthz").status_code == 503
    for sock in idle:
        sock.close()
