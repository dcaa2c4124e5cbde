"""One iteration's GPU work recorded once as a CUDA graph and replayed, instead of launched kernel by kernel.

An iteration is a few hundred small kernels. Launching one from Python costs the CPU more time than the GPU needs
to run it, so at all but the largest sizes the GPU would spend most of an iteration waiting for the next launch;
a replay launches the whole iteration at once (bench/RESULTS.md keeps the figures). The work must be shape-stable
and free of host synchronisation, which one stage's forward and backward pass are; anything that reads a value on
the host (progress, the optimiser's curvature check) stays outside.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Generic, TypeVar

import torch

T = TypeVar("T")

# Calls run eagerly on the capture stream before capture, as PyTorch's CUDA graph guide asks, so that lazily
# created state (cuBLAS and cuDNN handles, autograd's streams) exists before recording starts.
WARMUP_CALLS = 2


@cache
def _side_stream(device: torch.device) -> torch.cuda.Stream:
    """One warm-up and capture stream per device for the whole process.

    Libraries keep a workspace for every stream they have run on: with a fresh stream per run, each job would
    leave one more workspace allocated, and a long-lived worker would grow job by job. The price is one GPU run
    at a time per process: a capture records everything sent to its stream, so two threads capturing on it at
    once would mix their graphs. The worker runs one job per process.
    """
    return torch.cuda.Stream(device)


class Replayed(Generic[T]):
    """Calls ``work`` directly on a CPU; on CUDA, records it on the call after the warm-up and replays it.

    After capture every call returns the same output tensors, overwritten in place by the replay, and
    ``work`` sees its inputs only through tensors that the caller updates in place.
    """

    def __init__(self, work: Callable[[], T], device: torch.device) -> None:
        self._work, self._device = work, device
        self._warmups = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._outputs: T | None = None

    def __call__(self) -> T:
        if self._device.type != "cuda":
            return self._work()
        if self._graph is None and self._warmups < WARMUP_CALLS:
            self._warmups += 1
            return self._on_side_stream()
        if self._graph is None:
            self._graph = torch.cuda.CUDAGraph()
            # thread_local: a worker's other threads may free CUDA memory while this one records.
            with torch.cuda.graph(self._graph, stream=_side_stream(self._device), capture_error_mode="thread_local"):
                self._outputs = self._work()
        self._graph.replay()
        assert self._outputs is not None
        return self._outputs

    def _on_side_stream(self) -> T:
        main, side = torch.cuda.current_stream(self._device), _side_stream(self._device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            outputs = self._work()
        main.wait_stream(side)
        return outputs
