"""Stand-ins for the storage that a local directory cannot play: a store in an outage, and one that hands out
download URLs as S3 does. Both keep their objects in a real ``LocalStorage``, so everything else works."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

from restyle.storage import StorageUnavailable
from restyle.storage.local import LocalStorage

OUTAGE_MESSAGE = "storage bucket restyle-test is unreachable: connection refused (after 3 tries)"
URL_BASE = "https://objects.example/restyle-test/"


class UnavailableStorage(LocalStorage):
    """A store whose ``failing`` operations ("put", "get", "check") raise ``StorageUnavailable`` for the keys
    that contain ``keys_containing`` (every key by default), as a store does once its own retries are spent."""

    def __init__(self, root: Path, *, failing: Collection[str], keys_containing: str = "") -> None:
        super().__init__(root)
        self.failing = set(failing)
        self.keys_containing = keys_containing

    def _outage(self, operation: str, key: str = "") -> None:
        if operation in self.failing and self.keys_containing in key:
            raise StorageUnavailable(OUTAGE_MESSAGE)

    def put(self, key: str, data: bytes) -> None:
        self._outage("put", key)
        super().put(key, data)

    def put_file(self, key: str, source: BinaryIO) -> None:
        self._outage("put", key)
        super().put_file(key, source)

    def get(self, key: str) -> bytes:
        self._outage("get", key)
        return super().get(key)

    def check(self) -> None:
        self._outage("check")
        super().check()


class PresigningStorage(LocalStorage):
    """A store with download URLs; each URL spells out what it was asked for, so tests can read it back."""

    def download_url(self, key: str, *, media_type: str, filename: str, expires_seconds: int) -> str | None:
        query = urlencode({"type": media_type, "name": filename, "expires": expires_seconds})
        return f"{URL_BASE}{key}?{query}"
