"""LocalStorage: the key→bytes contract every backend keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from restyle.settings import Settings
from restyle.storage import LocalStorage, ObjectNotFound, Storage, open_storage


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "objects")


def test_put_then_get_returns_the_same_bytes(storage: LocalStorage) -> None:
    storage.put("jobs/a/content", b"\x89PNG data")
    assert storage.get("jobs/a/content") == b"\x89PNG data"


def test_put_replaces_an_existing_object(storage: LocalStorage) -> None:
    storage.put("jobs/a/result", b"old")
    storage.put("jobs/a/result", b"new")
    assert storage.get("jobs/a/result") == b"new"


def test_get_of_a_missing_key_raises_object_not_found(storage: LocalStorage) -> None:
    with pytest.raises(ObjectNotFound):
        storage.get("jobs/missing/result")


def test_exists_tells_stored_from_missing_keys(storage: LocalStorage) -> None:
    storage.put("jobs/a/content", b"x")
    assert storage.exists("jobs/a/content")
    assert not storage.exists("jobs/a/result")


def test_delete_removes_the_object_and_its_emptied_directories(storage: LocalStorage) -> None:
    storage.put("jobs/a/content", b"x")
    storage.delete("jobs/a/content")
    assert not storage.exists("jobs/a/content")
    assert list(storage.root.iterdir()) == []


def test_deleting_a_missing_key_is_not_an_error(storage: LocalStorage) -> None:
    storage.delete("jobs/never/written")


def test_writes_leave_no_temporary_files_behind(storage: LocalStorage) -> None:
    storage.put("jobs/a/content", b"x" * 10_000)
    assert [path.name for path in (storage.root / "jobs" / "a").iterdir()] == ["content"]


@pytest.mark.parametrize("key", ["../escape", "jobs/../../etc/passwd", "/absolute", "jobs//double", ".hidden", ""])
def test_keys_that_could_escape_the_root_are_refused(storage: LocalStorage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.put(key, b"x")


def test_the_configured_backend_is_a_local_directory(tmp_path: Path) -> None:
    storage = open_storage(Settings(storage_dir=tmp_path / "configured"))
    assert isinstance(storage, Storage)
    storage.put("k", b"v")
    assert (tmp_path / "configured" / "k").read_bytes() == b"v"


def test_deleting_a_folder_removes_every_object_under_it_and_nothing_else(storage: LocalStorage) -> None:
    for key in ("jobs/a/content", "jobs/a/result-1", "jobs/a/result-2", "jobs/ab/content"):
        storage.put(key, b"x")
    storage.delete_folder("jobs/a")
    assert [storage.exists(key) for key in ("jobs/a/content", "jobs/a/result-2", "jobs/ab/content")] == [
        False,
        False,
        True,
    ]


def test_deleting_a_missing_folder_is_not_an_error(storage: LocalStorage) -> None:
    storage.delete_folder("jobs/never")
