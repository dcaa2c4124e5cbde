"""HTTP connections a slow client cannot hold: uvicorn's httptools protocol with a read deadline.

uvicorn (0.54) bounds only the idle time between requests on a kept-alive connection (``timeout_keep_alive``,
whose timer any byte cancels). A client that connects and sends nothing, trickles a request's headers a line
at a time, or stops half-way through a body keeps its connection, and its place under ``limit_concurrency``,
for as long as it likes: a few hundred such clients would lock everyone else out (slowloris).

The deadline runs whenever the connection waits for its client: from the connection's start, and after each
response, until a request's headers are complete (``read_timeout`` from the request's first byte); then,
while a body comes, ``read_timeout`` from each chunk. It stops once a request has arrived whole, so a
response may take as long as it needs (an event stream lasts as long as its job). Past it the connection is
closed, after a ``408`` when no request is being answered; a body cut off reaches the app as a disconnect.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ReadDeadlineProtocol(HttpToolsProtocol):
    """httptools' protocol that closes a connection whose client keeps it waiting over ``read_timeout`` s."""

    read_timeout: float = 30.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None

    @classmethod
    def with_read_timeout(cls, seconds: float) -> type[ReadDeadlineProtocol]:
        """The protocol class for a server: uvicorn builds protocols from a class and its own Config alone."""
        return type(cls.__name__, (cls,), {"read_timeout": seconds})

    def _restart_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(self.read_timeout, self._deadline_passed)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            # We stopped reading (the app has not taken the body so far, or a pipelined request waits its
            # turn): the client is not the one who is late.
            self._restart_deadline()
            return
        log.info("closing a connection from %s: nothing more of its request in %g s", self.client, self.read_timeout)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._restart_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._restart_deadline()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._restart_deadline()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._restart_deadline()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:
            # Answered before the body was read (a 413): the connection now waits for the next request.
            self._restart_deadline()
        else:
            self._stop_deadline()

    def on_response_complete(self) -> None:
        awaits_next_request = not self.pipeline
        super().on_response_complete()
        if awaits_next_request and not self.transport.is_closing():
            self._restart_deadline()

    def handle_websocket_upgrade(self) -> None:
        # The connection passes to a WebSocket protocol with timeouts of its own.
        self._stop_deadline()
        super().handle_websocket_upgrade()
