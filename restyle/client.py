"""A small synchronous Python client for Restyle's HTTP API, built on httpx; it never imports torch.

    with Client("http://127.0.0.1:8000", api_key="…") as client:
        png = client.stylize("photo.jpg", ["starry-night.jpg"], style_weight=10, size=512)
        png = client.stylize("photo.jpg", ["starry-night.jpg", "the-scream.jpg"], masks={1: "sky.png", 2: "land.png"})
        mp4 = client.stylize("clip.mp4", ["starry-night.jpg"], clip=True, size=256)

Every error the client raises on purpose, drawn as a tree::

    RestyleClientError          base of everything below
    ├── RestyleAPIError         the service answered with an error; .status, .code, .message, .problem
    │   ├── BadRequest          400: the request itself is malformed
    │   │   └── InvalidInput    422: a file or parameter is unacceptable; the message names which and why
    │   ├── AuthError           401/403: the API key is missing or wrong
    │   ├── NotFound            404: no such job for this key (never made, cleaned up, or someone else's)
    │   ├── Conflict            409: the job's state does not allow it (e.g. the result of a running job)
    │   ├── PayloadTooLarge     413: the uploads are over the server's size limit
    │   └── ServiceUnavailable  503: the queue is full or the service is not ready; .retry_after
    ├── JobFailed               the job ended "failed"; .job, .code, .message (from the engine or worker)
    ├── JobCanceled             stylize's job was canceled before it produced a result; .job
    └── WaitTimeout             wait's timeout passed first (also a TimeoutError); .job as last seen

Network failures surface as httpx's own ``httpx.TransportError`` subclasses.
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol, Self, cast

import httpx
from pydantic import BaseModel, ConfigDict

from core.params import ClipParams, StyleParams

ImageInput = str | os.PathLike[str] | bytes | IO[bytes]
"""A path, the file's bytes, or an open binary file."""


class Picture(Protocol):
    """A picture in memory that saves itself to a file, such as a Pillow ``Image`` (the client needs no Pillow)."""

    def save(self, fp: IO[bytes], format: str) -> object: ...


MaskInput = ImageInput | Picture
"""A mask: anything ``ImageInput`` takes, or a picture in memory (a Pillow ``Image``), sent as PNG."""

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})

# Polling is the fallback when the event stream is unavailable; it backs off to this interval.
_POLL_SECONDS = (0.2, 0.5, 1.0)


# The job as the API sends it -----------------------------------------------------------------------------
# These mirror restyle.jobs.JobPublic field for field (a test keeps them in step) instead of importing it:
# the client reads the wire format and must keep working against a newer server, so unknown fields are
# ignored and ``params`` stays a plain mapping rather than the server's strict StyleParams.


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class JobProgress(_Wire):
    """How far the optimisation is: iterations done of the total, the stage (1-based) of ``stages`` and its
    ``size`` in pixels, the estimated seconds left (None while unknown, or from an older service), and for a clip
    the ``frame`` (1-based) of ``frames`` being stylised."""

    iteration: int = 0
    total: int
    percent: float = 0.0
    stage: int | None = None
    stages: int | None = None
    size: int | None = None
    remaining_seconds: float | None = None
    frame: int | None = None
    frames: int | None = None


class JobError(_Wire):
    """Why a job failed: ``code`` for programs to branch on, ``message`` for people."""

    code: str
    message: str


class JobLinks(_Wire):
    """Where to go next from a job."""

    self: str
    cancel: str
    events: str
    result: str | None = None
    preview: str | None = None


class JobAttempt(_Wire):
    """One run of a job: which worker, when, how it ended (``lost`` when its worker died), and for a clip how many
    of its frames this run finished."""

    worker: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str
    frames: int | None = None


class Job(_Wire):
    """One job as the service reports it."""

    id: str
    status: JobStatus
    progress: JobProgress
    losses: dict[str, float] = {}
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    params: dict[str, Any]
    clip: dict[str, Any] | None = None
    frames_done: int = 0
    style_count: int
    weights: str | None = None
    run_seconds: float | None = None
    error: JobError | None = None
    cancel_requested: bool = False
    attempts: int = 0
    runs: list[JobAttempt] = []
    webhook_url: str | None = None
    webhook_status: str | None = None
    webhook_error: str | None = None
    masks: list[int] = []
    source_masks: list[int] = []
    result_url: str | None = None
    preview_url: str | None = None
    preview_iteration: int | None = None
    urls: JobLinks

    @property
    def finished(self) -> bool:
        """True once the job is succeeded, failed or canceled; it never changes after that."""
        return self.status in FINAL_STATUSES


