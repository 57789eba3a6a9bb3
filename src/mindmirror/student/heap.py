"""Give freed training memory back to the system as soon as it is freed (glibc only).

A training step allocates and frees gigabytes of activations whose shapes change from batch to
batch. glibc's malloc raises its mmap threshold to the largest block freed so far (up to
32 MB), so after the first steps those blocks come from the heap, and a heap fragmented by
blocks of ever-different sizes is rarely handed back: on the SVAMP protocol's self-evaluation
stage (8 rows of up to 640 tokens, 1 thread) the resident memory after a step was 7.1 GB
where the step itself needs 1.4 GB between steps and 5.4 GB at its peak, and it grew over a
stage. Fixing the threshold maps every block from ``MMAP_THRESHOLD`` bytes on by itself and
unmaps it when freed, so resident memory follows what the step really holds. The price is a
page fault per fresh page of those blocks (``bench/train_memory.py`` measures it).

Other C libraries (musl, macOS, Windows) are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks from this size on are mapped and unmapped one by one (glibc's initial threshold).
MMAP_THRESHOLD = 128 * 1024


@functools.cache
def release_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once); whether it applied (False
    on a C library without ``mallopt``)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success. Setting either threshold also stops glibc's dynamic raise.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
    )
