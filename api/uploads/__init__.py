"""Reading a job submission: a streamed size limit, the multipart form, and validation of files and fields.

The form's parameter fields are exactly ``StyleParams``' fields (validated by the model itself, so ranges
and messages are the engine's); the OpenAPI description of the form is derived from the same model. The files
stay where the multipart parser spooled them (a temporary file past 1 MB): they are hashed, decoded and
stored from there, so a request costs memory for its decoded pictures but never for copies of its uploads.

A submission goes through the first four modules in this order; the fifth documents what they accept:
- ``limits``: ``UploadLimit``, the middleware that bounds the body and refuses one cut short;
- ``parsing``: ``read_form`` splits the multipart form into files (masks by style) and fields (``RawSubmission``);
- ``spooling``: a spooled upload read from its start, and hashed in chunks (the request's fingerprint);
- ``validation``: ``validate`` checks the parameters, decodes the pictures and masks and checks the webhook URL;
- ``openapi``: the form as the OpenAPI document describes it, fitted to this server's settings.
"""

from __future__ import annotations

from api.uploads.limits import UploadLimit
from api.uploads.openapi import cap_size, form_schema, refuse_webhooks
from api.uploads.parsing import CONTENT_FIELD, SIZE_FIELD, STYLE_FIELD, WEBHOOK_FIELD, RawSubmission, read_form
from api.uploads.spooling import rewound
from api.uploads.validation import Submission, default_size, validate

__all__ = [
    "CONTENT_FIELD",
    "SIZE_FIELD",
    "STYLE_FIELD",
    "WEBHOOK_FIELD",
    "RawSubmission",
    "Submission",
    "UploadLimit",
    "cap_size",
    "default_size",
    "form_schema",
    "read_form",
    "refuse_webhooks",
    "rewound",
    "validate",
]
