"""What is stored about a job, and how clients see it: records, runs, public views, ids and file keys.

Every file of a job lives under its ``job_folder``: the photo (or clip), the paintings and their masks as uploaded,
each run's result and preview, and a clip's finished frames. Retention and a withdrawn submission remove that
folder whole.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.params import MAX_STYLES, ClipParams, StyleParams
from restyle.weights_notice import WEIGHTS_DESCRIPTION

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
# How one run of a job ended. ``lost``: its lease lapsed (the worker died, froze or lost Redis for longer than
# the lease) and the job went back to the queue; ``handed_back``: its worker shut down and returned the job.
RunOutcome = Literal["running", "succeeded", "failed", "canceled", "lost", "handed_back"]
# A webhook is ``pending`` from submission until it is ``delivered`` or ``failed`` (given up, with the reason).
WebhookStatus = Literal["pending", "delivered", "failed"]
# A style's number among the job's paintings, from 1 as the API's mask fields count them.
StyleNumber = Annotated[int, Field(ge=1, le=MAX_STYLES)]
# The canonical text form of the UUIDs new_job_id makes.
JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class JobProgress(BaseModel):
    """How far the optimisation is: iterations done of the total, and where the coarse-to-fine schedule stands.

    The stage fields stay null until the run reports its first iteration (and in records written before they
    existed).
    """

    iteration: int = 0
    total: int
    percent: float = 0.0
    stage: int | None = Field(None, description="The scale being optimised now, from 1.", examples=[2])
    stages: int | None = Field(None, description="How many scales the run goes through.", examples=[4])
    size: int | None = Field(None, description="Longest side of the current stage, in pixels.", examples=[1024])
    remaining_seconds: float | None = Field(
        None, description="Estimated time left for the whole run; null until it can be estimated.", examples=[95.0]
    )
    frame: int | None = Field(
        None, description="A clip's frame being stylised now, from 1; null for a picture.", examples=[12]
    )
    frames: int | None = Field(None, description="How many frames the clip has; null for a picture.", examples=[48])


class JobError(BaseModel):
    """Why a job failed: ``code`` for programs to branch on, ``message`` for people."""

    code: str
    message: str


class JobAttempt(BaseModel):
    """One run of a job as clients see it: who ran it, when, and how it ended."""

    model_config = ConfigDict(frozen=True)

    worker: str = Field(examples=["restyle-1a2b3c4d@gpu-1"])
    started_at: datetime
    ended_at: datetime | None = None
    outcome: RunOutcome = Field("running", examples=["succeeded"])
    frames: int | None = Field(None, description="A clip's frames this run finished and kept; null for a picture.")


class JobRun(JobAttempt):
    """One run as stored: with the fencing token that every write of that run must present."""

    token: str

    def ended(self, outcome: RunOutcome) -> JobRun:
        return self.model_copy(update={"ended_at": datetime.now(UTC), "outcome": outcome})

    def public(self) -> JobAttempt:
        return JobAttempt(**self.model_dump(exclude={"token"}))


class JobRecord(BaseModel):
    """Everything stored about one job; immutable, every change writes a new version."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    status: JobStatus = "queued"
    params: StyleParams
    style_count: int = Field(ge=1, le=MAX_STYLES)
    # The styles (numbered from 1) that came with a mask over the photo, and with one over their painting; each
    # mask is stored at ``mask_key``. Records written before masks existed have none.
    masks: list[StyleNumber] = Field(default_factory=list)
    source_masks: list[StyleNumber] = Field(default_factory=list)
    progress: JobProgress
    losses: dict[str, float] = Field(default_factory=dict)
    # A clip's job: what the video adds to the parameters, its frame count, and how many of its frames are stored
    # as checkpoints (``frame_key``), which a later run resumes after.
    clip: ClipParams | None = None
    clip_frames: int | None = None
    frames_done: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    weights: str | None = None
    run_seconds: float | None = None
    error: JobError | None = None
    result_key: str | None = None
    preview_key: str | None = None
    preview_iteration: int | None = None
    webhook_url: str | None = None
    webhook_status: WebhookStatus | None = None
    webhook_error: str | None = None
    idempotency_key: str | None = None
    cancel_requested: bool = False
    # Runs that count towards ``max_attempts``: a run handed back by a worker shutting down does not.
    attempts: int = 0
    runs: list[JobRun] = Field(default_factory=list)
    version: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def total_iterations(self) -> int:
        """Iterations of the whole job: a picture's, or every frame's of a clip."""
        if self.clip is None or self.clip_frames is None:
            return self.params.iterations
        return self.clip.total_iterations(self.params, self.clip_frames)

    def fresh_progress(self) -> JobProgress:
        """The progress of a run that has done nothing yet."""
        return JobProgress(total=self.total_iterations, frames=self.clip_frames)

    def held_by(self, token: str) -> bool:
        """Whether the run holding ``token`` is the one this job is running now (the fencing check)."""
        return self.status == "running" and bool(self.runs) and self.runs[-1].token == token

    def with_last_run(self, outcome: RunOutcome) -> list[JobRun]:
        """The run history with the current run ended as ``outcome``."""
        return [*self.runs[:-1], self.runs[-1].ended(outcome)] if self.runs else []


class JobLinks(BaseModel):
    """Where to go next; relative to the API's base URL unless a public URL is configured."""

    self: str
    cancel: str
    events: str
    result: str | None = None
    preview: str | None = None


