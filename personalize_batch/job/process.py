"""How a batch job's process manages memory: `tune()`, called by `pbatch run` and the job
worker (not by the library: a server would keep memory and pause differently).

Freed memory (glibc's malloc only). Scoring a chunk allocates temporaries of a few MiB
and frees them before the next chunk. By default glibc serves blocks that large with
fresh mappings (mmap) and trims the top of its heap on free, so each chunk gets its
memory from the kernel again and pays a page fault per 4 KiB: measured on
user-personalization, a sixth of a job's time was system time. Raising the two
thresholds lets the next chunk reuse the same pages. The peak RSS is unchanged (the same
memory is reused, none is added), but memory freed at the peak stays with the process
until it exits, which suits a batch job.

Garbage collection. A chunk holds a few objects per line (parsed lines, answers) until
its output is written, so CPython's collector, run every 700 new containers, scanned the
same live objects again and again: a fifth of popularity-count's time. The objects from
start-up (modules, the solution) are frozen out of collections, and the young
generation is collected every GC_THRESHOLD new containers instead: the lines' objects
are freed by reference counting long before; cycles are still collected.
"""

from __future__ import annotations

import ctypes
import gc
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest; blocks above it are still mapped afresh
TRIM_THRESHOLD = 256 << 20
GC_THRESHOLD = 50_000  # new containers between collections of the young generation


def tune() -> None:
    """Tune this process (and the workers it forks) for a batch job."""
    keep_freed_memory()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 50, 100)


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process and the workers it forks;
    False (and nothing changed) where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
