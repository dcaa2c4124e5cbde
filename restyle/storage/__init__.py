"""Where uploads, previews and results live: one small key→bytes interface, a local directory or an S3 bucket.

The API and the worker only ever see ``Storage``; ``open_storage`` is the single place that picks a backend
(``RESTYLE_STORAGE_URL``: ``file:///path`` or ``s3://bucket/prefix``; else ``RESTYLE_STORAGE_DIR``). With
the local directory every API and worker must share one filesystem; with a bucket they share nothing but it
and Redis, so they can run on different hosts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from restyle.settings import Settings

# Keys are slash-separated segments of safe characters: they map onto paths and object names alike,
# and can never climb out of the storage root.
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


class ObjectNotFound(KeyError):
    """No object is stored under the key (never written, deleted, or cleaned up after retention)."""


class StorageUnavailable(Exception):
    """The store cannot be used (unreachable, missing bucket, refused credentials), after the backend's own
    retries; ``message`` is one line naming the problem, for a log, a 503 or a failed job."""

    code = "storage_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidStorageUrl(ValueError):
    """``RESTYLE_STORAGE_URL`` names a store that cannot be (a bucket prefix that is no storage key)."""


@runtime_checkable
class Storage(Protocol):
    """A flat key→bytes store; writes are atomic, so readers see a whole object or none.

    Every method may raise ``StorageUnavailable``; keys that ``check_key`` refuses raise ``ValueError``.
    """

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there."""

    def put_file(self, key: str, source: BinaryIO) -> None:
        """Store what ``source`` holds from its current position to its end, streamed: an upload is never
        held in memory whole (a multi-part upload on S3)."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``ObjectNotFound`` when there are none."""

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error (cleanup may run twice)."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""

    def delete_folder(self, prefix: str) -> None:
        """Remove every object whose key starts with ``prefix/``, whoever wrote them (a job's runs each write
        their own result and previews, so their keys are not known in advance)."""

    def download_url(self, key: str, *, media_type: str, filename: str, expires_seconds: int) -> str | None:
        """A short-lived URL from which a client downloads ``key`` directly, served with that media type and
        as that file name; None when the backend has none (the API then streams the object itself)."""

    def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the store answers now: at start-up, so a bad bucket, credentials
        or endpoint stop the process with one line instead of failing its first job, and by ``/readyz``, so
        it must stay cheap. A directory must be writable; a bucket must exist and accept the credentials
        (one HEAD request, which proves no permission to write)."""

    def describe(self) -> str:
        """Where the objects live, for logs and ``/readyz`` (never credentials)."""


def check_key(key: str) -> str:
    """``key`` if it is a valid storage key, else ``ValueError``: both backends refuse the same keys."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"invalid storage key {key!r}")
    return key


def open_storage(settings: Settings) -> Storage:
    """The configured backend; the only place that knows which one is in use."""
    from restyle.storage.local import LocalStorage

    if settings.storage_url is None:
        return LocalStorage(settings.storage_dir)
    parts = urlsplit(settings.storage_url)  # file:///… or s3://…: the settings accept no other
    if parts.scheme == "s3":
        from restyle.storage.s3 import S3Storage

        return S3Storage(bucket=parts.netloc, prefix=parts.path.strip("/"))
    return LocalStorage(Path(unquote(parts.path)))
