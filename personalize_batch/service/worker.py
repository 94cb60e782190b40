"""The background process of an asynchronous job: `python -m personalize_batch.service.worker NAME`
runs the job recorded PENDING under NAME (started by `service.spawn_worker`)."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..errors import Interrupted, PbatchError
from ..job.batch import JobParams, execute_job
from ..job.process import tune
from ..job.store import PENDING, JobStore
from .control import exploration_from_config


def params_from_record(record: dict[str, Any]) -> JobParams:
    """The JobParams a recorded job was created with."""
    arn = record["solutionVersionArn"]
    _, sep, sha = arn.rpartition("@sha256:")
    return JobParams(
        solution=record["solutionPath"],
        input=record["jobInput"]["s3DataSource"]["path"],
        output=record["jobOutput"]["s3DataDestination"]["path"],
        job_name=record["jobName"],
        num_results=record["numResults"],
        include_seen=record.get("includeSeen", False),
        config=record.get("batchInferenceJobConfig") or {},
        filter_expression=record.get("filterExpression"),
        exploration=exploration_from_config(record.get("batchInferenceJobConfig") or {}),
        solution_sha256=sha if sep else None,
        item_metadata=tuple(record.get("itemMetadata", ())),
    )


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
        execute_job(name, params_from_record(record), store)
    except (PbatchError, Interrupted) as exc:  # the record already tells; no traceback
        print(f"pbatch worker: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
