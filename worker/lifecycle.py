"""What a worker does besides running jobs: warm the engine, announce itself, reclaim the jobs of dead runs,
send the queue messages that jobs are owed but never got, clean up, send webhooks.

These run in the worker's main process (Celery signals), on daemon threads, so a long job never delays
a heartbeat, a retention purge or a webhook.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from celery import Celery, signals
from celery.concurrency.prefork import TaskPool as PreforkPool

from core.errors import RestyleError
from core.vgg import weights_name
from restyle.broker import enqueue
from restyle.jobs import Reaper, purge_expired
from restyle.webhook_targets import WebhookPolicy
from restyle.webhooks import WebhookDispatcher
from restyle.weights_notice import untrained_notice
from restyle.workers import WorkerRegistry
from worker.runtime import Runtime, runtime

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 60.0
# A job's message is sent milliseconds after the job enters the queue; one still unsent after this never will be.
UNSENT_GRACE_SECONDS = 10.0
# Housekeeping passes per lease (at least; more if heartbeats are more frequent): a lapsed lease is found within
# a quarter lease of lapsing.
PASSES_PER_LEASE = 4


class Housekeeping:
    """The background threads of one worker process, and how to stop them."""

    def __init__(self, state: Runtime, name: str, celery: Celery, *, weights: str | None) -> None:
        self.state = state
        self.name = name
        self.celery = celery
        # The weights its heartbeat announces; None for a worker that could not load its network: it takes no
        # jobs, so it must not count as ready either.
        self.weights = weights
        self.registry = WorkerRegistry(state.redis, state.settings.key_prefix)
        self.reaper = Reaper(state.store.ledger, state.settings.lease_seconds, state.settings.max_attempts)
        self.stopping = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._keep_house, name="restyle-housekeeping", daemon=True).start()
        settings = self.state.settings
        if settings.webhook_secret is not None:
            dispatcher = WebhookDispatcher(
                self.state.store,
                settings.webhook_secret.get_secret_value(),
                timeout=settings.webhook_timeout,
                max_attempts=settings.webhook_max_attempts,
                backoff_seconds=settings.webhook_backoff_seconds,
                public_url=settings.public_url,
                policy=WebhookPolicy(settings.webhook_allow_hosts),
            )
            threading.Thread(target=dispatcher.run, args=(self.stopping,), name="restyle-webhooks", daemon=True).start()

    def stop(self) -> None:
        """Leave the roster at once, so /readyz does not count a worker that is going away."""
        self.stopping.set()
        self.registry.retire(self.name)

    def _keep_house(self) -> None:
        """Every pass: heartbeat, reclaim lapsed leases, queue unsent jobs; about once a minute: purge.

        Each step has its own error handling, so one failing (Redis away) does not skip the others.
        """
        settings = self.state.settings
        interval = min(settings.heartbeat_seconds, settings.lease_seconds / PASSES_PER_LEASE)
        passes_per_purge = max(1, round(PURGE_EVERY_SECONDS / interval))
        steps = [self._beat, self._reclaim, self._send_unsent]
        count = 0
        while not self.stopping.is_set():
            for step in [*steps, self._purge] if count % passes_per_purge == 0 else steps:
                try:
                    step()
                except redis.RedisError as error:
                    log.warning("housekeeping: %s skipped, Redis unavailable (%s)", step.__name__.strip("_"), error)
                except Exception:
                    log.exception("housekeeping: %s failed; retrying", step.__name__.strip("_"))
            count += 1
            self.stopping.wait(interval)

    def _beat(self) -> None:
        if self.weights is not None:
            self.registry.beat(self.name, self.weights, every=self.state.settings.heartbeat_seconds)

    def _reclaim(self) -> None:
        """Put the jobs of dead runs back in the queue, each with the message it is owed."""
        for job_id in self.reaper.reclaim():
            self._send(job_id)

    def _send_unsent(self) -> None:
        """Queue the jobs whose message was never sent (the API or a worker stopped in between)."""
        store = self.state.store
        for job_id in store.claim_unsent(UNSENT_GRACE_SECONDS):
            record = store.get(job_id)
            if record is None or record.status != "queued":
                store.mark_sent(job_id)
                continue
            log.warning("job %s: queued without its message (its sender stopped in between); sending it", job_id)
            store.release(record)
            self._send(job_id)

    def _send(self, job_id: str) -> None:
        enqueue(self.celery, self.state.settings)
        self.state.store.mark_sent(job_id)

    def _purge(self) -> None:
        purged = purge_expired(self.state.store.ledger, self.state.storage)
        if purged:
            log.info("removed %d job(s) past their retention", len(purged))


_running: list[Housekeeping] = []  # at most one per process; a list so the signal handlers need no global


def connect() -> None:
    """Attach the handlers to Celery's worker signals."""
    signals.worker_ready.connect(_on_ready, weak=False)
    signals.worker_shutting_down.connect(_on_shutting_down, weak=False)
    signals.worker_shutdown.connect(_on_shutdown, weak=False)


def _on_ready(sender: Any, **_: Any) -> None:
    state = runtime()
    if isinstance(sender.pool, PreforkPool):
        # Prefork children load the net lazily, each its own; loading before the fork would share CUDA state.
        weights: str | None = weights_name(state.settings.weights)
    else:
        weights = _load_network(state, sender)
    notice = untrained_notice(weights) if weights is not None else None
    if notice is not None:
        log.warning("%s", notice)
    housekeeping = Housekeeping(state, str(sender.hostname), sender.app, weights=weights)
    housekeeping.start()
    _running.append(housekeeping)


def _load_network(state: Runtime, worker: Any) -> str | None:
    """Solo/thread pools run jobs in this very process: load the net now rather than in the first job.

    Returns its weights' name, or None when it cannot be loaded: taking jobs would only fail them, so the
    worker stops consuming and says why.
    """
    try:
        weights = state.network().weights_name
    except RestyleError as error:
        log.error("cannot load VGG19 (%s); this worker takes no jobs and is not ready", error.message)
        worker.cancel_task_queue(state.settings.queue)
        return None
    log.info("loaded VGG19 weights %s", weights)
    return weights


def _on_shutting_down(**_: Any) -> None:
    """Sent from the signal handler of Ctrl-C or SIGTERM, while a solo pool's job may be running in this very
    process. Prefork children do not hear it: they finish their jobs as Celery's warm shutdown intends."""
    runtime().stopping.set()


def _on_shutdown(**_: Any) -> None:
    while _running:
        _running.pop().stop()