# Errors ---------------------------------------------------------------------------------------------------


class RestyleClientError(Exception):
    """Base of every error this client raises on purpose."""


class RestyleAPIError(RestyleClientError):
    """The service refused a request; ``message`` is the service's own explanation."""

    def __init__(self, status: int, message: str, code: str | None = None, problem: Mapping[str, Any] | None = None):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.code = code
        self.problem: Mapping[str, Any] = problem or {}


class BadRequest(RestyleAPIError):
    """400: the request is malformed (for example no content file)."""


class InvalidInput(BadRequest):
    """422: a file or parameter is not acceptable; the message names the field or file."""


class AuthError(RestyleAPIError):
    """401 or 403: pass a valid key as ``Client(…, api_key=…)``."""


class NotFound(RestyleAPIError):
    """404: no such job for this key; jobs are also removed once their retention passes."""


class Conflict(RestyleAPIError):
    """409: the job's state does not allow this yet (or any more)."""


class PayloadTooLarge(RestyleAPIError):
    """413: send smaller files; the server's limit covers all images of one request together."""


class ServiceUnavailable(RestyleAPIError):
    """503: try again after ``retry_after`` seconds (None when the service did not say)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(status, message, code, problem)
        self.retry_after = retry_after


class JobFailed(RestyleClientError):
    """The job ended ``failed``; ``code`` and ``message`` say why (e.g. ``not_an_image``)."""

    def __init__(self, job: Job):
        error = job.error or JobError(code="failed", message="the job failed without a reason")
        super().__init__(f"job {job.id} failed: {error.message} ({error.code})")
        self.job = job
        self.code = error.code
        self.message = error.message


class JobCanceled(RestyleClientError):
    """The job was canceled before it produced a result."""

    def __init__(self, job: Job):
        super().__init__(f"job {job.id} was canceled")
        self.job = job


class WaitTimeout(RestyleClientError, TimeoutError):
    """The job had not finished when ``wait``'s timeout passed; it keeps running on the server."""

    def __init__(self, job: Job, timeout: float):
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g} s")
        self.job = job


_ERRORS_BY_STATUS: dict[int, type[RestyleAPIError]] = {
    400: BadRequest,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    503: ServiceUnavailable,
}


