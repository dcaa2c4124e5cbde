"""``/v1/jobs``: submit, inspect, follow, cancel and download style-transfer jobs."""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
import redis
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.deps import OwnerDep, Services, ServicesDep
from api.events import END_EVENT, KEEPALIVE_EVENT, JobWatcher, server_sent_event
from api.problems import NoResult, NotFound, ResultNotReady, documented
from api.uploads import RawSubmission, Submission, form_schema, read_form, rewound, validate
from core.images import MEDIA_TYPES
from core.networks import network_of_weights
from core.params import StyleParams
from core.video.codec import MEDIA_TYPES as CLIP_MEDIA_TYPES
from restyle.broker import enqueue
from restyle.jobs import JobProgress, JobPublic, JobRecord, Limits, input_keys, job_folder, mask_key, new_job_id
from restyle.storage import ObjectNotFound, Storage, StorageUnavailable
from restyle.workers import alive_window

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[
    str, Path(description="The job's id, as returned on submission.", examples=["0190f5c2-7a1e-7c3b-9a4e-2f1d0c9b8a7f"])
]
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_EVENT_EXAMPLE = 'event: job\nid: 3\ndata: {"id": "0190f5c2-…", "status": "running", "progress": {…}, …}\n\n'
_IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in [*MEDIA_TYPES.values(), *CLIP_MEDIA_TYPES.values()]
        }
    }
}
_REDIRECT_RESPONSE: dict[int | str, dict[str, Any]] = {
    307: {
        "description": "With `RESTYLE_RESULT_REDIRECT` on a store that has download URLs (S3): fetch the picture "
        "from `Location`, a presigned URL of the object store valid for `RESTYLE_RESULT_URL_SECONDS`. Ask here again "
        "for a fresh one; never cache it.",
        "headers": {"Location": {"description": "The presigned URL.", "schema": {"type": "string", "format": "uri"}}},
    }
}


# OpenAPI links from a submitted job to what can be done with it next (clients and Schemathesis's stateful
# tests follow them): each takes the job's `id` from the answer to POST /v1/jobs.
_JOB_LINKS: dict[str, dict[str, Any]] = {
    link: {"operationId": operation_id, "parameters": {"job_id": "$response.body#/id"}, "description": description}
    for link, operation_id, description in [
        ("GetJob", "get_job", "Poll the job's status."),
        ("FollowJob", "follow_job", "Follow the job live (server-sent events)."),
        ("GetPreview", "get_preview", "The latest in-progress picture."),
        ("GetResult", "get_result", "Download the result once the job has succeeded."),
        ("CancelJob", "cancel_job", "Cancel the job."),
    ]
}
_LOCATION_HEADER = {
    "Location": {"description": "The job's URL (GET it for its status).", "schema": {"type": "string", "format": "uri"}}
}


