"""Engine benchmark (prints figures; not a test): speed against the FLOP-bound floor, time to quality against
textbook single-scale L-BFGS, and peak memory. Usage:

    .venv/bin/python bench/engine.py CONTENT STYLE [--out bench/results] [--weights auto]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.models import vgg16, vgg19
from torchvision.transforms.functional import pil_to_tensor

from core.budget import FULL_HISTORY
from core.engine import Progress, objective_weights, stylize
from core.images import decode_image, fit_longest_side
from core.losses import relative_error, tv_loss
from core.networks import POOL, Network
from core.params import StyleParams
from core.schedule import plan_stages
from core.vgg import FeatureNet, load_vgg

TARGET_FLOOR_RATIO = 1.15
TARGET_SPEEDUP = 3.0
CPU_TTQ_BUDGET_S = 30 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("content", type=Path)
    parser.add_argument("style", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--weights", default="auto")
    parser.add_argument("--baseline-iterations", type=int, default=500)
    parser.add_argument("--memory-only", type=int, metavar="SIZE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    net = load_vgg(args.weights)
    content = decode_image(args.content.read_bytes(), name=str(args.content))
    style = decode_image(args.style.read_bytes(), name=str(args.style))
    if args.memory_only:
        print(json.dumps(measure_peak_memory(net, content, style, args.memory_only)))
        return

    device = net.device
    print(f"machine: {machine_description(device)}; weights: {net.weights_name}; torch {torch.__version__}")

    print("\n1. seconds per iteration beside the FLOP-bound floor")
    per_iteration: dict[int, float] = {}
    # A GPU iteration at 256 px is mostly launch overhead; 1024 px shows how close it gets once it has work.
    for size in (256, 512, 1024) if device.type == "cuda" else (256, 512):
        # The GEMM rate of a shared machine drifts by tens of percent within minutes, so it is measured right
        # before and right after the iterations it is compared with, and the floor uses the mean of the two.
        before = matmul_rate(device)
        seconds = seconds_per_iteration(net, content, style, size)
        after = matmul_rate(device)
        floor = iteration_flops(net.network, StyleParams(size=size), fit_longest_side(content, size).size) / (
            (before + after) / 2
        )
        per_iteration[size] = seconds
        verdict = "PASS" if seconds / floor <= TARGET_FLOOR_RATIO else "MISS"
        target = f"target <= {TARGET_FLOOR_RATIO}x: {verdict}" if device.type == "cpu" else "the target is for CPUs"
        print(
            f"   {size} px: {seconds:.4f} s/iteration; fp32 GEMM {before / 1e9:.0f} GFLOP/s before, "
            f"{after / 1e9:.0f} after; floor {floor:.4f} s, ratio {seconds / floor:.2f}x ({target})"
        )

    size = 512
    estimate = 1.6 * args.baseline_iterations * per_iteration[512]
    if device.type == "cpu" and estimate > CPU_TTQ_BUDGET_S:
        size = 384
    print(f"\n2. time to quality at {size} px (estimated {estimate / 60:.0f} min at 512 px on this machine)")
    time_to_quality(net, content, style, size, args.baseline_iterations, args.out)

    print("\n3. peak memory")
    for size in (512, 1024):
        peak = subprocess.run(
            [
                sys.executable,
                __file__,
                str(args.content),
                str(args.style),
                "--weights",
                args.weights,
                "--memory-only",
                str(size),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(peak.stdout.strip().splitlines()[-1])
        print(
            f"   {size} px: {figures['peak_mib']:.0f} MiB {figures['kind']} (of which the model "
            f"{figures['model_mib']:.0f} MiB) over {figures['iterations']} iterations"
        )


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def matmul_rate(device: torch.device) -> float:
    """Best sustained fp32 matrix-multiply FLOP/s: the ceiling a conv net can approach on this machine.

    Two GEMM kernels are timed and the faster one counts: torch.mm (MKL/cuBLAS) and a 1x1 convolution, which
    is the same matrix product run by oneDNN/cuDNN. On AMD CPUs oneDNN's GEMM is much faster than MKL's, and
    a floor from the slower kernel would flatter the engine.
    """
    n = 4096 if device.type == "cuda" else 2048  # a GPU needs the larger product to outlast the timer's overhead
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    image = torch.randn(1, n, 32, 64, device=device).contiguous(memory_format=torch.channels_last)
    kernel = torch.randn(n, n, 1, 1, device=device).contiguous(memory_format=torch.channels_last)
    return max(
        2 * n**3 / best_seconds(lambda: a @ b, device),
        2 * n * n * 32 * 64 / best_seconds(lambda: torch.nn.functional.conv2d(image, kernel), device),
    )


def best_seconds(work: Callable[[], object], device: torch.device) -> float:
    work()
    best = float("inf")
    for _ in range(5):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(4):
            work()
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return best


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def iteration_flops(network: Network, params: StyleParams, size: tuple[int, int]) -> float:
    """Multiply-adds x2 of one iteration: the truncated net forward, its input gradient, and the Gram matrices.

    Only the input needs a gradient (the weights are frozen), so the backward pass costs one more pass of
    each convolution, not two.
    """
    layers = set(params.content_layers) | set(params.style_layers)
    names = network.layer_names
    deepest = network.index(network.deepest(layers))
    width, height = size
    flops, channels, position = 0.0, 3, 0
    for item in network.config:
        if position > deepest:
            break
        if item == POOL:
            width, height, position = width // 2, height // 2, position + 1
            continue
        relu = names[position + 1]
        flops += 2 * 2 * channels * int(item) * 9 * width * height
        if relu in params.style_layers:
            flops += 2 * 2 * int(item) ** 2 * width * height  # Gram forward, and its gradient
        channels, position = int(item), position + 2
    return flops


def seconds_per_iteration(net: FeatureNet, content: Image.Image, style: Image.Image, size: int) -> float:
    """Median of the engine's last ten iterations at one scale, once L-BFGS's history is full.

    L-BFGS's own work grows with the pairs it holds. Timed over their first 30 iterations on a GPU,
    torch.optim.LBFGS and ``core.lbfgs`` looked equally fast, while whole runs took 1.5x as long with the first.
    """
    stamps: list[float] = []
    params = StyleParams(size=size, iterations=FULL_HISTORY + 11, multiscale=False)
    stylize(content, [style], params, net=net, on_progress=lambda p: stamps.append(p.elapsed))
    steps = sorted(b - a for a, b in pairwise(stamps[-11:]))
    return steps[len(steps) // 2]


def time_to_quality(
    net: FeatureNet, content: Image.Image, style: Image.Image, size: int, iterations: int, out: Path
) -> None:
    """Compare the default schedule with textbook L-BFGS on the same objective at the final size."""
    params = StyleParams(size=size)
    baseline = textbook_lbfgs(net, content, style, params, iterations)
    baseline_seconds = baseline.curve[-1][0]
    target = baseline.loss
    print(f"   baseline (single-scale L-BFGS, {iterations} iterations): loss {target:.4f} in {baseline_seconds:.1f} s")

    reached: list[float] = []

    def watch(progress: Progress) -> None:
        loss = params.content_weight * progress.content_loss + params.style_weight * progress.style_loss
        if progress.size == size and loss <= target and not reached:
            reached.append(progress.elapsed)

    # Twice the default budget, so that a schedule that gets there late still shows when it does.
    schedule = params.model_copy(update={"iterations": 2 * params.iterations})
    stages = " + ".join(f"{s.iterations} at {s.size} px" for s in plan_stages(schedule))
    result = stylize(content, [style], schedule, net=net, on_progress=watch)
    final = params.content_weight * result.losses["content"] + params.style_weight * result.losses["style"]
    if reached:
        verdict = "PASS" if baseline_seconds / reached[0] >= TARGET_SPEEDUP else "MISS"
        print(
            f"   default schedule ({stages}): reached {target:.4f} after {reached[0]:.1f} s, "
            f"{baseline_seconds / reached[0]:.1f}x faster (target >= {TARGET_SPEEDUP}x: {verdict})"
        )
    else:
        print(
            f"   default schedule ({stages}): never reached {target:.4f}; ended at {final:.4f} "
            f"after {result.seconds:.1f} s (MISS)"
        )
    at_same_time = next((loss for seconds, loss in baseline.curve if seconds >= result.seconds), target)
    print(f"   at the default's finishing time ({result.seconds:.1f} s) the baseline stood at {at_same_time:.4f}")
    caught_up = next((seconds for seconds, loss in baseline.curve if loss <= final), None)
    if caught_up is not None:
        print(
            f"   the baseline reached the default's final {final:.4f} after {caught_up:.1f} s, "
            f"{caught_up / result.seconds:.1f}x the default's time"
        )
    out.mkdir(parents=True, exist_ok=True)
    side_by_side = Image.new("RGB", (baseline.image.width * 2, baseline.image.height), "white")
    side_by_side.paste(baseline.image, (0, 0))
    side_by_side.paste(result.image.resize(baseline.image.size), (baseline.image.width, 0))
    path = out / f"time_to_quality_{size}.jpg"
    side_by_side.save(path, quality=90)
    print(f"   saved baseline (left) and default (right) to {path}")


@dataclass(frozen=True)
class Baseline:
    """The textbook run's picture, its loss after the last step, and (seconds, loss) at every evaluation."""

    image: Image.Image
    loss: float
    curve: list[tuple[float, float]]


