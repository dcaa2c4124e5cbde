"""A parsed submission validated: its parameters, its pictures, its masks and its webhook URL (``Submission``)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from starlette.datastructures import UploadFile

from api.problems import InvalidField
from api.uploads.parsing import CLIP_FIELD, SIZE_FIELD, WEBHOOK_FIELD, RawSubmission
from api.uploads.spooling import rewound
from core.errors import InvalidMask
from core.images import decode_image, decode_mask
from core.masks import StyleMask, check_masks
from core.params import ClipParams, StyleParams
from core.schedule import check_fits
from core.video.codec import ClipInfo, ClipLimits, inspect_clip
from restyle.jobs import mask_name
from restyle.webhook_targets import UnresolvedWebhookHost, WebhookPolicy


@dataclass(frozen=True)
class Submission:
    """A validated job request: decoded pictures checked, the uploaded files kept for storage."""

    params: StyleParams
    content: BinaryIO
    styles: list[BinaryIO]
    webhook_url: str | None
    # A clip's job: what the video adds to the parameters, and the frames its one decoding pass found.
    clip: ClipParams | None = None
    frames: int | None = None
    # Style number (from 1) → its mask over the photo, and over its painting, each decoded and checked.
    masks: dict[int, BinaryIO] = field(default_factory=dict)
    source_masks: dict[int, BinaryIO] = field(default_factory=dict)


def validate(
    raw: RawSubmission,
    *,
    max_pixels: int,
    max_size: int,
    webhooks: WebhookPolicy | None,
    clip_limits: ClipLimits | None = None,
) -> Submission:
    """Check parameters (``size`` up to this server's ``max_size``, which lowers its default too), pictures, a clip
    against ``clip_limits`` (None: no clip is taken), and the webhook URL (``webhooks`` None: webhooks are off);
    slow (it decodes every image, and every frame of a clip, and may ask DNS about the webhook host), so call it off
    the event loop."""
    values: dict[str, Any] = dict(raw.fields)
    webhook_url = values.pop(WEBHOOK_FIELD, None) or None
    if webhook_url is not None:
        _check_webhook(webhook_url, webhooks)
    clip_values = {name: values.pop(name) for name in list(values) if name in ClipParams.model_fields}
    if clip_values and not raw.is_clip:
        raise InvalidField(next(iter(clip_values)), "only a clip takes this field; send the video as 'clip'")
    if values.get(SIZE_FIELD) in (None, ""):
        values[SIZE_FIELD] = default_size(max_size)
    params = StyleParams.from_mapping(values)
    if params.size > max_size:
        raise InvalidField(
            "size", f"{params.size} px is over this server's limit of {max_size} px (its RESTYLE_MAX_SIZE)"
        )
    params.blend_weights(len(raw.styles))
    clip = ClipParams.from_mapping(clip_values) if raw.is_clip else None
    content_name = f"{raw.content_field} ({raw.content.filename or 'unnamed'})"
    style_names = [f"style {index} ({upload.filename or 'unnamed'})" for index, upload in enumerate(raw.styles, 1)]
    # One picture decoded at a time, each dropped once its size is known: the memory of the largest, not of all.
    frames = None
    if raw.is_clip:
        info = _inspect_clip(raw.content.file, clip_limits, content_name)
        content_size, frames = (info.width, info.height), info.frames
    else:
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
        clip=clip,
        frames=frames,
    )


def _inspect_clip(file: BinaryIO, limits: ClipLimits | None, name: str) -> ClipInfo:
    """The clip checked against ``limits`` by ``core.video.codec`` (which reads files by path, so the upload is
    copied to one that lives only as long as the check)."""
    if limits is None:
        raise InvalidField(CLIP_FIELD, "this server takes no clips")
    with tempfile.NamedTemporaryFile(prefix="restyle-clip-") as copy:
        shutil.copyfileobj(rewound(file), copy)
        copy.flush()
        return inspect_clip(Path(copy.name), limits, name=name)


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
