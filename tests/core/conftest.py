"""Fixtures for the engine's tests: a seeded random-weight VGG19 and small synthetic pictures."""

from __future__ import annotations

import pytest
from PIL import Image

from core.vgg import FeatureNet, load_vgg
from tests.core.pictures import make_painting, make_photo


@pytest.fixture(scope="session")
def net() -> FeatureNet:
    """Random weights on the CPU: offline, deterministic, and the same for every test."""
    return load_vgg("random", device="cpu")


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
