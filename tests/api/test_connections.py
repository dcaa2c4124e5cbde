"""The edge bounds its clients: slow clients are cut off at their deadline, connections and uploads are capped in
all and per client address, and every refusal is a problem.

Every test talks to a real ``restyle api`` process over raw loopback sockets, as a hostile client would. The
server listens on 127.0.0.1; a socket bound to 127.0.0.2 (Linux routes all of 127.0.0.0/8 to loopback) is
another client, and one bound to 127.0.0.3 is a trusted reverse proxy where a test says so.
"""

from __future__ import annotations

import io
import json
import random
import select
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image

from restyle.settings import Settings
from tests.api.conftest import ApiProcess
from tests.support import PATIENCE_SECONDS
from tests.support.pictures import make_png
from tests.support.settings import MakeSettings

READ_TIMEOUT = 2.0
# Low enough that a test's own tiny bodies are not what decides a deadline, high enough that a byte every
# TRICKLE_SECONDS keeps far behind it: such a body is cut READ_TIMEOUT after its headers (plus 1 % of that).
MIN_RATE = 512
MAX_HEADER_BYTES = 1024
# A byte this often never leaves a pause of READ_TIMEOUT: only the minimum rate can cut such a client off.
TRICKLE_SECONDS = 0.25
PER_CLIENT_CONNECTIONS = 3
PER_CLIENT_UPLOADS = 2
# A loaded machine may be late to close; closing more than this early would be a bug all the same.
SLACK = 2.0
EARLY = 0.5
# The bar for health probes while clients misbehave.
PROBE_SECONDS = 1.0
ANOTHER_CLIENT = "127.0.0.2"
PROXY = "127.0.0.3"


@pytest.fixture(scope="module")
def guarded_api(make_settings: MakeSettings, start_api_process: Callable[[Settings], ApiProcess]) -> ApiProcess:
    return start_api_process(
        make_settings(
            api_keys=[], http_read_timeout=READ_TIMEOUT, http_min_rate=MIN_RATE, http_max_header_bytes=MAX_HEADER_BYTES
        )
    )


@pytest.fixture(scope="module")
def limited_api(make_settings: MakeSettings, start_api_process: Callable[[Settings], ApiProcess]) -> ApiProcess:
    """Small per-client caps, and a trusted proxy on PROXY."""
    return start_api_process(
        make_settings(
            api_keys=[],
            http_read_timeout=READ_TIMEOUT,
            http_min_rate=MIN_RATE,
            http_max_connections_per_client=PER_CLIENT_CONNECTIONS,
            http_max_uploads_per_client=PER_CLIENT_UPLOADS,
            trusted_proxies=[PROXY],
        )
    )


@pytest.fixture(scope="module")
def capped_api(make_settings: MakeSettings, start_api_process: Callable[[Settings], ApiProcess]) -> ApiProcess:
    """At most three connections; idle ones are not cut off during a test."""
    return start_api_process(make_settings(api_keys=[], http_max_connections=3, http_read_timeout=60))


def connect(api: ApiProcess, first: bytes = b"", source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), source_address=(source, 0))
    sock.sendall(first)
    return sock


def client_from(api: ApiProcess, source: str, timeout: float = PROBE_SECONDS) -> httpx.Client:
    return httpx.Client(
        base_url=api.url, transport=httpx.HTTPTransport(local_address=source), timeout=timeout, headers={}
    )


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


def trickle_all(socks: list[socket.socket]) -> list[tuple[float, bytes]]:
    """``until_closed`` for each socket at once, each sent a byte every TRICKLE_SECONDS."""
    with ThreadPoolExecutor(len(socks)) as pool:
        return list(pool.map(lambda sock: until_closed(sock, b"x", TRICKLE_SECONDS), socks))


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


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        """The problem document, checked to be one."""
        assert self.headers["content-type"] == "application/problem+json"
        document: dict[str, object] = json.loads(self.body)
        assert document["status"] == self.status
        assert document["type"] == f"urn:restyle:problem:{document['code']}"
        return document


def parse(raw: bytes) -> Answer:
    """The one response in ``raw`` (what a refused or cut-off connection was sent before it closed)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body)


def multipart_job(picture: bytes | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of a valid job submission, for sending by hand."""
    request = httpx.Request(
        "POST",
        "http://api/v1/jobs",
        data={"size": "32", "iterations": "3"},
        files=[
            ("content", ("photo.png", picture or make_png(), "image/png")),
            ("style", ("art.png", make_png(seed=1), "image/png")),
        ],
    )
    return {"Content-Type": request.headers["Content-Type"]}, request.read()


