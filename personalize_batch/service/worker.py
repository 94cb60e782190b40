"""The background process of an asynchronous job: `python -m personalize_batch.service.worker NAME`
runs the job recorded PENDING under NAME (started by `control.spawn_worker`)."""

from __future__ import annotations

import os
import sys

from ..errors import Interrupted, PbatchError
from ..job import params
from ..job.process import tune
from ..job.run import execute_job
from ..job.store import PENDING, JobStore


def main(argv: list[str]) -> int:
    """Run one recorded job; the record tells the outcome (the exit code is for the log)."""
    if len(argv) != 1:
        print("usage: python -m personalize_batch.service.worker JOB_NAME", file=sys.stderr)
        return 2
    name = argv[0]
    tune()
    try:
        store = JobStore()
        store.set_owner(name, os.getpid())
        record = store.get(name)
        if record["status"] != PENDING:
            print(f"pbatch worker: job {name} is {record['status']}, not PENDING", file=sys.stderr)
            return 1
        execute_job(name, params.from_record(record), store)
    except (PbatchError, Interrupted) as exc:  # the record already tells; no traceback
        print(f"pbatch worker: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
