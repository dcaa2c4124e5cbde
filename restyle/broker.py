"""The Celery application on the Redis broker, configured from Settings; shared by the API and the worker.

The API uses it only to send tasks by name, so it never imports the worker's task code (or torch).
A message is a doorbell: it carries no arguments and names no job. One is sent for every job that becomes
claimable (by the API once a submission's files are stored; by a worker that hands its job back at shutdown;
by a worker's housekeeping for a job it reclaimed from a lapsed lease, or one whose sender stopped before
sending), and the worker that takes it claims whichever job comes next in fair order (``restyle.jobs.queue``),
not necessarily the one it was sent for. The job itself, parameters and all, is read from its record in Redis.
Once claimed, a job is kept by its lease, not by its message, so a repeated message costs nothing: it finds
nothing to claim. Each worker process holds at most one message at a time (acknowledged late, nothing
prefetched); an unacknowledged one returns after the visibility timeout, the last resort for a message whose
worker died before it could claim a job.
"""

from __future__ import annotations

from celery import Celery

from restyle.settings import Settings

STYLIZE_TASK = "restyle.stylize"


def create_celery(settings: Settings) -> Celery:
    """A Celery app bound to ``settings``; the worker adds its task module, the API only sends."""
    app = Celery("restyle", broker=settings.redis_url, set_as_current=False)
    redelivery = settings.redelivery_seconds
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # outcomes live in our job records, not in a result backend
        # A backstop for prefork pools; the task enforces the limit itself (solo pools cannot be signalled).
        task_time_limit=settings.job_time_limit + 60,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": redelivery,
            # Look for abandoned messages often enough that a short timeout (tests) is honoured promptly.
            "unacked_restore_interval": max(1, min(60, redelivery // 4)),
            "unacked_restore_throttle": 1,
            # Broker keys (queue, unacked hash) under our prefix: deployments sharing a Redis stay apart.
            "global_keyprefix": f"{settings.key_prefix}:celery:",
        },
    )
    return app


def enqueue(app: Celery, settings: Settings) -> None:
    """Send one doorbell message (the task by name, no arguments): a worker that takes it claims the next job.

    Owed once for every job that becomes claimable; the caller then clears the debt with ``JobStore.mark_sent``.
    """
    app.send_task(STYLIZE_TASK, queue=settings.queue)
