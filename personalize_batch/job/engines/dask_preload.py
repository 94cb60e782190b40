"""Run in each worker of the LocalCluster that `pbatch run --engine dask` starts (Dask's
`distributed.worker.preload`): those workers run this job and nothing else, so they are
tuned as the local engine's process is (`job.process.tune`: freed memory kept for the next
chunk, fewer garbage collections). Workers of a scheduler the user gives are left as
they are: they are the user's servers."""

from __future__ import annotations

from typing import Any

from ..process import tune


def dask_setup(worker: Any = None) -> None:
    """Dask calls this in the worker process before it takes tasks."""
    tune()
