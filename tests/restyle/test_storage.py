"""Storage: the key→bytes contract that both backends keep, how the backend is chosen, and how the S3 backend
names its objects, uploads large files, hands out download URLs and fails (against a real S3-compatible
server on loopback)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from restyle.settings import Settings
from restyle.storage import InvalidStorageUrl, ObjectNotFound, Storage, StorageUnavailable, open_storage
from restyle.storage.local import LocalStorage
from restyle.storage.s3 import PART_BYTES, S3Storage
from tests.restyle.conftest import S3_PREFIX, MakeS3Storage, SlowDownServer
from tests.support import PATIENCE_SECONDS, REPO_ROOT
from tests.support.object_store import S3Server
from tests.support.ports import free_port
from tests.support.settings import settings_env

# Two whole parts and a short one: the S3 backend uploads it in three parts.
SEVERAL_PARTS = os.urandom(2 * PART_BYTES + 2**20)


def exactly(message: str) -> str:
    """A ``match`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


# The contract, on both backends ---------------------------------------------------------------------------


def test_put_then_get_returns_the_same_bytes(storage: Storage) -> None:
    storage.put("jobs/a/content", b"\x89PNG data")
    assert storage.get("jobs/a/content") == b"\x89PNG data"


def test_put_replaces_an_existing_object(storage: Storage) -> None:
    storage.put("jobs/a/result", b"old")
    storage.put("jobs/a/result", b"new")
    assert storage.get("jobs/a/result") == b"new"


def test_put_file_stores_the_source_from_its_current_position_to_its_end(storage: Storage) -> None:
    source = io.BytesIO(b"skipped:stored")
    source.seek(len(b"skipped:"))
    storage.put_file("jobs/a/content", source)
    assert storage.get("jobs/a/content") == b"stored"


def test_put_file_stores_a_source_larger_than_one_part(storage: Storage) -> None:
    storage.put_file("jobs/a/content", io.BytesIO(SEVERAL_PARTS))
    assert storage.get("jobs/a/content") == SEVERAL_PARTS


def test_put_file_replaces_an_existing_object(storage: Storage) -> None:
    storage.put("jobs/a/content", b"old")
    storage.put_file("jobs/a/content", io.BytesIO(b"new"))
    assert storage.get("jobs/a/content") == b"new"


def test_get_of_a_missing_key_raises_object_not_found(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        storage.get("jobs/missing/result")


def test_exists_tells_stored_from_missing_keys(storage: Storage) -> None:
    storage.put("jobs/a/content", b"x")
    assert storage.exists("jobs/a/content")
    assert not storage.exists("jobs/a/result")


def test_delete_removes_the_object(storage: Storage) -> None:
    storage.put("jobs/a/content", b"x")
    storage.delete("jobs/a/content")
    assert not storage.exists("jobs/a/content")


def test_deleting_a_missing_key_is_not_an_error(storage: Storage) -> None:
    storage.delete("jobs/never/written")


@pytest.mark.parametrize("key", ["../escape", "jobs/../../etc/passwd", "/absolute", "jobs//double", ".hidden", ""])
def test_keys_that_could_escape_the_root_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.put(key, b"x")


def test_deleting_a_folder_removes_every_object_under_it_and_nothing_else(storage: Storage) -> None:
    inside, beside = ["jobs/a/content", "jobs/a/result-1", "jobs/a/runs/2/preview"], ["jobs/ab/content", "jobs/a-b"]
    for key in inside + beside:
        storage.put(key, b"x")
    storage.delete_folder("jobs/a")
    assert [key for key in inside + beside if storage.exists(key)] == beside


def test_deleting_a_missing_folder_is_not_an_error(storage: Storage) -> None:
    storage.delete_folder("jobs/never")


def test_a_usable_store_passes_the_check(storage: Storage) -> None:
    storage.check()


# The local directory --------------------------------------------------------------------------------------


def test_deleting_the_last_object_of_a_directory_removes_the_directory(local_storage: LocalStorage) -> None:
    local_storage.put("jobs/a/content", b"x")
    local_storage.delete("jobs/a/content")
    assert list(local_storage.root.iterdir()) == []


def test_writes_leave_no_temporary_files_behind(local_storage: LocalStorage) -> None:
    local_storage.put("jobs/a/content", b"x" * 10_000)
    assert [path.name for path in (local_storage.root / "jobs" / "a").iterdir()] == ["content"]


def test_files_on_a_disk_have_no_download_url(local_storage: LocalStorage) -> None:
    local_storage.put("jobs/a/result", b"x")
    assert (
        local_storage.download_url("jobs/a/result", media_type="image/png", filename="a.png", expires_seconds=60)
        is None
    )


# Choosing the backend -------------------------------------------------------------------------------------


def test_without_a_storage_url_the_backend_is_the_storage_directory(tmp_path: Path) -> None:
    storage = open_storage(Settings(storage_dir=tmp_path / "configured"))
    storage.put("k", b"v")
    assert (tmp_path / "configured" / "k").read_bytes() == b"v"


def test_a_file_url_names_the_local_directory(tmp_path: Path) -> None:
    storage = open_storage(Settings(storage_url=f"file://{tmp_path}/by%20url", storage_dir=tmp_path / "ignored"))
    storage.put("k", b"v")
    assert (tmp_path / "by url" / "k").read_bytes() == b"v"


@pytest.mark.usefixtures("s3_environ")
def test_an_s3_url_names_the_bucket_and_the_prefix(s3_server: S3Server, s3_bucket: str) -> None:
    storage = open_storage(Settings(storage_url=f"s3://{s3_bucket}/deploy/restyle/"))
    assert isinstance(storage, Storage)
    assert storage.describe() == f"s3://{s3_bucket}/deploy/restyle at {s3_server.endpoint}"


@pytest.mark.usefixtures("s3_environ")
def test_an_s3_prefix_that_is_no_storage_key_is_refused(s3_bucket: str) -> None:
    with pytest.raises(InvalidStorageUrl, match="prefix 'deploy//restyle'"):
        open_storage(Settings(storage_url=f"s3://{s3_bucket}/deploy//restyle"))


def test_a_process_given_s3_env_keeps_its_objects_in_the_bucket(
    s3_settings: Settings, s3_env: dict[str, str], s3_server: S3Server, s3_bucket: str
) -> None:
    script = (
        "from restyle.settings import Settings; from restyle.storage import open_storage; "
        "open_storage(Settings()).put('jobs/a/content', b'from another process')"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=settings_env(s3_settings) | s3_env,
        check=True,
        timeout=PATIENCE_SECONDS,
    )
    stored = s3_server.client.get_object(Bucket=s3_bucket, Key=f"{S3_PREFIX}/jobs/a/content")
    assert stored["Body"].read() == b"from another process"


# S3: objects, uploads and download URLs -------------------------------------------------------------------


@pytest.mark.usefixtures("s3_environ")
@pytest.mark.parametrize(("prefix", "name"), [("restyle", "restyle/jobs/a/content"), ("", "jobs/a/content")])
def test_objects_are_named_by_the_prefix_and_the_key(
    s3_server: S3Server, s3_bucket: str, prefix: str, name: str
) -> None:
    S3Storage(bucket=s3_bucket, prefix=prefix).put("jobs/a/content", b"x")
    assert [item["Key"] for item in s3_server.client.list_objects_v2(Bucket=s3_bucket)["Contents"]] == [name]


def test_a_large_file_is_uploaded_in_parts(s3_storage: S3Storage, s3_server: S3Server) -> None:
    s3_storage.put_file("jobs/a/content", io.BytesIO(SEVERAL_PARTS))
    head = s3_server.client.head_object(Bucket=s3_storage.bucket, Key=f"{S3_PREFIX}/jobs/a/content")
    assert head["ETag"].endswith('-3"')  # the ETag of a multi-part upload counts its parts


class BreakingSource(io.RawIOBase):
    """An upload stream that breaks after ``good_bytes`` (a client hanging up mid-upload)."""

    def __init__(self, good_bytes: int) -> None:
        self.left = good_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise ConnectionResetError("the client hung up")
        count = min(len(buffer), self.left)
        buffer[:count] = b"x" * count
        self.left -= count
        return count


def test_an_upload_that_breaks_leaves_neither_an_object_nor_parts(s3_storage: S3Storage, s3_server: S3Server) -> None:
    with pytest.raises(ConnectionResetError):
        s3_storage.put_file("jobs/a/content", io.BufferedReader(BreakingSource(PART_BYTES + 2**20)))
    assert not s3_storage.exists("jobs/a/content")
    assert s3_server.client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []


def test_a_download_url_serves_the_object_without_credentials_as_the_named_file(s3_storage: S3Storage) -> None:
    s3_storage.put("jobs/a/result", b"\x89PNG result")
    url = s3_storage.download_url("jobs/a/result", media_type="image/png", filename="a.png", expires_seconds=60)
    assert url is not None
    response = httpx.get(url)
    assert (response.status_code, response.content) == (200, b"\x89PNG result")
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == 'inline; filename="a.png"'


def test_a_download_url_expires_after_the_requested_seconds(s3_storage: S3Storage) -> None:
    """By what the signed URL says: moto does not refuse expired URLs, S3 does."""
    url = s3_storage.download_url("jobs/a/result", media_type="image/png", filename="a.png", expires_seconds=90)
    assert url is not None
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["90"]


# S3: failures ---------------------------------------------------------------------------------------------

# Every call that sends a request (download_url only signs a URL, here).
CALLS: dict[str, Callable[[Storage], object]] = {
    "check": lambda storage: storage.check(),
    "put": lambda storage: storage.put("jobs/a/content", b"x"),
    "put_file": lambda storage: storage.put_file("jobs/a/content", io.BytesIO(b"x")),
    "get": lambda storage: storage.get("jobs/a/content"),
    "exists": lambda storage: storage.exists("jobs/a/content"),
    "delete": lambda storage: storage.delete("jobs/a/content"),
    "delete_folder": lambda storage: storage.delete_folder("jobs/a"),
}
every_call = pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())


@every_call
def test_every_call_on_a_missing_bucket_fails_naming_it(
    s3_storage_at: MakeS3Storage, s3_server: S3Server, call: Callable[[Storage], object]
) -> None:
    storage = s3_storage_at(s3_server.endpoint, "restyle-no-such-bucket")
    missing = f"S3 bucket restyle-no-such-bucket does not exist at {s3_server.endpoint}"
    with pytest.raises(StorageUnavailable, match=exactly(missing)):
        call(storage)


@every_call
def test_every_call_on_an_unreachable_endpoint_fails_naming_it(
    s3_storage_at: MakeS3Storage, call: Callable[[Storage], object]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    storage = s3_storage_at(endpoint, "restyle-bucket")
    unreachable = rf"^cannot reach S3 at {re.escape(endpoint)} for bucket restyle-bucket: [^\n]+$"
    with pytest.raises(StorageUnavailable, match=unreachable):
        call(storage)


@pytest.mark.parametrize(
    ("call", "reason"),
    [(CALLS["check"], "HTTP 403"), (CALLS["put"], "InvalidAccessKeyId (HTTP 403)")],
    ids=["check", "put"],
)
def test_refused_credentials_fail_naming_the_bucket_and_not_the_credentials(
    s3_storage_at: MakeS3Storage, refusing_s3: S3Server, call: Callable[[Storage], object], reason: str
) -> None:
    storage = s3_storage_at(refusing_s3.endpoint, "restyle-bucket")
    refused = (
        f"S3 at {refusing_s3.endpoint} refused access to bucket restyle-bucket: {reason}; check the credentials "
        "and the bucket's policy"
    )
    with pytest.raises(StorageUnavailable, match=exactly(refused)):
        call(storage)


def test_throttling_that_outlasts_the_retries_fails_after_them(
    s3_storage_at: MakeS3Storage, slow_down_server: SlowDownServer
) -> None:
    storage = s3_storage_at(slow_down_server.endpoint, "restyle-bucket")
    throttled = (
        f"S3 at {slow_down_server.endpoint} answered SlowDown (HTTP 503) for bucket restyle-bucket after 2 attempts"
    )
    with pytest.raises(StorageUnavailable, match=exactly(throttled)):
        storage.get("jobs/a/content")
    assert slow_down_server.requests == 2


def test_missing_credentials_fail_saying_where_they_come_from(
    s3_storage_at: MakeS3Storage, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # else botocore asks for an instance role, for seconds
    storage = s3_storage_at(s3_server.endpoint, "restyle-bucket")
    missing = (
        f"no usable AWS credentials for S3 bucket restyle-bucket at {s3_server.endpoint} (set AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY, a profile or a role)"
    )
    with pytest.raises(StorageUnavailable, match=exactly(missing)):
        storage.check()


def test_a_storage_directory_that_cannot_be_made_is_unavailable_naming_it() -> None:
    # /proc takes no new directories, whoever asks (these tests run as root, whom permissions do not stop).
    with pytest.raises(StorageUnavailable, match="storage directory /proc/restyle-storage: cannot create"):
        LocalStorage(Path("/proc/restyle-storage"))