class JobPublic(BaseModel):
    """A job as clients see it, in responses, event streams and webhooks."""

    id: str = Field(examples=["0190f5c2-7a1e-7c3b-9a4e-2f1d0c9b8a7f"])
    status: JobStatus = Field(examples=["running"])
    progress: JobProgress
    losses: dict[str, float] = Field(
        description="Latest losses (content, style, tv, total).",
        examples=[{"content": 0.41, "style": 0.08, "tv": 0.01, "total": 0.5}],
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    params: StyleParams = Field(description="The parameters used, defaults filled in.")
    style_count: int
    clip: ClipParams | None = Field(
        description="For a clip (sent as `clip`): what the video adds to the parameters, defaults filled in; null "
        "for a picture."
    )
    frames_done: int = Field(
        description="A clip's frames finished and kept: a run after a lost one resumes after them.", examples=[11]
    )
    masks: list[int] = Field(
        description="The styles, numbered from 1, sent with a mask over the photo (`mask_N`): where each paints.",
        examples=[[1]],
    )
    source_masks: list[int] = Field(
        description="The styles sent with a mask over their painting (`source_mask_N`): the part each draws from.",
        examples=[[]],
    )
    weights: str | None = Field(
        description=f"The network weights the worker used, once the job has succeeded. {WEIGHTS_DESCRIPTION}",
        examples=["vgg19-imagenet"],
    )
    run_seconds: float | None = Field(description="Engine time of the successful run.")
    error: JobError | None
    cancel_requested: bool
    attempts: int = Field(description="How many times a worker started this job (more than 1 after a crash).")
    runs: list[JobAttempt] = Field(
        description="Every run of the job, oldest first: a run whose worker died ends `lost`, one handed back by "
        "a worker shutting down ends `handed_back`, and the job ran again."
    )
    webhook_url: str | None
    webhook_status: WebhookStatus | None = Field(
        description="`pending` until the webhook is `delivered`, or `failed` once given up (see `webhook_error`)."
    )
    webhook_error: str | None = Field(description="Why the webhook was given up.")
    result_url: str | None = Field(description="Download link, once the job has succeeded.")
    preview_url: str | None = Field(description="Latest in-progress snapshot, once one exists.")
    preview_iteration: int | None = Field(description="The iteration the preview shows; changes as it refreshes.")
    urls: JobLinks

    @classmethod
    def from_record(cls, record: JobRecord, base_url: str = "") -> JobPublic:
        """Render a record; ``base_url`` (no trailing slash) makes the links absolute."""
        path = f"{base_url}/v1/jobs/{record.id}"
        result = f"{path}/result" if record.status == "succeeded" else None
        preview = f"{path}/preview" if record.preview_key else None
        return cls(
            **record.model_dump(
                include={
                    "id",
                    "status",
                    "progress",
                    "losses",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "params",
                    "clip",
                    "frames_done",
                    "style_count",
                    "masks",
                    "source_masks",
                    "weights",
                    "run_seconds",
                    "error",
                    "cancel_requested",
                    "attempts",
                    "webhook_url",
                    "webhook_status",
                    "webhook_error",
                    "preview_iteration",
                }
            ),
            runs=[run.public() for run in record.runs],
            result_url=result,
            preview_url=preview,
            urls=JobLinks(self=path, cancel=f"{path}/cancel", events=f"{path}/events", result=result, preview=preview),
        )


def new_job_id() -> str:
    """A UUIDv7 (time-ordered, RFC 9562) with sub-millisecond precision, so ids sort newest-last as strings."""
    nanoseconds = time.time_ns()
    milliseconds, remainder = divmod(nanoseconds, 1_000_000)
    fraction = remainder * 4096 // 1_000_000  # RFC 9562 method 3: 12 bits of sub-millisecond time
    value = (milliseconds << 80) | (0x7 << 76) | (fraction << 64) | (0b10 << 62) | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def job_folder(job_id: str) -> str:
    """The storage prefix under which every file of a job lives; retention removes it whole."""
    return f"jobs/{job_id}"


def input_keys(job_id: str, style_count: int = MAX_STYLES) -> tuple[str, list[str]]:
    """Storage keys of a job's content image and its style images."""
    folder = job_folder(job_id)
    return f"{folder}/content", [f"{folder}/style-{index}" for index in range(style_count)]


def mask_name(style_number: int, *, source: bool = False) -> str:
    """What the mask of style ``style_number`` (from 1) over the photo, or over its painting when ``source``, is
    called everywhere: its API form field, its file in the job's folder and the messages about it (``mask_2``,
    ``source_mask_2``)."""
    return f"{'source_mask' if source else 'mask'}_{style_number}"


def mask_key(job_id: str, style_number: int, *, source: bool = False) -> str:
    """Storage key of the mask of style ``style_number`` (from 1) over the photo, or over its painting when
    ``source``."""
    return f"{job_folder(job_id)}/{mask_name(style_number, source=source)}"


def frames_folder(job_id: str) -> str:
    """The storage prefix of a clip's finished frames, removed whole once its result holds them."""
    return f"{job_folder(job_id)}/frames"


def frame_key(job_id: str, index: int) -> str:
    """Storage key of a clip's finished frame ``index`` (from 0), a PNG: one key per frame, whichever run made it, so
    a run resuming the clip finds every frame its predecessors finished."""
    return f"{frames_folder(job_id)}/{index:05d}"


def result_key(job_id: str, run: int) -> str:
    """Each run writes its own result, so a run that lost its lease can never overwrite its successor's."""
    return f"{job_folder(job_id)}/result-{run}"


def preview_key(job_id: str, run: int) -> str:
    return f"{job_folder(job_id)}/preview-{run}"