def noise_png(side: int) -> bytes:
    """A picture that does not compress: its PNG is about 3 bytes a pixel."""
    rng = random.Random(side)
    picture = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def post_head(length: int, headers: dict[str, str], extra: dict[str, str] | None = None) -> bytes:
    lines = [f"{name}: {value}\r\n" for name, value in {**headers, **(extra or {})}.items()]
    return f"POST /v1/jobs HTTP/1.1\r\nHost: api\r\nContent-Length: {length}\r\n{''.join(lines)}\r\n".encode()


def trickled_upload(extra: dict[str, str] | None = None) -> bytes:
    """The start of a job submission that a trickler never finishes: its headers (the length declared is far
    more than a test sends) and the start of a file part, whose contents the trickled bytes then are."""
    head = post_head(1 << 16, {"Content-Type": "multipart/form-data; boundary=b"}, extra)
    return head + b'--b\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n\r\n'


def answered(sock: socket.socket) -> socket.socket:
    """``sock`` once its request is answered 200 (the server has taken it, and keeps it alive)."""
    sock.settimeout(SLACK)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    return sock


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"


# Deadlines --------------------------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_answered_408_and_closed_at_the_read_timeout(
    guarded_api: ApiProcess,
) -> None:
    seconds, answer = until_closed(connect(guarded_api))
    assert READ_TIMEOUT - EARLY < seconds < READ_TIMEOUT + SLACK
    assert parse(answer).status == 408
    assert parse(answer).problem()["code"] == "request_timeout"


def test_headers_trickled_a_line_at_a_time_are_cut_off_at_their_deadline(guarded_api: ApiProcess) -> None:
    sock = connect(guarded_api, b"GET /healthz HTTP/1.1\r\nHost: api\r\n")
    # 22 bytes/s against MIN_RATE: cut at READ_TIMEOUT / (1 - 22 / 512), 4 % past the read timeout.
    seconds, answer = until_closed(sock, trickle=b"X-Slow: 1\r\n")
    assert READ_TIMEOUT - EARLY < seconds < READ_TIMEOUT + SLACK
    assert parse(answer).problem()["code"] == "request_timeout"


