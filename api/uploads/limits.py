"""``UploadLimit``: the request body bounded in size, and a multipart body cut short refused, as it streams in."""

from __future__ import annotations

from python_multipart.multipart import parse_options_header
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import IncompleteUpload, PayloadTooLarge, respond

# Room for the line break (and stray whitespace) that clients put after the closing boundary.
_TAIL_SLACK = 8


class UploadLimit:
    """ASGI middleware that bounds request bodies and refuses multipart bodies that were cut short.

    A declared ``Content-Length`` over ``max_bytes`` is refused with 413 before a byte is read; a chunked
    body is counted as it streams and refused the moment it passes the limit. The multipart parser takes a
    body that stops without its closing boundary for a complete one, silently dropping the part it was in
    (a painting, or a parameter that then takes its default), so the last bytes of every multipart body are
    checked for that boundary when the body ends. An epilogue after it (RFC 2046 allows one; no client
    sends one) is refused too.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = respond(
                Request(scope),
                413,
                PayloadTooLarge.code,
                PayloadTooLarge.title,
                self._message(),
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        closing = _closing_delimiter(headers.get(b"content-type", b"").decode("latin-1"))
        received, tail = 0, b""

        async def checked() -> Message:
            nonlocal received, tail
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > self.max_bytes:
                    raise PayloadTooLarge(self._message(), headers={"Connection": "close"})
                if closing is not None:
                    tail = (tail + body)[-(len(closing) + _TAIL_SLACK) :]
                    if not message.get("more_body", False) and not tail.rstrip().endswith(closing):
                        raise IncompleteUpload(
                            "the multipart body ends without its closing boundary, so the upload was cut short; "
                            "nothing was queued"
                        )
            return message

        await self.app(scope, checked, send)

    def _message(self) -> str:
        return f"the request body exceeds the limit of {self.max_bytes:,} bytes (all images together)"


def _closing_delimiter(content_type: str) -> bytes | None:
    """``--boundary--`` of a multipart body, or None for any other kind of body (or one without a boundary)."""
    media_type, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    return b"--" + boundary + b"--" if media_type == b"multipart/form-data" and boundary else None
