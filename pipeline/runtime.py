"""Process-wide settings that make CPU inference faster: the C allocator keeps freed memory.

glibc's ``malloc`` gives every freed block above its mmap threshold (a few MiB to 32 MiB, adapted at
run time) back to the kernel.  A dense event's tensors are tens of MiB each, so every event maps
them anew and pays a page fault, and the zeroing of a page, on the first touch of every 4 KiB
(expensive in a virtual machine).  Raising the mmap and trim thresholds keeps freed memory in the
heap, where the next event reuses it.  The resident memory then stays at its high-water mark
instead of falling between events; the peak is unchanged.

``trkx`` sets this once per process (the command line, the benchmark children), so a GNN chain and
the ACTS CKF timed in one ``trkx baseline ckf`` process run under the same allocator.  Set
``TRKX_ALLOCATOR=system`` to leave glibc's defaults.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1    # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30     # blocks up to 1 GiB come from the heap; up to 1 GiB of free heap is kept


def keep_freed_memory(threshold: int = KEEP_BYTES) -> bool:
    """Raise glibc's mmap and trim thresholds to ``threshold`` bytes; True where that took effect
    (False without glibc, or with ``TRKX_ALLOCATOR=system``)."""
    if os.environ.get("TRKX_ALLOCATOR", "").lower() == "system":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):      # not glibc (macOS, musl without mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1 and mallopt(M_TRIM_THRESHOLD, threshold) == 1
