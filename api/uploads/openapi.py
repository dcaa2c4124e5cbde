"""The job form as the OpenAPI document describes it: derived from ``StyleParams``, then fitted to this server.

``form_schema`` is the request body of ``POST /v1/jobs``; ``cap_size`` and ``refuse_webhooks`` adjust a built
document to this server's settings, so the page and clients read its limits there rather than from a 422.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.uploads.parsing import CLIP_FIELD, CONTENT_FIELD, MASK_FIELDS, SIZE_FIELD, STYLE_FIELD, WEBHOOK_FIELD
from api.uploads.validation import default_size
from core.params import MAX_STYLES, ClipParams, StyleParams

_NULLABLE_KEYS = ("anyOf", "default")


def form_schema() -> dict[str, Any]:
    """The OpenAPI request body of POST /v1/jobs, derived from StyleParams so it cannot drift."""
    properties: dict[str, Any] = {
        CONTENT_FIELD: {"type": "string", "format": "binary", "description": "The photo to repaint."},
        CLIP_FIELD: {
            "type": "string",
            "format": "binary",
            "description": "Instead of `content`: a video (MP4, WebM or GIF) to repaint frame by frame, each frame "
            "held to the one before it so the strokes do not flicker. The result is a clip in `clip_format`, with the "
            "video's frame rate and sound. Limits: RESTYLE_MAX_CLIP_BYTES, _SECONDS, _FRAMES and _PIXELS, each "
            "refused with `422` before the job is queued.",
        },
        STYLE_FIELD: {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "minItems": 1,
            "maxItems": MAX_STYLES,
            "description": f"One to {MAX_STYLES} paintings; repeat the field for several.",
        },
    }
    for name, (number, source) in MASK_FIELDS.items():
        properties[name] = {"type": "string", "format": "binary", "description": _mask_description(number, source)}
    properties.update(_field_schemas(StyleParams))
    properties.update(
        {
            name: {**schema, "description": f"Only with `clip`. {schema.get('description', '')}"}
            for name, schema in _field_schemas(ClipParams).items()
        }
    )
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
                        "required": [STYLE_FIELD],
                        "properties": properties,
                        "additionalProperties": False,
                        # A photo, or a clip with the fields only a clip takes (``false``: the field must be absent).
                        "oneOf": [
                            {
                                "required": [CONTENT_FIELD],
                                "properties": {name: False for name in [CLIP_FIELD, *ClipParams.model_fields]},
                            },
                            {"required": [CLIP_FIELD], "properties": {CONTENT_FIELD: False}},
                        ],
                    },
                    "encoding": {
                        **{name: {"contentType": "image/*"} for name in [CONTENT_FIELD, STYLE_FIELD, *MASK_FIELDS]},
                        # MP4, WebM or GIF, told apart by the bytes themselves (the part's media type is not read).
                        CLIP_FIELD: {"contentType": "application/octet-stream"},
                    },
                }
            },
        }
    }


def _field_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """Each field of ``model`` as a form field: scalars as they are, a nullable scalar as the scalar (a form cannot
    send null: the field is left out instead, so it is documented without a default), mappings and lists as text
    ('relu1_1:1,relu2_1:0.5', '3,1')."""
    fields: dict[str, Any] = {}
    for name, schema in model.model_json_schema()["properties"].items():
        info = model.model_fields[name]
        default = info.get_default(call_default_factory=True)
        if _is_scalar(schema):
            fields[name] = schema
        elif _is_scalar(branch := _not_null(schema)):
            fields[name] = {**branch, **{key: value for key, value in schema.items() if key not in _NULLABLE_KEYS}}
        else:
            fields[name] = {
                "type": "string",
                "title": schema.get("title", name),
                "description": info.description,
                "example": _as_form_text(default) if default is not None else "3,1",
            }
    return fields


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


def _mask_description(number: int, source: bool) -> str:
    """What the mask field of style ``number`` means, over the photo or (``source``) over the painting."""
    what = f"the part of painting {number} that its style is drawn from" if source else f"where style {number} paints"
    over = "painting" if source else "photo"
    return (
        f"A mask over the {over}: {what}. Grey levels are weights (black and transparent none, white full); any size, "
        f"scaled to the {over}. Only with at least {number} `style` file{'s' if number > 1 else ''}; an all-black mask "
        "is refused."
    )


def _is_scalar(schema: dict[str, Any]) -> bool:
    return schema.get("type") not in (None, "object", "array")


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The one non-null branch of a nullable field's schema (``bool | None``), or {} for any other schema."""
    branches = [branch for branch in schema.get("anyOf", []) if branch.get("type") != "null"]
    return branches[0] if len(branches) == 1 else {}


def _as_form_text(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{key}:{weight:g}" for key, weight in value.items())
    if isinstance(value, list):
        return ",".join(f"{item:g}" for item in value)
    return str(value)
