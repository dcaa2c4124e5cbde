"""Every error the API answers, as RFC 9457 problem details (``application/problem+json``), mapped here only.

Routes raise either a ``Problem`` (HTTP-level refusals) or the domain's own typed errors (engine errors,
job-store errors, parameter validation); ``install`` maps each kind to one status and a stable ``code``
that clients can branch on, with a ``detail`` that names what was wrong.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPMethod, HTTPStatus
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Mount

from core.errors import InvalidImage, InvalidRequest, InvalidVideo
from restyle.jobs import IdempotencyConflict, InvalidTransition, JobNotFound, KeyAtCapacity, QueueFull
from restyle.storage import StorageUnavailable
from restyle.webhook_targets import InvalidWebhookUrl

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
# What a 503 for a dependency that is down (Redis, the storage) tells the client to wait: outages of a moment
# (a failover, a restart) are the common ones.
_OUTAGE_RETRY_AFTER = {"Retry-After": "5"}


class FieldError(BaseModel):
    """One invalid field: where it is and what is wrong with it."""

    field: str = Field(examples=["size"])
    message: str = Field(examples=["Input should be less than or equal to 2048"])


class ProblemDetails(BaseModel):
    """The body of every error response."""

    type: str = Field(examples=["urn:restyle:problem:invalid_parameters"])
    title: str = Field(examples=["Invalid parameters"])
    status: int = Field(examples=[422])
    code: str = Field(description="Stable machine-readable reason.", examples=["invalid_parameters"])
    detail: str = Field(examples=["size: Input should be less than or equal to 2048"])
    instance: str | None = Field(None, examples=["/v1/jobs"])
    errors: list[FieldError] | None = None


class Problem(Exception):
    """An HTTP-level refusal raised by the API itself; subclasses fix the status, code and title."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self, detail: str, *, headers: Mapping[str, str] | None = None, errors: Sequence[FieldError] = ()
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = list(errors)


class Unauthorized(Problem):
    status, code, title = 401, "unauthorized", "Missing or unknown API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="restyle"'})


class NotFound(Problem):
    status, code, title = 404, "not_found", "Not found"


class ResultNotReady(Problem):
    status, code, title = 409, "job_not_finished", "The job has not finished"


class NoResult(Problem):
    status, code, title = 409, "job_has_no_result", "The job ended without a result"


class PayloadTooLarge(Problem):
    status, code, title = 413, "upload_too_large", "Upload too large"


class UnsupportedMediaType(Problem):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class IncompleteUpload(Problem):
    status, code, title = 400, "incomplete_upload", "Incomplete upload"


class InvalidUpload(Problem):
    status, code, title = 422, "invalid_upload", "Invalid upload"


class InvalidField(Problem):
    """A form field the parameter model accepts but this request or server cannot; answered in the shape of the
    model's own refusals (``detail`` starts with the field, ``errors`` names it), so clients handle both alike."""

    status, code, title = 422, "invalid_parameters", "Invalid parameters"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[FieldError(field=field, message=message)])


class NotReady(Problem):
    status, code, title = 503, "not_ready", "Not ready"


# Refusals of the connection layer (``api.connections``), answered before a request reaches the app.


class RequestTimeout(Problem):
    status, code, title = 408, "request_timeout", "Request timeout"


class TooManyConnections(Problem):
    status, code, title = 429, "too_many_connections", "Too many connections from this client"


class TooManyUploads(Problem):
    status, code, title = 429, "too_many_uploads", "Too many uploads from this client"


class HeadersTooLarge(Problem):
    status, code, title = 431, "headers_too_large", "Request headers too large"


class ServerBusy(Problem):
    status, code, title = 503, "server_busy", "Server busy"


def http_response(problem: Problem) -> bytes:
    """A whole HTTP/1.1 response carrying ``problem``, for the connection layer, which writes bytes rather
    than ASGI messages; the same body as the app's problems (without ``instance``: no request may have been
    read), and it closes the connection."""
    body = ProblemDetails(
        type=f"urn:restyle:problem:{problem.code}",
        title=problem.title,
        status=problem.status,
        code=problem.code,
        detail=problem.detail,
        errors=problem.errors or None,
    ).model_dump_json(exclude_none=True)
    content = body.encode()
    head = [
        f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}",
        f"content-type: {MEDIA_TYPE}",
        f"content-length: {len(content)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in problem.headers.items()),
    ]
    return "\r\n".join([*head, "", ""]).encode("latin-1") + content


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "upload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameters",
}


def respond(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[FieldError] | None = None,
) -> JSONResponse:
    """Render one problem."""
    body = ProblemDetails(
        type=f"urn:restyle:problem:{code}",
        title=title,
        status=status,
        code=code,
        detail=detail,
        instance=request.url.path,
        errors=list(errors) if errors else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=dict(headers or {}), media_type=MEDIA_TYPE
    )


