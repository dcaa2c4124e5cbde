"""``/metrics``: Prometheus exposition of request counts and latencies, queue depth, job outcomes and durations;
behind the metrics token when API keys are configured."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import ServicesDep, require_metrics_token
from api.problems import documented

router = APIRouter(tags=["health"])

_UNAUTHORIZED = {**documented(401)[401], "description": "With API keys configured: no metrics token, or a wrong one."}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": "restyle_queue_depth 0.0\n"}}}, 401: _UNAUTHORIZED},
    dependencies=[Depends(require_metrics_token)],
)
async def metrics(services: ServicesDep) -> Response:
    """Text exposition format; job figures are read from Redis, so every API replica reports the same."""
    return Response(await run_in_threadpool(services.metrics.render), media_type=CONTENT_TYPE_LATEST)