class JobList(BaseModel):
    """A page of the caller's jobs, newest first."""

    jobs: list[JobPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def _base_url(request: Request, services: Services) -> str:
    return (services.settings.public_url or str(request.base_url)).rstrip("/")


def _public(request: Request, services: Services, record: JobRecord) -> JobPublic:
    return JobPublic.from_record(record, _base_url(request, services))


@router.post(
    "",
    status_code=202,
    summary="Submit a job",
    response_model=JobPublic,
    openapi_extra=form_schema(),
    response_description="The job is queued.",
    responses={
        202: {"headers": _LOCATION_HEADER, "links": _JOB_LINKS},
        201: {
            "model": JobPublic,
            "description": "With `Prefer: wait`, the job finished within the wait.",
            "headers": _LOCATION_HEADER,
            "links": _JOB_LINKS,
        },
        **documented(400, 401, 413, 415, 422, 429, 503),
    },
)
async def create_job(
    request: Request,
    response: Response,
    services: ServicesDep,
    owner: OwnerDep,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=255, description="Repeat a submission safely: the same key returns the same job."),
    ] = None,
    prefer: Annotated[
        str | None, Header(description="`wait=N` (N ≤ 60) holds the answer until the job ends or N seconds pass.")
    ] = None,
) -> JobPublic:
    """Upload a photo (`content`) and one to four paintings (`style`, repeated) with any engine parameters
    as form fields; the job is queued and answered with `202` and its `Location`. Optionally, per style N (from 1):
    `mask_N`, where on the photo that painting's style goes, and `source_mask_N`, the part of the painting to draw
    it from (grey levels are weights; any size, scaled to the picture).

    ```
    curl -H "Authorization: Bearer $KEY" -F content=@photo.jpg -F style=@painting.jpg \\
         -F size=512 -F style_weight=10 http://127.0.0.1:8000/v1/jobs
    ```
    """
    try:
        raw = await read_form(request)
        record, created = await run_in_threadpool(_submit, services, owner, raw, idempotency_key)
    finally:
        await request.close()  # the uploads' temporary files
    wait = _wait_seconds(prefer, services.settings.max_wait_seconds)
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait:g}"
        record = await _wait_for_end(services, record, wait)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = str(request.url_for("get_job", job_id=record.id))
    response.status_code = 201 if record.finished and wait is not None else 202
    return _public(request, services, record)


def _submit(services: Services, owner: str, raw: RawSubmission, idempotency_key: str | None) -> tuple[JobRecord, bool]:
    """Validate, admit, store the files and queue the job (blocking I/O and decoding: off the event loop)."""
    store, settings = services.store, services.settings
    fingerprint = raw.fingerprint()
    if idempotency_key:
        replay = store.find_idempotent(owner, idempotency_key, fingerprint)
        if replay is not None:
            return replay, False
    submission = validate(
        raw,
        max_pixels=settings.max_image_pixels,
        max_size=settings.max_size,
        webhooks=services.webhooks,
        clip_limits=settings.clip_limits(),
    )
    _check_layers_served(services, submission.params)
    # The record comes first, so every stored file belongs to a job that retention will clean up, even if this
    # process dies before queueing it; a worker then queues the job (``JobStore.claim_unsent``).
    job_id = new_job_id()
    record = JobRecord(
        id=job_id,
        owner=owner,
        params=submission.params,
        style_count=len(submission.styles),
        masks=sorted(submission.masks),
        source_masks=sorted(submission.source_masks),
        progress=JobProgress(total=_total_iterations(submission), frames=submission.frames),
        clip=submission.clip,
        clip_frames=submission.frames,
        created_at=datetime.now(UTC),
        webhook_url=submission.webhook_url,
        webhook_status="pending" if submission.webhook_url else None,
        idempotency_key=idempotency_key,
    )
    limits = Limits(queue_depth=settings.max_queue_depth, per_key=settings.max_active_jobs_per_key)
    stored, created = store.create(record, idempotency_key, fingerprint, limits)
    if not created:  # a concurrent request with the same key won the race
        return stored, False
    try:
        _store_inputs(services.storage, submission, job_id)
    except Exception:
        # Whatever stopped the files (mostly StorageUnavailable: the caller gets its 503), no record may stay
        # that points at inputs that do not exist, or housekeeping would queue it to fail as input_missing.
        _withdraw(services, stored, idempotency_key)
        raise
    store.release(stored)
    try:
        enqueue(services.celery, settings)
    except Exception as error:
        # Accepted all the same: the job is recorded as owed a message, which a worker's housekeeping sends.
        log.warning("job %s: queue message not sent (%s); a worker will send it", job_id, error)
        return stored, True
    store.mark_sent(job_id)
    return stored, True


def _total_iterations(submission: Submission) -> int:
    if submission.clip is None or submission.frames is None:
        return submission.params.iterations
    return submission.clip.total_iterations(submission.params, submission.frames)


