"""What routes depend on, as ``Annotated`` aliases: the process's services and the caller's identity."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Annotated

import redis
from celery import Celery
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis as AsyncRedis

from api.metrics import ServiceMetrics
from api.problems import Unauthorized
from restyle.jobs import JobStore
from restyle.settings import Settings
from restyle.storage import Storage
from restyle.webhook_targets import WebhookPolicy
from restyle.workers import WorkerRegistry

# Every caller is this owner when no keys are configured, so all jobs are visible to all.
OPEN_OWNER = "public"


@dataclass
class Services:
    """Long-lived clients of one API process, built once in ``create_app``."""

    settings: Settings
    redis: redis.Redis[bytes]
    events_redis: AsyncRedis[bytes]
    store: JobStore
    storage: Storage
    workers: WorkerRegistry
    celery: Celery
    metrics: ServiceMetrics
    webhooks: WebhookPolicy | None  # where webhooks may go; None when they are off (no RESTYLE_WEBHOOK_SECRET)
    owners: dict[str, str] = field(default_factory=dict)  # API key -> owner id


def owner_of(key: str) -> str:
    """A stable, non-secret owner id for an API key (records never hold the key itself)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False, description="An API key from RESTYLE_API_KEYS (none needed in open mode).")


def get_owner(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None,
        Query(
            include_in_schema=False,
            description="The API key for GET requests from browsers (EventSource, <img>) that cannot send headers.",
        ),
    ] = None,
) -> str:
    """The caller's owner id from its Bearer key; 401 for a missing or unknown key."""
    if services.settings.open_mode:
        return OPEN_OWNER
    token = credentials.credentials if credentials else (access_token if request.method == "GET" else None)
    if not token:
        raise Unauthorized("send an API key: Authorization: Bearer <key>")
    matches = [owner for key, owner in services.owners.items() if hmac.compare_digest(key.encode(), token.encode())]
    if not matches:
        raise Unauthorized("unknown API key")
    return matches[0]


OwnerDep = Annotated[str, Depends(get_owner)]

_metrics_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="RESTYLE_METRICS_TOKEN; needed only when API keys are configured (API keys do not unlock metrics).",
)


def require_metrics_token(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)]
) -> None:
    """Metrics are open in open mode, where jobs are too; with API keys, only the metrics token opens them.

    An API key does not: the figures aggregate every key's jobs. Without a metrics token configured the answer
    is 401 (not 404), so that an operator wiring up a scraper learns what is missing.
    """
    settings = services.settings
    if settings.open_mode:
        return
    if settings.metrics_token is None:
        raise Unauthorized("metrics need a token: set RESTYLE_METRICS_TOKEN and send Authorization: Bearer <token>")
    if credentials is None:
        raise Unauthorized("send the metrics token: Authorization: Bearer <token>")
    expected = settings.metrics_token.get_secret_value()
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Unauthorized("unknown metrics token")
