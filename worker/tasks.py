"""The one Celery task: a thin shell that loads a job's inputs, runs the engine, stores and records the outcome.

Delivery is at-least-once, so the task is idempotent: a job that already reached a final state is not run
again, and one left ``running`` by a dead worker restarts from scratch. Every way a run can end is written
to the job record: succeeded, canceled, or failed with the engine error's code and message (or
``internal_error`` for anything unforeseen), so no job is left ``running``. A worker told to shut down
(Ctrl-C, SIGTERM) stops its job within one iteration and hands it back: the record returns to ``queued``
and the message to the queue at once, for the next worker, rather than after the broker's visibility timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import redis
from celery import Task
from celery.exceptions import Reject
from PIL import Image

from core.engine import Progress, stylize
from core.errors import Cancelled, RestyleError
from core.images import decode_image, encode_image, fit_longest_side
from restyle.broker import STYLIZE_TASK
from restyle.jobs import InvalidTransition, JobNotFound, JobRecord, input_keys, preview_key, result_key
from restyle.storage import ObjectNotFound
from worker.app import app
from worker.runtime import Runtime, runtime

log = logging.getLogger(__name__)

# A final state is written again for this long while Redis is unreachable: the outcome of a run exists only in
# this process until it is recorded, and a Redis restart takes seconds.
OUTCOME_PATIENCE_SECONDS = 60.0
# Pause before handing a message back when Redis stays unreachable, so a flapping Redis is not hammered.
REDIS_RETRY_SECONDS = 5

StopReason = Literal["shutdown", "time_limit", "cancel"]


@app.task(name=STYLIZE_TASK, bind=True)  # type: ignore[untyped-decorator]  # Celery is untyped
def stylize_job(self: Task, job_id: str) -> None:
    """Run job ``job_id`` (the task id is the job id)."""
    try:
        run_job(runtime(), job_id, worker=self.request.hostname or "worker")
    except redis.RedisError as error:
        # Not Celery's retry: it publishes a copy and, when that publish fails too, drops the original message,
        # leaving the job ``running`` with nothing to run it. A rejected message goes back to the queue; if
        # Redis cannot take even that, it stays unacknowledged and returns after the visibility timeout.
        log.warning("job %s: Redis unavailable (%s); handing the job back in %d s", job_id, error, REDIS_RETRY_SECONDS)
        time.sleep(REDIS_RETRY_SECONDS)
        raise Reject(f"Redis unavailable: {error}", requeue=True) from error


def run_job(state: Runtime, job_id: str, worker: str) -> None:
    """Take a job from its stored record to a final state."""
    store = state.store
    record = store.get(job_id)
    if record is None:
        log.warning("job %s: no record (cleaned up after retention?); nothing to do", job_id)
        return
    if record.finished:
        log.info("job %s: already %s; ignoring a repeated delivery", job_id, record.status)
        return
    try:
        if store.is_cancel_requested(job_id):
            store.mark_canceled(job_id)
            return
        if record.attempts >= state.settings.max_attempts:
            # Every earlier run was cut short (its worker killed or out of memory, or Redis gone for longer than
            # the outcome could wait): do not take this worker down too.
            store.fail(
                job_id, "worker_lost", f"the runs of this job were interrupted {record.attempts} times; giving up"
            )
            return
        record = store.start(job_id, worker)
    except (InvalidTransition, JobNotFound):
        return  # canceled or cleaned up a moment ago
    if record.attempts > 1:
        log.warning("job %s: restarting (attempt %d) after an interrupted run", job_id, record.attempts)
    report = Report(state, record)

    def fail(code: str, message: str) -> None:
        _record_outcome(job_id, lambda: store.fail(job_id, code, message))

    try:
        _execute(state, record, report)
    except Cancelled:
        if report.stopped_for == "shutdown":
            _record_outcome(job_id, lambda: store.requeue(job_id))
            log.info("job %s: handed back to the queue; this worker is shutting down", job_id)
            raise Reject("the worker is shutting down", requeue=True) from None
        if report.stopped_for == "time_limit":
            fail("time_limit_exceeded", f"the run took longer than the limit of {state.settings.job_time_limit:g} s")
        else:
            _record_outcome(job_id, lambda: store.mark_canceled(job_id))
    except RestyleError as error:
        fail(error.code, error.message)
    except ObjectNotFound as error:
        fail("input_missing", f"a stored input of this job is gone ({error.args[0]})")
    except redis.RedisError:
        raise
    except Exception as error:
        log.exception("job %s: unexpected failure", job_id)
        fail("internal_error", f"the worker failed unexpectedly ({type(error).__name__}: {error})")


def _execute(state: Runtime, record: JobRecord, report: Report) -> None:
    settings = state.settings
    content_key, style_keys = input_keys(record.id, record.style_count)
    content = decode_image(state.storage.get(content_key), max_pixels=settings.max_image_pixels, name="content")
    styles = [
        decode_image(state.storage.get(key), max_pixels=settings.max_image_pixels, name=f"style {index}")
        for index, key in enumerate(style_keys, start=1)
    ]
    net = state.network()
    result = stylize(
        content,
        styles,
        record.params,
        net=net,
        on_progress=report.progress,
        is_cancelled=report.should_stop,
        on_snapshot=report.snapshot if settings.snapshot_every else None,
        snapshot_every=settings.snapshot_every,
    )
    key = result_key(record.id)
    state.storage.put(key, encode_image(result.image, record.params.output_format))
    _record_outcome(
        record.id,
        lambda: state.store.succeed(
            record.id,
            result=key,
            weights=result.weights,
            run_seconds=result.seconds,
            losses=result.losses,
            iterations=result.iterations,
        ),
    )
    log.info("job %s: succeeded in %.1f s with weights %s", record.id, result.seconds, result.weights)


def _record_outcome(job_id: str, write: Callable[[], object], patience: float = OUTCOME_PATIENCE_SECONDS) -> None:
    """Write a run's outcome, through a Redis outage of up to ``patience`` seconds.

    Giving up sooner would cost the finished work: the message would be handed back and the job run again.
    A duplicate delivery that lost the race to finish has nothing to add, so a refused transition is no error.
    """
    deadline, delay = time.monotonic() + patience, 0.2
    while True:
        try:
            write()
            return
        except (InvalidTransition, JobNotFound) as error:
            log.info("job %s: outcome not recorded: %s", job_id, error)
            return
        except redis.RedisError as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("job %s: outcome not recorded yet, Redis unavailable (%s); trying again", job_id, error)
            time.sleep(delay)
            delay = min(2 * delay, REDIS_RETRY_SECONDS)


class Report:
    """The engine's callbacks for one job: throttled progress, cancellation and time limit, previews."""

    def __init__(self, state: Runtime, record: JobRecord) -> None:
        self.state = state
        self.job_id = record.id
        self.interval = state.settings.progress_interval
        self.deadline = time.monotonic() + state.settings.job_time_limit
        # Why the engine was told to stop, once it has been: the one fact the outcome depends on.
        self.stopped_for: StopReason | None = None
        self._last_write = float("-inf")

    def progress(self, progress: Progress) -> None:
        """Write at most every ``progress_interval`` seconds, and always the last iteration."""
        now = time.monotonic()
        if progress.iteration < progress.total and now - self._last_write < self.interval:
            return
        self._last_write = now
        try:
            self.state.store.report_progress(self.job_id, progress.iteration, progress.total, progress.losses)
        except redis.RedisError as error:
            log.warning("job %s: progress not recorded (%s)", self.job_id, error)  # the run itself goes on

    def should_stop(self) -> bool:
        """Asked every iteration: the worker is shutting down, past the time limit, or the owner asked to cancel."""
        self.stopped_for = self._reason_to_stop()
        return self.stopped_for is not None

    def _reason_to_stop(self) -> StopReason | None:
        if self.state.stopping.is_set():
            return "shutdown"
        if time.monotonic() > self.deadline:
            return "time_limit"
        try:
            return "cancel" if self.state.store.is_cancel_requested(self.job_id) else None
        except redis.RedisError:
            return None

    def snapshot(self, iteration: int, image: Image.Image) -> None:
        """Store a small JPEG of the picture so far, for live previews."""
        side = self.state.settings.preview_size
        small = fit_longest_side(image, side) if max(image.size) > side else image
        key = preview_key(self.job_id)
        try:
            self.state.storage.put(key, encode_image(small, "jpeg"))
            self.state.store.record_preview(self.job_id, key, iteration)
        except (OSError, redis.RedisError) as error:
            log.warning("job %s: preview not stored (%s)", self.job_id, error)