def _check_layers_served(services: Services, params: StyleParams) -> None:
    """Refuse (422) layers that no live worker's network has, when every live worker's weights name its network.

    A worker on a supplied weights file, or no live worker at all, leaves the check to the worker, which fails
    such a job with the same message."""
    workers = services.workers.alive(alive_window(services.settings.heartbeat_seconds))
    networks = {network_of_weights(name) for name in services.workers.weights(workers).values()}
    if not networks or None in networks:
        return
    layers = {*params.content_layers, *params.style_layers}
    served = [network for network in networks if network is not None and all(map(network.has, layers))]
    if not served:
        next(network for network in networks if network is not None).check_layers(layers)


def _store_inputs(storage: Storage, submission: Submission, job_id: str) -> None:
    """Stream each upload, masks included, from its spooled file into the store."""
    content_key, style_keys = input_keys(job_id, len(submission.styles))
    for key, file in zip([content_key, *style_keys], [submission.content, *submission.styles], strict=True):
        storage.put_file(key, rewound(file))
    for source, masks in ((False, submission.masks), (True, submission.source_masks)):
        for number, file in masks.items():
            storage.put_file(mask_key(job_id, number, source=source), rewound(file))


def _withdraw(services: Services, record: JobRecord, idempotency_key: str | None) -> None:
    """Take back an admitted job whose files could not all be stored, and what it did store, if the store lets us
    (else retention removes that later)."""
    services.store.withdraw(record, idempotency_key)
    with contextlib.suppress(StorageUnavailable):
        services.storage.delete_folder(job_folder(record.id))


def _wait_seconds(prefer: str | None, limit: float) -> float | None:
    match = _PREFER_WAIT.search(prefer or "")
    return None if match is None else min(float(match.group(1)), limit)


async def _wait_for_end(services: Services, record: JobRecord, seconds: float) -> JobRecord:
    """The job once it is final, or as it stands after ``seconds``, or as last seen if Redis goes away: the job
    is accepted by now, and a 503 would tell the client to submit it again."""
    watcher = JobWatcher(services.events_redis, services.store)
    latest = record
    with anyio.move_on_after(seconds):
        try:
            async with contextlib.aclosing(watcher.changes(record.id)) as changes:
                async for change in changes:
                    if change is not None:
                        latest = change
        except redis.RedisError as error:
            log.warning("job %s: stopped waiting for it, Redis unavailable (%s)", record.id, error)
    return latest


@router.get("", summary="List your jobs", response_model=JobList, responses=documented(401, 422))
def list_jobs(
    request: Request,
    services: ServicesDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 20,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page.")] = None,
) -> JobList:
    """The caller's jobs, newest first."""
    page = services.store.list_owned(owner, limit, cursor)
    return JobList(jobs=[_public(request, services, record) for record in page.jobs], next_cursor=page.next_cursor)


@router.get("/{job_id}", summary="Get a job", response_model=JobPublic, responses=documented(401, 404))
def get_job(request: Request, services: ServicesDep, owner: OwnerDep, job_id: JobId) -> JobPublic:
    """Status, progress, latest losses, parameters and weights used, error or result link."""
    return _public(request, services, services.store.get_owned(job_id, owner))


@router.post("/{job_id}/cancel", summary="Cancel a job", response_model=JobPublic, responses=documented(401, 404, 409))
def cancel_job(request: Request, services: ServicesDep, owner: OwnerDep, job_id: JobId) -> JobPublic:
    """A queued job is canceled at once and never starts; a running one stops within one iteration
    (`cancel_requested` is true until its worker confirms). Canceling a canceled job is a no-op; a
    succeeded or failed job answers `409`."""
    return _public(request, services, services.store.cancel(job_id, owner))


