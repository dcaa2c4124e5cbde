"""The one Celery task: a thin shell that claims the next job, runs the engine, stores and records the outcome.

A message names no job (see ``restyle.broker``): the task claims the next one in fair order, or finds none
and returns. While the job runs, its lease is renewed on a thread of its own (``worker.keeper``); if the
worker dies, the lease lapses and another worker's housekeeping puts the job back in the queue. Every way a
run can end is written to the job record, fenced by the run's token: succeeded, canceled, or failed with the
engine error's code and message, ``storage_unavailable`` when the store still fails after its own retries,
or ``internal_error`` for anything unforeseen. The result is stored before the record says succeeded, so no
record points at a result that is not there. A worker told to shut down (Ctrl-C, SIGTERM) stops a job that
runs in its own process (a solo pool) within one iteration and hands it back to the queue at once; prefork
children finish theirs, as Celery's warm shutdown intends (``worker.lifecycle``). A run that lost its lease
stops too, and writes nothing: the job belongs to the run that replaced it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal, TypeVar

import redis
from celery import Task
from celery.exceptions import Reject
from PIL import Image

from core.engine import Progress, Stylized, stylize
from core.errors import Cancelled, RestyleError
from core.images import decode_image, decode_mask, encode_image, fit_longest_side
from core.masks import StyleMask
from restyle.broker import STYLIZE_TASK, enqueue
from restyle.jobs import InvalidTransition, JobNotFound, JobRecord, Run, input_keys, mask_key, mask_name
from restyle.storage import ObjectNotFound, StorageUnavailable
from worker.app import app
from worker.clips import ClipDone, remove_frames, stylize_clip_and_store
from worker.keeper import LeaseKeeper
from worker.runtime import Runtime, runtime

log = logging.getLogger(__name__)

# Longest pause between two tries of a Redis write that must land (a claim, an outcome).
REDIS_RETRY_SECONDS = 5.0

T = TypeVar("T")
StopReason = Literal["shutdown", "time_limit", "cancel", "superseded"]


@app.task(name=STYLIZE_TASK, bind=True)  # type: ignore[untyped-decorator]  # Celery is untyped
def stylize_job(self: Task) -> None:
    """Run the next waiting job, if any."""
    state = runtime()
    worker = self.request.hostname or "worker"
    try:
        run = _retry_through_redis_outage(lambda: state.runs.claim(worker), "claim a job", state)
    except _ShuttingDown:
        # Shutting down while Redis is away: the message goes back (or, if Redis cannot take even that, stays
        # unacknowledged and returns after the visibility timeout); no job was claimed for it.
        raise Reject("the worker is shutting down", requeue=True) from None
    if run is None:
        log.debug("no job waiting for this message (its job was canceled, or run after a redelivery)")
        return
    run_job(state, run)


def run_job(state: Runtime, run: Run) -> None:
    """Take a claimed job from running to a final state, or back to the queue."""
    job_id, settings = run.job_id, state.settings
    if run.number > 1:
        log.warning("job %s: run %d (attempt %d) after an interrupted run", job_id, run.number, run.record.attempts)

    def record(write: Callable[[], object]) -> bool:
        try:
            _retry_through_redis_outage(
                write, f"record the outcome of job {job_id}", state, give_up_when_stopping=False
            )
        except (InvalidTransition, JobNotFound) as error:
            log.info("job %s: outcome not recorded: %s", job_id, error)
            return False
        return True

    def fail(code: str, message: str) -> None:
        record(lambda: run.fail(code, message))

    with LeaseKeeper(run, settings.lease_seconds) as keeper:
        callbacks = EngineCallbacks(state, run, keeper)
        try:
            result = _stylize_and_store(state, run, callbacks)
            if record(
                lambda: run.succeed(
                    weights=result.weights,
                    run_seconds=result.seconds,
                    losses=result.losses,
                    iterations=result.iterations,
                )
            ):
                log.info("job %s: succeeded in %.1f s with weights %s", job_id, result.seconds, result.weights)
                if isinstance(result, ClipDone):
                    remove_frames(state.storage, run.record)
        except Cancelled:
            if callbacks.stopped_for == "shutdown":
                if record(run.hand_back):
                    _send_message(state, job_id)
                    log.info("job %s: handed back to the queue; this worker is shutting down", job_id)
            elif callbacks.stopped_for == "time_limit":
                fail("time_limit_exceeded", f"the run took longer than the limit of {settings.job_time_limit:g} s")
            elif callbacks.stopped_for == "superseded":
                log.warning("job %s: stopped; the run that replaced this one owns the job", job_id)
            else:
                record(run.cancel)
        except RestyleError as error:
            fail(error.code, error.message)
        except ObjectNotFound as error:
            fail("input_missing", f"a stored input of this job is gone ({error.args[0]})")
        except StorageUnavailable as error:
            log.error("job %s: failed, the storage is unavailable: %s", job_id, error.message)
            fail(error.code, error.message)
        except Exception as error:
            log.exception("job %s: unexpected failure", job_id)
            fail("internal_error", f"the worker failed unexpectedly ({type(error).__name__}: {error})")


def _stylize_and_store(state: Runtime, run: Run, callbacks: EngineCallbacks) -> Stylized | ClipDone:
    """Run the engine on the job's stored inputs and store this run's result: a picture, or a clip's frames."""
    settings, record = state.settings, run.record
    content_key, style_keys = input_keys(record.id, record.style_count)
    styles = [
        decode_image(state.storage.get(key), max_pixels=settings.max_image_pixels, name=f"style {index}")
        for index, key in enumerate(style_keys, start=1)
    ]
    masks = _load_masks(state, record)
    if record.clip is not None:
        return stylize_clip_and_store(state, run, callbacks, styles, masks)
    content = decode_image(state.storage.get(content_key), max_pixels=settings.max_image_pixels, name="content")
    net = state.network()
    result = stylize(
        content,
        styles,
        record.params,
        net=net,
        masks=masks,
        on_progress=callbacks.progress,
        is_cancelled=callbacks.should_stop,
        on_snapshot=callbacks.snapshot if settings.snapshot_every else None,
        snapshot_every=settings.snapshot_every,
        memory_budget=settings.memory_budget,
    )
    state.storage.put(run.result_key, encode_image(result.image, record.params.output_format))
    return result


