"""The service's one configuration object, read from ``RESTYLE_…`` environment variables at the entry points.

Everything that differs between a laptop, a test run and a deployment lives here, so the API, the worker
and the CLI never read the environment themselves. Invalid combinations fail at start-up, not mid-job.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.params import MAX_SIZE
from core.units import parse_bytes
from core.weights_download import IMAGENET_SHA256, IMAGENET_URL

if TYPE_CHECKING:
    from core.video.codec import ClipLimits

# s3://bucket or s3://bucket/prefix, with a bucket name as S3 allows it.
_S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")


class Settings(BaseSettings):
    """Every tunable of the service; docs/configuration.md has a row per setting with its environment name."""

    model_config = SettingsConfigDict(env_prefix="RESTYLE_", frozen=True, extra="ignore")

    # Engine
    weights: str = Field(
        "auto",
        description="Network weights: auto | vgg19-imagenet (alias imagenet) | vgg16-imagenet | "
        "vgg16-imagenet-keras | random | PATH | caffe:PATH | onnx:PATH; `auto` takes the first trained one cached, "
        "in that order, else random.",
    )
    weights_url: str = Field(
        IMAGENET_URL,
        pattern=r"^https?://",
        description="Where `restyle fetch-weights` and `restyle up --fetch-weights` download ImageNet VGG19 (a "
        "mirror may serve the same file).",
    )
    weights_sha256: str = Field(
        IMAGENET_SHA256, pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 the downloaded file must have."
    )
    device: str | None = Field(
        None, description="Torch device for the worker (cpu, cuda, cuda:1); default: CUDA if present."
    )
    memory_budget: int | None = Field(
        None,
        description="Memory a run may take, counting what the worker process holds already, as bytes or 8GiB, "
        "512MiB, 8GB; larger pictures are optimised in tiles to stay within it. Default: the engine's, from the "
        "worker's machine.",
    )
    max_size: int = Field(
        2048,
        ge=32,
        le=MAX_SIZE,
        description="Largest `size` this service accepts; pick what your hardware serves in time.",
    )

    # Redis, Celery and storage
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Redis for job records, the Celery broker and events."
    )
    key_prefix: str = Field(
        "restyle", pattern=r"^[A-Za-z0-9_.:-]+$", description="Prefix of every Redis key the service writes."
    )
    queue: str = Field(
        "restyle", pattern=r"^[A-Za-z0-9_.-]+$", description="Celery queue the API sends jobs to and workers consume."
    )
    storage_dir: Path = Field(
        Path("var/storage"), description="Directory holding uploads, previews and results (without storage_url)."
    )
    storage_url: str | None = Field(
        None,
        description="Where uploads, previews and results live: file:///path, or s3://bucket/prefix (endpoint, "
        "region and credentials from the standard AWS_* variables and files, never from these settings).",
    )

    # HTTP API
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Comma-separated Bearer keys; empty runs the API open to anyone."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description='Comma-separated origins whose browser apps may call the API ("*" for any); empty: none.',
    )
    result_redirect: bool = Field(
        False,
        description="Answer result and preview downloads with 307 to a presigned URL of the object store (when "
        "the store has such URLs), so the bytes do not pass through the API.",
    )
    result_url_seconds: int = Field(
        300, ge=1, le=7 * 24 * 3600, description="How long a presigned download URL stays valid."
    )
    public_url: str | None = Field(
        None, description="Base URL used in webhook payloads' links (e.g. https://restyle.example.com)."
    )
    max_upload_bytes: int = Field(
        50 * 2**20, ge=1024, description="Largest request body of POST /v1/jobs, all images together."
    )
    max_image_pixels: int = Field(
        40_000_000, ge=256, description="Largest declared width×height of an upload (decompression-bomb guard)."
    )
    max_clip_bytes: int = Field(100 * 2**20, ge=1024, description="Largest clip to stylise, in bytes.")
    max_clip_seconds: float = Field(60.0, gt=0, description="Longest clip, in seconds.")
    max_clip_frames: int = Field(1500, ge=1, description="Most frames in a clip.")
    max_clip_pixels: int = Field(
        3840 * 2160, ge=256, description="Largest width×height of a clip's frames, read from its header."
    )
    max_queue_depth: int = Field(100, ge=1, description="Queued jobs beyond which POST /v1/jobs answers 503.")
    max_active_jobs_per_key: int = Field(
        0,
        ge=0,
        description="Queued plus running jobs one API key may have; beyond it POST /v1/jobs answers 429 (0: no limit).",
    )
    max_wait_seconds: float = Field(60.0, ge=0, le=600, description="Upper bound of `Prefer: wait=N`.")
    retry_after_seconds: int = Field(30, ge=1, description="Retry-After sent with a 503 for a full queue.")

    # Job lifecycle
    retention_seconds: int = Field(
        7 * 86400, ge=60, description="How long a job and its files are kept after its last change."
    )
    job_time_limit: float = Field(
        3600.0, gt=0, description="A run longer than this is stopped and the job fails; for a clip, each frame."
    )
    lease_seconds: float = Field(
        10.0,
        gt=0,
        description="A running job whose worker has not renewed its lease for this long is queued again.",
    )
    visibility_timeout: int | None = Field(
        None,
        ge=1,
        description="Seconds before an unacknowledged queue message is redelivered, the last resort behind leases; "
        "must exceed the job time limit (default: the limit + 10 min).",
    )
    max_attempts: int = Field(
        3, ge=1, description="Runs of one job before it fails as worker_lost (its worker died that many times)."
    )
    progress_interval: float = Field(
        0.5, ge=0, description="Least seconds between two progress writes to a job record."
    )
    snapshot_every: int = Field(10, ge=0, description="Store a preview image every N iterations (0 = never).")
    preview_size: int = Field(256, ge=16, le=2048, description="Longest side of the preview images.")
    heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often a worker announces itself; /readyz wants one within 3 beats."
    )
    worker_niceness: int = Field(
        10,
        ge=0,
        le=19,
        description="How far `restyle up` lowers its worker's CPU priority below the API's (as nice, 0–19), so "
        "that on a shared CPU the engine yields to the API; 0 keeps them equal.",
    )

    # Webhooks
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for webhook signatures; webhooks are refused without one."
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a webhook receiver.")
    webhook_max_attempts: int = Field(6, ge=1, description="Deliveries tried before a webhook is given up.")
    webhook_backoff_seconds: float = Field(2.0, gt=0, description="First retry delay; doubles with each attempt.")
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host names and CIDRs that webhooks may reach although they are not public "
        "(an internal receiver); empty: public addresses only.",
    )

    # The HTTP edge
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token that GET /metrics requires when API keys are configured."
    )
    http_max_connections: int = Field(
        1000, ge=1, description="Concurrent connections the API serves; beyond it new ones are answered 503."
    )
    http_max_connections_per_client: int = Field(
        50,
        ge=1,
        description="Connections one client address may hold open (requests in progress, for a client behind a "
        "trusted proxy); beyond it new ones are answered 429.",
    )
    http_max_uploads_per_client: int = Field(
        8, ge=1, description="Request bodies one client address may be sending at once; beyond it 429."
    )
    http_read_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a client may pause while sending a request, and the grace before http_min_rate holds.",
    )
    # 32 kbit/s: below what a phone on a poor 2G (EDGE) link uploads (roughly 50-200 kbit/s), about what the
    # older GPRS manages; a 50 MiB upload takes 3.6 h at it. A byte every 2 s (the slowloris pace) is 8000
    # times slower, so such a client is cut about a read timeout after it began.
    http_min_rate: int = Field(
        4096,
        ge=1,
        description="Bytes per second at which a request's headers, and then its body, must arrive on average "
        "once the read timeout's grace is over; slower, the connection is closed (408).",
    )
    http_max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest request line and headers together; larger are answered 431."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses and CIDRs of reverse proxies whose X-Forwarded-For names the client; "
        "empty: the client is the connection's peer.",
    )

    log_level: str = Field("INFO", description="Log level of the API and the worker.")

    @field_validator("api_keys", "cors_origins", "webhook_allow_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """One environment variable holds the whole list, separated by commas (blank entries are dropped)."""
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("memory_budget", mode="before")
    @classmethod
    def _is_byte_count(cls, value: Any) -> Any:
        """``8GiB`` in the environment, or a number of bytes; refused at start-up, not by the first big job."""
        return value if value is None else parse_bytes(value)

    @field_validator("webhook_allow_hosts")
    @classmethod
    def _are_hosts_or_networks(cls, value: list[str]) -> list[str]:
        """Checked at start-up, so a typo stops the service instead of failing the first job with a webhook."""
        from restyle.webhook_targets import WebhookPolicy

        WebhookPolicy(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _are_networks(cls, value: list[str]) -> list[str]:
        """Addresses or CIDRs; a host name or a CIDR with host bits set stops the service at start-up."""
        for entry in value:
            try:
                ipaddress.ip_network(entry)
            except ValueError as error:
                raise ValueError(f"{entry!r} is not an IP address or network ({error})") from None
        return value

    @field_validator("storage_url")
    @classmethod
    def _known_store(cls, url: str | None) -> str | None:
        if url is not None and not (url.startswith("file:///") or _S3_URL.fullmatch(url)):
            raise ValueError(
                f"{url!r} is neither file:///path nor s3://bucket[/prefix] (a bucket name of 3-63 lowercase "
                "letters, digits, dots and hyphens)"
            )
        return url

    @field_validator("redis_url")
    @classmethod
    def _is_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _is_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
            raise ValueError("must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG")
        return level

    @model_validator(mode="after")
    def _redelivery_after_longest_job(self) -> Settings:
        """A visibility timeout shorter than a job would hand a healthy running job to a second worker."""
        if self.visibility_timeout is not None and self.visibility_timeout <= self.job_time_limit:
            raise ValueError(
                f"visibility_timeout ({self.visibility_timeout} s) must exceed job_time_limit ({self.job_time_limit} s)"
            )
        return self

    @property
    def redelivery_seconds(self) -> int:
        """The broker's visibility timeout: configured, or the job time limit plus ten minutes."""
        return self.visibility_timeout or int(self.job_time_limit) + 600

    def clip_limits(self) -> ClipLimits:
        """The ``max_clip_*`` settings as the codec checks them."""
        from core.video.codec import ClipLimits  # PyAV loads with it, which only video work needs

        return ClipLimits(self.max_clip_bytes, self.max_clip_seconds, self.max_clip_frames, self.max_clip_pixels)

    @property
    def open_mode(self) -> bool:
        """No keys configured: anyone may submit and every job is visible to every caller."""
        return not self.api_keys


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