@router.get(
    "/{job_id}/result",
    summary="Download the result",
    response_class=Response,
    responses={
        **_IMAGE_RESPONSES,
        **_REDIRECT_RESPONSE,
        **documented(401, 404, 409, 503, more={404: "Also, with `not_found`, when the result file is gone."}),
    },
)
def get_result(services: ServicesDep, owner: OwnerDep, job_id: JobId) -> Response:
    """The picture, with the Content-Type of the job's `output_format`, or a clip's video in its `clip_format`;
    `409` until the job has succeeded.
    With `RESTYLE_RESULT_REDIRECT` and an object store, `307` to a short-lived URL of the picture there."""
    record = services.store.get_owned(job_id, owner)
    if record.status in ("queued", "running"):
        raise ResultNotReady(f"job {job_id} is {record.status}; poll it until its status is succeeded")
    if record.status != "succeeded" or record.result_key is None:
        raise NoResult(f"job {job_id} {record.status}; it has no result")
    extension: str
    if record.clip is not None:
        extension, media_type = record.clip.clip_format, CLIP_MEDIA_TYPES[record.clip.clip_format]
    else:
        extension = "jpg" if record.params.output_format == "jpeg" else record.params.output_format
        media_type = MEDIA_TYPES[record.params.output_format]
    return _download(
        services,
        record.result_key,
        media_type=media_type,
        filename=f"restyle-{job_id}.{extension}",
        cache_control="private, max-age=31536000, immutable",
        missing=f"the result of job {job_id} is no longer stored",
    )


@router.get(
    "/{job_id}/preview",
    summary="Latest in-progress picture",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        **_REDIRECT_RESPONSE,
        **documented(
            401,
            404,
            503,
            more={404: "Also, with `not_found`, while the job has no preview yet (its `preview_url` is null)."},
        ),
    },
)
def get_preview(services: ServicesDep, owner: OwnerDep, job_id: JobId) -> Response:
    """A small JPEG of the picture so far (every `RESTYLE_SNAPSHOT_EVERY` iterations); `404` until the first.
    With `RESTYLE_RESULT_REDIRECT` and an object store, `307` to a short-lived URL of the picture there."""
    record = services.store.get_owned(job_id, owner)
    if record.preview_key is None:
        raise NotFound(f"job {job_id} has no preview yet")
    return _download(
        services,
        record.preview_key,
        media_type="image/jpeg",
        filename=f"restyle-{job_id}-preview.jpg",
        cache_control="no-store",
        missing=f"job {job_id} has no preview yet",
    )


def _download(
    services: Services, key: str, *, media_type: str, filename: str, cache_control: str, missing: str
) -> Response:
    """The stored object ``key`` as the picture ``filename``: a redirect to the store's own URL for it when so
    configured and the store has one (the bytes then bypass the API), else streamed from the store; ``missing``
    is the 404's detail when it is gone."""
    settings = services.settings
    if settings.result_redirect:
        url = services.storage.download_url(
            key, media_type=media_type, filename=filename, expires_seconds=settings.result_url_seconds
        )
        if url is not None:
            # Never cached: the URL expires, the API's address does not.
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        data = services.storage.get(key)
    except ObjectNotFound:
        raise NotFound(missing) from None
    return Response(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": cache_control},
    )


@router.get(
    "/{job_id}/events",
    summary="Follow a job live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"example": _EVENT_EXAMPLE}}}, **documented(401, 404)},
)
async def follow_job(request: Request, services: ServicesDep, owner: OwnerDep, job_id: JobId) -> StreamingResponse:
    """Server-sent events: a `job` event (the job JSON) now and whenever it changes, then `end` after a
    final state, when the stream closes. Browsers pass the key as `?access_token=` (EventSource cannot set
    headers) and should `close()` on `end`, or EventSource reconnects."""
    await run_in_threadpool(services.store.get_owned, job_id, owner)
    watcher = JobWatcher(services.events_redis, services.store)
    base_url = _base_url(request, services)

    async def stream() -> Any:
        async with contextlib.aclosing(watcher.changes(job_id)) as changes:
            async for record in changes:
                yield KEEPALIVE_EVENT if record is None else server_sent_event(record, base_url)
        yield END_EVENT

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
