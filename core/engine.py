"""The optimisation loop: repaint a content picture until its VGG features carry the content of the photo
and the Gram statistics of the paintings (Gatys, Ecker & Bethge, CVPR 2016).

Departures from the paper, and why:
- Coarse-to-fine, when asked for, and by default above ``core.params.COARSE_TO_FINE_ABOVE``: the picture is
  first optimised at a fraction of the final size, then upsampled and refined. Structures settle at the coarse
  scale, so brush strokes come out larger than the network's receptive field would make them. Up to that size
  it is a look, not a speed-up (a single scale reaches a lower loss at the final size in the same time), so
  there it is left to the caller.
- Several styles are blended in Gram space (a weighted mean of their Gram matrices), not by averaging
  losses, so a blend is one coherent texture target.
- A stage that would not fit the memory budget is evaluated in tiles (``core.tiling``): the same losses and
  gradient to float rounding, at the price of time.
- Spatial control (Gatys et al., CVPR 2017) with masks carried to each layer on its pooling grid, not through the
  receptive fields, and each region's error weighted by its share of the picture (``core.masks`` says why).
- A video frame (Ruder et al., GCPR 2016) adds a temporal term towards the previous frame's warped result and
  starts from that result (``core.temporal``, ``core.video``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from core import colors, regions, tiling
from core.budget import StagePlan, default_budget, in_use, plan_stage
from core.errors import Cancelled
from core.graphs import Replayed
from core.images import fit_longest_side, scaled_size
from core.lbfgs import LBFGS
from core.losses import GuidedTargets, content_loss, guided_style_loss, style_loss, tv_loss, tv_loss_into
from core.masks import StyleMask, check_masks
from core.memory import reused_allocations
from core.params import StyleParams
from core.schedule import Stage, check_fits, plan_stages, style_side
from core.temporal import TemporalTarget, temporal_gradient_scale, temporal_loss, temporal_loss_into
from core.vgg import FeatureNet

# Where the content and style weights are balanced (``_Run.balanced_weights``): the photo moved along the style
# gradient by this root-mean-square change per channel value (on the 0–1 scale).
BALANCE_STEP = 0.05
# Gradient lengths below this are float32 rounding of a zero gradient, not a pull.
_VANISHING = 1e-12
# Tiled stages of up to this many tiles keep core.memory's allocator policy (see _reuses_allocations).
MAX_TILES_IN_KEPT_HEAP = 2


@dataclass(frozen=True)
class Progress:
    """One iteration's report: enough for a progress bar, a job record or a loss curve."""

    iteration: int
    total: int
    content_loss: float
    style_loss: float
    tv_loss: float
    total_loss: float
    elapsed: float
    size: int
    stage: int = 1
    stages: int = 1
    remaining: float | None = None
    temporal_loss: float | None = None

    @property
    def losses(self) -> dict[str, float]:
        """The loss figures by name, as job records and results report them (``temporal`` for video frames only)."""
        losses = {"content": self.content_loss, "style": self.style_loss, "tv": self.tv_loss, "total": self.total_loss}
        if self.temporal_loss is not None:
            losses["temporal"] = self.temporal_loss
        return losses


@dataclass(frozen=True)
class Stylized:
    """The finished picture and how it was made."""

    image: Image.Image
    weights: str
    iterations: int
    seconds: float
    losses: dict[str, float] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]
SnapshotCallback = Callable[[int, Image.Image], None]


