"""Batch jobs as Personalize's control plane has them (B.1): batch inference jobs and
batch segment jobs (A.17), each created (returns at once, the job runs in a detached
background process), described and listed; inference jobs waited for.

This is the one implementation behind the three faces: the SDK client (`sdk.py` beside it), the
aws-CLI-shaped commands (`cli/aws.py`) and the web console (`console/`). The keyword
names are boto3's. Every check happens before a job is recorded, so a refused request
creates no job.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import recipes, storage
from ..arns import INFERENCE, SEGMENT, check_solution_hash, job_arn, parse_solution_ref
from ..errors import NotFound, SolutionError, StorageError, UsageError, WaiterFailed
from ..job import preflight
from ..job import store as jobs_mod
from ..job.params import JobParams, check_params, exploration_from_config, fit_to_recipe
from ..job.run import check_paths, start_job
from ..solution import load

INPUT_KEYS = ("s3DataSource", "S3DataSource")
OUTPUT_KEYS = ("s3DataDestination", "S3DataDestination", "s3DataSource")  # the last: old docs
EXPLORATION_KEYS = {"explorationWeight": (0.0, 1.0), "explorationItemAgeCutOff": (1.0, None)}
WAITER = "BatchInferenceJobActive"


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{what} must be a non-empty string")
    return value


def _location(value: Any, what: str, keys: tuple[str, ...], old_key: str) -> str:
    """The path of `{"s3DataSource": {"path": P}}`, of the older shapes printed in
    Personalize's docs (`{"s3DataSource": P}`, `{"S3InputPath": P}`), or of a plain P."""
    if isinstance(value, str):
        return _text(value, what)
    if not isinstance(value, dict) or len(value) != 1:
        raise UsageError(
            f"{what} must be {{{keys[0]!r}: {{'path': ...}}}} or {{{old_key!r}: ...}}, "
            f"not {value!r}"
        )
    [(key, inner)] = value.items()
    if key in (old_key, old_key[0].lower() + old_key[1:]):
        return _text(inner, f"{what}.{key}")
    if key not in keys:
        raise UsageError(f"{what} has no {key!r} (expected {keys[0]!r} or {old_key!r})")
    if isinstance(inner, str):
        return _text(inner, f"{what}.{key}")
    if not isinstance(inner, dict):
        raise UsageError(f"{what}.{key} must be {{'path': ...}}")
    unknown = set(inner) - {"path", "Path", "kmsKeyArn"}
    if unknown:
        raise UsageError(f"{what}.{key} has unknown keys: {', '.join(sorted(unknown))}")
    return _text(inner.get("path", inner.get("Path")), f"{what}.{key}.path")


FILTER_ARN_PREFIX = "arn:pbatch:local:filter/"


def filter_path(arn: str) -> str:
    """The file a filterArn names."""
    text = _text(arn, "filterArn")
    path = text[len(FILTER_ARN_PREFIX) :] if text.startswith(FILTER_ARN_PREFIX) else text
    if path.startswith("arn:"):
        raise UsageError(f"filterArn {text!r}: expected {FILTER_ARN_PREFIX}PATH or a path")
    return path


def filter_from_arn(arn: str | None) -> tuple[str | None, str]:
    """A filter named by `arn:pbatch:local:filter/PATH` or by PATH: the file holds one
    Personalize filter expression. Returns (expression or None, how errors name it)."""
    if arn is None:
        return None, "--filter"
    path = filter_path(arn)
    try:
        with open(path, encoding="utf-8") as f:
            expression = f.read().strip()
    except OSError as exc:
        raise NotFound(f"filter not found: {path} ({exc.strerror or exc})") from None
    return expression, f"filter {path}"


