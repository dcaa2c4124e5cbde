"""uvicorn's httptools protocol with deadlines and per-client limits, so that slow or greedy clients cannot take
the API down.

uvicorn (0.55) bounds only the idle time between requests on a kept-alive connection (``timeout_keep_alive``,
whose timer any byte cancels), and counts connections only in all (``limit_concurrency``, answered with a
plain-text 503). A client that trickles a request a byte at a time keeps its connection for as long as it
likes, and one address could hold every connection there is (slowloris). This protocol adds:

- *Deadlines* (``ConnectionLimits.deadline``): while the connection waits for a request, its headers or its
  body, the client must send something at least every ``read_timeout`` and, after a grace of ``read_timeout``,
  keep to ``min_rate`` on average; headers over ``max_header_bytes`` are refused (431). The deadline stops
  once a request has arrived whole, so a response may take as long as it needs (an event stream lasts as long
  as its job). Past it the connection is answered ``408`` (unless a response was begun) and closed; a body cut
  off reaches the app as a disconnect.
- *Limits*: ``max_connections`` open connections in all (503 beyond), ``max_connections_per_client`` per
  client address (429) and ``max_uploads_per_client`` request bodies being received per address (429). A
  connection from a trusted proxy counts in all only; each of its requests counts for the client the proxy
  names, from its headers until its response is complete.

Refusals are problems (``api.problems.http_response``) with ``Retry-After`` where waiting helps. A connection
refused before its request was read gets its answer at once, and is drained a moment before it is closed, so
that the client, still sending its request, reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.connections.forwarded import client_key
from api.connections.limits import RETRY_AFTER_SECONDS, ConnectionLimits
from api.connections.tally import ClientTally, Held, Slot
from api.problems import (
    HeadersTooLarge,
    Problem,
    RequestTimeout,
    ServerBusy,
    TooManyConnections,
    TooManyUploads,
    http_response,
)
from restyle.settings import get_settings

log = logging.getLogger(__name__)

# How long a refused connection is read (and what it sends dropped) before it is closed: time for a client on
# a slow link to finish sending its request and read the refusal.
DRAIN_SECONDS = 2.0
_RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class Phase(enum.Enum):
    WAITING = "waiting"  # for a request: the connection's first, or the next after a response
    HEADERS = "headers"  # a request has begun, its headers are not complete
    BODY = "body"  # its headers are complete, its body is not
    ANSWERING = "answering"  # the request has arrived whole: no deadline
    REFUSED = "refused"  # answered with a refusal, being drained until it closes


class GuardedProtocol(HttpToolsProtocol):
    """httptools' protocol under ``limits``; ``configured`` makes the class for one server.

    Given to uvicorn as is (``--http api.connections:GuardedProtocol``), it takes its limits from the
    RESTYLE_… environment at its first connection.
    """

    limits: ClassVar[ConnectionLimits | None] = None
    tally: ClassVar[ClientTally] = ClientTally()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        cls = type(self)
        if cls.limits is None:
            cls.limits = ConnectionLimits.from_settings(get_settings())
        self._limits: ConnectionLimits = cls.limits
        self._timer: asyncio.TimerHandle | None = None
        self._phase = Phase.WAITING
        self._started = self._last_read = 0.0
        self._received = 0  # bytes of the part (headers or body) now arriving
        self._body_bytes = 0  # body bytes of every request so far: tells a read's header bytes from its body's
        self._peer = self._key = ""  # the peer's address; what its connections count under
        self._proxied = False
        self._held: list[Slot] = []  # for the connection's life
        self._requests: deque[Slot] = deque()  # a proxied client's, one per request until its response is complete
        self._upload: Slot | None = None

    @classmethod
    def configured(cls, limits: ConnectionLimits) -> type[GuardedProtocol]:
        """The protocol class for one server: uvicorn builds protocols from a class and its own Config alone."""
        return type(cls.__name__, (cls,), {"limits": limits, "tally": ClientTally()})

    # Deadlines ----------------------------------------------------------------------------------------------

    def _enter(self, phase: Phase) -> None:
        self._phase = phase
        self._started = self._last_read = self.loop.time()
        self._received = 0
        self._stop_timer()
        if phase in (Phase.WAITING, Phase.HEADERS, Phase.BODY):
            self._timer = self.loop.call_at(self._deadline(), self._deadline_passed)

    def _deadline(self) -> float:
        return self._limits.deadline(self._started, self._last_read, self._received)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline_passed(self) -> None:
        """The timer was set for the deadline as it stood; what arrived since may have moved it on."""
        self._timer = None
        if self.transport.is_closing() or self._phase not in (Phase.WAITING, Phase.HEADERS, Phase.BODY):
            return
        now = self.loop.time()
        if self.flow.read_paused:
            # We stopped reading (the app has not taken the body so far, or a pipelined request waits its
            # turn): the client is not the one who is late. Its clock starts again, as if it had kept time.
            self._started, self._last_read = now - self._received / self._limits.min_rate, now
        deadline = self._deadline()
        if deadline > now:
            self._timer = self.loop.call_at(deadline, self._deadline_passed)
            return
        log.info(
            "closing a connection from %s: too slow (%s: %d bytes in %.1f s)",
            self._peer,
            self._phase.value,
            self._received,
            now - self._started,
        )
        detail = (
            f"the request did not arrive in time (at least {self._limits.min_rate:g} bytes/s after "
            f"{self._limits.read_timeout:g} s, and no pause as long)"
        )
        self._close_with(RequestTimeout(detail))

    # Admission -----------------------------------------------------------------------------------------------

    def _admit_connection(self) -> Problem | None:
        """A refusal for a new connection, or None once its slots are held."""
        limits = self._limits
        slot = self.tally.take(Held.CONNECTION, "", limits.max_connections)
        if slot is None:
            return ServerBusy(
                f"the server holds its most connections ({limits.max_connections}); try again shortly",
                headers=_RETRY_AFTER,
            )
        self._held.append(slot)
        if self._proxied:
            return None  # its requests are counted for the clients its proxy names
        return self._admit_client(self._key)

    def _admit_client(self, client: str) -> Problem | None:
        limit = self._limits.max_connections_per_client
        slot = self.tally.take(Held.CLIENT_CONNECTION, client, limit)
        if slot is None:
            return TooManyConnections(
                f"this client address has {limit} connections open, the most one client may hold; close one, or "
                "send requests one after another on a connection you keep",
                headers=_RETRY_AFTER,
            )
        if self._proxied:
            self._requests.append(slot)
        else:
            self._held.append(slot)
        return None

    def _admit_request(self) -> Problem | None:
        """A refusal for the request whose headers have arrived, or None once its slots are held."""
        limits = self._limits
        client = self._key
        if self._proxied:
            forwarded = [value for name, value in self.headers if name == b"x-forwarded-for"]
            client = client_key(limits.trusted_proxies.client(self._peer, forwarded))
            refusal = self._admit_client(client)
            if refusal is not None:
                return refusal
        if len(self.tasks) >= limits.max_connections:
            # Requests whose clients have gone may still run (a long Prefer: wait); they count as connections.
            return ServerBusy(
                f"the server is answering its most requests ({limits.max_connections}); try again shortly",
                headers=_RETRY_AFTER,
            )
        if _has_body(self.headers):
            self._upload = self.tally.take(Held.CLIENT_UPLOAD, client, limits.max_uploads_per_client)
            if self._upload is None:
                return TooManyUploads(
                    f"this client address is sending {limits.max_uploads_per_client} request bodies already, "
                    "the most one client may send at once; send this one when one of them is done",
                    headers=_RETRY_AFTER,
                )
        return None

    def _release_request(self) -> None:
        if self._requests:
            self._requests.popleft().release()

    def _release_all(self) -> None:
        for slot in [*self._held, *self._requests, *([self._upload] if self._upload else [])]:
            slot.release()
        self._held.clear()
        self._requests.clear()
        self._upload = None

    # Refusals -----------------------------------------------------------------------------------------------

    def _answering(self) -> bool:
        """Whether a response (to this request or a pipelined earlier one) has begun or is being prepared."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return False
        # A request whose body is still coming has no answer yet: the app waits for the body.
        return cycle.response_started or self._phase is not Phase.BODY

    def _close_with(self, problem: Problem) -> None:
        """Answer ``problem`` and close, unless a response was begun: that one is cut short instead."""
        answering = self._answering()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app (waiting for a body) sees a disconnect, and whatever it answers is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self._phase = Phase.REFUSED
        self._stop_timer()
        self._release_all()
        if answering:
            self.transport.close()
            return
        self.transport.write(http_response(problem))
        drain = self.tally.take(Held.REFUSAL, "", self._limits.max_connections)
        if drain is None or not self.transport.can_write_eof():
            # Under a flood of refusals, each is closed at once rather than drained: fewer sockets held.
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self._held.append(drain)
        self._timer = self.loop.call_later(DRAIN_SECONDS, self.transport.close)

    # uvicorn's protocol --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._peer = self.client[0] if self.client else ""
        self._proxied = self._limits.trusted_proxies.trusts(self._peer)
        self._key = client_key(self._peer)
        refusal = self._admit_connection()
        if refusal is not None:
            log.info("refused a connection from %s: %s", self._peer, refusal.code)
            self._close_with(refusal)
            return
        self._enter(Phase.WAITING)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self._release_all()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase is Phase.REFUSED:
            return  # drained: the client is told already
        body_bytes = self._body_bytes
        super().data_received(data)
        if self._phase is Phase.HEADERS:
            # All that was read but body belongs to headers (of this request; rarely, with pipelining, of the
            # one before it too: an overcount by one request's headers at most).
            self._received += len(data) - (self._body_bytes - body_bytes)
            self._last_read = self.loop.time()
            if self._received > self._limits.max_header_bytes:
                self._close_with(
                    HeadersTooLarge(f"the request line and headers exceed {self._limits.max_header_bytes:,} bytes")
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase is not Phase.REFUSED:
            self._enter(Phase.HEADERS)

    def on_headers_complete(self) -> None:
        if self._phase is Phase.REFUSED:
            return
        refusal = self._admit_request()
        if refusal is not None:
            log.info("refused a request from %s: %s", self._peer, refusal.code)
            self._close_with(refusal)
            return
        super().on_headers_complete()
        self._enter(Phase.BODY)

    def on_body(self, body: bytes) -> None:
        if self._phase is Phase.REFUSED:
            return
        super().on_body(body)
        self._body_bytes += len(body)
        self._received += len(body)
        self._last_read = self.loop.time()

    def on_message_complete(self) -> None:
        if self._phase is Phase.REFUSED:
            return
        super().on_message_complete()
        if self._upload is not None:
            self._upload.release()
            self._upload = None
        if self.cycle is not None and self.cycle.response_complete:
            # Answered before the body was read (a 413): the connection now waits for the next request.
            self._enter(Phase.WAITING)
        else:
            self._enter(Phase.ANSWERING)

    def on_response_complete(self) -> None:
        awaits_next_request = not self.pipeline
        self._release_request()
        super().on_response_complete()
        if awaits_next_request and not self.transport.is_closing() and self._phase is Phase.ANSWERING:
            self._enter(Phase.WAITING)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to what its parser cannot read, as a problem.
        self._close_with(Problem(f"the request is not HTTP/1.1 the server can read ({msg.rstrip('.').lower()})"))

    def handle_websocket_upgrade(self) -> None:
        # The connection passes to a WebSocket protocol with timeouts of its own (and uncounted: the API has
        # no WebSocket routes, so the app refuses it at once).
        self._stop_timer()
        self._release_all()
        self._phase = Phase.ANSWERING
        super().handle_websocket_upgrade()


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request's headers announce a body (the parser has checked them)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False