def stylize(
    content: Image.Image,
    styles: Sequence[Image.Image],
    params: StyleParams,
    *,
    net: FeatureNet,
    masks: Sequence[StyleMask | None] | None = None,
    on_progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
    on_snapshot: SnapshotCallback | None = None,
    snapshot_every: int = 0,
    memory_budget: int | None = None,
    temporal: TemporalTarget | None = None,
) -> Stylized:
    """Repaint ``content`` in the blended style of ``styles``; raises ``Cancelled`` when asked to stop.

    ``masks``, one entry per style (``core.masks.StyleMask``, or None for a style that paints everywhere from all
    of its painting), say where each style paints and what it draws from; where no mask covers the photo, it keeps
    its content. Without masks the run is the one it always was. Masks that cannot steer their style raise
    ``InvalidMask`` before any work. ``memory_budget`` (bytes, default ``core.budget.default_budget``) bounds what
    the run adds to the process; ``MemoryBudgetTooSmall`` is raised before any work when not even the smallest
    tiles fit it. ``temporal``, for a video frame after the first, is the previous frame's warped result: the run
    starts from it and is pulled towards it wherever its warp is reliable.
    """
    blend = params.blend_weights(len(styles))
    style_masks = check_masks(masks, len(styles))
    net.network.check_layers({*params.content_layers, *params.style_layers})
    check_fits(params, ("content", content.size), [(f"style {i}", style.size) for i, style in enumerate(styles, 1)])
    stages = plan_stages(params)
    budget = memory_budget if memory_budget is not None else default_budget(net.device)
    plans = _plan_stages_memory(net, params, content, styles, stages, budget - in_use(net.device), style_masks)
    content_source, style_sources = content, list(styles)
    if params.preserve_colors == "luminance":
        content_source = colors.luminance_only(content)
        style_sources = [colors.match_luminance(style, content) for style in styles]
        if temporal is not None:
            # The run optimises luminance alone; the previous result's own is what it should stay near.
            temporal = _luminance_target(temporal)
    if temporal is not None:
        temporal = TemporalTarget(
            temporal.previous.to(net.device), temporal.reliability.to(net.device), temporal.weight
        )
    run = _Run(
        params,
        net,
        [stage.iterations for stage in stages],
        [plan.work for plan in plans],
        on_progress,
        is_cancelled,
        on_snapshot,
        snapshot_every,
    )
    image = _optimise_stages(run, stages, plans, content_source, style_sources, blend, style_masks, temporal)
    result = _to_image(image)
    if params.preserve_colors == "luminance":
        result = colors.with_chroma_of(result, fit_longest_side(content, params.size).resize(result.size))
    return Stylized(
        image=result,
        weights=net.weights_name,
        iterations=run.iteration,
        seconds=time.perf_counter() - run.started,
        losses=run.last_losses,
    )


def objective_weights(
    content: Image.Image,
    styles: Sequence[Image.Image],
    params: StyleParams,
    *,
    net: FeatureNet,
    masks: Sequence[StyleMask | None] | None = None,
) -> _Weights:
    """The factors ``stylize`` puts on the content, style and smoothing errors at the final size (whole, with
    ``params``' colour handling left out): for measurements that must minimise the engine's own objective."""
    blend = params.blend_weights(len(styles))
    style_masks = check_masks(masks, len(styles))
    stage = Stage(params.size, 1)
    (plan,) = _plan_stages_memory(net, params, content, styles, [stage], default_budget(net.device), style_masks)
    photo = _to_tensor(fit_longest_side(content, params.size), net.device)
    targets = _Targets.compute(net, params, photo, styles, blend, params.size, plan, style_masks)
    run = _Run(params, net, [1], [plan.work], None, None, None, 0)
    return run.balanced_weights(photo, targets, plan)


def _plan_stages_memory(
    net: FeatureNet,
    params: StyleParams,
    content: Image.Image,
    styles: Sequence[Image.Image],
    stages: Sequence[Stage],
    available: int,
    masks: Sequence[StyleMask | None],
) -> list[StagePlan]:
    """Every stage's memory plan, made before any work so that a budget too small fails at once.

    With photo masks, every style is counted as a region of its own (styles sharing a mask share one, so this is
    the most there can be), and so is the whole photo when some style has none.
    """
    photo_masks = [mask.photo for mask in masks if mask is not None and mask.photo is not None]
    count = (len(photo_masks) + (len(photo_masks) < len(masks))) if photo_masks else 0
    painting_masks = any(mask is not None and mask.painting is not None for mask in masks)
    return [
        plan_stage(
            net.network,
            scaled_size(content.size, stage.size),
            [scaled_size(style.size, style_side(params, stage.size)) for style in styles],
            params.content_layers,
            params.style_layers,
            params.optimizer,
            available,
            regions=count,
            painting_masks=painting_masks,
        )
        for stage in stages
    ]