def _raise_for_problem(response: httpx.Response) -> None:
    """Turn an error answer (RFC 9457 problem JSON, or anything else) into the matching typed exception."""
    if response.is_success:
        return
    response.read()
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {}
    message = str(problem.get("detail") or problem.get("title") or response.text or response.reason_phrase)
    code = problem.get("code")
    error = _ERRORS_BY_STATUS.get(response.status_code, RestyleAPIError)
    if error is ServiceUnavailable:
        retry_after = response.headers.get("Retry-After")
        raise ServiceUnavailable(
            response.status_code,
            message,
            code,
            problem,
            float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    raise error(response.status_code, message, code, problem)


# Requests ---------------------------------------------------------------------------------------------------


def _image_part(source: ImageInput, fallback_name: str) -> tuple[str, bytes, str]:
    """A multipart file tuple; the server sniffs the format from the bytes, the name only helps its messages."""
    if isinstance(source, bytes):
        name, data = fallback_name, source
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name, data = path.name, path.read_bytes()
    else:
        name = Path(str(getattr(source, "name", "") or fallback_name)).name
        data = source.read()
    return name, data, mimetypes.guess_type(name)[0] or "application/octet-stream"


def _mask_part(source: MaskInput, fallback_name: str) -> tuple[str, bytes, str]:
    """A multipart file tuple for a mask: as ``_image_part`` makes, or a picture in memory encoded as PNG."""
    if isinstance(source, bytes | str | os.PathLike) or hasattr(source, "read"):
        return _image_part(cast(ImageInput, source), fallback_name)
    buffer = io.BytesIO()
    source.save(buffer, format="PNG")
    return f"{fallback_name}.png", buffer.getvalue(), "image/png"


def _mask_parts(
    masks: Mapping[int, MaskInput] | None, style_count: int, *, source: bool
) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The form's mask files for ``masks`` (style number from 1 → mask), named as the API's fields are; a key that
    is not the number of a style given fails here, before anything is sent."""
    field, masks = ("source_mask" if source else "mask"), masks or {}
    for number in masks:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= style_count:
            raise ValueError(
                f"{field}s: {number!r} is not a style's number; give 1 to {style_count} for the styles sent"
            )
    return [(f"{field}_{number}", _mask_part(masks[number], f"{field}-{number}")) for number in sorted(masks)]


def _as_sequence(styles: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One style or several: a lone path, bytes or file counts as one."""
    if isinstance(styles, Sequence) and not isinstance(styles, str | bytes):
        return list(styles)
    return [styles]


def _form_value(value: object) -> str:
    """Write a parameter the way the API's form fields (and the CLI's flags) parse it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ",".join(f"{name}:{weight:g}" for name, weight in value.items())
    if isinstance(value, list | tuple):
        return ",".join(f"{item:g}" for item in value)
    return str(value)


def _form_fields(params: Mapping[str, object], *, clip: bool = False) -> dict[str, str]:
    """Form fields for the engine parameters, and a clip's; an unknown name fails here like a wrong keyword argument
    would."""
    known = [*StyleParams.model_fields, *(ClipParams.model_fields if clip else ())]
    unknown = sorted(set(params) - set(known))
    if unknown:
        also = "" if clip else " (and, with clip=True, " + ", ".join(ClipParams.model_fields) + ")"
        raise TypeError(f"unknown parameter(s) {', '.join(unknown)}; the parameters are {', '.join(known)}{also}")
    return {name: _form_value(value) for name, value in params.items() if value is not None}


def _events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """Parse a server-sent event stream into (event name, data) pairs; comments (keep-alives) are skipped."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


# The client ---------------------------------------------------------------------------------------------------


class Client:
    """A connection to one Restyle service; use it as a context manager, or call ``close()``.

    ``timeout`` bounds each HTTP request (seconds); how long a job may take is ``wait``'s ``timeout``.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def submit(
        self,
        content: ImageInput,
        styles: ImageInput | Sequence[ImageInput],
        *,
        masks: Mapping[int, MaskInput] | None = None,
        source_masks: Mapping[int, MaskInput] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        clip: bool = False,
        **params: Any,
    ) -> Job:
        """Queue a job: one photo, one to four paintings, and any engine parameters (see ``StyleParams``).

        With ``clip``, ``content`` is a video (MP4, WebM or GIF) stylised frame by frame into one of the same frame
        rate and sound, and ``params`` may also hold ``ClipParams``' fields (``temporal_weight``,
        ``frame_iterations``, ``clip_format``).

        ``masks`` maps a style's number (from 1, in the order of ``styles``) to a mask over the photo: where that
        style paints, grey levels being weights (black and transparent none, white full), any size.
        ``source_masks`` likewise maps it to a mask over its painting: the part to draw the style from. A mask is
        a path, bytes, an open binary file or a Pillow image; a key that is not the number of a style given raises
        ``ValueError`` before anything is sent. ``idempotency_key`` makes retries safe: the same key returns the
        same job instead of a second one.
        """
        style_list = _as_sequence(styles)
        files = [("clip" if clip else "content", _image_part(content, "clip" if clip else "content"))]
        files += [("style", _image_part(style, f"style-{n}")) for n, style in enumerate(style_list, 1)]
        files += _mask_parts(masks, len(style_list), source=False)
        files += _mask_parts(source_masks, len(style_list), source=True)
        data = _form_fields(params, clip=clip)
        if webhook_url:
            data["webhook_url"] = webhook_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._job(self._http.post("/v1/jobs", files=files, data=data, headers=headers))

    def get(self, job_id: str) -> Job:
        """The job as it stands now."""
        return self._job(self._http.get(f"/v1/jobs/{job_id}"))

    def cancel(self, job_id: str) -> Job:
        """Stop a job: a queued one never starts, a running one stops within an iteration (see its status)."""
        return self._job(self._http.post(f"/v1/jobs/{job_id}/cancel"))

    def result(self, job_id: str) -> bytes:
        """The finished image's bytes (PNG unless ``output_format`` said otherwise), or a clip's video (MP4 unless
        ``clip_format`` said otherwise); ``Conflict`` before then."""
        # A service with RESTYLE_RESULT_REDIRECT answers 307 to a presigned URL of its object store; httpx
        # drops the API key when it follows a redirect to another origin.
        response = self._http.get(f"/v1/jobs/{job_id}/result", follow_redirects=True)
        _raise_for_problem(response)
        return response.content

    def wait(
        self, job_id: str, on_progress: Callable[[Job], object] | None = None, timeout: float | None = None
    ) -> Job:
        """Block until the job is finished and return it; ``JobFailed`` if it failed.

        ``on_progress`` is called with the job each time it changes, the final state included. Changes
        arrive over the job's event stream; if that is unavailable, the job is polled instead.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: list[Job] = []

        def report(job: Job) -> None:
            if on_progress is not None and (not seen or job != seen[-1]):
                on_progress(job)
            seen.append(job)

        job = self.get(job_id)
        report(job)
        if not job.finished:
            for job in self._follow(job_id, deadline):
                report(job)
                if job.finished:
                    break
        if not job.finished:
            raise WaitTimeout(job, timeout or 0.0)
        if job.status == "failed":
            raise JobFailed(job)
        return job

    def stylize(
        self,
        content: ImageInput,
        styles: ImageInput | Sequence[ImageInput],
        on_progress: Callable[[Job], object] | None = None,
        *,
        masks: Mapping[int, MaskInput] | None = None,
        source_masks: Mapping[int, MaskInput] | None = None,
        timeout: float | None = None,
        clip: bool = False,
        **params: Any,
    ) -> bytes:
        """Submit, wait and download in one call: the result image's bytes (a clip's video with ``clip``);
        ``masks``, ``source_masks`` and ``clip`` as ``submit`` takes them.

        Raises ``JobFailed`` or ``JobCanceled`` when there is no result, ``WaitTimeout`` after ``timeout``
        seconds (the job keeps running; its id is on the exception's ``job``).
        """
        submitted = self.submit(content, styles, masks=masks, source_masks=source_masks, clip=clip, **params)
        job = self.wait(submitted.id, on_progress=on_progress, timeout=timeout)
        if job.status == "canceled":
            raise JobCanceled(job)
        return self.result(job.id)

    # Following a job ------------------------------------------------------------------------------------------

    def _follow(self, job_id: str, deadline: float | None) -> Iterator[Job]:
        """Every new state of the job until it is finished or the deadline passes."""
        job: Job | None = None
        try:
            for job in self._stream(job_id, deadline):
                yield job
                if job.finished:
                    return
        except (httpx.TransportError, RestyleAPIError, ValueError):
            pass  # no stream, or it broke off: polling below picks up from the current state
        for delay in self._poll_delays(deadline):
            time.sleep(delay)
            job = self.get(job_id)
            yield job
            if job.finished:
                return

    def _stream(self, job_id: str, deadline: float | None) -> Iterator[Job]:
        """The job's server-sent events, each carrying the job's JSON; ends when the server closes it."""
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        timeout = httpx.Timeout(self._http.timeout.connect, read=remaining, write=None, pool=None)
        with self._http.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}, timeout=timeout
        ) as response:
            _raise_for_problem(response)
            for _, data in _events(response.iter_lines()):
                payload = json.loads(data)
                if isinstance(payload, dict) and "id" in payload and "status" in payload:
                    yield Job.model_validate(payload)
                if deadline is not None and time.monotonic() >= deadline:
                    return

    @staticmethod
    def _poll_delays(deadline: float | None) -> Iterator[float]:
        """Pauses between polls: quick at first, then steady, never past the deadline."""
        attempt = 0
        while deadline is None or time.monotonic() < deadline:
            delay = _POLL_SECONDS[min(attempt, len(_POLL_SECONDS) - 1)]
            if deadline is not None:
                delay = min(delay, max(deadline - time.monotonic(), 0.0))
            yield delay
            attempt += 1

    def _job(self, response: httpx.Response) -> Job:
        _raise_for_problem(response)
        return Job.model_validate_json(response.content)


__all__ = [
    "AuthError",
    "BadRequest",
    "Client",
    "Conflict",
    "ImageInput",
    "InvalidInput",
    "Job",
    "JobCanceled",
    "JobError",
    "JobFailed",
    "JobLinks",
    "JobProgress",
    "JobStatus",
    "MaskInput",
    "NotFound",
    "PayloadTooLarge",
    "Picture",
    "RestyleAPIError",
    "RestyleClientError",
    "ServiceUnavailable",
    "WaitTimeout",
]