def _load_masks(state: Runtime, record: JobRecord) -> list[StyleMask | None] | None:
    """The job's masks, one entry per style (None for a style without any), or None for a job without masks."""
    if not record.masks and not record.source_masks:
        return None

    def load(number: int, source: bool) -> Image.Image:
        data = state.storage.get(mask_key(record.id, number, source=source))
        return decode_mask(data, max_pixels=state.settings.max_image_pixels, name=mask_name(number, source=source))

    masks: list[StyleMask | None] = []
    for number in range(1, record.style_count + 1):
        photo = load(number, source=False) if number in record.masks else None
        painting = load(number, source=True) if number in record.source_masks else None
        masks.append(None if photo is None and painting is None else StyleMask(photo=photo, painting=painting))
    return masks


def _send_message(state: Runtime, job_id: str) -> None:
    """The queue message a handed-back job is owed; if it cannot be sent, housekeeping sends it later."""
    try:
        enqueue(app, state.settings)
        state.store.mark_sent(job_id)
    except Exception as error:
        log.warning("job %s: queue message not sent (%s); a worker's housekeeping will send it", job_id, error)


class _ShuttingDown(Exception):
    """The worker began to shut down while waiting for Redis."""


def _retry_through_redis_outage(
    write: Callable[[], T], what: str, state: Runtime, *, give_up_when_stopping: bool = True
) -> T:
    """``write()``, tried again, with pauses doubling up to ``REDIS_RETRY_SECONDS``, for as long as Redis is
    unavailable; raises ``_ShuttingDown`` instead once the worker shuts down, unless ``give_up_when_stopping`` is False.

    Giving up would cost more than waiting: an outcome not recorded means running the job again, and a claim
    not made means holding its message. The run's lease is kept by its own thread meanwhile, so nobody
    reclaims the job until Redis has been back for a full lease; a refused transition is raised at once.
    """
    delay = 0.2
    while True:
        try:
            return write()
        except redis.RedisError as error:
            if give_up_when_stopping and state.stopping.is_set():
                raise _ShuttingDown from error
            log.warning("could not %s, Redis unavailable (%s); trying again in %.1f s", what, error, delay)
            time.sleep(delay)
            delay = min(2 * delay, REDIS_RETRY_SECONDS)


