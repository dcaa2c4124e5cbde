"""A parsed submission validated: its parameters, its pictures, its masks and its webhook URL (``Submission``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from starlette.datastructures import UploadFile

from api.problems import InvalidField
from api.uploads.parsing import SIZE_FIELD, WEBHOOK_FIELD, RawSubmission
from core.errors import InvalidMask
from core.images import decode_image, decode_mask
from core.masks import StyleMask, check_masks
from core.params import StyleParams
from core.schedule import check_fits
from restyle.jobs import mask_name
from restyle.webhook_targets import UnresolvedWebhookHost, WebhookPolicy


@dataclass(frozen=True)
class Submission:
    """A validated job request: decoded pictures checked, the uploaded files kept for storage."""

    params: StyleParams
    content: BinaryIO
    styles: list[BinaryIO]
    webhook_url: str | None
    # Style number (from 1) → its mask over the photo, and over its painting, each decoded and checked.
    masks: dict[int, BinaryIO] = field(default_factory=dict)
    source_masks: dict[int, BinaryIO] = field(default_factory=dict)


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
    for source, masks in ((False, raw.masks), (True, raw.source_masks)):
        for number, upload in sorted(masks.items()):
            _check_mask(upload, number, len(raw.styles), source=source, max_pixels=max_pixels)
    return Submission(
        params,
        raw.content.file,
        [upload.file for upload in raw.styles],
        webhook_url,
        masks={number: upload.file for number, upload in raw.masks.items()},
        source_masks={number: upload.file for number, upload in raw.source_masks.items()},
    )


def _check_mask(upload: UploadFile, style_number: int, style_count: int, *, source: bool, max_pixels: int) -> None:
    """Refuse, before the job is queued, a mask the worker would fail on: one that is not a picture, or that the
    engine refuses (``core.masks.check_masks``: all black), with the engine's code and message after the field and
    file it came in. Any size is taken: the engine scales a mask to the picture it covers. One mask is decoded at
    a time, as the pictures are."""
    name = f"{mask_name(style_number, source=source)} ({upload.filename or 'unnamed'})"
    mask = decode_mask(upload.file, max_pixels=max_pixels, name=name)
    alone = StyleMask(painting=mask) if source else StyleMask(photo=mask)
    try:
        check_masks([alone if number == style_number else None for number in range(1, style_count + 1)], style_count)
    except InvalidMask as error:
        raise type(error)(f"{name}: {error.message}") from error


def default_size(max_size: int) -> int:
    """The ``size`` of a job that leaves it out: the engine's default, or this server's limit where that is lower
    (a form that the OpenAPI document allows is never refused for a value it did not send)."""
    return min(StyleParams.model_fields[SIZE_FIELD].default, max_size)


def _check_webhook(url: str, policy: WebhookPolicy | None) -> None:
    """Refuse a malformed URL or one that already points inside the network (``InvalidWebhookUrl``).

    A host that does not resolve yet is accepted: it may by the time the job ends, and the API's view of DNS
    need not be the worker's; the dispatcher checks the host again at every attempt, which is what protects.
    """
    if policy is None:
        raise InvalidField(WEBHOOK_FIELD, "webhooks are off on this server (it has no RESTYLE_WEBHOOK_SECRET)")
    with contextlib.suppress(UnresolvedWebhookHost):
        policy.target(url)
