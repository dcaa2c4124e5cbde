"""``/healthz`` and ``/readyz``: liveness of this process, readiness of the whole service."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.problems import NotReady, documented

router = APIRouter(tags=["health"])

# A worker counts as alive if it beat within this many heartbeat periods.
_HEARTBEATS_OF_GRACE = 3


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    redis: str = Field(examples=["ok"])
    workers: list[str] = Field(description="Workers with a recent heartbeat.", examples=[["celery@gpu-1"]])
    queue_depth: int = Field(examples=[0])


@router.get("/healthz", summary="Liveness", response_model=Health)
def healthz() -> Health:
    """This process answers; it checks nothing else, so an orchestrator restarts only a hung API."""
    return Health(status="ok")


@router.get("/readyz", summary="Readiness", response_model=Readiness, responses=documented(503))
async def readyz(services: ServicesDep) -> Readiness:
    """Redis answers and at least one worker has a recent heartbeat; `503` naming what is missing otherwise."""
    window = services.settings.heartbeat_seconds * _HEARTBEATS_OF_GRACE

    def check() -> tuple[list[str], int]:
        services.redis.ping()
        return services.workers.alive(window), services.store.queue_depth()

    try:
        workers, depth = await run_in_threadpool(check)
    except Exception as error:
        raise NotReady(f"Redis at the configured RESTYLE_REDIS_URL is unreachable: {error}") from error
    if not workers:
        raise NotReady(f"no worker has sent a heartbeat in the last {window:g} s; start one with `restyle worker`")
    return Readiness(status="ready", redis="ok", workers=workers, queue_depth=depth)
