"""``/``: the single-page web client (its files live in api/static/)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.problems import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise NotFound("this installation has no web page; the API is under /v1 and documented at /docs")
    return FileResponse(page, media_type="text/html")
