"""The one parameter model for a style-transfer run, shared by the CLI, the HTTP API, the job record and the
engine: every hyperparameter, its default and its valid range live here and nowhere else. A job's parameters
travel in its record in Redis (``restyle.jobs.records.JobRecord.params``), which the worker reads once it has
claimed the job; the Celery message that wakes the worker carries no parameters and names no job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from core.errors import InvalidRequest
from core.networks import ALL_LAYER_NAMES, DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, pools_before

# Every layer name a network may have (VGG19's; VGG16's are a subset): what a request may name at all. Whether
# the network that runs it has the layer is checked where the network is known (``Network.check_layers``).
LAYER_NAMES = ALL_LAYER_NAMES
MAX_STYLES = 4
# The largest picture the engine makes; tiling keeps it within a memory budget (see core.budget).
MAX_SIZE = 4096
# Above this size an unset ``multiscale`` means coarse-to-fine. Gatys et al. (CVPR 2017, "Controlling
# perceptual factors") spend most iterations at the lower scales of a large picture: its structures settle
# there, and each final-size iteration costs several coarse ones. Up to this size a single scale reaches a
# lower loss in the same time (bench/RESULTS.md keeps the comparison), so smaller pictures keep it.
COARSE_TO_FINE_ABOVE = 1024
# Chosen on trained filters (Keras's ImageNet VGG16) from bench/quality.py's sheets: the photo's scene and the
# painting's strokes both clearly there across photo × painting pairs; the page's slider spans it × 10^±2.
DEFAULT_STYLE_WEIGHT = 3.0
# Chosen on trained filters (Keras's ImageNet VGG16) with bench/video.py: flicker gone (Ruder et al.'s temporal error
# far below frames stylised alone) while the painting's statistics barely give way; higher holds a smeared warp.
DEFAULT_TEMPORAL_WEIGHT = 1.0
# Later frames start from the previous result carried along the flow, so they need a fraction of the first's work.
LATER_FRAMES_SHARE = 0.25
# Light: below the slider's lowest style weight, so that a barely stylised photo is not a blurred one; at the
# default style weight it only damps the finest grain.
DEFAULT_TV_WEIGHT = 0.01


def _parse_layer_weights(value: Any) -> Any:
    """Accept 'relu4_2' or 'relu1_1:1,relu2_1:0.5' (CLI flags, form fields) as well as a mapping."""
    if not isinstance(value, str):
        return value
    parsed: dict[str, float | str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, weight = item.partition(":")
        parsed[name.strip()] = weight.strip() or 1.0
    return parsed


def _parse_blend(value: Any) -> Any:
    """Accept '3,1' or '3 1' (CLI flags, form fields) as well as a list of numbers."""
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value


LayerWeights = Annotated[dict[str, Annotated[float, Field(gt=0, le=1e4)]], BeforeValidator(_parse_layer_weights)]
BlendWeights = Annotated[list[Annotated[float, Field(ge=0, le=1e4)]], BeforeValidator(_parse_blend)]


class StyleParams(BaseModel):
    """Everything that shapes one stylised picture; defaults give a good 512 px result untuned.

    Each layer's content and style error is relative to its target (``core.losses``), so the errors keep their
    meaning at any size; the three weights are then measured in the picture, each term's gradient made unit
    length where the style has begun to move the photo (``core.engine``), so that a weight means the same on
    any network and its filters: ``style_weight / content_weight`` is how much harder the painting pulls than
    the photo holds.
    """

    # NaN and infinity pass every range check vacuously or fail it with a misleading bound; refuse them as such.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    content_weight: float = Field(1.0, ge=0, le=1e6, description="How strongly the result keeps the photo's structure.")
    style_weight: float = Field(
        DEFAULT_STYLE_WEIGHT,
        ge=0,
        le=1e9,
        description=(
            "How strongly the result takes the painting's textures, relative to content_weight; more style means "
            f"less content. Around {DEFAULT_STYLE_WEIGHT:g}: both clearly there; ×0.01 barely touches the photo, "
            "×100 paints it over."
        ),
    )
    tv_weight: float = Field(
        DEFAULT_TV_WEIGHT,
        ge=0,
        le=1e6,
        description="Total-variation smoothing, relative to content_weight as style_weight is; 0 turns it off.",
    )
    iterations: int = Field(
        300, ge=1, le=5000, description="Optimiser steps over all scales (one forward+backward each)."
    )
    size: int = Field(512, ge=32, le=MAX_SIZE, description="Longest side of the result, in pixels.")
    style_scale: float = Field(
        1.0,
        ge=0.1,
        le=4.0,
        description="Style images are resized to size × style_scale; smaller gives finer brush strokes.",
    )
    content_layers: LayerWeights = Field(
        default_factory=lambda: dict.fromkeys(DEFAULT_CONTENT_LAYERS, 1.0),
        description="Layers whose features the result keeps from the photo, as 'layer[:weight],…'.",
    )
    style_layers: LayerWeights = Field(
        default_factory=lambda: dict.fromkeys(DEFAULT_STYLE_LAYERS, 1.0),
        description="Layers whose Gram matrices the result takes from the painting, as 'layer[:weight],…'.",
    )
    style_blend: BlendWeights | None = Field(
        None, description="Relative weight of each style image (one number per style); equal when omitted."
    )
    pooling: Literal["max", "avg"] = Field("max", description="Pooling inside the network; avg gives smoother results.")
    init: Literal["content", "noise"] = Field("content", description="Start from the photo or from seeded noise.")
    optimizer: Literal["lbfgs", "adam"] = Field(
        "lbfgs", description="L-BFGS converges in fewer steps; Adam uses less memory."
    )
    learning_rate: float = Field(
        0.02, gt=0, le=10, description="Adam's step size in pixel units (0–1 scale); L-BFGS ignores it."
    )
    multiscale: bool | None = Field(
        None,
        description=(
            f"Optimise coarse-to-fine. Omitted (null): automatic, on above {COARSE_TO_FINE_ABOVE} px, where the "
            "final-size iterations are the expensive ones and structures settle at the coarse scales anyway. Up to "
            f"{COARSE_TO_FINE_ABOVE} px it gives larger brush strokes at a higher loss for the same time, a look to "
            "choose rather than a speed-up."
        ),
    )
    preserve_colors: Literal["none", "luminance", "histogram"] = Field(
        "none",
        description=(
            "Keep the photo's colours: transfer luminance only, or match the painting's colour histogram "
            "to the photo first."
        ),
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**31 - 1,
        description=(
            "Seeds the noise start (init=noise); the same seed, parameters, CPU thread count and tiling (which the "
            "memory budget sets) give the same bytes."
        ),
    )
    output_format: Literal["png", "jpeg", "webp"] = Field("png", description="Encoding of the result.")

    @field_validator("content_layers", "style_layers")
    @classmethod
    def _known_layers(cls, layers: dict[str, float]) -> dict[str, float]:
        if not layers:
            raise ValueError("name at least one layer")
        unknown = sorted(set(layers) - set(LAYER_NAMES))
        if unknown:
            raise ValueError(f"unknown VGG layer(s) {', '.join(unknown)}; choose from {', '.join(LAYER_NAMES)}")
        return layers

    @field_validator("style_blend")
    @classmethod
    def _blend_is_usable(cls, blend: list[float] | None) -> list[float] | None:
        if blend is not None and not 1 <= len(blend) <= MAX_STYLES:
            raise ValueError(f"give between 1 and {MAX_STYLES} blend weights")
        if blend is not None and sum(blend) <= 0:
            raise ValueError("at least one blend weight must be positive")
        return blend

    @property
    def min_side(self) -> int:
        """The shortest picture side, in px, that still reaches the deepest layer in use with one position:
        each pooling stage on the way halves it."""
        return 2 ** max(pools_before(name) for name in (*self.content_layers, *self.style_layers))

    @property
    def coarse_to_fine(self) -> bool:
        """Whether the run goes coarse-to-fine: as ``multiscale`` asks, or automatically for large pictures."""
        return self.size > COARSE_TO_FINE_ABOVE if self.multiscale is None else self.multiscale

    def blend_weights(self, n_styles: int) -> list[float]:
        """Normalised per-style weights for ``n_styles`` images; raises if the blend does not fit them."""
        if not 1 <= n_styles <= MAX_STYLES:
            raise InvalidRequest(f"give between 1 and {MAX_STYLES} style images, not {n_styles}")
        blend = self.style_blend or [1.0] * n_styles
        if len(blend) != n_styles:
            raise InvalidRequest(f"style_blend has {len(blend)} weights but {n_styles} style image(s) were given")
        total = sum(blend)
        return [weight / total for weight in blend]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> StyleParams:
        """Build from loosely typed input (form fields, CLI flags), dropping keys that were left unset."""
        return cls.model_validate({key: value for key, value in values.items() if value not in (None, "")})


class ClipParams(BaseModel):
    """What a video adds to ``StyleParams``, which shapes each of its frames (``core.video``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    temporal_weight: float = Field(
        DEFAULT_TEMPORAL_WEIGHT,
        ge=0,
        le=1e6,
        description=(
            "How strongly each frame keeps to the previous frame's result carried along the motion, relative to "
            "content_weight as style_weight is; more means less flicker, 0 stylises every frame on its own."
        ),
    )
    frame_iterations: int | None = Field(
        None,
        ge=1,
        le=5000,
        description=(
            "Optimiser steps for each frame after the first, which starts from its predecessor's result; "
            f"omitted: {LATER_FRAMES_SHARE:g} of iterations."
        ),
    )

    clip_format: Literal["mp4", "webm"] = Field(
        "mp4", description="The stylised clip's container: mp4 (H.264, with AAC sound) or webm (VP9, with Opus sound)."
    )

    def total_iterations(self, params: StyleParams, frames: int) -> int:
        """The iterations of a clip's first ``frames`` frames together (of the whole clip, given its frame count):
        the first frame's, then each later frame's; 0 for none."""
        if frames == 0:
            return 0
        return params.iterations + (frames - 1) * self.later_frames(params).iterations

    def later_frames(self, params: StyleParams) -> StyleParams:
        """The parameters of every frame after the first: its iterations, at one scale, since it starts from the
        previous result at full size and a coarse stage would throw that result's detail away."""
        iterations = self.frame_iterations or max(1, round(params.iterations * LATER_FRAMES_SHARE))
        return params.model_copy(update={"iterations": iterations, "multiscale": False})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ClipParams:
        """Build from loosely typed input (form fields, CLI flags), dropping keys that were left unset."""
        return cls.model_validate({key: value for key, value in values.items() if value not in (None, "")})
