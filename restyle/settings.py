"""The one settings object, read from ``RESTYLE_*`` environment variables at the entry points."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Deployment configuration; each field is documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="RESTYLE_", extra="ignore")

    weights: str = Field("auto", description="VGG19 weights: auto | imagenet | random | PATH | caffe:PATH.")
    device: str | None = Field(None, description="Torch device for the engine; CUDA when present if unset.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Parse the environment once per process; invalid values fail here, at start-up."""
    return Settings()