def _config(config: Any) -> dict[str, Any]:
    """batchInferenceJobConfig: itemExplorationConfig (string values, as in boto3)."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise UsageError("batchInferenceJobConfig must be an object")
    unknown = set(config) - {"itemExplorationConfig"}
    if unknown:
        raise UsageError(
            f"batchInferenceJobConfig: {', '.join(sorted(unknown))} is not supported by pbatch "
            "(only itemExplorationConfig)"
        )
    exploration = config.get("itemExplorationConfig", {})
    if not isinstance(exploration, dict):
        raise UsageError("itemExplorationConfig must be an object of strings")
    for key, value in exploration.items():
        if key not in EXPLORATION_KEYS:
            raise UsageError(
                f"itemExplorationConfig has no {key!r} (known: {', '.join(EXPLORATION_KEYS)})"
            )
        if not isinstance(value, str):
            raise UsageError(f'itemExplorationConfig values are strings, like "0.3": {key}')
        low, high = EXPLORATION_KEYS[key]
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"itemExplorationConfig {key} is not a number: {value!r}") from None
        if not (low <= number and (high is None or number <= high)):
            bound = f"{low}-{high}" if high is not None else f">= {low}"
            raise UsageError(f"itemExplorationConfig {key} must be {bound}, not {value}")
    return config


def _tags(tags: Any) -> list[dict[str, str]]:
    ok = isinstance(tags, list) and all(
        isinstance(t, dict)
        and set(t) <= {"tagKey", "tagValue"}
        and isinstance(t.get("tagKey"), str)
        and isinstance(t.get("tagValue", ""), str)
        for t in tags
    )
    if not ok:
        raise UsageError('tags must be a list of {"tagKey": ..., "tagValue": ...}')
    return tags


def create_batch_inference_job(
    store: jobs_mod.JobStore,
    *,
    jobName: str,
    solutionVersionArn: str,
    jobInput: Any,
    jobOutput: Any,
    numResults: int | None = None,
    filterArn: str | None = None,
    batchInferenceJobConfig: dict[str, Any] | None = None,
    roleArn: str | None = None,
    tags: list[dict[str, str]] | None = None,
    batchInferenceJobMode: str | None = None,
    themeGenerationConfig: dict[str, Any] | None = None,
    spawn: bool = True,
) -> dict[str, str]:
    """CreateBatchInferenceJob: check everything, record the job PENDING, start it in a
    detached process and return `{"batchInferenceJobArn": ...}` at once."""
    if batchInferenceJobMode not in (None, "BATCH_INFERENCE"):
        raise UsageError(f"batchInferenceJobMode {batchInferenceJobMode!r} is not supported")
    if themeGenerationConfig is not None:
        raise UsageError("themeGenerationConfig is not supported (no theme generation)")
    name = _create(
        store,
        INFERENCE,
        jobName=jobName,
        solutionVersionArn=solutionVersionArn,
        jobInput=jobInput,
        jobOutput=jobOutput,
        numResults=numResults,
        filterArn=filterArn,
        config=_config(batchInferenceJobConfig),
        roleArn=roleArn,
        tags=tags,
        spawn=spawn,
    )
    return {"batchInferenceJobArn": job_arn(name)}


def create_batch_segment_job(
    store: jobs_mod.JobStore,
    *,
    jobName: str,
    solutionVersionArn: str,
    jobInput: Any,
    jobOutput: Any,
    numResults: int | None = None,
    filterArn: str | None = None,
    roleArn: str | None = None,
    tags: list[dict[str, str]] | None = None,
    spawn: bool = True,
) -> dict[str, str]:
    """CreateBatchSegmentJob: as create_batch_inference_job, for a USER_SEGMENTATION
    solution (item-affinity, item-attribute-affinity); returns
    `{"batchSegmentJobArn": ...}` at once."""
    name = _create(
        store,
        SEGMENT,
        jobName=jobName,
        solutionVersionArn=solutionVersionArn,
        jobInput=jobInput,
        jobOutput=jobOutput,
        numResults=numResults,
        filterArn=filterArn,
        config={},
        roleArn=roleArn,
        tags=tags,
        spawn=spawn,
    )
    return {"batchSegmentJobArn": job_arn(name, SEGMENT)}


def _create(
    store: jobs_mod.JobStore,
    kind: str,
    *,
    jobName: str,
    solutionVersionArn: str,
    jobInput: Any,
    jobOutput: Any,
    numResults: int | None,
    filterArn: str | None,
    config: dict[str, Any],
    roleArn: str | None,
    tags: list[dict[str, str]] | None,
    spawn: bool,
) -> str:
    """Check a request of either kind, record its job PENDING and start it; its name."""
    name = jobs_mod.check_name(_text(jobName, "jobName"))
    if store.exists(name):  # early, before the slower checks; store.create checks again
        raise jobs_mod.name_in_use(name, store.get(name), api=True)
    input_path = _location(jobInput, "jobInput", INPUT_KEYS, "S3InputPath")
    output_path = _location(jobOutput, "jobOutput", OUTPUT_KEYS, "S3OutputPath")
    for path, what in ((input_path, "jobInput"), (output_path, "jobOutput")):
        if path == "-":
            raise UsageError(f"{what}: a background job has no stdin/stdout; use `pbatch run`")
    if numResults is not None and (isinstance(numResults, bool) or not isinstance(numResults, int)):
        raise UsageError(f"numResults must be an integer, not {numResults!r}")
    filter_text, filter_source = filter_from_arn(filterArn)
    extra: dict[str, Any] = {}
    if filterArn is not None:  # Describe… echoes it, as Personalize's does
        extra["filterArn"] = _text(filterArn, "filterArn")
    if roleArn is not None:
        extra["roleArn"] = _text(roleArn, "roleArn")  # recorded; pbatch assumes no role
    if tags is not None:
        extra["tags"] = _tags(tags)
    path, sha = parse_solution_ref(_text(solutionVersionArn, "solutionVersionArn"))
    if not os.path.exists(path):
        raise NotFound(f"solution version not found: {path}")
    try:
        solution = load(path)
    except SolutionError as exc:
        raise UsageError(str(exc)) from None
    check_solution_hash(path, solution.sha256, sha)
    params = JobParams(
        solution=path,
        input=input_path,
        output=output_path,
        job_name=name,
        num_results=numResults,
        config=config,
        filter_expression=filter_text,
        filter_source=filter_source,
        exploration=exploration_from_config(config),
        solution_sha256=solution.sha256,
        record_extra=extra,
        filter_file=filter_path(filterArn) if filterArn is not None else None,
        api=True,
        kind=kind,
    )
    check_params(params)  # numResults' range, before the solution's recipe narrows it
    recipe_type = recipes.recipe(solution.recipe).recipe_type
    fit_to_recipe(params, solution.recipe, recipe_type, len(solution.user_ids))
    if filter_text is not None:  # a field the solution lacks: refused now, not by the job
        from ..filters import compile_filter  # noqa: PLC0415

        compile_filter(filter_text, solution, filter_source)
    try:
        refs = storage.list_inputs(input_path)
        preflight.check(refs, solution.recipe)
    except StorageError as exc:
        raise UsageError(f"jobInput: {exc}") from None
    check_paths(params, refs)
    start_job(params, store)
    if spawn:
        spawn_worker(name, store)
    return name


def spawn_worker(name: str, store: jobs_mod.JobStore) -> int:
    """Start `python -m personalize_batch.service.worker NAME` detached: its own session (a closing
    terminal's SIGHUP does not reach it), no stdin, output to $PBATCH_HOME/logs/NAME.log."""
    logs = store.home / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "personalize_batch.service.worker", name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                cwd=store.home,
                env={**os.environ, "PBATCH_HOME": str(store.home)},
            )
    except OSError as exc:
        store.update(name, status=jobs_mod.FAILED, failureReason=f"cannot start: {exc}")
        raise StorageError(f"cannot start the job's process: {exc}") from None
    # reap it when it ends, so that a long-lived parent (the console, an SDK user's
    # program) keeps no zombie, which would look alive to the dead-process check
    threading.Thread(target=proc.wait, name=f"reap-{name}", daemon=True).start()
    store.set_owner(name, proc.pid)
    return proc.pid


