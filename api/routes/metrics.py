"""``/metrics``: Prometheus exposition of request counts and latencies, queue depth, job outcomes and durations."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": "restyle_queue_depth 0.0\n"}}}},
)
async def metrics(services: ServicesDep) -> Response:
    """Text exposition format; job figures are read from Redis, so every API replica reports the same."""
    return Response(await run_in_threadpool(services.metrics.render), media_type=CONTENT_TYPE_LATEST)
