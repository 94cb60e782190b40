"""The batch job (A.3-A.10, A.17): record it, load and check its solution (whose recipe
decides the job's kind, inference or segment, and its default numResults), run its
engine over its inputs, and record how it ended. `pbatch run`, the service's background
worker, the SDK and the console all run jobs through `run_job` / `execute_job`.

Memory is bounded by one chunk of lines and one chunk x items score matrix, whatever
the input's length. Every non-blank input line gives exactly one output line, in order.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from .. import recipes, storage
from ..arns import (
    check_solution_hash,
    job_name_from,
    new_job_name,
    parse_solution_ref,
)
from ..errors import Interrupted, JobFailed, PbatchError, UsageError
from ..solution import Solution, load, read_recipe, tuning_summary
from ..storage import paths
from . import checkpoint, params, preflight, signals
from . import store as jobs_mod
from .counts import Counts
from .diagnostics import diagnose
from .engines import local
from .params import JobParams, check_params
from .progress import Progress
from .resume import kept_fields
from .scoring import metadata_columns


def start_job(p: JobParams, store: jobs_mod.JobStore) -> str:
    """Check a job's parameters and record it PENDING (a used name is refused); its name."""
    check_params(p)
    if p.engine == "dask":
        from .engines import dask as dask_engine  # noqa: PLC0415  (an optional extra)

        dask_engine.require()
    name = p.job_name or new_job_name()
    path, sha = parse_solution_ref(p.solution)
    store.create(
        params.to_record(p, name, path, sha or p.solution_sha256),
        api=p.api,
    )
    return name