def test_headers_over_the_limit_are_answered_431(guarded_api: ApiProcess) -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (number, b"f" * 100) for number in range(MAX_HEADER_BYTES // 100 + 1))
    seconds, answer = until_closed(connect(guarded_api, b"GET /healthz HTTP/1.1\r\nHost: api\r\n" + filler))
    assert seconds < SLACK  # at once, not at a deadline
    assert parse(answer).problem()["code"] == "headers_too_large"


def test_what_the_parser_cannot_read_is_answered_400_problem(guarded_api: ApiProcess) -> None:
    seconds, answer = until_closed(connect(guarded_api, b"\x00\x01 not http\r\n\r\n"))
    assert seconds < SLACK
    assert parse(answer).problem()["code"] == "bad_request"


def test_a_body_that_stalls_is_cut_off_at_the_read_timeout(guarded_api: ApiProcess) -> None:
    headers, body = multipart_job()
    sock = connect(guarded_api, post_head(len(body), headers) + body[:100])
    seconds, answer = until_closed(sock)
    assert READ_TIMEOUT - EARLY < seconds < READ_TIMEOUT + SLACK
    assert parse(answer).problem()["code"] == "request_timeout"


def test_a_body_trickled_below_the_minimum_rate_is_cut_off_though_it_never_pauses(guarded_api: ApiProcess) -> None:
    """The slowloris of the issue: a byte at a time, each well within the read timeout of the one before."""
    [(seconds, answer)] = trickle_all([connect(guarded_api, trickled_upload())])
    assert READ_TIMEOUT - EARLY < seconds < READ_TIMEOUT + SLACK
    assert parse(answer).problem()["code"] == "request_timeout"


def test_a_body_that_keeps_to_the_minimum_rate_is_accepted_though_it_takes_longer_than_the_read_timeout(
    guarded_api: ApiProcess,
) -> None:
    headers, body = multipart_job(noise_png(64))  # about 12 KB
    sock = connect(guarded_api, post_head(len(body), headers))
    pieces = 6
    step = -(-len(body) // pieces)
    assert step > 2 * MIN_RATE * READ_TIMEOUT / 2  # each piece twice what the minimum rate asks for its pause
    for start in range(0, len(body), step):
        time.sleep(READ_TIMEOUT / 2)  # the client's pace, under test: three times the read timeout in all
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
    time.sleep(READ_TIMEOUT + SLACK)  # a window in which the server must not close it, not a synchronisation
    assert is_open(sock)
    sock.close()


# Limits per client ------------------------------------------------------------------------------------------


@pytest.fixture
def another_client(limited_api: ApiProcess) -> Iterator[httpx.Client]:
    with client_from(limited_api, ANOTHER_CLIENT) as http:
        yield http


def readable(socks: list[socket.socket], count: int) -> None:
    """Until ``count`` of ``socks`` have something to read (or have been closed)."""
    deadline = time.monotonic() + SLACK
    while len(select.select(socks, [], [], 0.05)[0]) < count:
        assert time.monotonic() < deadline, "the server did not answer"


def test_one_client_cannot_hold_the_house(limited_api: ApiProcess, another_client: httpx.Client) -> None:
    """More body tricklers from one address than it may hold: the excess is refused at once, each one admitted
    is cut at its deadline, and meanwhile the health probe and a job of another address are served."""
    tricklers = [connect(limited_api) for _ in range(PER_CLIENT_CONNECTIONS + 2)]
    # The two over the cap are answered as they connect; only then do all send, so that the three admitted hold
    # their connections when the others arrive (one refused for its upload would free its own).
    readable(tricklers, 2)
    for sock in tricklers:
        sock.sendall(trickled_upload())
    with ThreadPoolExecutor(1) as pool:
        outcomes = pool.submit(trickle_all, tricklers)
        headers, body = multipart_job()
        submitted = another_client.post("/v1/jobs", content=body, headers=headers, timeout=PATIENCE_SECONDS)
        assert submitted.status_code == 202, submitted.text
        probes = 0
        while not outcomes.done():
            assert another_client.get("/healthz").status_code == 200  # within PROBE_SECONDS, or it raises
            probes += 1
            time.sleep(0.2)  # a probe's pace, not a synchronisation
        results = outcomes.result()
    assert probes >= READ_TIMEOUT / 0.2 / 2  # probed all along (half of the rounds, for a loaded machine)

    answers = [(seconds, parse(raw)) for seconds, raw in results]
    codes = sorted(str(answer.problem()["code"]) for _, answer in answers)
    # Two connections over the per-client cap; of the three admitted, one upload over the per-client cap.
    assert codes == ["request_timeout"] * 2 + ["too_many_connections"] * 2 + ["too_many_uploads"]
    for seconds, answer in answers:
        if answer.status == 408:
            assert READ_TIMEOUT - EARLY < seconds < READ_TIMEOUT + SLACK
        else:
            assert answer.status == 429
            assert seconds < SLACK  # refused at once, not held until a deadline
            assert int(answer.headers["retry-after"]) > 0


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_caps(
    limited_api: ApiProcess, another_client: httpx.Client
) -> None:
    forwarded_for = {"X-Forwarded-For": "203.0.113.99, 198.51.100.7"}  # the right-most: what the proxy saw
    uploads = [connect(limited_api, trickled_upload(forwarded_for), source=PROXY) for _ in range(PER_CLIENT_UPLOADS)]
    with client_from(limited_api, PROXY) as proxy:
        deadline = time.monotonic() + SLACK
        # Until the server has read the uploads' headers (they are held from then on).
        while (refused := proxy.post("/v1/jobs", content=b"x", headers=forwarded_for)).status_code != 429:
            assert time.monotonic() < deadline, refused.text
        assert refused.json()["code"] == "too_many_uploads"
        assert int(refused.headers["retry-after"]) > 0
        other = proxy.post("/v1/jobs", content=b"x", headers={"X-Forwarded-For": "198.51.100.8"})
        assert other.status_code == 415  # the app's answer: this client may upload
    # A client that forges the header is its own address still.
    forged = another_client.post("/v1/jobs", content=b"x", headers=forwarded_for)
    assert forged.status_code == 415
    for sock in uploads:
        sock.close()


def test_health_is_answered_while_slow_clients_hold_their_most_connections(limited_api: ApiProcess) -> None:
    slow = [connect(limited_api, b"GET / HTTP/1.1\r\nHost: api\r\n") for _ in range(50)]
    deadline = time.monotonic() + READ_TIMEOUT + SLACK
    with client_from(limited_api, ANOTHER_CLIENT) as http:
        while time.monotonic() < deadline:
            assert http.get("/healthz").status_code == 200
            time.sleep(0.1)
    assert not any(is_open(sock) for sock in slow)
    for sock in slow:
        sock.close()


# Limits in all ----------------------------------------------------------------------------------------------


def test_http_max_connections_are_served_at_once(capped_api: ApiProcess) -> None:
    held = [answered(connect(capped_api, HEALTHZ)) for _ in range(2)]  # kept alive: they count
    assert httpx.get(f"{capped_api.url}/healthz").status_code == 200
    for sock in held:
        sock.close()


def test_a_connection_beyond_http_max_connections_is_answered_503_problem(capped_api: ApiProcess) -> None:
    held = [answered(connect(capped_api, HEALTHZ)) for _ in range(3)]
    refused = httpx.get(f"{capped_api.url}/healthz")
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "server_busy"
    assert int(refused.headers["retry-after"]) > 0
    for sock in held:
        sock.close()
