"""What a worker does besides running jobs: warm the engine, announce itself, clean up, send webhooks.

These run in the worker's main process (Celery signals), on daemon threads, so a long job never delays
a heartbeat, a retention purge or a webhook.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, signals
from celery.concurrency.prefork import TaskPool as PreforkPool

from core.errors import RestyleError
from restyle.broker import enqueue
from restyle.webhooks import WebhookDispatcher
from restyle.workers import WorkerRegistry
from worker.runtime import Runtime, runtime

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 60.0
# The API queues a job milliseconds after recording it; one still unqueued after this was never going to be.
UNSENT_GRACE_SECONDS = 10.0


class Housekeeping:
    """The background threads of one worker process, and how to stop them."""

    def __init__(self, state: Runtime, name: str, celery: Celery) -> None:
        self.state = state
        self.name = name
        self.celery = celery
        self.registry = WorkerRegistry(state.redis, state.settings.key_prefix)
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
            )
            threading.Thread(target=dispatcher.run, args=(self.stopping,), name="restyle-webhooks", daemon=True).start()

    def stop(self) -> None:
        """Leave the roster at once, so /readyz does not count a worker that is going away."""
        self.stopping.set()
        self.registry.retire(self.name)

    def _keep_house(self) -> None:
        """Heartbeat and queue unsent jobs every few seconds; purge jobs past their retention about once a minute."""
        interval = self.state.settings.heartbeat_seconds
        beats_per_purge = max(1, round(PURGE_EVERY_SECONDS / interval))
        beat = 0
        while not self.stopping.is_set():
            try:
                self.registry.beat(self.name)
                self._send_unsent()
                if beat % beats_per_purge == 0:
                    purged = self.state.store.purge_expired(self.state.storage)
                    if purged:
                        log.info("removed %d job(s) past their retention", len(purged))
            except Exception:
                log.exception("housekeeping failed; retrying")
            beat += 1
            self.stopping.wait(interval)

    def _send_unsent(self) -> None:
        """Queue the jobs the API recorded but never queued (it died in between), so none waits forever."""
        store = self.state.store
        for job_id in store.claim_unsent(UNSENT_GRACE_SECONDS):
            record = store.get(job_id)
            if record is not None and record.status == "queued":
                log.warning("job %s: recorded but never queued (the API stopped in between); queueing it", job_id)
                enqueue(self.celery, self.state.settings, job_id)


_running: list[Housekeeping] = []  # at most one per process; a list so the signal handlers need no global


def connect() -> None:
    """Attach the handlers to Celery's worker signals."""
    signals.worker_ready.connect(_on_ready, weak=False)
    signals.worker_shutting_down.connect(_on_shutting_down, weak=False)
    signals.worker_shutdown.connect(_on_shutdown, weak=False)


def _on_ready(sender: Any, **_: Any) -> None:
    state = runtime()
    if not isinstance(sender.pool, PreforkPool):
        # Solo/thread pools run jobs in this very process: load the net now rather than in the first job.
        # Prefork children load it lazily instead; loading before the fork would share CUDA state.
        try:
            log.info("loaded VGG19 weights %s", state.network().weights_name)
        except RestyleError as error:
            log.error("cannot load VGG19 (%s); jobs will fail until this is fixed", error.message)
    housekeeping = Housekeeping(state, str(sender.hostname), sender.app)
    housekeeping.start()
    _running.append(housekeeping)


def _on_shutting_down(**_: Any) -> None:
    """Sent from the signal handler of Ctrl-C or SIGTERM, while a solo pool's job may be running in this very
    process. Prefork children do not hear it: they finish their jobs as Celery's warm shutdown intends."""
    runtime().stopping.set()


def _on_shutdown(**_: Any) -> None:
    while _running:
        _running.pop().stop()