class EngineCallbacks:
    """The engine's callbacks for one run: throttled progress, when to stop, previews."""

    def __init__(self, state: Runtime, run: Run, keeper: LeaseKeeper) -> None:
        self.state = state
        self.run = run
        self.keeper = keeper
        self.interval = state.settings.progress_interval
        self.deadline = time.monotonic() + state.settings.job_time_limit
        # Why the engine was told to stop, once it has been: the one fact the outcome depends on.
        self.stopped_for: StopReason | None = None
        self._last_write = float("-inf")

    def progress(
        self,
        progress: Progress,
        *,
        iteration: int | None = None,
        total: int | None = None,
        remaining: float | None = None,
        frame: int | None = None,
        frames: int | None = None,
    ) -> None:
        """Write at most every ``progress_interval`` seconds, and always the last iteration. A clip's run counts
        ``iteration`` of ``total`` over all its frames, with the ``frame`` of ``frames`` and the clip's time left."""
        iteration = progress.iteration if iteration is None else iteration
        total = progress.total if total is None else total
        now = time.monotonic()
        if iteration < total and now - self._last_write < self.interval:
            return
        self._last_write = now
        try:
            self.run.report_progress(
                iteration,
                total,
                progress.losses,
                stage=progress.stage,
                stages=progress.stages,
                size=progress.size,
                remaining_seconds=progress.remaining if frame is None else remaining,
                frame=frame,
                frames=frames,
            )
        except (InvalidTransition, JobNotFound):
            self.keeper.lost.set()  # fenced: the job is another run's (or gone); stop at the next iteration
        except redis.RedisError as error:
            log.warning("job %s: progress not recorded (%s)", self.run.job_id, error)  # the run itself goes on

    def should_stop(self) -> bool:
        """Asked every iteration: shutting down, past the time limit, superseded, or the owner asked to cancel."""
        self.stopped_for = self._reason_to_stop()
        return self.stopped_for is not None

    def _reason_to_stop(self) -> StopReason | None:
        if self.state.stopping.is_set():
            return "shutdown"
        if self.keeper.lost.is_set():
            return "superseded"
        if time.monotonic() > self.deadline:
            return "time_limit"
        try:
            return "cancel" if self.state.store.is_cancel_requested(self.run.job_id) else None
        except redis.RedisError:
            return None

    def snapshot(self, iteration: int, image: Image.Image) -> None:
        """Store a small JPEG of the picture so far, for live previews; one that cannot be stored is skipped (the
        job needs none, and the next may be)."""
        self._preview(image, lambda: self.run.record_preview(iteration))

    def frame_finished(self, done: int, iteration: int, image: Image.Image) -> None:
        """Count a clip's frames up to ``done`` as finished (the last one already stored) and show it as the preview;
        a count that cannot be written is made up by the next run, which finds the frame stored. The time limit
        starts again for the next frame: it bounds each frame of a clip, whose length the limits on clips bound."""
        self._preview(image, lambda: self.run.record_frame(done, iteration))
        self.deadline = time.monotonic() + self.state.settings.job_time_limit

    def _preview(self, image: Image.Image, record: Callable[[], object]) -> None:
        side = self.state.settings.preview_size
        small = fit_longest_side(image, side) if max(image.size) > side else image
        try:
            self.state.storage.put(self.run.preview_key, encode_image(small, "jpeg"))
            record()
        except (InvalidTransition, JobNotFound):
            self.keeper.lost.set()
        except (OSError, StorageUnavailable, redis.RedisError) as error:
            log.warning("job %s: preview not stored (%s)", self.run.job_id, error)
