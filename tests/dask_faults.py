"""Test-only Dask worker plugin that kills its worker process while it runs a partition.

It lives in its own small module so that worker processes can import it by name
(`tests/` is on their sys.path, inherited from the test process).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


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
