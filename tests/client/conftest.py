"""Fixtures for the Python client's tests: clients of the real service, and pictures as files and bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from restyle.client import Client
from tests.client.served import Served, key_of
from tests.core.pictures import encoded, make_painting, make_photo


@pytest.fixture
def restyle(api: Served) -> Iterator[Client]:
    """A client of the session's service (its worker runs jobs once a test asks for ``worker``)."""
    with Client(api.url, api_key=key_of(api), timeout=60) as client:
        yield client


@pytest.fixture
def idle_restyle(idle_api: Served) -> Iterator[Client]:
    """A client of a service without a worker: its jobs stay queued."""
    with Client(idle_api.url, api_key=key_of(idle_api), timeout=60) as client:
        yield client


@pytest.fixture
def photo() -> bytes:
    return encoded(make_photo(48, 40))


@pytest.fixture
def paintings() -> list[bytes]:
    return [encoded(make_painting(40, 40)), encoded(make_painting(40, 40, phase=1.5))]


@pytest.fixture
def photo_file(tmp_path: Path, photo: bytes) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(photo)
    return path
