"""``/healthz`` and ``/readyz``: liveness of this process, readiness of the whole service."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.problems import NotReady, documented
from restyle.storage import StorageUnavailable
from restyle.weights_notice import WEIGHTS_DESCRIPTION, untrained_notice
from restyle.workers import alive_window

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    redis: str = Field(examples=["ok"])
    storage: str = Field(
        description="Where uploads and results live (`RESTYLE_STORAGE_URL`, else `RESTYLE_STORAGE_DIR`), just "
        "checked: a directory must take a file, a bucket must answer to the credentials.",
        examples=["s3://restyle-jobs/production"],
    )
    workers: list[str] = Field(description="Workers with a recent heartbeat.", examples=[["celery@gpu-1"]])
    weights: list[str] = Field(
        description=f"The network weights those workers run, each name once, sorted. {WEIGHTS_DESCRIPTION}",
        examples=[["vgg19-imagenet"]],
    )
    weights_notice: str | None = Field(
        description="While a live worker runs untrained weights (`random(seed=N)`), what that means for the "
        "pictures and the command that fixes it, for the first such name in `weights`; null when every live "
        "worker runs trained weights. The web page shows it as a banner.",
        examples=[None],
    )
    queue_depth: int = Field(examples=[0])


@router.get("/healthz", summary="Liveness", response_model=Health)
def healthz() -> Health:
    """This process answers; it checks nothing else, so an orchestrator restarts only a hung API."""
    return Health(status="ok")


@router.get("/readyz", summary="Readiness", response_model=Readiness, responses=documented(503))
async def readyz(services: ServicesDep) -> Readiness:
    """Redis answers, the storage passes its check, and at least one worker has a recent heartbeat;
    `503` naming what is missing otherwise."""
    window = alive_window(services.settings.heartbeat_seconds)

    def check() -> tuple[list[str], dict[str, str], int]:
        services.redis.ping()
        workers = services.workers.alive(window)
        return workers, services.workers.weights(workers), services.store.queue_depth()

    try:
        workers, weights, depth = await run_in_threadpool(check)
    except Exception as error:
        raise NotReady(f"Redis at the configured RESTYLE_REDIS_URL is unreachable: {error}") from error
    storage = services.storage.describe()
    try:
        await run_in_threadpool(services.storage.check)
    except StorageUnavailable as error:
        raise NotReady(f"the storage at {storage} is unavailable: {error.message}") from error
    if not workers:
        raise NotReady(f"no worker has sent a heartbeat in the last {window:g} s; start one with `restyle worker`")
    names = sorted(set(weights.values()))
    return Readiness(
        status="ready",
        redis="ok",
        storage=storage,
        workers=workers,
        weights=names,
        weights_notice=next(filter(None, map(untrained_notice, names)), None),
        queue_depth=depth,
    )