def run_job(
    p: JobParams,
    store: jobs_mod.JobStore,
    *,
    progress: bool = False,
    on_solution: Callable[[Solution], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one batch inference job to ACTIVE (returning its record) or raise JobFailed.

    The job record goes PENDING -> IN PROGRESS -> ACTIVE / CREATE FAILED.
    """
    check_params(p)
    if p.job_name is not None and store.exists(p.job_name):  # say what the job is
        raise jobs_mod.name_in_use(p.job_name, store.get(p.job_name), api=p.api)
    recipe = read_recipe(parse_solution_ref(p.solution)[0], p.endpoint_url)
    if recipe is not None:  # what the solution's recipe cannot do, before the job exists
        p.kind = params.check_recipe(p, recipe, recipes.recipe(recipe).recipe_type)
    check_paths(p)  # before the job exists: a refused job leaves its name free
    name = start_job(p, store)
    return execute_job(name, p, store, progress=progress, on_solution=on_solution, warn=warn)


def _first_warnings(
    p: JobParams,
    name: str,
    store: jobs_mod.JobStore,
    refs: list[storage.InputRef],
    output: str,
    note: Callable[[str], None],
) -> None:
    """What a job says before it scores: kept files of stopped jobs that would become
    one of its outputs (leftovers)."""
    from . import leftovers  # noqa: PLC0415  (read once per job, not at start-up)

    urls = [storage.output_url(output, r.name, p.compress) for r in refs]
    for message in leftovers.warnings_for(urls, store, own=name):
        note(message)


def _nothing_read(refs: list[storage.InputRef], counts: Counts) -> str:
    """The warning for a job that found no line to answer."""
    one = len(refs) == 1
    name = storage.redact(refs[0].url) if one else f"the {len(refs)} input files"
    name = "stdin" if name == "-" else name
    if counts.blank:
        lines = "1 blank line" if counts.blank == 1 else f"{counts.blank:,} blank lines"
        return f"{name} {'holds' if one else 'hold'} only {lines}: no line to answer"
    return f"{name} {'is' if one else 'are'} empty: no line to answer"


def check_paths(p: JobParams, refs: list[storage.InputRef] | None = None) -> None:
    """A job writes none of its inputs and no path twice (A.18). Without `refs`, local
    inputs are listed here, and an s3:// input is compared as given (its listing waits
    for the job, which checks again with the objects it lists); an input that cannot be
    listed is left for the job to report."""
    if refs is None:
        refs = []
        if not storage.is_s3(p.input):
            with contextlib.suppress(PbatchError):
                refs = storage.list_inputs(p.input, p.endpoint_url)
        elif not p.input.endswith("/"):
            refs = [storage.InputRef(p.input, p.input.rsplit("/", 1)[-1])]
    output = p.output_url()
    solution, _ = parse_solution_ref(p.solution) if p.solution else (None, None)
    paths.check_job(
        paths.JobPaths(
            inputs=[r.url for r in refs if r.url != "-"],
            outputs=[storage.output_url(output, r.name, p.compress) for r in refs],
            output=output,
            solution=solution,
            events=p.events,
            filter_file=p.filter_file,
            errors_to=p.errors_to,
            api=p.api,
        )
    )


def resume_job(
    name: str,
    store: jobs_mod.JobStore,
    *,
    workers: int | None = None,
    endpoint_url: str | None = None,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Continue a CREATE FAILED job after its last written chunk (`pbatch run --resume`):
    the same name goes back to IN PROGRESS and on to ACTIVE, with the bytes an
    uninterrupted run writes. Refused, leaving the job as it was, when the job is not
    failed, has no checkpoint, or its solution or an input changed."""
    name = job_name_from(name)
    record = store.get(name)  # a job whose process is gone reads as CREATE FAILED
    if record["status"] != jobs_mod.FAILED:
        running = record["status"] in (jobs_mod.PENDING, jobs_mod.IN_PROGRESS)
        raise PbatchError(
            f"job {name} is {record['status']}: only a CREATE FAILED job can be resumed"
            + (" (its process is still running)" if running else "")
        )
    why = (record.get("resume") or {}).get("notResumable")
    if why:
        raise PbatchError(f"job {name} cannot be resumed: {why}; run it again under a new name")
    ckpt = checkpoint.Checkpointer.load(checkpoint.checkpoint_path(store.home, name), name)
    p = params.from_json(ckpt.state["params"])
    p.job_name = name
    p.workers = workers if workers is not None else p.workers
    p.endpoint_url = endpoint_url if endpoint_url is not None else p.endpoint_url
    path, _ = parse_solution_ref(p.solution)
    solution = load(path, p.endpoint_url)
    ckpt.check_unchanged(
        solution.sha256, storage.list_inputs(p.input, p.endpoint_url), p.endpoint_url
    )
    store.reopen(name, resumes=record.get("resumes", 0) + 1)
    return execute_job(name, p, store, progress=progress, resume=(ckpt, solution), warn=warn)


def execute_job(
    name: str,
    p: JobParams,
    store: jobs_mod.JobStore,
    *,
    progress: bool = False,
    on_solution: Callable[[Solution], None] | None = None,
    resume: tuple[checkpoint.Checkpointer, Solution] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the job recorded (PENDING) under `name`: the one implementation of a job, for
    `pbatch run` and for the background worker of asynchronous jobs. `resume`: the
    checkpoint and loaded solution of a failed job to continue (see resume_job). The
    job's warnings go to its record's `warnings`, and to `warn` as they are found."""
    job = _Job(name, p, store, warn, resume[0] if resume is not None else None)
    old_handlers = signals.install()
    done = False  # every output committed: the signal handlers stay for the last record
    try:
        solution = _started(job, resume[1] if resume is not None else None)
        if on_solution is not None:
            on_solution(solution)
        refs = storage.list_inputs(p.input, p.endpoint_url)
        check_paths(p, refs)  # with the objects an s3:// input lists
        if resume is None:  # refused up front, not a file of error lines (preflight)
            preflight.check(refs, solution.recipe, p.endpoint_url)
        _first_warnings(p, name, store, refs, job.output, job.note)
        counts = job.counts
        tick = Progress(counts, progress, lambda: store.update(name, **counts.as_record()))
        job.engine.update(_run_engine(job, solution, refs, tick))
        tick.done()
        if not counts.read:
            job.note(_nothing_read(refs, counts))
        done = True
    except (PbatchError, Interrupted) as exc:
        job.failed(str(exc), exc)
        if isinstance(exc, (Interrupted, UsageError)):  # e.g. a filter field the solution lacks
            raise
        raise JobFailed(f"job {name} failed: {exc}") from None
    except BrokenPipeError:  # stdout's reader went away (`| head`): normal in a pipeline
        job.failed(
            f"stdout's reader stopped reading (a closed pipe, e.g. `| head`) after "
            f"{job.counts.answered + job.counts.errors:,} lines were written; the rest of "
            "the input was not answered",
            BrokenPipeError(),
        )
        raise
    except BaseException as exc:  # a bug: the record must still tell
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        job.failed(reason, exc, timed=False)
        raise
    finally:
        if not done:
            signals.restore(old_handlers)
    try:
        # Every output is committed: a stop now is held until the record says ACTIVE,
        # then dropped (the job is done). With the default handlers back, a SIGTERM here
        # killed the process and left the record IN PROGRESS ("process exited").
        with signals.held(drop=True):
            return job.active(solution)
    finally:
        signals.restore(old_handlers)


class _Job:
    """A running job's state between its record's updates: what it counted, the outputs
    it committed, its warnings and the record fields of its engine."""

    def __init__(
        self,
        name: str,
        p: JobParams,
        store: jobs_mod.JobStore,
        warn: Callable[[str], None] | None,
        ckpt: checkpoint.Checkpointer | None,
    ) -> None:
        self.name, self.p, self.store, self.warn, self.ckpt = name, p, store, warn, ckpt
        self.output = p.output_url()
        self.counts = Counts()
        self.started = time.monotonic()
        self.outputs: list[str] = []
        self.notes: list[str] = []
        self.engine: dict[str, Any] = {"engine": p.engine, "warnings": self.notes}

    def note(self, message: str) -> None:
        self.notes.append(message)
        if self.warn is not None:
            self.warn(message)

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def failed(self, reason: str, exc: BaseException, timed: bool = True) -> None:
        """Record the job CREATE FAILED, with what it kept for a resume."""
        signals.stop_caught()
        self.store.update(
            self.name,
            status=jobs_mod.FAILED,
            failureReason=reason,
            **kept_fields(self.ckpt, self.p, exc),
            **({"durationSeconds": self.seconds()} if timed else {}),
            outputs=self.outputs,
            **self.engine,
            **self.counts.as_record(),
        )

    def active(self, solution: Solution) -> dict[str, Any]:
        """Record the job ACTIVE, with what its ids say; its record."""
        counts, p = self.counts, self.p
        ids, _ = diagnose(
            counts.ids,
            counts.ids_not_strings,
            solution.user_ids,
            solution.item_ids,
            lists_ignored=counts.lists_ignored,
            recipe=solution.recipe,
        )
        if self.ckpt is not None:
            self.ckpt.remove()
        return self.store.update(
            self.name,
            drop=("resume",),
            status=jobs_mod.ACTIVE,
            durationSeconds=self.seconds(),
            outputs=self.outputs,
            **self.engine,
            idDiagnostics=ids,
            **({"errorsTo": storage.display_path(p.errors_to)} if p.errors_to else {}),
            **counts.as_record(),
        )


def _started(job: _Job, solution: Solution | None) -> Solution:
    """The job's solution, checked, and its record IN PROGRESS; with fresh events, the
    solution they extend."""
    p = job.p
    path, sha = parse_solution_ref(p.solution)
    if solution is None:
        solution = load(path, p.endpoint_url)
    check_solution_hash(path, solution.sha256, sha or p.solution_sha256)
    recipe_type = recipes.recipe(solution.recipe).recipe_type
    params.fit_to_recipe(p, solution.recipe, recipe_type, len(solution.user_ids))
    metadata_columns(solution, p.item_metadata)  # a usage error before any output
    types = solution.arrays.get("events_types")
    said = preflight.unknown_event_types(
        p.filter_expression, p.filter_source, None if types is None else types.tolist()
    )
    if said is not None:
        job.note(said)
    # the record in its kind's shape, with the numResults the recipe decided
    record = params.to_record(p, job.name, path, solution.sha256)
    job.store.update(
        job.name,
        drop=tuple(k for keys in params.KIND_KEYS.values() for k in keys if k not in record),
        **record,
        status=jobs_mod.IN_PROGRESS,
        recipe=solution.recipe,
        solutionTuning=tuning_summary(solution.meta),
    )
    if p.events is not None:
        from .foldin import fold_in  # noqa: PLC0415  (scipy: only jobs with fresh events)

        solution, fold = fold_in(solution, p.events, p.endpoint_url)
        job.engine["foldIn"] = {**fold, "events": storage.display_path(p.events)}
    return solution


def _run_engine(
    job: _Job, solution: Solution, refs: list[storage.InputRef], tick: Progress
) -> dict[str, Any]:
    """The job's engine, run; the record fields that describe it. A local job that can
    be resumed keeps a checkpoint."""
    p, counts = job.p, job.counts
    if p.engine == "dask":
        from .engines import dask as dask_engine  # noqa: PLC0415  (an optional extra)

        report = functools.partial(job.store.update, job.name)
        return dask_engine.run(
            p, job.name, solution, refs, job.output, counts, job.outputs, tick, report
        )
    if job.ckpt is None and checkpoint.not_resumable(p) is None:
        where = checkpoint.checkpoint_path(job.store.home, job.name)
        job.ckpt = checkpoint.Checkpointer.start(where, p, solution.sha256, refs)
        job.store.update(job.name, resume={"checkpoint": str(where)})
    if job.ckpt is not None and "counts" in job.ckpt.state:
        checkpoint.restore_counts(counts, job.ckpt.state["counts"])
    return local.run(p, solution, refs, job.output, counts, job.outputs, tick, job.ckpt)
