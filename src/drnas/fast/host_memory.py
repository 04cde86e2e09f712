"""Keep freed host memory in the process (glibc), so that CPU steps do not page-fault their activations back in.

By default glibc hands large freed blocks back to the kernel (``mmap`` for blocks over its adaptive threshold,
heap trimming above another), so the next step's activations are fresh pages: each 4 KB page costs a fault and
the kernel zeroes it. A compiled NB201 CPU step took tens of thousands of such faults; with both thresholds
raised they almost vanish and the steps run faster (docs/performance.md). Peak RSS is unchanged: the memory
kept is what the previous step already used.
"""
from __future__ import annotations

import ctypes
import platform
import sys

#: blocks up to this size come from the heap, not from fresh ``mmap`` regions (glibc's upper bound for it on
#: 64-bit systems is 32 MB; larger requests are rare outside DARTS' widest activations)
MMAP_THRESHOLD = 32 << 20
#: free memory at the top of the heap is returned to the kernel only above this
TRIM_THRESHOLD = 1 << 30

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_kept = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); whether they are in effect.

    Process-wide and not undone: it changes when memory returns to the OS, never what a step computes. A no-op
    (False) off Linux/glibc, e.g. on macOS or musl.
    """
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1  # mallopt returns 1 on success
    trim_set = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _kept = mmap_set and trim_set
    return _kept