def field_errors(error: ValidationError | RequestValidationError, skip: int = 0) -> list[FieldError]:
    """Flatten pydantic's errors into ``field: message`` pairs; ``skip`` drops leading location parts."""
    return [
        FieldError(field=".".join(str(part) for part in item["loc"][skip:]) or "body", message=item["msg"])
        for item in error.errors()
    ]


# An exception handler, as Starlette calls it with an error of a kind it was registered for.
_Handler = Callable[[Request, Any], Awaitable[JSONResponse]]


def install(app: FastAPI, retry_after_seconds: int) -> None:
    """Register the one mapping from exceptions to problem responses; ``retry_after_seconds`` is what a
    refusal for load tells the client to wait."""
    for kind, handler in {**_HANDLERS, **_load_handlers(retry_after_seconds)}.items():
        app.add_exception_handler(kind, handler)


# The API's own refusals, which carry their status, code and title.


async def _problem(request: Request, error: Problem) -> JSONResponse:
    return respond(
        request, error.status, error.code, error.title, error.detail, headers=error.headers, errors=error.errors
    )


# The engine's refusals of what was sent: a picture it cannot use, a request it cannot run.


async def _invalid_image(request: Request, error: InvalidImage) -> JSONResponse:
    return respond(request, 422, error.code, "Unusable image", error.message)


async def _invalid_video(request: Request, error: InvalidVideo) -> JSONResponse:
    return respond(request, 422, error.code, "Unusable clip", error.message)


async def _invalid_request(request: Request, error: InvalidRequest) -> JSONResponse:
    return respond(request, 422, error.code, "Invalid request", error.message)


# Parameters that fail their model: the form's (StyleParams) or a route's own (query, path, header).


async def _invalid_params(request: Request, error: ValidationError) -> JSONResponse:
    return _invalid_parameters(request, field_errors(error))


async def _invalid_request_fields(request: Request, error: RequestValidationError) -> JSONResponse:
    return _invalid_parameters(request, field_errors(error, skip=1))  # drop "query"/"path"/"header"


def _invalid_parameters(request: Request, errors: list[FieldError]) -> JSONResponse:
    detail = "; ".join(f"{item.field}: {item.message}" for item in errors)
    return respond(request, 422, "invalid_parameters", "Invalid parameters", detail, errors=errors)


async def _invalid_webhook(request: Request, error: InvalidWebhookUrl) -> JSONResponse:
    # Only the webhook_url form field reaches here, so the detail names it as the other field errors do.
    return respond(request, 422, "invalid_webhook_url", "Unusable webhook URL", f"webhook_url: {error}")


# The job store's refusals: no such job, a change its state forbids, a reused Idempotency-Key.


async def _job_not_found(request: Request, error: JobNotFound) -> JSONResponse:
    return respond(request, 404, "job_not_found", "No such job", str(error))


async def _job_finished(request: Request, error: InvalidTransition) -> JSONResponse:
    return respond(request, 409, "job_already_finished", "The job has already finished", str(error))


async def _key_reused(request: Request, error: IdempotencyConflict) -> JSONResponse:
    return respond(request, 422, "idempotency_key_reused", "Idempotency-Key reused", str(error))


# Refusals for load, which tell the client when to try again (the server's setting, hence made per app).


def _load_handlers(retry_after_seconds: int) -> dict[type[Exception], _Handler]:
    retry_after = {"Retry-After": str(retry_after_seconds)}

    async def queue_full(request: Request, error: QueueFull) -> JSONResponse:
        return respond(request, 503, "queue_full", "The queue is full", str(error), headers=retry_after)

    async def key_busy(request: Request, error: KeyAtCapacity) -> JSONResponse:
        return respond(request, 429, "too_many_active_jobs", "Too many active jobs", str(error), headers=retry_after)

    return {QueueFull: queue_full, KeyAtCapacity: key_busy}


# Starlette's own refusals: no such route, a method the path does not serve, a body it cannot parse.


async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(error.status_code, f"http_{error.status_code}")
    title = code.replace("_", " ").capitalize()
    headers = dict(error.headers or {})
    if error.status_code == 405 and "Allow" in headers:
        # A route's 405 names only its own methods, and the router asks only the first route on the path
        # (``Allow: POST`` for /v1/jobs, which GET serves too): every route on the path counts.
        headers["Allow"] = allowed_methods(request, headers["Allow"])
    return respond(request, error.status_code, code, title, str(error.detail), headers=headers)


# A dependency that is down: Redis (the job store, and the queue through kombu) or the storage.


async def _redis_down(request: Request, error: Exception) -> JSONResponse:
    log.error("Redis unavailable on %s %s: %s", request.method, request.url.path, error)
    return respond(
        request,
        503,
        "redis_unavailable",
        "Service unavailable",
        "the job store or the queue is unreachable; try again shortly",
        headers=_OUTAGE_RETRY_AFTER,
    )


