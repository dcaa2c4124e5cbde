"""The Celery application on the Redis broker, configured from Settings; shared by the API and the worker.

The API uses it only to send tasks by name, so it never imports the worker's task code (or torch).
Delivery is at-least-once: tasks are acknowledged after they finish and rejected if their worker dies, each
worker holds one message at a time, and an unacknowledged message returns to the queue after the
visibility timeout, which settings keep above the longest job.
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


def enqueue(app: Celery, settings: Settings, job_id: str) -> None:
    """Queue a job by task name; the job id doubles as the Celery task id."""
    app.send_task(STYLIZE_TASK, args=[job_id], queue=settings.queue, task_id=job_id)
