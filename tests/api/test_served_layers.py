"""A job naming a layer that no live worker's network has is refused at submission (422), when the workers'
weights names say their networks; otherwise the worker is left to judge it.

The session worker runs random VGG19, which has every layer a request may name, so these tests announce workers
in the registry themselves (``WorkerRegistry.beat``, as a real worker does), each test in a service of its own
(own key prefix and queue, from ``make_settings``) whose queue no worker consumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from core.networks import VGG16
from restyle.settings import Settings
from restyle.workers import WorkerRegistry
from tests.api.test_validation import problem
from tests.support.api_server import ApiServer
from tests.support.jobs import submit
from tests.support.settings import ALICE, MakeSettings

# Long enough that an announced worker stays alive for the whole test (alive for three beats), however slow the
# upload on a loaded machine.
HEARTBEAT_SECONDS = 30.0
# The default style layers with relu5_1 replaced by VGG19's relu5_4, which VGG16 lacks.
VGG19_ONLY_STYLE = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_4"

Announce = Callable[..., None]


@pytest.fixture
def service(make_settings: MakeSettings) -> Settings:
    return make_settings(heartbeat_seconds=HEARTBEAT_SECONDS)


@pytest.fixture
def announce(service: Settings, redis_client: redis.Redis[bytes]) -> Announce:
    """Announce live workers of ``service`` running the given weights names, one worker each."""
    registry = WorkerRegistry(redis_client, service.key_prefix)

    def beat(*weights_names: str) -> None:
        for number, weights in enumerate(weights_names):
            registry.beat(f"announced-{number}@test", weights, every=HEARTBEAT_SECONDS)

    return beat


@pytest.fixture
def http(service: Settings, start_api: Callable[[Settings], ApiServer]) -> Iterator[httpx.Client]:
    """Alice's client of the service's own API."""
    with start_api(service).client(ALICE) as client:
        yield client


def test_a_layer_no_live_workers_network_has_is_refused_naming_the_layers_it_has(
    announce: Announce, http: httpx.Client
) -> None:
    announce("vgg16-imagenet")
    body = problem(submit(http, style_layers=VGG19_ONLY_STYLE), 422)
    usable = ", ".join(name for name in VGG16.layer_names if not name.startswith("pool"))
    assert body["code"] == "invalid_request"
    assert body["detail"] == (
        f"VGG16 has no layer relu5_4: the weights this service runs are VGG16's, whose layers are {usable}"
    )


def test_a_layer_the_live_workers_network_has_is_accepted(announce: Announce, http: httpx.Client) -> None:
    announce("vgg16-imagenet")
    assert submit(http, style_layers="relu1_1,relu5_3").status_code == 202


def test_a_layer_one_live_workers_network_has_is_accepted(announce: Announce, http: httpx.Client) -> None:
    announce("vgg16-imagenet-keras", "vgg19-imagenet")
    assert submit(http, style_layers=VGG19_ONLY_STYLE).status_code == 202


def test_a_worker_on_a_supplied_file_leaves_the_layers_to_the_worker(announce: Announce, http: httpx.Client) -> None:
    """Its network is known only from the file's contents, which the API does not read."""
    announce("vgg16-imagenet", "file:x.pth")
    assert submit(http, style_layers=VGG19_ONLY_STYLE).status_code == 202


def test_with_no_live_worker_the_layers_are_left_to_the_worker(http: httpx.Client) -> None:
    assert submit(http, style_layers=VGG19_ONLY_STYLE).status_code == 202