def textbook_lbfgs(
    net: FeatureNet, content: Image.Image, style: Image.Image, params: StyleParams, iterations: int
) -> Baseline:
    """Gatys et al. as the tutorials write it, with the engine's weights and objective but none of its speed-ups:
    torchvision's own ``vgg19().features`` cut at the deepest layer, run layer by layer in the default (NCHW)
    layout, Grams from ``view`` and ``mm``, one scale, start from the photo, plain L-BFGS for N evaluations."""
    layers = set(params.content_layers) | set(params.style_layers)
    stack = textbook_vgg(net, net.network.index(net.network.deepest(layers)))
    weights = objective_weights(content, [style], params, net=net)

    def features(image: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
        found, x = {}, net.normalize(image)
        for name, layer in zip(net.network.layer_names, stack, strict=False):
            x = layer(x)
            if name in wanted:
                found[name] = x
        return found

    def gram(f: torch.Tensor) -> torch.Tensor:
        _, channels, height, width = f.shape
        flat = f.view(channels, height * width)
        return (flat @ flat.t())[None] / (height * width)

    def tensor(image: Image.Image) -> torch.Tensor:
        return pil_to_tensor(image).float().div(255)[None].contiguous().to(net.device)

    start = time.perf_counter()
    curve: list[tuple[float, float]] = []
    photo = tensor(fit_longest_side(content, params.size))
    painting = tensor(fit_longest_side(style, params.size))
    with torch.no_grad():
        content_targets = features(photo, set(params.content_layers))
        grams = {k: gram(v) for k, v in features(painting, set(params.style_layers)).items()}
    image = photo.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [image], max_iter=iterations, max_eval=iterations + 1, tolerance_grad=-1, tolerance_change=-1, history_size=100
    )

    def objective(backward: bool = True) -> torch.Tensor:
        found = features(image, layers)
        content_term = torch.stack([relative_error(found[k], v) for k, v in content_targets.items()]).mean()
        style_term = torch.stack([relative_error(gram(found[k]), g) for k, g in grams.items()]).mean()
        loss = weights.content * content_term + weights.style * style_term
        if backward:
            (loss + weights.tv * tv_loss(image)).backward()
            curve.append((time.perf_counter() - start, loss.item()))
        return loss

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        return objective()

    optimizer.step(closure)
    with torch.no_grad():
        final = float(objective(backward=False))
    pixels = image.detach()[0].clamp(0, 1).mul(255).round().byte().cpu()
    return Baseline(Image.fromarray(pixels.permute(1, 2, 0).numpy()), final, curve)


