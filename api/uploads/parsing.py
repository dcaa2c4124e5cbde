"""The multipart form of a job submission split into its files and text fields, its shape checked.

Only the shape is checked here (one content file, 1–4 style files, each text field once): what the fields
say is ``validation``'s, once the cheap checks have passed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from api.problems import InvalidField, InvalidUpload, UnsupportedMediaType
from api.uploads.spooling import rewound, sha256
from core.params import MAX_STYLES

CONTENT_FIELD = "content"
STYLE_FIELD = "style"
WEBHOOK_FIELD = "webhook_url"
SIZE_FIELD = "size"
_FILE_FIELDS = (CONTENT_FIELD, STYLE_FIELD)


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
            digest.update(sha256(rewound(upload.file)))
        return digest.hexdigest()


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
