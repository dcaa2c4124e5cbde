"""What the client's tests need of the service fixtures' API servers, typed without importing conftest."""

from __future__ import annotations

from typing import Protocol

from restyle.settings import Settings


class Served(Protocol):
    """A running API: its base URL and the settings it was started with."""

    url: str
    settings: Settings


def key_of(api: Served) -> str:
    """The first API key the server accepts."""
    return api.settings.api_keys[0].get_secret_value()
