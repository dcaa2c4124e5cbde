"""The FastAPI application: builds the process's services from Settings and wires routers, middleware and
error mapping. Run it with ``restyle api`` (or ``uvicorn --factory api.main:create_app``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from api import problems
from api.access_log import install_access_log_redaction
from api.deps import Services, owner_of
from api.metrics import RequestMetrics, ServiceMetrics
from api.routes import health, jobs, metrics, page
from api.uploads import UploadLimit, cap_size, refuse_webhooks
from restyle.broker import create_celery
from restyle.jobs import JobStore
from restyle.settings import Settings, get_settings
from restyle.storage import open_storage
from restyle.webhook_targets import WebhookPolicy
from restyle.workers import WorkerRegistry

log = logging.getLogger(__name__)

DESCRIPTION = """Repaint a photo in the style of one to four paintings (Gatys et al. neural style transfer).

Submit a job with `POST /v1/jobs` (multipart: `content`, `style`…, parameters as form fields), poll
`GET /v1/jobs/{id}` (or follow `/events`), download `GET /v1/jobs/{id}/result`. Errors are
`application/problem+json` with a stable `code`.
"""


def build_services(settings: Settings) -> Services:
    client = redis.Redis.from_url(settings.redis_url)
    store = JobStore(client, settings.key_prefix, settings.retention_seconds)
    return Services(
        settings=settings,
        redis=client,
        events_redis=redis.asyncio.Redis.from_url(settings.redis_url),
        store=store,
        storage=open_storage(settings),
        workers=WorkerRegistry(client, settings.key_prefix),
        celery=create_celery(settings),
        metrics=ServiceMetrics(store),
        webhooks=WebhookPolicy(settings.webhook_allow_hosts) if settings.webhook_secret is not None else None,
        owners={key.get_secret_value(): owner_of(key.get_secret_value()) for key in settings.api_keys},
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app bound to ``settings`` (the environment's by default)."""
    services = build_services(settings or get_settings())
    install_access_log_redaction()
    if services.settings.open_mode:
        log.warning("no RESTYLE_API_KEYS configured: the API is open to anyone who can reach it")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await services.events_redis.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose()
        services.redis.close()

    # /docs and /redoc load Swagger UI and ReDoc from the installed package, not a CDN: the docs must work on
    # a closed network too. Its own mount keeps clear of the page's /static.
    app = FastAPIOffline(
        title="Restyle",
        version="1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url="/docs-assets",
        # Each operation's id is its function's name (get_job, cancel_job): stable and readable, and what the
        # OpenAPI links between operations refer to.
        generate_unique_id_function=_operation_id,
    )
    app.state.services = services
    problems.install(app, services.settings.retry_after_seconds)
    app.add_middleware(UploadLimit, max_bytes=services.settings.max_upload_bytes)
    if services.settings.cors_origins:
        # Web apps on other origins read Location and Retry-After too, so those headers are exposed.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=services.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Prefer"],
            expose_headers=["Location", "Retry-After", "Idempotent-Replayed"],
        )
    app.add_middleware(RequestMetrics, metrics=services.metrics)
    for module in (jobs, health, metrics, page):
        app.include_router(module.router)
    _document_this_server(app, services.settings)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR, check_dir=False), name="static")
    return app


def _operation_id(route: APIRoute) -> str:
    return route.name


def _document_this_server(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document as the API answers: error bodies as problems (``problems.document_problem_bodies``),
    and what this server's settings change in the routes' schema, which comes from StyleParams at import (its
    ``size`` cap; webhooks off without a secret); done the way FastAPI documents for extending the schema
    (replacing ``app.openapi``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = generate()
            problems.document_problem_bodies(app.openapi_schema)
            cap_size(app.openapi_schema, settings.max_size)
            if settings.webhook_secret is None:
                refuse_webhooks(app.openapi_schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