async def _storage_down(request: Request, error: StorageUnavailable) -> JSONResponse:
    log.error("storage unavailable on %s %s: %s", request.method, request.url.path, error.message)
    return respond(request, 503, error.code, "Storage unavailable", error.message, headers=_OUTAGE_RETRY_AFTER)


# The request ended without an answer from us: the client left, or the server failed.


async def _client_gone(request: Request, error: ClientDisconnect) -> JSONResponse:
    # Nobody reads this answer; it exists so logs and metrics show a client that left (nginx's 499), not a
    # server error.
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return respond(request, 499, "client_closed_request", "Client closed request", "the client went away")


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return respond(request, 500, "internal_error", "Internal error", "the server failed; the error is logged")


# Each kind of error and its handler, by family in the order above. Starlette picks the handler of the nearest
# class in an error's MRO, so ``Exception`` only catches what nothing else here does.
_HANDLERS: dict[type[Exception], _Handler] = {
    Problem: _problem,
    InvalidImage: _invalid_image,
    InvalidVideo: _invalid_video,
    InvalidRequest: _invalid_request,
    ValidationError: _invalid_params,
    RequestValidationError: _invalid_request_fields,
    InvalidWebhookUrl: _invalid_webhook,
    JobNotFound: _job_not_found,
    InvalidTransition: _job_finished,
    IdempotencyConflict: _key_reused,
    StarletteHTTPException: _http,
    redis.RedisError: _redis_down,
    OperationalError: _redis_down,  # kombu's wrapper when publishing fails
    StorageUnavailable: _storage_down,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}


def allowed_methods(request: Request, named: str) -> str:
    """An ``Allow`` value with every method that the app's routes serve on the request's path besides those the
    refusing route ``named``: each method is tried on the path (a path has a route per method, and an included
    router nests them). Mounts are left to name their own: they match any method."""
    methods = {name.strip() for name in named.split(",")}
    path = {"path": request.scope["path"], "root_path": request.scope.get("root_path", "")}
    for method in HTTPMethod:
        probe = {**path, "type": "http", "method": method.value, "headers": []}
        routes = (route for route in request.app.router.routes if not isinstance(route, Mount))
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            methods.add(method.value)
    return ", ".join(method.value for method in HTTPMethod if method.value in methods)


def documented(*statuses: int, more: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problems a route can answer, with the shared schema; ``more`` adds
    what one status also means on this route to its shared description."""
    return {
        status: {
            "model": ProblemDetails,
            "content": {MEDIA_TYPE: {}},
            "description": " ".join(filter(None, [_DESCRIPTIONS[status], (more or {}).get(status)])),
        }
        for status in statuses
    }


def document_problem_bodies(openapi: dict[str, Any]) -> None:
    """Make every error response of ``openapi`` (in place) say what the API sends: ``application/problem+json`` in
    ProblemDetails' shape.

    FastAPI files the model of ``documented`` under the route's own media type (``application/json``) and gives
    each route with parameters a ``422`` of its own (``HTTPValidationError``), which the API never sends: the
    handlers here answer every validation error as a problem too.
    """
    body = {MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{ProblemDetails.__name__}"}}}
    for path in openapi["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if status == "422" and _VALIDATION_ERROR in str(content):
                    response["description"] = "A parameter is unusable; `detail` and `errors` name it."
                elif MEDIA_TYPE not in content:
                    continue
                response["content"] = copy.deepcopy(body)
    schemas = openapi.get("components", {}).get("schemas", {})
    if _VALIDATION_ERROR not in str(openapi["paths"]):
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)


_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"

_DESCRIPTIONS = {
    400: "The multipart body cannot be read: cut short before its closing boundary (`incomplete_upload`; nothing was "
    "queued), malformed, or past the parser's caps on files, fields and field size (`bad_request`).",
    401: "Missing or unknown API key.",
    404: "No such job for this key (never created, expired, or another key's).",
    409: "The job is not in a state that allows this.",
    413: "The upload exceeds the size limit.",
    415: "The request is not multipart/form-data.",
    422: "A file, a parameter, the webhook URL (`invalid_webhook_url`: malformed, or not a public address) or "
    "the Idempotency-Key is unusable; `detail` names it.",
    429: "This API key has its limit of queued and running jobs (`too_many_active_jobs`); this client address its "
    "limit of open connections or uploads (`too_many_connections`, `too_many_uploads`); see Retry-After.",
    503: "Temporarily unable: the queue is full (`queue_full`), Redis (`redis_unavailable`) or the storage "
    "(`storage_unavailable`) is unreachable, the server holds its most connections (`server_busy`; all with "
    "Retry-After), or the service is not ready (`not_ready`).",
}