def describe_batch_inference_job(
    store: jobs_mod.JobStore, *, batchInferenceJobArn: str
) -> dict[str, Any]:
    """DescribeBatchInferenceJob: `{"batchInferenceJob": record}` (by ARN or name)."""
    arn = _text(batchInferenceJobArn, "batchInferenceJobArn")
    return {"batchInferenceJob": store.get(arn, INFERENCE)}


def list_batch_inference_jobs(
    store: jobs_mod.JobStore,
    *,
    solutionVersionArn: str | None = None,
    maxResults: int | None = None,
    nextToken: str | None = None,
) -> dict[str, Any]:
    """ListBatchInferenceJobs: newest first, pages of maxResults (1-100, default 100)."""
    return _list(store, INFERENCE, solutionVersionArn, maxResults, nextToken)


def describe_batch_segment_job(
    store: jobs_mod.JobStore, *, batchSegmentJobArn: str
) -> dict[str, Any]:
    """DescribeBatchSegmentJob: `{"batchSegmentJob": record}` (by ARN or name)."""
    arn = _text(batchSegmentJobArn, "batchSegmentJobArn")
    return {"batchSegmentJob": store.get(arn, SEGMENT)}


def list_batch_segment_jobs(
    store: jobs_mod.JobStore,
    *,
    solutionVersionArn: str | None = None,
    maxResults: int | None = None,
    nextToken: str | None = None,
) -> dict[str, Any]:
    """ListBatchSegmentJobs: newest first, pages of maxResults (1-100, default 100)."""
    return _list(store, SEGMENT, solutionVersionArn, maxResults, nextToken)


def _list(
    store: jobs_mod.JobStore,
    kind: str,
    solution: str | None,
    max_results: int | None,
    next_token: str | None,
) -> dict[str, Any]:
    if max_results is None:
        max_results = 100
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise UsageError(f"maxResults must be an integer, not {max_results!r}")
    if not 1 <= max_results <= 100:
        raise UsageError(f"maxResults must be 1-100, not {max_results}")
    if solution is not None:
        _text(solution, "solutionVersionArn")
    return store.list(solution, None, max_results, next_token, kind=kind)


def wait_batch_inference_job_active(
    store: jobs_mod.JobStore,
    *,
    batchInferenceJobArn: str,
    delay: float = 2.0,
    max_attempts: int = 1800,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the job is ACTIVE (its record) or raise WaiterFailed: CREATE FAILED,
    an unknown job, or max_attempts polls without reaching ACTIVE (as aws-cli waiters)."""
    for attempt in range(max_attempts):
        try:
            record = store.get(batchInferenceJobArn, INFERENCE)
        except NotFound as exc:
            raise WaiterFailed(f"Waiter {WAITER} failed: {exc}") from None
        if record["status"] == jobs_mod.ACTIVE:
            return record
        if record["status"] == jobs_mod.FAILED:
            raise WaiterFailed(
                f"Waiter {WAITER} failed: Waiter encountered a terminal failure state: For "
                f'expression "batchInferenceJob.status" we matched expected path: '
                f'"CREATE FAILED" (failureReason: {record.get("failureReason")})'
            )
        if attempt + 1 < max_attempts:
            sleep(delay)
    raise WaiterFailed(f"Waiter {WAITER} failed: Max attempts exceeded")
