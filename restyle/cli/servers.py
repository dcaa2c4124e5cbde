"""How each of the service's servers is set up: uvicorn for the API, and the Celery worker's arguments."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from restyle.settings import Settings

if TYPE_CHECKING:
    import uvicorn

# How long a stop waits for the API's open connections.
API_GRACE_SECONDS = 5
# uvicorn's default: long enough for a page's next poll to reuse its connection, short enough that idle ones
# do not fill http_max_connections.
API_KEEP_ALIVE_SECONDS = 5


def api_server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    """uvicorn for our app on ``host``:``port``, bounded against clients that hold connections (see
    ``api.connections``).

    A stop waits at most ``API_GRACE_SECONDS`` for open connections: an event stream stays open until its job
    ends, which would otherwise hold a shutdown for as long as the job runs. The connection limits (in all,
    per client address, per request) are the protocol's, which answers them as problems; uvicorn's own
    ``limit_concurrency`` (a plain-text 503) is not used. ``X-Forwarded-For`` is believed from the trusted
    proxies only, by the app as by the limits.
    """
    import uvicorn

    from api.connections import ConnectionLimits, GuardedProtocol

    config = uvicorn.Config(
        "api.main:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies,
        http=GuardedProtocol.configured(ConnectionLimits.from_settings(settings)),
        timeout_keep_alive=API_KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=API_GRACE_SECONDS,
    )
    return uvicorn.Server(config)


def worker_argv(settings: Settings, concurrency: int, name: str | None = None) -> list[str]:
    """Celery worker arguments for our queue; a solo pool keeps the engine in the worker's own process.

    Every worker gets a unique node name (Celery's default, celery@host, collides on one machine).
    """
    pool = ["--pool", "solo"] if concurrency <= 1 else ["--pool", "prefork", "--concurrency", str(concurrency)]
    return [
        "worker",
        "--queues",
        settings.queue,
        *pool,
        # Gossip and mingle talk to every worker on the broker (other deployments too) and slow start-up.
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        settings.log_level,
        "--hostname",
        name or f"restyle-{uuid.uuid4().hex[:8]}@%h",
    ]
