"""The optimisation loop: repaint a content picture until its VGG19 features carry the content of the photo
and the Gram statistics of the paintings (Gatys, Ecker & Bethge, CVPR 2016).

Departures from the paper, and why:
- Coarse-to-fine, when asked for: the picture is first optimised at a fraction of the final size, then
  upsampled and refined. Structures settle at the coarse scale, so brush strokes come out larger than
  VGG19's receptive field would make them. It is off by default because it is a look, not a speed-up:
  at equal time, single-scale runs reached lower losses at the final size (512 and 1024 px, README).
- Several styles are blended in Gram space (a weighted mean of their Gram matrices), not by averaging
  losses, so a blend is one coherent texture target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from core import colors
from core.errors import Cancelled
from core.graphs import Replayed
from core.images import fit_longest_side
from core.lbfgs import LBFGS
from core.losses import content_loss, gram_matrix, style_loss, tv_loss
from core.memory import reused_allocations
from core.params import StyleParams
from core.schedule import Stage, check_fits, plan_stages, style_side
from core.vgg import FeatureNet

LBFGS_HISTORY = 50


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

    @property
    def losses(self) -> dict[str, float]:
        """The four loss figures by name, as job records and results report them."""
        return {"content": self.content_loss, "style": self.style_loss, "tv": self.tv_loss, "total": self.total_loss}


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
    on_progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
    on_snapshot: SnapshotCallback | None = None,
    snapshot_every: int = 0,
) -> Stylized:
    """Repaint ``content`` in the blended style of ``styles``; raises ``Cancelled`` when asked to stop."""
    blend = params.blend_weights(len(styles))
    check_fits(params, ("content", content.size), [(f"style {i}", style.size) for i, style in enumerate(styles, 1)])
    content_source, style_sources = content, list(styles)
    if params.preserve_colors == "luminance":
        content_source = colors.luminance_only(content)
        style_sources = [colors.match_luminance(style, content) for style in styles]
    stages = plan_stages(params)
    run = _Run(
        params,
        net,
        sum(stage.iterations for stage in stages),
        on_progress,
        is_cancelled,
        on_snapshot,
        snapshot_every,
    )
    with reused_allocations():
        image = _optimise_stages(run, stages, content_source, style_sources, blend)
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


def _optimise_stages(
    run: _Run,
    stages: Sequence[Stage],
    content: Image.Image,
    styles: Sequence[Image.Image],
    blend: Sequence[float],
) -> Tensor:
    """Run the schedule coarsest first, each stage starting from the previous one's result upsampled."""
    image: Tensor | None = None
    for stage in stages:
        photo = _to_tensor(fit_longest_side(content, stage.size), run.net.device)
        targets = _Targets.compute(run.net, run.params, photo, styles, blend, stage.size)
        if image is None:
            image = _initial_image(run.params, photo)
        else:
            image = F.interpolate(image, size=photo.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        image = run.optimise(image, targets, stage)
    assert image is not None
    return image


@dataclass
class _Targets:
    """What one stage optimises towards: content features and blended style Grams, computed once."""

    content: dict[str, Tensor]
    grams: dict[str, Tensor]

    @classmethod
    def compute(
        cls,
        net: FeatureNet,
        params: StyleParams,
        content: Tensor,
        styles: Sequence[Image.Image],
        blend: Sequence[float],
        size: int,
    ) -> _Targets:
        with torch.no_grad():
            content_features = net(content, params.content_layers, params.pooling)
            grams: dict[str, Tensor] = {}
            for style, weight in zip(styles, blend, strict=True):
                pixels = _to_tensor(fit_longest_side(style, style_side(params, size)), net.device)
                if params.preserve_colors == "histogram":
                    pixels = colors.match_color_statistics(pixels[0].cpu(), content[0].cpu())[None].to(net.device)
                for name, features in net(pixels, params.style_layers, params.pooling).items():
                    grams[name] = grams.get(name, 0) + weight * gram_matrix(features)
        return cls({name: features.detach() for name, features in content_features.items()}, grams)


class _Run:
    """State shared by all stages of one call: counters, clocks and the caller's callbacks."""

    def __init__(
        self,
        params: StyleParams,
        net: FeatureNet,
        total: int,
        on_progress: ProgressCallback | None,
        is_cancelled: CancelCheck | None,
        on_snapshot: SnapshotCallback | None,
        snapshot_every: int,
    ) -> None:
        self.params, self.net, self.total = params, net, total
        self.on_progress, self.is_cancelled = on_progress, is_cancelled
        self.on_snapshot, self.snapshot_every = on_snapshot, snapshot_every
        self.iteration = 0
        self.started = time.perf_counter()
        self.last_losses: dict[str, float] = {}
        self.layers = set(params.content_layers) | set(params.style_layers)
        self.content_weights = _normalised(params.content_layers)
        self.style_weights = _normalised(params.style_layers)

    def optimise(self, image: Tensor, targets: _Targets, stage: Stage) -> Tensor:
        """Run one stage's iterations with the chosen optimiser and return the detached result."""
        image = image.detach().clone().requires_grad_(True)
        # The optimisers update ``image`` in place, so a replayed objective always sees the current picture.
        objective = Replayed(lambda: self._objective(image, targets), image.device)
        if self.params.optimizer == "lbfgs":
            # Fixed unit steps and no tolerances: the caller asked for a number of iterations, and progress
            # totals must hold.
            lbfgs = LBFGS(image, history=LBFGS_HISTORY)
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

    def _iterate(self, image: Tensor, objective: Replayed[_Evaluation]) -> Tensor:
        """One forward and backward pass: the unit of work that progress counts and cancellation interrupts."""
        if self.is_cancelled is not None and self.is_cancelled():
            raise Cancelled(f"stopped by request after {self.iteration} of {self.total} iterations")
        evaluation = objective()
        self.iteration += 1
        self._report(image, evaluation)
        return evaluation.gradient

    def _objective(self, image: Tensor, targets: _Targets) -> _Evaluation:
        """The weighted losses and their gradient in the picture: the GPU work a CUDA graph can replay."""
        image.grad = None
        features = self.net(image, self.layers, self.params.pooling)
        content = sum(
            (w * content_loss(features[n], targets.content[n]) for n, w in self.content_weights.items()),
            torch.zeros((), device=image.device),
        )
        style = sum(
            (w * style_loss(features[n], targets.grams[n]) for n, w in self.style_weights.items()),
            torch.zeros((), device=image.device),
        )
        tv = tv_loss(image)
        total = self.params.content_weight * content + self.params.style_weight * style + self.params.tv_weight * tv
        total.backward()
        assert image.grad is not None
        return _Evaluation(content, style, tv, total, image.grad)

    def _report(self, image: Tensor, evaluation: _Evaluation) -> None:
        # One device-to-host copy for all four numbers instead of four synchronising .item() calls.
        losses = torch.stack([evaluation.content, evaluation.style, evaluation.tv, evaluation.total])
        c, s, t, total = losses.detach().cpu().tolist()
        elapsed = time.perf_counter() - self.started
        progress = Progress(self.iteration, self.total, c, s, t, total, elapsed, max(image.shape[-2:]))
        self.last_losses = progress.losses
        if self.on_progress is not None:
            self.on_progress(progress)
        if self.on_snapshot is not None and self.snapshot_every and self.iteration % self.snapshot_every == 0:
            self.on_snapshot(self.iteration, _to_image(image.detach().clamp(0, 1)))


class _Evaluation(NamedTuple):
    """The loss terms of one evaluation and the gradient of their weighted total in the picture."""

    content: Tensor
    style: Tensor
    tv: Tensor
    total: Tensor
    gradient: Tensor


def _initial_image(params: StyleParams, content: Tensor) -> Tensor:
    if params.init == "content":
        return content.clone()
    # Noise is drawn on the CPU from a private generator, so the same seed gives the same start anywhere.
    generator = torch.Generator().manual_seed(params.seed)
    return torch.rand(content.shape, generator=generator).to(content.device)


def _normalised(layer_weights: dict[str, float]) -> dict[str, float]:
    """Per-layer weights summing to one, so adding layers does not silently raise the group's weight."""
    total = sum(layer_weights.values())
    return {name: weight / total for name, weight in layer_weights.items()}


def _to_tensor(image: Image.Image, device: torch.device) -> Tensor:
    return pil_to_tensor(image).float().div_(255.0)[None].contiguous().to(device)


def _to_image(image: Tensor) -> Image.Image:
    pixels = image[0].detach().clamp(0, 1).mul(255.0).round().to(torch.uint8).cpu()
    return to_pil_image(pixels)
