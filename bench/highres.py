"""Print-size benchmark (prints figures; not a test): peak RSS and seconds per iteration at 1024, 2048 and 4096 px
under a memory budget, beside the untiled run where it fits this machine, and what a shorter L-BFGS history
costs in loss. Every configuration runs in its own process, so each peak RSS is that run's alone. Usage:

    .venv/bin/python bench/highres.py CONTENT STYLE [--budget 8GiB] [--sizes 1024 2048 4096] [--iterations 3]
    .venv/bin/python bench/highres.py CONTENT STYLE --history [--size 512] [--iterations 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from core import budget
from core.engine import stylize
from core.errors import MemoryBudgetTooSmall
from core.images import decode_image, scaled_size
from core.networks import VGG19
from core.params import StyleParams
from core.units import format_bytes, parse_bytes
from core.vgg import load_vgg

TARGET_RSS = "8GiB"
TARGET_SLOWDOWN_2048 = 1.6
# An untiled run is tried only where the model says it fits in this share of the machine.
UNTILED_SHARE = budget.DEFAULT_CPU_SHARE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("content", type=Path)
    parser.add_argument("style", type=Path)
    parser.add_argument("--budget", default=TARGET_RSS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--history", action="store_true", help="measure the loss cost of shorter L-BFGS histories")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--run", nargs=3, metavar=("SIZE", "BUDGET", "HISTORY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        size, memory, history = int(args.run[0]), parse_bytes(args.run[1]), int(args.run[2])
        print(json.dumps(run_once(args.content, args.style, size, memory, history, args.iterations)))
        return
    machine = budget.default_budget(torch.device("cpu")) / UNTILED_SHARE
    print(f"machine: {torch.get_num_threads()} threads, {format_bytes(machine)}")
    if args.history:
        history_cost(args, [budget.FULL_HISTORY, 20, 10, budget.MIN_HISTORY])
    else:
        sizes_under_budget(args)


def sizes_under_budget(args: argparse.Namespace) -> None:
    limit = parse_bytes(args.budget)
    machine = budget.default_budget(torch.device("cpu"))
    print(f"budget {format_bytes(limit)}; {args.iterations} iterations a run, the first one left out of the time")
    for size in args.sizes:
        tiled = spawn(args, size, args.budget, budget.FULL_HISTORY)
        line = f"   {size} px: {describe(tiled)}"
        if tiled["tiles"] == 1:
            line += "\n      untiled: the same run (the budget holds it whole)"
        elif _untiled_fits(args, size, machine):
            whole = spawn(args, size, f"{machine}", budget.FULL_HISTORY)
            slowdown = tiled["seconds_per_iteration"] / whole["seconds_per_iteration"]
            line += f"\n      untiled: {describe(whole)}; tiled/untiled time {slowdown:.2f}x"
            if size == 2048:
                verdict = "PASS" if slowdown <= TARGET_SLOWDOWN_2048 else "MISS"
                line += f" (target <= {TARGET_SLOWDOWN_2048}x: {verdict})"
        else:
            line += "\n      untiled: does not fit this machine"
        verdict = "PASS" if tiled["peak_rss"] <= parse_bytes(TARGET_RSS) else "MISS"
        line += f"\n      peak RSS {format_bytes(tiled['peak_rss'])} (target <= {TARGET_RSS}: {verdict})"
        print(line, flush=True)


def _untiled_fits(args: argparse.Namespace, size: int, machine: int) -> bool:
    with Image.open(args.content) as picture:
        shape = scaled_size(picture.size, size)
    try:
        available = machine - budget.in_use(torch.device("cpu"))
        plan = budget.plan_stage(VGG19, shape, [shape], *_layers(), "lbfgs", available)
    except MemoryBudgetTooSmall:
        return False
    return plan.tiles is None and plan.history == budget.FULL_HISTORY


def history_cost(args: argparse.Namespace, histories: list[int]) -> None:
    print(f"loss after {args.iterations} iterations at {args.size} px, untiled, by L-BFGS history")
    reference: float | None = None
    for history in histories:
        result = spawn(args, args.size, "64GiB", history, iterations=args.iterations)
        reference = reference or result["loss"]
        print(
            f"   {history:>2} pairs: total loss {result['loss']:.4f} ({result['loss'] / reference:.3f}x of "
            f"{histories[0]} pairs), {result['seconds_per_iteration']:.3f} s/iteration",
            flush=True,
        )


def spawn(
    args: argparse.Namespace, size: int, memory: str, history: int, iterations: int | None = None
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        str(args.content),
        str(args.style),
        "--iterations",
        str(iterations or args.iterations),
    ]
    output = subprocess.run(
        [*command, "--run", str(size), memory, str(history)], check=True, stdout=subprocess.PIPE, text=True
    )
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def run_once(
    content_path: Path, style_path: Path, size: int, memory: int, history: int, iterations: int
) -> dict[str, Any]:
    """One run in this process: the history cap is the module's constant, set here for the --history figures."""
    budget.FULL_HISTORY = history
    net = load_vgg("random", "cpu")
    content = decode_image(content_path.read_bytes(), name=str(content_path))
    style = decode_image(style_path.read_bytes(), name=str(style_path))
    params = StyleParams(size=size, iterations=iterations, multiscale=False)
    shape = scaled_size(content.size, size)
    plan = budget.plan_stage(
        net.network, shape, [scaled_size(style.size, size)], *_layers(), "lbfgs", memory - budget.in_use(net.device)
    )
    stamps: list[float] = []
    started = time.perf_counter()
    result = stylize(
        content, [style], params, net=net, memory_budget=memory, on_progress=lambda p: stamps.append(p.elapsed)
    )
    laps = [b - a for a, b in pairwise([0.0, *stamps])]
    return {
        "size": f"{shape[0]}x{shape[1]}",
        "tiles": 1 if plan.tiles is None else len(plan.tiles.tiles),
        "work": 1.0 if plan.tiles is None else plan.tiles.work,
        "history": plan.history,
        "seconds_per_iteration": statistics.median(laps[1:] or laps),
        "first_iteration": laps[0],
        "seconds": time.perf_counter() - started,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "loss": result.losses["total"],
    }


def describe(result: dict[str, Any]) -> str:
    tiles = "whole" if result["tiles"] == 1 else f"{result['tiles']} tiles, network work {result['work']:.2f}x"
    return (
        f"{result['size']}, {tiles}, {result['history']} pairs: {result['seconds_per_iteration']:.1f} s/iteration "
        f"(first {result['first_iteration']:.1f} s incl. targets), peak RSS {format_bytes(result['peak_rss'])}, "
        f"run {result['seconds']:.0f} s"
    )


def _layers() -> tuple[dict[str, float], dict[str, float]]:
    params = StyleParams()
    return params.content_layers, params.style_layers


if __name__ == "__main__":
    main()
