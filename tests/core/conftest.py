"""Fixtures for the engine's tests: seeded random-weight VGG19 and VGG16 nets and small synthetic pictures."""

from __future__ import annotations

import pytest
from PIL import Image

from core.networks import VGG16
from core.vgg import TORCHVISION, FeatureNet, _random_convs, load_vgg
from tests.core.pictures import make_painting, make_photo


@pytest.fixture(scope="session")
def net() -> FeatureNet:
    """Random weights on the CPU: offline, deterministic, and the same for every test."""
    return load_vgg("random", device="cpu")


def random_vgg16(device: str) -> FeatureNet:
    """Seeded random VGG16 filters (the same initialisation as ``random``'s VGG19) with torchvision's
    preprocessing: the engine on the other network, without any file."""
    net = FeatureNet(_random_convs(VGG16, 0), "random-vgg16", network=VGG16, preprocessing=TORCHVISION)
    return net.to(device)


@pytest.fixture(scope="session")
def vgg16_net() -> FeatureNet:
    """Random VGG16 weights on the CPU."""
    return random_vgg16("cpu")


@pytest.fixture
def photo() -> Image.Image:
    return make_photo()


@pytest.fixture
def painting() -> Image.Image:
    return make_painting()


@pytest.fixture(scope="session")
def cuda_net() -> FeatureNet:
    """The same random weights on the GPU, for the tests that check the engine runs there as on the CPU."""
    return load_vgg("random", device="cuda")


@pytest.fixture(scope="session")
def cuda_vgg16_net() -> FeatureNet:
    """The random VGG16 weights of ``vgg16_net`` on the GPU."""
    return random_vgg16("cuda")
