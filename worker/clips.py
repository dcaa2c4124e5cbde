"""A clip's job on the worker: its frames stylised in order (``core.video``), each kept in storage as it finishes.

Every finished frame is stored under its own ``frame_key`` before the record counts it (``frames_done``), so no
record counts a frame that is not there; a run that takes over the job after a lost one starts after the last frame
stored, whether or not its predecessor lived to count it, and no finished frame is computed twice. The newest
frame is the job's preview. When the last frame is done, the stored frames are encoded, with the clip's sound,
into the run's result. A cancel, a shutdown or a lost lease stops the run within one iteration of its frame, as
for a picture.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from core.errors import Cancelled
from core.images import encode_image, fit_longest_side
from core.video.clip import Checkpoint, stylize_frames
from core.video.codec import frame_rate, read_frames, write_clip
from restyle.jobs import JobRecord, frame_key, frames_folder, input_keys
from restyle.storage import StorageUnavailable

if TYPE_CHECKING:
    from core.engine import Progress
    from core.masks import StyleMask
    from restyle.jobs import Run
    from restyle.storage import Storage
    from worker.runtime import Runtime
    from worker.tasks import EngineCallbacks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipDone:
    """What the record says of a finished clip."""

    weights: str
    seconds: float
    losses: dict[str, float]
    iterations: int


def stylize_clip_and_store(
    state: Runtime,
    run: Run,
    callbacks: EngineCallbacks,
    styles: list[Image.Image],
    masks: list[StyleMask | None] | None,
) -> ClipDone:
    """Stylise the job's clip from its first unfinished frame, keeping each frame, and store the encoded result."""
    record, storage = run.record, state.storage
    assert record.clip is not None and record.clip_frames is not None  # only clip jobs come here
    clip, frames = record.clip, record.clip_frames
    content_key, _ = input_keys(record.id, record.style_count)
    net = state.network()
    started = time.perf_counter()
    losses: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="restyle-clip-") as folder:
        source = Path(folder) / "clip"
        source.write_bytes(storage.get(content_key))
        done = _frames_stored(storage, record)
        if done:
            log.info("job %s: resuming the clip after frame %d of %d", record.id, done, frames)
        pictures = read_frames(source, name="clip", skip=max(0, done - 1))
        after = _checkpoint(storage, record, done, pictures) if done else None
        progress = _ClipProgress(record, callbacks)
        for frame in stylize_frames(
            pictures,
            styles,
            record.params,
            clip,
            net=net,
            masks=masks,
            after=after,
            on_progress=progress.report,
            is_cancelled=callbacks.should_stop,
            memory_budget=state.settings.memory_budget,
        ):
            if callbacks.should_stop():  # a run that lost the job stores nothing more
                raise Cancelled("the run stopped between frames")
            storage.put(frame_key(record.id, frame.index), encode_image(frame.image, "png"))
            callbacks.frame_finished(frame.index + 1, progress.before(frame.index + 1), frame.image)
            progress.finished(frame.seconds, frame.index)
            losses = frame.losses
        result = Path(folder) / f"result.{clip.clip_format}"
        rate = frame_rate(source, name="clip")
        write_clip(_stored_frames(storage, record), result, clip.clip_format, rate, sound_from=source)
        with result.open("rb") as file:
            storage.put_file(run.result_key, file)
    return ClipDone(net.weights_name, time.perf_counter() - started, losses, record.total_iterations)


def remove_frames(storage: Storage, record: JobRecord) -> None:
    """Drop a succeeded clip's frames: its result holds them now, and a long clip's would take many times its size.
    Frames the store will not drop now are left to retention, which removes the job's folder."""
    try:
        storage.delete_folder(frames_folder(record.id))
    except StorageUnavailable as error:
        log.warning("job %s: finished frames not removed (%s); retention will", record.id, error.message)


def _frames_stored(storage: Storage, record: JobRecord) -> int:
    """How many frames from the first are stored: those the record counts, and any a lost run stored after it
    counted them (it may have died between storing a frame and counting it)."""
    done = record.frames_done
    while record.clip_frames is not None and done < record.clip_frames and storage.exists(frame_key(record.id, done)):
        done += 1
    return done


def _checkpoint(storage: Storage, record: JobRecord, done: int, pictures: Iterator[Image.Image]) -> Checkpoint:
    """The last stored frame as the next one needs it: its result, and its photo frame at the result's size (the
    first picture ``pictures`` yields, which then go on with the frames still to do)."""
    photo = fit_longest_side(next(pictures), record.params.size)
    result = Image.open(io.BytesIO(storage.get(frame_key(record.id, done - 1)))).convert("RGB")
    return Checkpoint(done - 1, photo, result)


def _stored_frames(storage: Storage, record: JobRecord) -> Iterator[Image.Image]:
    """Every frame of the clip from storage, in order, one at a time."""
    for index in range(record.clip_frames or 0):
        yield Image.open(io.BytesIO(storage.get(frame_key(record.id, index)))).convert("RGB")


class _ClipProgress:
    """The engine's per-frame progress as the job's: iterations counted over the whole clip, the frame named, and
    the time left estimated from the frames finished in this run."""

    def __init__(self, record: JobRecord, callbacks: EngineCallbacks) -> None:
        assert record.clip is not None and record.clip_frames is not None
        self.callbacks = callbacks
        self.record = record
        self.clip = record.clip
        self.frames = record.clip_frames
        self.later_seconds: float | None = None

    def before(self, index: int) -> int:
        """Iterations of the clip's frames before frame ``index`` (from 0)."""
        return self.clip.total_iterations(self.record.params, index)

    def finished(self, seconds: float, index: int) -> None:
        if index > 0:
            self.later_seconds = seconds

    def report(self, index: int, progress: Progress) -> None:
        left = self.frames - index - 1
        remaining = progress.remaining
        if remaining is not None and left:
            remaining = None if self.later_seconds is None else remaining + left * self.later_seconds
        self.callbacks.progress(
            progress,
            iteration=self.before(index) + progress.iteration,
            total=self.record.total_iterations,
            remaining=remaining,
            frame=index + 1,
            frames=self.frames,
        )
