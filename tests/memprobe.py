"""A probe of how a process's allocator treats freed memory, for `pbatch run`'s process
(test_batchproc, in a fresh interpreter) and for Dask workers (test_dask_engine, which
import it by name: `tests/` is on their sys.path, inherited from the test process)."""

from __future__ import annotations

import resource

import numpy as np


def chunk_faults() -> int:
    """Page faults of ten chunks' temporaries (six of 8 MiB alive at once, then freed),
    after a first chunk, which always faults: near 0 when freed memory is kept for the
    next chunk."""

    def chunk() -> None:
        held = [np.ones(8 << 20, dtype=np.uint8) for _ in range(6)]
        del held

    chunk()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        chunk()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
