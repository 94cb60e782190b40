"""Test-only code that runs in Dask workers: a plugin that kills its worker process while
it runs a partition, and a probe of how a worker's allocator treats freed memory.

It lives in its own small module so that worker processes can import it by name
(`tests/` is on their sys.path, inherited from the test process).
"""

from __future__ import annotations

import os
import resource
import signal
import threading
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin


def chunk_faults() -> int:
    """Page faults of ten chunks' temporaries (six of 8 MiB alive at once, then freed),
    after a first chunk: near 0 when freed memory is kept for the next chunk."""

    def chunk() -> None:
        held = [np.ones(8 << 20, dtype=np.uint8) for _ in range(6)]
        del held

    chunk()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        chunk()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


class KillWorker(WorkerPlugin):
    """SIGKILL the worker `delay` seconds after it starts a task whose key contains
    `job` and ends with `suffix`: once (the first worker to claim `marker`), or every
    time when `marker` is None."""

    def __init__(self, job: str, suffix: str, delay: float, marker: str | None) -> None:
        self.job, self.suffix, self.delay, self.marker = job, suffix, delay, marker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        name = str(key)
        if finish != "executing" or self.job not in name or not name.endswith(self.suffix):
            return
        if self.marker is not None:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # killed once already
        timer = threading.Timer(self.delay, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
