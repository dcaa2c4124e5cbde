"""The allocator policy of a run: big buffers from the heap while it lasts, glibc's defaults after it."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.memory import _glibc, reused_allocations

pytestmark = pytest.mark.skipif(_glibc() is None, reason="the policy applies to glibc only")

BUFFER_BYTES = 64 * 2**20


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2``: ten counters, of which ``hblkhd`` is the bytes held in mmap'd blocks."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in [
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        ]
    ]


def mmapped_bytes_for_a_big_buffer() -> int:
    """How many more bytes glibc holds in mmap'd blocks while a 64 MiB tensor is alive."""
    libc = _glibc()
    assert libc is not None
    libc.mallinfo2.restype = _MallInfo2
    before = libc.mallinfo2().hblkhd
    buffer = torch.empty(BUFFER_BYTES // 4)
    during = libc.mallinfo2().hblkhd
    del buffer
    return int(during - before)


def test_big_buffers_come_from_the_heap_during_a_run() -> None:
    with reused_allocations():
        assert mmapped_bytes_for_a_big_buffer() == 0


def test_glibc_maps_big_buffers_again_after_the_run() -> None:
    # In a fresh process: glibc serves a request from a free chunk already in its heap before it considers
    # mmap, so a large run earlier in this process (tests/core/test_budgeted_runs.py) would decide the answer.
    check = (
        "from core.memory import reused_allocations\n"
        "from tests.core.test_memory import mmapped_bytes_for_a_big_buffer\n"
        "with reused_allocations():\n"
        "    pass\n"
        "print(mmapped_bytes_for_a_big_buffer())\n"
    )
    root = Path(__file__).parents[2]
    output = subprocess.run([sys.executable, "-c", check], cwd=root, check=True, capture_output=True, text=True)
    assert int(output.stdout) >= BUFFER_BYTES


def test_a_run_that_ends_inside_another_leaves_the_policy_in_place() -> None:
    with reused_allocations():
        with reused_allocations():
            pass
        assert mmapped_bytes_for_a_big_buffer() == 0
