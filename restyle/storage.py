"""Where uploads, previews and results live: one small key→bytes interface and its local-directory backend.

The API and the worker only ever see ``Storage``; ``open_storage`` is the single place that picks a backend,
so an object store (S3, GCS, …) is one new class here and nothing else changes.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

from restyle.settings import Settings

# Keys are slash-separated segments of safe characters: they map onto paths and object names alike,
# and can never climb out of the storage root.
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


class ObjectNotFound(KeyError):
    """No object is stored under the key (never written, deleted, or cleaned up after retention)."""


@runtime_checkable
class Storage(Protocol):
    """A flat key→bytes store; writes are atomic, so readers see a whole object or none."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``ObjectNotFound`` when there are none."""

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error (cleanup may run twice)."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""

    def delete_folder(self, prefix: str) -> None:
        """Remove every object whose key starts with ``prefix/``, whoever wrote them (a job's runs each write
        their own result and previews, so their keys are not known in advance)."""


class LocalStorage:
    """Objects as files under a root directory (a shared volume when the API and workers are separate)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target, then rename: a crash leaves a stray temp file, never a half-written object.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._drop_empty_parents(path)

    def _drop_empty_parents(self, path: Path) -> None:
        """Drop directories a deletion emptied, so retention cleanup leaves no husks behind."""
        for parent in path.parents:
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_folder(self, prefix: str) -> None:
        folder = self._path(prefix)
        shutil.rmtree(folder, ignore_errors=True)
        self._drop_empty_parents(folder)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key


def open_storage(settings: Settings) -> Storage:
    """The configured backend; the only place that knows which one is in use."""
    return LocalStorage(settings.storage_dir)
