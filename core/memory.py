"""Keep the CPU allocator from handing activation buffers back to the kernel between iterations.

Every iteration allocates and frees the same few dozen activation and gradient buffers, the largest tens of
megabytes each at ordinary sizes. glibc serves blocks that big with a fresh ``mmap`` and unmaps them on ``free``,
so each one is page-faulted in again, page by page, on every iteration. While a run lasts, glibc is told to serve
every block from its heap and keep what is freed, which spares an iteration nearly all of those page faults and
the time the kernel spends on them (bench/RESULTS.md keeps the figures). When the last run in the process ends,
glibc's defaults come back and ``malloc_trim`` returns the heap's free pages, so a long-lived worker does not sit
on its peak between jobs. The price is fragmentation: a heap that never unmaps holds more at its peak, the more
the larger the picture, and far more once a picture runs in many tiles, so the engine uses it only for untiled
stages and stages of two tiles (``core.engine._reuses_allocations``). Other C libraries (musl, macOS) are left
alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM_THRESHOLD = 128 * 1024


@cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


# Runs in threads of one process (a thread-pool worker) share the allocator: the first sets the policy, the
# last one out restores it.
_lock = threading.Lock()
_active = 0


@contextmanager
def reused_allocations() -> Iterator[None]:
    """Serve allocations from a heap that keeps freed memory for the duration of the block."""
    global _active
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        if _active == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