def textbook_vgg(net: FeatureNet, deepest: int) -> torch.nn.Sequential:
    """torchvision's feature stack of the same network up to layer ``deepest``, holding the same weights as ``net``."""
    stack = (vgg16 if net.network.name == "vgg16" else vgg19)().features[: deepest + 1]
    ours = net.state_dict()
    conv_positions = [i for i in net.network.conv_indices if i <= deepest]
    stack.load_state_dict(
        {
            f"{position}.{kind}": ours[f"convs.{n}.{kind}"]
            for n, position in enumerate(conv_positions)
            for kind in ("weight", "bias")
        }
    )
    for index, layer in enumerate(stack):
        if isinstance(layer, torch.nn.ReLU):
            stack[index] = torch.nn.ReLU(inplace=False)  # the captured features must survive the next layer
    return stack.to(net.device).eval().requires_grad_(False)


def measure_peak_memory(net: FeatureNet, content: Image.Image, style: Image.Image, size: int) -> dict[str, Any]:
    """Run a few default iterations at one scale in this (fresh) process and report its peak."""
    device = net.device
    if device.type == "cuda":
        model = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        model = sum(p.numel() * p.element_size() for p in net.parameters())
    params = StyleParams(size=size, iterations=4, multiscale=False)
    stylize(content, [style], params, net=net)
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device), "max allocated on CUDA"
    else:
        peak, kind = peak_rss(), "peak RSS"
    return {"peak_mib": peak / 2**20, "model_mib": model / 2**20, "kind": kind, "iterations": params.iterations}


def peak_rss() -> int:
    """This process's own high-water mark of resident memory, in bytes.

    Linux's ``ru_maxrss`` is no good here: a child started by ``subprocess`` (vfork, then exec) inherits the
    parent's peak, so after the time-to-quality runs it reported the parent's 2.2 GB for a 1.5 GB child.
    ``VmHWM`` belongs to the process's own address space, which exec starts afresh.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


if __name__ == "__main__":
    main()
