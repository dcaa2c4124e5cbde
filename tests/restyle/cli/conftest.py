"""Fixtures for the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from restyle.settings import get_settings


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """The settings are read once per process; these tests change the environment they come from."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