def _optimise_stages(
    run: _Run,
    stages: Sequence[Stage],
    plans: Sequence[StagePlan],
    content: Image.Image,
    styles: Sequence[Image.Image],
    blend: Sequence[float],
    masks: Sequence[StyleMask | None],
    temporal: TemporalTarget | None = None,
) -> Tensor:
    """Run the schedule coarsest first, each stage starting from the previous one's result upsampled (the first
    from the photo, the seeded noise, or a video frame's previous result)."""
    image: Tensor | None = None
    for stage, plan in zip(stages, plans, strict=True):
        with reused_allocations() if _reuses_allocations(plan) else nullcontext():
            photo = _to_tensor(fit_longest_side(content, stage.size), run.net.device)
            targets = _Targets.compute(run.net, run.params, photo, styles, blend, stage.size, plan, masks)
            if temporal is not None:
                targets.temporal = temporal.at_size(*photo.shape[-2:])
            if image is None:
                image = _initial_image(run.params, photo, targets.temporal)
            else:
                image = F.interpolate(image, size=photo.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
            weights = run.balanced_weights(photo, targets, plan)
            del photo
            image = run.optimise(image, targets, stage, plan, weights)
    assert image is not None
    return image


@dataclass
class _Targets:
    """What one stage optimises towards, computed once: content features, and either the blended style Grams that
    the whole photo takes (``grams``) or, with photo masks, each style layer's regions (``guided``)."""

    content: dict[str, Tensor]
    grams: dict[str, Tensor]
    guided: dict[str, GuidedTargets] = field(default_factory=dict)
    temporal: TemporalTarget | None = None

    @classmethod
    def compute(
        cls,
        net: FeatureNet,
        params: StyleParams,
        content: Tensor,
        styles: Sequence[Image.Image],
        blend: Sequence[float],
        size: int,
        plan: StagePlan,
        masks: Sequence[StyleMask | None],
    ) -> _Targets:
        pooling = params.pooling
        content_features = tiling.whole_features(net, content, params.content_layers, pooling, plan.content_tiles)
        photo_size = (content.shape[-1], content.shape[-2])
        photo_masks = [
            regions.grid_mask(mask.photo, photo_size, net.device)
            if mask is not None and mask.photo is not None
            else None
            for mask in masks
        ]
        guided = any(mask is not None for mask in photo_masks)
        grams: dict[str, Tensor] = {}
        style_grams: list[dict[str, Tensor]] = []
        for style, weight, tiles, mask, photo_mask in zip(
            styles, blend, plan.style_tiles, masks, photo_masks, strict=True
        ):
            pixels = _to_tensor(fit_longest_side(style, style_side(params, size)), net.device)
            painting_mask = None
            if mask is not None and mask.painting is not None:
                painting_mask = regions.grid_mask(mask.painting, (pixels.shape[-1], pixels.shape[-2]), net.device)
            if params.preserve_colors == "histogram":
                pixels = colors.match_color_statistics(
                    pixels[0].cpu(), content[0].cpu(), _on_cpu(painting_mask), _on_cpu(photo_mask)
                )[None].to(net.device)
            weights = None if painting_mask is None else regions.painting_weights(painting_mask, params.style_layers)
            style_layer_grams = tiling.whole_grams(net, pixels, params.style_layers, pooling, tiles, weights)
            if guided:
                style_grams.append(style_layer_grams)
                continue
            for name, gram in style_layer_grams.items():
                grams[name] = grams.get(name, 0) + weight * gram
        if not guided:
            return cls(content_features, grams)
        height, width = content.shape[-2:]
        painted = regions.group(photo_masks)
        return cls(
            content_features,
            {},
            regions.guided_targets(painted, style_grams, blend, params.style_layers, (height, width)),
        )


class _Run:
    """State shared by all stages of one call: counters, clocks and the caller's callbacks."""

    def __init__(
        self,
        params: StyleParams,
        net: FeatureNet,
        stage_iterations: Sequence[int],
        stage_work: Sequence[float],
        on_progress: ProgressCallback | None,
        is_cancelled: CancelCheck | None,
        on_snapshot: SnapshotCallback | None,
        snapshot_every: int,
    ) -> None:
        self.params, self.net = params, net
        self.stage_iterations, self.stage_work = list(stage_iterations), list(stage_work)
        self.total = sum(stage_iterations)
        self.stage = self.stage_done = 0  # optimise() starts each stage's count and clock
        self.stage_started = 0.0
        self.on_progress, self.is_cancelled = on_progress, is_cancelled
        self.on_snapshot, self.snapshot_every = on_snapshot, snapshot_every
        self.iteration = 0
        self.started = time.perf_counter()
        self.last_losses: dict[str, float] = {}
        self.layers = set(params.content_layers) | set(params.style_layers)
        self.content_weights = _normalised(params.content_layers)
        self.style_weights = _normalised(params.style_layers)

    def balanced_weights(self, photo: Tensor, targets: _Targets, plan: StagePlan) -> _Weights:
        """The weights of the three terms for one stage: the user's, each divided by the length of its term's
        gradient in the picture at the balance point (see ``BALANCE_STEP``).

        The relative errors alone do not make a weight mean the same on another network: how hard a network's
        Gram matrices pull on the pixels, and how stiffly its content features push back, differ by orders of
        magnitude between trained and random filters. Measured in the picture instead, with both gradients
        made unit length where style has moved the photo by ``BALANCE_STEP``, ``style_weight / content_weight``
        is the ratio of the two pulls there, whichever network runs: at 1 they are equal, so the result settles
        about ``BALANCE_STEP`` from the photo; less stays nearer it, more goes further into the painting. The
        smoothing term is measured at the same point, where style has added its grain, so ``tv_weight`` is in the
        same units.
        """
        params = self.params
        direction = self._gradient(photo, targets, plan, content=0.0, style=1.0)
        moved = (photo - BALANCE_STEP * direction / _rms(direction)).clamp_(0, 1)
        del direction
        style_pull = self._gradient(moved, targets, plan, content=0.0, style=1.0)
        content_push = self._gradient(moved, targets, plan, content=1.0, style=0.0)
        smoothing_push = torch.zeros_like(moved)
        tv_loss_into(moved, 1.0, smoothing_push)
        temporal = targets.temporal
        return _Weights(
            content=params.content_weight / _length(content_push),
            style=params.style_weight / _length(style_pull),
            tv=params.tv_weight / _length(smoothing_push),
            temporal=0.0 if temporal is None else temporal.weight / temporal_gradient_scale(photo, BALANCE_STEP),
        )

    def _gradient(self, image: Tensor, targets: _Targets, plan: StagePlan, *, content: float, style: float) -> Tensor:
        """The gradient in ``image`` of ``content``·C + ``style``·S, whole or tiled as the stage runs."""
        if plan.tiles is None:
            picture = image.detach().requires_grad_(True)
            content_error, style_error = self._errors(picture, targets)
            (content * content_error + style * style_error).backward()
            assert picture.grad is not None
            return picture.grad
        gradient = torch.zeros_like(image)
        layer_targets = self._layer_targets(targets, _Weights(content, style, 0.0))
        tiling.tiled_gradient(
            self.net, image, layer_targets, self.params.pooling, plan.tiles, gradient, self._check_cancelled
        )
        return gradient

    def optimise(self, image: Tensor, targets: _Targets, stage: Stage, plan: StagePlan, weights: _Weights) -> Tensor:
        """Run one stage's iterations with the chosen optimiser and return the detached result."""
        self.stage += 1
        self.stage_started, self.stage_done = time.perf_counter(), 0
        # The optimisers own the stage's picture: the caller hands it over (no copy: each is picture-sized).
        image = image.detach().requires_grad_(True)
        objective: Callable[[], _Evaluation]
        if plan.tiles is None:
            # The optimisers update ``image`` in place, so a replayed objective always sees the current picture.
            objective = Replayed(lambda: self._objective(image, targets, weights), image.device)
        else:
            # Not replayed: tiles differ in shape, and a graph per shape would hold each shape's memory at once,
            # which is what tiling is there to avoid; a tile's kernels are large enough that launching is cheap.
            objective = self._tiled_objective(image, targets, plan.tiles, weights)
        if self.params.optimizer == "lbfgs":
            # Fixed unit steps and no tolerances: the caller asked for a number of iterations, and progress
            # totals must hold.
            lbfgs = LBFGS(image, history=plan.history)
            for _ in range(stage.iterations):
                lbfgs.step(self._iterate(image, objective))
        else:
            adam = torch.optim.Adam([image], lr=self.params.learning_rate)
            for _ in range(stage.iterations):
                self._iterate(image, objective)
                adam.step()
                with torch.no_grad():
                    image.clamp_(0, 1)
        return image.detach().clamp(0, 1)

    def _iterate(self, image: Tensor, objective: Callable[[], _Evaluation]) -> Tensor:
        """One forward and backward pass: the unit of work that progress counts and cancellation interrupts."""
        self._check_cancelled()
        evaluation = objective()
        self.iteration += 1
        self.stage_done += 1
        self._report(image, evaluation)
        return evaluation.gradient

    def _check_cancelled(self) -> None:
        if self.is_cancelled is not None and self.is_cancelled():
            raise Cancelled(f"stopped by request after {self.iteration} of {self.total} iterations")

    def _errors(self, image: Tensor, targets: _Targets) -> tuple[Tensor, Tensor]:
        """The content and style errors of ``image``: each group's relative errors, weighted by layer."""
        features = self.net(image, self.layers, self.params.pooling)
        zero = torch.zeros((), device=image.device)
        content = sum(
            (w * content_loss(features[n], targets.content[n]) for n, w in self.content_weights.items()), zero
        )
        style = sum((w * _style_error(features[n], n, targets) for n, w in self.style_weights.items()), zero)
        return content, style

    def _objective(self, image: Tensor, targets: _Targets, weights: _Weights) -> _Evaluation:
        """The weighted losses and their gradient in the picture: the GPU work a CUDA graph can replay."""
        image.grad = None
        content, style = self._errors(image, targets)
        tv = tv_loss(image)
        total = weights.content * content + weights.style * style + weights.tv * tv
        temporal = None
        if targets.temporal is not None:
            temporal = temporal_loss(image, targets.temporal)
            total = total + weights.temporal * temporal
        total.backward()
        assert image.grad is not None
        return _Evaluation(content, style, tv, total, image.grad, temporal)

    def _layer_targets(self, targets: _Targets, weights: _Weights) -> dict[str, tiling.LayerTargets]:
        return {
            name: tiling.LayerTargets(
                content=targets.content.get(name),
                gram=targets.grams.get(name),
                content_weight=weights.content * self.content_weights.get(name, 0.0),
                style_weight=weights.style * self.style_weights.get(name, 0.0),
                guided=targets.guided.get(name),
            )
            for name in self.layers
        }

    def _tiled_objective(
        self, image: Tensor, targets: _Targets, plan: tiling.TilePlan, weights: _Weights
    ) -> Callable[[], _Evaluation]:
        """The same evaluation as ``_objective``, the network's part computed tile by tile into one buffer."""
        layer_targets = self._layer_targets(targets, weights)
        gradient = torch.zeros_like(image)

        def evaluate() -> _Evaluation:
            contents, styles = tiling.tiled_gradient(
                self.net, image, layer_targets, self.params.pooling, plan, gradient, self._check_cancelled
            )
            zero = torch.zeros((), device=image.device)
            content = sum((w * contents[n] for n, w in self.content_weights.items()), zero)
            style = sum((w * styles[n] for n, w in self.style_weights.items()), zero)
            temporal = None
            with torch.no_grad():
                tv = tv_loss_into(image, weights.tv, gradient)
                if targets.temporal is not None:
                    temporal = temporal_loss_into(image, targets.temporal, weights.temporal, gradient)
            image.grad = gradient  # where Adam looks for it
            total = weights.content * content + weights.style * style + weights.tv * tv
            if temporal is not None:
                total = total + weights.temporal * temporal
            return _Evaluation(content, style, tv, total, gradient, temporal)

        return evaluate

    def _report(self, image: Tensor, evaluation: _Evaluation) -> None:
        # One device-to-host copy for all four numbers instead of four synchronising .item() calls.
        temporal = evaluation.temporal if evaluation.temporal is not None else torch.zeros_like(evaluation.total)
        losses = torch.stack([evaluation.content, evaluation.style, evaluation.tv, evaluation.total, temporal])
        c, s, t, total, temporal_value = losses.detach().cpu().tolist()
        now = time.perf_counter()
        progress = Progress(
            self.iteration,
            self.total,
            c,
            s,
            t,
            total,
            now - self.started,
            max(image.shape[-2:]),
            stage=self.stage,
            stages=len(self.stage_iterations),
            remaining=self._remaining(now),
            temporal_loss=None if evaluation.temporal is None else temporal_value,
        )
        self.last_losses = progress.losses
        if self.on_progress is not None:
            self.on_progress(progress)
        if self.on_snapshot is not None and self.snapshot_every and self.iteration % self.snapshot_every == 0:
            self.on_snapshot(self.iteration, _to_image(image.detach().clamp(0, 1)))

    def _remaining(self, now: float) -> float:
        """Seconds left, from this stage's pace so far and the later stages' work relative to this one's."""
        index = self.stage - 1
        per_iteration = (now - self.stage_started) / self.stage_done
        left = self.stage_iterations[index] - self.stage_done
        later = sum(
            count * work / self.stage_work[index]
            for count, work in zip(self.stage_iterations[index + 1 :], self.stage_work[index + 1 :], strict=True)
        )
        return per_iteration * (left + later)


def _style_error(features: Tensor, layer: str, targets: _Targets) -> Tensor:
    """One style layer's error: against the blend that the whole photo takes, or summed over the regions."""
    guided = targets.guided.get(layer)
    return style_loss(features, targets.grams[layer]) if guided is None else guided_style_loss(features, guided)


def _on_cpu(mask: Tensor | None) -> Tensor | None:
    return None if mask is None else mask.cpu()


class _Weights(NamedTuple):
    """The factors of the content, style and total-variation terms in the objective that a stage minimises."""

    content: float
    style: float
    tv: float
    temporal: float = 0.0


def _length(gradient: Tensor) -> float:
    """A gradient's Euclidean length, or 1 for one that vanishes (the term is at its optimum there, as when the
    painting is the photo): its weight then stays as given instead of growing without bound."""
    length = float(torch.linalg.vector_norm(gradient))
    return length if length > _VANISHING else 1.0


def _rms(gradient: Tensor) -> float:
    """Root mean square of a gradient's entries, kept off zero."""
    return max(float(gradient.pow(2).mean().sqrt()), _VANISHING)


class _Evaluation(NamedTuple):
    """The loss terms of one evaluation and the gradient of their weighted total in the picture."""

    content: Tensor
    style: Tensor
    tv: Tensor
    total: Tensor
    gradient: Tensor
    temporal: Tensor | None = None


def _reuses_allocations(plan: StagePlan) -> bool:
    """Whether a stage runs with ``core.memory``'s heap that keeps freed blocks: untiled, or in two tiles.

    With many tiles the kept heap fragments until it outgrows the budget, where glibc's own policy stays within
    it; with two it stays within the budget and still spares each iteration its page faults. bench/highres.py
    measures both (bench/RESULTS.md keeps the figures).
    """
    return plan.tiles is None or len(plan.tiles.tiles) <= MAX_TILES_IN_KEPT_HEAP


def _initial_image(params: StyleParams, content: Tensor, temporal: TemporalTarget | None = None) -> Tensor:
    if temporal is not None:
        # Ruder et al.: a frame starts from its predecessor's result carried along the flow, so that it needs only
        # a few iterations to settle, and settles in the same minimum. Where the flow is not trusted (what the
        # camera brings into view, what a moving thing uncovers) the warp only stretches a neighbouring edge, a
        # smear that a later frame's few iterations do not repaint; there the frame starts from the photo instead.
        trusted = temporal.reliability
        return temporal.previous * trusted + content * (1 - trusted)
    if params.init == "content":
        return content.clone()
    # Noise is drawn on the CPU from a private generator, so the same seed gives the same start anywhere.
    generator = torch.Generator().manual_seed(params.seed)
    return torch.rand(content.shape, generator=generator).to(content.device)


def _luminance_target(temporal: TemporalTarget) -> TemporalTarget:
    """The target of a luminance-only run: the previous result's luminance, as ``colors.luminance_only`` makes it."""
    previous = _to_tensor(colors.luminance_only(_to_image(temporal.previous)), temporal.previous.device)
    return TemporalTarget(previous, temporal.reliability, temporal.weight)


def _normalised(layer_weights: dict[str, float]) -> dict[str, float]:
    """Per-layer weights summing to one, so adding layers does not silently raise the group's weight."""
    total = sum(layer_weights.values())
    return {name: weight / total for name, weight in layer_weights.items()}


def _to_tensor(image: Image.Image, device: torch.device) -> Tensor:
    return pil_to_tensor(image).float().div_(255.0)[None].contiguous().to(device)


def _to_image(image: Tensor) -> Image.Image:
    pixels = image[0].detach().clamp(0, 1).mul(255.0).round().to(torch.uint8).cpu()
    return to_pil_image(pixels)
