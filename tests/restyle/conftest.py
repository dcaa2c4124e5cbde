"""Fixtures for the unit tests of restyle/: a JobStore on the test Redis, record builders, and storage of
either backend (with S3 endpoints that fail in each way a real one does)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from core.params import StyleParams
from restyle.jobs import JobProgress, JobRecord, JobStore, new_job_id
from restyle.storage import Storage
from restyle.storage.local import LocalStorage
from restyle.storage.s3 import S3Storage
from tests.support.object_store import S3Server
from tests.support.settings import MakeSettings

OWNER = "key-alice"


@pytest.fixture
def store(make_settings: MakeSettings, redis_client: redis.Redis[bytes]) -> JobStore:
    """A store under a fresh key prefix, so every test starts from an empty service."""
    settings = make_settings()
    return JobStore(redis_client, settings.key_prefix, settings.retention_seconds)


def new_record(owner: str = OWNER, webhook_url: str | None = None) -> JobRecord:
    """A job record as the API would create it (10 iterations at 32 px, one style)."""
    params = StyleParams(iterations=10, size=32)
    return JobRecord(
        id=new_job_id(),
        owner=owner,
        params=params,
        style_count=1,
        progress=JobProgress(total=params.iterations),
        created_at=datetime.now(UTC),
        webhook_url=webhook_url,
    )


# Storage --------------------------------------------------------------------------------------------------

S3_PREFIX = "restyle"
MakeS3Storage = Callable[..., S3Storage]


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "objects")


@pytest.fixture
def s3_storage(s3_bucket: str, s3_environ: None) -> S3Storage:
    """Objects under ``restyle/`` in a fresh bucket of the session's S3 server."""
    return S3Storage(bucket=s3_bucket, prefix=S3_PREFIX)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Each backend in turn, empty: the contract tests run against both."""
    storage: Storage = request.getfixturevalue(f"{request.param}_storage")
    return storage


@pytest.fixture
def s3_storage_at(s3_environ: None, monkeypatch: pytest.MonkeyPatch) -> MakeS3Storage:
    """``S3Storage`` of some bucket at some endpoint that tries twice with short timeouts, so that failures,
    which the default retries would ride out for seconds, come at once."""

    def make(endpoint: str, bucket: str) -> S3Storage:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        return S3Storage(bucket=bucket, max_attempts=2, connect_timeout=1, read_timeout=1)

    return make


@pytest.fixture(scope="session")
def refusing_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server that checks credentials and knows none, so it refuses the test's dummy ones."""
    server = S3Server(tmp_path_factory.mktemp("s3-auth") / "moto.log", enforce_auth=True)
    yield server
    server.stop()


class SlowDownServer:
    """An S3 endpoint so overloaded that it answers every request 503 SlowDown, counting them."""

    def __init__(self) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _slow_down(self) -> None:
                server.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _slow_down

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test counts the requests."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_down_server() -> Iterator[SlowDownServer]:
    server = SlowDownServer()
    yield server
    server.stop()
