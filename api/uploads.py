"""Reading a job submission: a streamed size limit, the multipart form, and validation of files and fields.

The form's parameter fields are exactly ``StyleParams``' fields (validated by the model itself, so ranges
and messages are the engine's); the OpenAPI description of the form is derived from the same model. The files
stay where the multipart parser spooled them (a temporary file past 1 MB): they are hashed, decoded and
stored from there, so a request costs memory for its decoded pictures but never for copies of its uploads.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import (
    IncompleteUpload,
    InvalidField,
    InvalidUpload,
    PayloadTooLarge,
    UnsupportedMediaType,
    respond,
)
from core.images import decode_image
from core.params import MAX_STYLES, StyleParams
from core.schedule import check_fits
from restyle.webhook_targets import UnresolvedWebhookHost, WebhookPolicy

CONTENT_FIELD = "content"
STYLE_FIELD = "style"
WEBHOOK_FIELD = "webhook_url"
SIZE_FIELD = "size"
_FILE_FIELDS = (CONTENT_FIELD, STYLE_FIELD)
_HASH_CHUNK_BYTES = 1 << 20


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


# Room for the line break (and stray whitespace) that clients put after the closing boundary.
_TAIL_SLACK = 8


def _closing_delimiter(content_type: str) -> bytes | None:
    """``--boundary--`` of a multipart body, or None for any other kind of body (or one without a boundary)."""
    media_type, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    return b"--" + boundary + b"--" if media_type == b"multipart/form-data" and boundary else None


@dataclass(frozen=True)
class Submission:
    """A validated job request: decoded pictures checked, the uploaded files kept for storage."""

    params: StyleParams
    content: BinaryIO
    styles: list[BinaryIO]
    webhook_url: str | None


@dataclass(frozen=True)
class RawSubmission:
    """The form split into files and fields, before any expensive check."""

    content: UploadFile
    styles: list[UploadFile]
    fields: dict[str, str]

    def fingerprint(self) -> str:
        """Identifies the request, to tell a replay from a reused Idempotency-Key; slow (it reads every file,
        streamed), so call it off the event loop."""
        digest = hashlib.sha256()
        for key in sorted(self.fields):
            digest.update(f"{key}={self.fields[key]}\0".encode())
        for upload in [self.content, *self.styles]:
            digest.update(_sha256(rewound(upload.file)))
        return digest.hexdigest()


def _sha256(file: BinaryIO) -> bytes:
    digest = hashlib.sha256()
    while chunk := file.read(_HASH_CHUNK_BYTES):
        digest.update(chunk)
    return digest.digest()


def rewound(file: BinaryIO) -> BinaryIO:
    """``file`` at its start: hashing, decoding and storing each read an upload whole."""
    file.seek(0)
    return file


async def read_form(request: Request) -> RawSubmission:
    """Parse the multipart body and check its shape: one content file, 1–4 style files, text fields."""
    media_type, _ = parse_options_header(request.headers.get("content-type", ""))
    if media_type != b"multipart/form-data":
        raise UnsupportedMediaType(
            "send multipart/form-data with a 'content' file and 1–4 'style' files "
            "(curl -F content=@photo.jpg -F style=@painting.jpg)"
        )
    # Caps far above what a valid job sends (five files, a few dozen fields), which only a runaway client meets;
    # it gets Starlette's 400 naming the cap instead of the messages below.
    form = await request.form(max_files=4 * (MAX_STYLES + 1), max_fields=200, max_part_size=64 * 1024)
    unexpected = sorted({key for key, value in form.multi_items() if isinstance(value, UploadFile)} - set(_FILE_FIELDS))
    if unexpected:
        raise InvalidUpload(
            f"unexpected file field(s) {', '.join(unexpected)}: send the photo as 'content' and paintings as 'style'"
        )
    contents = _files(form, CONTENT_FIELD)
    styles = _files(form, STYLE_FIELD)
    if len(contents) != 1:
        raise InvalidUpload(f"send exactly one 'content' file, not {len(contents)}")
    if not 1 <= len(styles) <= MAX_STYLES:
        raise InvalidUpload(f"send between 1 and {MAX_STYLES} 'style' files (repeat the field), not {len(styles)}")
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            continue
        if key in fields:
            raise InvalidField(key, "give this field once")
        fields[key] = value
    return RawSubmission(content=contents[0], styles=styles, fields=fields)


def _files(form: FormData, name: str) -> list[UploadFile]:
    values = form.getlist(name)
    strings = [value for value in values if not isinstance(value, UploadFile)]
    if strings:
        raise InvalidUpload(f"'{name}' must be a file upload (curl -F {name}=@picture.jpg), not a text value")
    return [value for value in values if isinstance(value, UploadFile)]


def validate(raw: RawSubmission, *, max_pixels: int, max_size: int, webhooks: WebhookPolicy | None) -> Submission:
    """Check parameters (``size`` up to this server's ``max_size``, which lowers its default too), pictures and the
    webhook URL (``webhooks`` None: webhooks are off); slow (it decodes every image and may ask DNS about the webhook
    host), so call it off the event loop."""
    values: dict[str, Any] = dict(raw.fields)
    webhook_url = values.pop(WEBHOOK_FIELD, None) or None
    if webhook_url is not None:
        _check_webhook(webhook_url, webhooks)
    if values.get(SIZE_FIELD) in (None, ""):
        values[SIZE_FIELD] = default_size(max_size)
    params = StyleParams.from_mapping(values)
    if params.size > max_size:
        raise InvalidField(
            "size", f"{params.size} px is over this server's limit of {max_size} px (its RESTYLE_MAX_SIZE)"
        )
    params.blend_weights(len(raw.styles))
    content_name = f"content ({raw.content.filename or 'unnamed'})"
    style_names = [f"style {index} ({upload.filename or 'unnamed'})" for index, upload in enumerate(raw.styles, 1)]
    # One picture decoded at a time, each dropped once its size is known: the memory of the largest, not of all.
    content_size = decode_image(raw.content.file, max_pixels=max_pixels, name=content_name).size
    style_sizes = [
        decode_image(upload.file, max_pixels=max_pixels, name=name).size
        for upload, name in zip(raw.styles, style_names, strict=True)
    ]
    check_fits(params, (content_name, content_size), list(zip(style_names, style_sizes, strict=True)))
    return Submission(params, raw.content.file, [upload.file for upload in raw.styles], webhook_url)


def _check_webhook(url: str, policy: WebhookPolicy | None) -> None:
    """Refuse a malformed URL or one that already points inside the network (``InvalidWebhookUrl``).

    A host that does not resolve yet is accepted: it may by the time the job ends, and the API's view of DNS
    need not be the worker's; the dispatcher checks the host again at every attempt, which is what protects.
    """
    if policy is None:
        raise InvalidField(WEBHOOK_FIELD, "webhooks are off on this server (it has no RESTYLE_WEBHOOK_SECRET)")
    with contextlib.suppress(UnresolvedWebhookHost):
        policy.target(url)


def form_schema() -> dict[str, Any]:
    """The OpenAPI request body of POST /v1/jobs, derived from StyleParams so it cannot drift."""
    properties: dict[str, Any] = {
        CONTENT_FIELD: {"type": "string", "format": "binary", "description": "The photo to repaint."},
        STYLE_FIELD: {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "minItems": 1,
            "maxItems": MAX_STYLES,
            "description": f"One to {MAX_STYLES} paintings; repeat the field for several.",
        },
    }
    for name, schema in StyleParams.model_json_schema()["properties"].items():
        info = StyleParams.model_fields[name]
        default = info.get_default(call_default_factory=True)
        if _is_scalar(schema):
            properties[name] = schema
        elif _is_scalar(branch := _not_null(schema)):
            # A form cannot send null: the field is left out instead, so it is documented without a default.
            properties[name] = {**branch, **{key: value for key, value in schema.items() if key not in _NULLABLE_KEYS}}
        else:  # mappings and lists travel as text in a form: 'relu1_1:1,relu2_1:0.5', '3,1'
            properties[name] = {
                "type": "string",
                "title": schema.get("title", name),
                "description": info.description,
                "example": _as_form_text(default) if default is not None else "3,1",
            }
    properties[WEBHOOK_FIELD] = {
        "type": "string",
        "format": "uri",
        "description": "POSTed the job JSON (signed, X-Restyle-Signature) when it reaches a final state. An http(s) "
        "URL without credentials whose host resolves to public addresses only (or is in RESTYLE_WEBHOOK_ALLOW_HOSTS).",
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    # Any other field is refused (StyleParams forbids extras), so the form documents exactly these.
                    "schema": {
                        "type": "object",
                        "required": [CONTENT_FIELD, STYLE_FIELD],
                        "properties": properties,
                        "additionalProperties": False,
                    },
                    "encoding": {CONTENT_FIELD: {"contentType": "image/*"}, STYLE_FIELD: {"contentType": "image/*"}},
                }
            },
        }
    }


_NULLABLE_KEYS = ("anyOf", "default")


def _is_scalar(schema: dict[str, Any]) -> bool:
    return schema.get("type") not in (None, "object", "array")


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The one non-null branch of a nullable field's schema (``bool | None``), or {} for any other schema."""
    branches = [branch for branch in schema.get("anyOf", []) if branch.get("type") != "null"]
    return branches[0] if len(branches) == 1 else {}


def default_size(max_size: int) -> int:
    """The ``size`` of a job that leaves it out: the engine's default, or this server's limit where that is lower
    (a form that the OpenAPI document allows is never refused for a value it did not send)."""
    return min(StyleParams.model_fields[SIZE_FIELD].default, max_size)


def cap_size(openapi: dict[str, Any], max_size: int) -> None:
    """Document this server's ``size`` limit (RESTYLE_MAX_SIZE) in its OpenAPI document, in place: the page
    offers the sizes that document allows, and clients read the limit there rather than from a 422."""
    form = openapi["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    size = form["properties"][SIZE_FIELD]
    size["maximum"] = max_size
    size["description"] = f"{size['description']} This server accepts up to {max_size} px (RESTYLE_MAX_SIZE)."
    size["default"] = default_size(max_size)


def refuse_webhooks(openapi: dict[str, Any]) -> None:
    """Document, in place, that this server has webhooks off (no RESTYLE_WEBHOOK_SECRET): ``webhook_url`` may only
    be left out or empty (which ``validate`` takes for no webhook), and a URL is refused with ``422``."""
    operation = openapi["paths"]["/v1/jobs"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    form["properties"][WEBHOOK_FIELD] = {
        "type": "string",
        "maxLength": 0,
        "description": "Webhooks are off on this server (it has no RESTYLE_WEBHOOK_SECRET): leave the field out. "
        f"A URL is refused with `422` (`invalid_parameters`, naming `{WEBHOOK_FIELD}`).",
    }
    refused = operation["responses"]["422"]
    refused["description"] += f" Webhooks are off on this server, so any `{WEBHOOK_FIELD}` is refused too."


def _as_form_text(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{key}:{weight:g}" for key, weight in value.items())
    if isinstance(value, list):
        return ",".join(f"{item:g}" for item in value)
    return str(value)
