"""The multipart form of a job submission split into its files and text fields, its shape checked.

Only the shape is checked here (one content file, 1–4 style files, at most one mask of each kind per style that
was sent, each text field once): what the files and fields say is ``validation``'s, once the cheap checks have
passed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from api.problems import InvalidField, InvalidUpload, UnsupportedMediaType
from api.uploads.spooling import rewound, sha256
from core.params import MAX_STYLES
from restyle.jobs import mask_name

CONTENT_FIELD = "content"
CLIP_FIELD = "clip"
STYLE_FIELD = "style"
WEBHOOK_FIELD = "webhook_url"
SIZE_FIELD = "size"
# The numbered mask fields, each with its style number and whether it covers the painting: ``mask_2`` is where on
# the photo style 2 paints, ``source_mask_2`` the part of painting 2 it draws from.
MASK_FIELDS = {
    mask_name(number, source=source): (number, source)
    for source in (False, True)
    for number in range(1, MAX_STYLES + 1)
}
_FILE_FIELDS = {CONTENT_FIELD, CLIP_FIELD, STYLE_FIELD, *MASK_FIELDS}


@dataclass(frozen=True)
class RawSubmission:
    """The form split into files and fields, before any expensive check; ``content`` is the photo, or the video
    when ``is_clip`` (sent as ``clip``)."""

    content: UploadFile
    styles: list[UploadFile]
    fields: dict[str, str]
    # Style number (from 1) → its mask over the photo, and over its painting; only styles that were sent.
    masks: dict[int, UploadFile] = field(default_factory=dict)
    source_masks: dict[int, UploadFile] = field(default_factory=dict)
    is_clip: bool = False

    @property
    def content_field(self) -> str:
        return CLIP_FIELD if self.is_clip else CONTENT_FIELD

    def fingerprint(self) -> str:
        """Identifies the request, to tell a replay from a reused Idempotency-Key; slow (it reads every file,
        streamed), so call it off the event loop. A request without masks keeps the fingerprint it had before
        masks existed, so its key still replays."""
        digest = hashlib.sha256()
        if self.is_clip:  # the same file sent as a photo asks for another job
            digest.update(b"clip\0")
        for key in sorted(self.fields):
            digest.update(f"{key}={self.fields[key]}\0".encode())
        for upload in [self.content, *self.styles]:
            digest.update(sha256(rewound(upload.file)))
        for source, masks in ((False, self.masks), (True, self.source_masks)):
            for number in sorted(masks):
                digest.update(f"{mask_name(number, source=source)}\0".encode())
                digest.update(sha256(rewound(masks[number].file)))
        return digest.hexdigest()


async def read_form(request: Request) -> RawSubmission:
    """Parse the multipart body and check its shape: one content file (or one clip), 1–4 style files, masks only for
    styles that were sent, text fields."""
    media_type, _ = parse_options_header(request.headers.get("content-type", ""))
    if media_type != b"multipart/form-data":
        raise UnsupportedMediaType(
            "send multipart/form-data with a 'content' file and 1–4 'style' files "
            "(curl -F content=@photo.jpg -F style=@painting.jpg)"
        )
    # Caps far above what a valid job sends (13 files with every mask, a few dozen fields), which only a runaway
    # client meets; it gets Starlette's 400 naming the cap instead of the messages below.
    form = await request.form(max_files=4 * (MAX_STYLES + 1), max_fields=200, max_part_size=64 * 1024)
    unexpected = sorted({key for key, value in form.multi_items() if isinstance(value, UploadFile)} - _FILE_FIELDS)
    if unexpected:
        raise InvalidUpload(
            f"unexpected file field(s) {', '.join(unexpected)}: send the photo as 'content' (or a video as 'clip'), "
            f"paintings as 'style', and masks as 'mask_N' or 'source_mask_N' for style N (1 to {MAX_STYLES})"
        )
    contents = _files(form, CONTENT_FIELD)
    clips = _files(form, CLIP_FIELD)
    styles = _files(form, STYLE_FIELD)
    if len(contents) + len(clips) != 1:
        sent = f"{len(contents)} 'content' and {len(clips)} 'clip' files"
        raise InvalidUpload(f"send exactly one 'content' file (a photo) or one 'clip' file (a video), not {sent}")
    if not 1 <= len(styles) <= MAX_STYLES:
        raise InvalidUpload(f"send between 1 and {MAX_STYLES} 'style' files (repeat the field), not {len(styles)}")
    masks, source_masks = _masks(form, len(styles))
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            continue
        if key in fields:
            raise InvalidField(key, "give this field once")
        fields[key] = value
    return RawSubmission(
        content=(contents or clips)[0],
        styles=styles,
        fields=fields,
        masks=masks,
        source_masks=source_masks,
        is_clip=bool(clips),
    )


def _masks(form: FormData, style_count: int) -> tuple[dict[int, UploadFile], dict[int, UploadFile]]:
    """The mask files by style number, over the photo and over the paintings; a mask for a style that was not
    sent, or two in one field, is refused naming the field."""
    found: tuple[dict[int, UploadFile], dict[int, UploadFile]] = ({}, {})
    for name, (number, source) in MASK_FIELDS.items():
        uploads = _files(form, name)
        if not uploads:
            continue
        if len(uploads) > 1:
            raise InvalidUpload(f"'{name}': send at most one mask per field, not {len(uploads)}")
        if number > style_count:
            sent = "1 'style' file was" if style_count == 1 else f"{style_count} 'style' files were"
            raise InvalidUpload(f"'{name}' is a mask for style {number}, but only {sent} sent")
        found[source][number] = uploads[0]
    return found


def _files(form: FormData, name: str) -> list[UploadFile]:
    values = form.getlist(name)
    strings = [value for value in values if not isinstance(value, UploadFile)]
    if strings:
        raise InvalidUpload(f"'{name}' must be a file upload (curl -F {name}=@picture.jpg), not a text value")
    return [value for value in values if isinstance(value, UploadFile)]
