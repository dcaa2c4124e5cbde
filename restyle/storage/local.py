"""The local-directory backend: objects as files under a root (a shared volume when API and workers are
separate processes or containers on one host)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from restyle.storage import ObjectNotFound, StorageUnavailable, check_key

_COPY_CHUNK_BYTES = 1 << 20


class LocalStorage:
    """Objects as files under ``root``; a write goes to a temporary file beside its target, then is renamed
    over it, so a crash leaves a stray ``.tmp-…`` file, never a half-written object. A disk that fails (full,
    read-only, gone) raises ``StorageUnavailable`` like an unreachable bucket, never a bare ``OSError``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        with self._failing_as_unavailable("create the directory"):
            self.root.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, data: bytes) -> None:
        with self._failing_as_unavailable(f"write {key}"), self._replacing(key) as file:
            file.write(data)

    def put_file(self, key: str, source: BinaryIO) -> None:
        with self._failing_as_unavailable(f"write {key}"), self._replacing(key) as file:
            shutil.copyfileobj(source, file, _COPY_CHUNK_BYTES)

    @contextmanager
    def _failing_as_unavailable(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise StorageUnavailable(f"storage directory {self.root}: cannot {action}: {reason}") from error

    @contextmanager
    def _replacing(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                yield file
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        path = self._path(key)
        with self._failing_as_unavailable(f"read {key}"):
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                raise ObjectNotFound(key) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._failing_as_unavailable(f"delete {key}"):
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

    def download_url(self, key: str, *, media_type: str, filename: str, expires_seconds: int) -> str | None:
        """None: files on a disk have no URL of their own; the API serves them."""
        return None

    def check(self) -> None:
        """The root must be a writable directory (a read-only or full volume fails every job otherwise)."""
        try:
            with tempfile.TemporaryFile(dir=self.root, prefix=".check-"):
                pass
        except OSError as error:
            raise StorageUnavailable(f"storage directory {self.root} is not writable: {error.strerror}") from error

    def describe(self) -> str:
        return f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)
