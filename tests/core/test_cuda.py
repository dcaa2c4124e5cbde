"""The engine on a CUDA device: same weights, same answers within TF32 rounding, and no memory left behind.

Skipped where there is no GPU (CI has none); run on a lent GPU machine before an engine change lands.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from PIL import Image

from core.engine import Progress, stylize
from core.graphs import WARMUP_CALLS, Replayed
from core.lbfgs import LBFGS
from core.masks import StyleMask
from core.networks import VGG16, VGG19
from core.vgg import FeatureNet, load_vgg
from tests.core.runs import VGG16_TILED_SIZE, params, tiling_budget

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_the_net_goes_to_the_gpu_when_no_device_is_named() -> None:
    assert load_vgg("random").device.type == "cuda"


def test_gpu_and_cpu_nets_hold_the_same_weights(net: FeatureNet, cuda_net: FeatureNet) -> None:
    pairs = zip(net.state_dict().values(), cuda_net.state_dict().values(), strict=True)
    assert all(torch.equal(cpu, gpu.cpu()) for cpu, gpu in pairs)


def test_loss_falls_on_the_gpu(cuda_net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    seen: list[Progress] = []
    stylize(photo, [painting], params(iterations=15), net=cuda_net, on_progress=seen.append)
    assert seen[-1].total_loss < 0.5 * seen[0].total_loss  # 15 steps at least halve it, as on the CPU (test_engine)


# The same seeded filters of either network on both devices (``net``/``cuda_net``, ``vgg16_net``/``cuda_vgg16_net``).
NETS = {"vgg19": ("net", "cuda_net"), "vgg16": ("vgg16_net", "cuda_vgg16_net")}


@pytest.mark.parametrize("network", NETS)
def test_gpu_and_cpu_start_from_the_same_loss(
    network: str, photo: Image.Image, painting: Image.Image, request: pytest.FixtureRequest
) -> None:
    first: list[Progress] = []
    for name in NETS[network]:
        model: FeatureNet = request.getfixturevalue(name)
        stylize(photo, [painting], params(iterations=1), net=model, on_progress=first.append)
    # TF32 convolutions on the GPU keep 10 bits of mantissa (relative rounding ~1e-3 per product): 1e-2 allows for
    # it across a network's depth, while another picture or other filters part the losses by far more.
    assert first[1].style_loss == pytest.approx(first[0].style_loss, rel=1e-2)


def test_a_masked_run_on_the_gpu_starts_from_the_cpus_loss(
    net: FeatureNet, cuda_net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    left = Image.new("L", photo.size, 0)
    left.paste(255, (0, 0, photo.width // 2, photo.height))
    masks = [StyleMask(photo=left), StyleMask(photo=left, painting=left)]
    first: list[Progress] = []
    # Four iterations: the CUDA graph of the guided Gram matrices is captured at the third and replayed after it.
    for model in (net, cuda_net):
        seen: list[Progress] = []
        stylize(photo, [painting, painting], params(iterations=4), net=model, masks=masks, on_progress=seen.append)
        first.append(seen[0])
    # As for unmasked runs: TF32 rounding, ~1e-3 a product, within 1e-2 across the network.
    assert first[1].style_loss == pytest.approx(first[0].style_loss, rel=1e-2)


def test_gpu_optimises_as_far_as_the_cpu(
    net: FeatureNet, cuda_net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    # TF32 convolutions round differently, so the two paths drift apart pixel by pixel; where they get to
    # is what must agree.
    cpu, gpu = (stylize(photo, [painting], params(), net=model).losses["total"] for model in (net, cuda_net))
    assert gpu == pytest.approx(cpu, rel=0.1)  # where two drifting paths end up: within 10 % of each other


def test_a_replayed_computation_sees_its_inputs_change_in_place() -> None:
    x = torch.ones(8, device="cuda")
    doubled = Replayed(lambda: x * 2, x.device)
    sums = []
    for _ in range(WARMUP_CALLS + 3):
        sums.append(float(doubled().sum()))
        x.add_(1)
    assert sums == [16.0 * (n + 1) for n in range(WARMUP_CALLS + 3)]


def test_an_lbfgs_step_waits_for_the_gpu_at_most_once() -> None:
    x = torch.rand(4096, device="cuda", requires_grad=True)
    curvatures = torch.linspace(0.5, 4.0, 4096, device="cuda")
    optimizer = LBFGS(x, history=5)
    for _ in range(8):
        x.grad = None
        (curvatures * x.pow(2)).sum().backward()
        assert x.grad is not None
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as waits:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                optimizer.step(x.grad)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        assert len(waits) <= 1, [str(w.message) for w in waits]


@pytest.mark.parametrize(
    "overrides",
    [
        {"preserve_colors": "luminance"},
        {"preserve_colors": "histogram"},
        {"init": "noise"},
        {"optimizer": "adam"},
        {"pooling": "avg"},
        {"size": 320, "iterations": 4, "multiscale": True},
    ],
    ids=lambda overrides: ",".join(f"{k}={v}" for k, v in overrides.items()),
)
def test_every_option_runs_on_the_gpu(
    cuda_net: FeatureNet, photo: Image.Image, painting: Image.Image, overrides: dict[str, Any]
) -> None:
    chosen = params(**overrides)
    result = stylize(photo, [painting, painting], chosen, net=cuda_net)
    assert max(result.image.size) == chosen.size and result.iterations == chosen.iterations


def test_a_finished_run_leaves_no_gpu_memory_behind_for_the_next(
    cuda_net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    stylize(photo, [painting], params(), net=cuda_net)  # libraries' per-stream workspaces appear once
    before = torch.cuda.memory_allocated()
    stylize(photo, [painting], params(), net=cuda_net)
    assert torch.cuda.memory_allocated() == before


# The sizes at which the CPU's tests tile each network (tests/core/test_budgeted_runs.py).
TILED = {"vgg19": (192, VGG19), "vgg16": (VGG16_TILED_SIZE, VGG16)}


@pytest.mark.parametrize("network", TILED)
def test_a_tiled_run_on_the_gpu_matches_the_untiled_one(
    network: str, photo: Image.Image, painting: Image.Image, request: pytest.FixtureRequest
) -> None:
    """Tiled stages run eagerly (no CUDA graph); the budget counts this process's CUDA allocations."""
    size, architecture = TILED[network]
    model: FeatureNet = request.getfixturevalue(NETS[network][1])
    run = params(size=size, iterations=3)
    whole = stylize(photo, [painting], run, net=model)
    limit = tiling_budget(photo, painting, size, device="cuda", network=architecture)
    tiled = stylize(photo, [painting], run, net=model, memory_budget=limit)
    # TF32 rounding (~1e-3 relative per product) in place of float32's, amplified as on the CPU (test_budgeted_runs).
    assert tiled.losses["total"] == pytest.approx(whole.losses["total"], rel=1e-3)
