"""`pbatch run`: the synchronous batch inference job."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ..errors import lines_exit_code
from ..job.framing import DEFAULT_PARTITION_SIZE
from .common import (
    ENDPOINT,
    ITEM_METADATA,
    JOB_NUM_RESULTS,
    QUIET,
    SOLUTION_HELP,
    exploration_options,
    filter_options,
    main,
    read_filter,
    warn,
)

if TYPE_CHECKING:
    from ..job.params import JobParams

RESUME_KEEPS = ("resume", "workers", "quiet", "endpoint_url")


@main.command()
@click.option("--solution", "-s", metavar="PATH", help=SOLUTION_HELP + " Required unless --resume.")
@click.option(
    "--input",
    "-i",
    "input_",
    metavar="PATH",
    help="JSON Lines input: file, directory, s3://bucket/key or prefix, or - (stdin). "
    "Required unless --resume.",
)
@click.option(
    "--output",
    "-o",
    default=None,
    metavar="DIR",
    help="Output directory or s3:// prefix (default: beside the input), or - (stdout).",
)
@JOB_NUM_RESULTS
@filter_options
@exploration_options
@ITEM_METADATA
@click.option("--job-name", default=None, help="The job's name (default: generated).")
@click.option(
    "--include-seen", is_flag=True, help="Keep the items a user interacted with in training."
)
@click.option("--compress", type=click.Choice(["gzip"]), default=None, help="Write NAME.out.gz.")
@click.option(
    "--compress-level",
    type=click.IntRange(1, 9),
    default=1,
    show_default=True,
    help="gzip level for --compress (1 is fast, 6 is smaller).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Scoring processes (default: the number of cores); output is the same for any. "
    "With --engine dask: the local cluster's worker processes.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where to score: this machine, or a Dask cluster (same output, byte for byte; "
    "needs pip install 'personalize-batch[dask]').",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="With --engine dask: a running Dask scheduler to use (default: start a local "
    "cluster on 127.0.0.1 for this job).",
)
@click.option(
    "--partition-size",
    type=click.IntRange(min=1),
    default=DEFAULT_PARTITION_SIZE,
    show_default=True,
    metavar="BYTES",
    help="With --engine dask: bytes of input per task (.gz/.bz2 inputs: one task per file).",
)
@click.option(
    "--errors-to",
    default=None,
    metavar="PATH",
    help="Also write error lines, with file and line number, to this file.",
)
@click.option(
    "--skip-errors",
    is_flag=True,
    help="Keep error lines out of NAME.out (line i no longer answers line i).",
)
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Fail the job (no output) once more than this share of lines are errors.",
)
@click.option(
    "--events",
    default=None,
    metavar="CSV",
    help="Interactions newer than the training data (Personalize's CSV format): users' "
    "histories and seen items include them, and their new users get personalized lists.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only validate the input against the recipe (as `pbatch validate`).",
)
@click.option(
    "--resume",
    default=None,
    metavar="JOBNAME",
    help="Continue a CREATE FAILED job after its last written chunk, with the options it "
    "was started with (only --workers, --quiet, --endpoint-url may be given).",
)
@ENDPOINT
@QUIET
def run(**options: Any) -> int:
    """Run a batch job: INPUT lines in, NAME.out lines out, in order. The solution's
    recipe decides the kind: a batch inference job (items), or for item-affinity and
    item-attribute-affinity a batch segment job (users).

    \b
    Examples:
      pbatch run -s model.npz -i users.json              # writes users.json.out beside it
      pbatch run -s model.npz -i s3://bkt/in/ -o s3://bkt/out/ --job-name nightly
      producer | pbatch run -s model.npz -i - -o - -q | consumer
      pbatch run -s model.npz -i users.json --filter-file recent.filter -n 10
      pbatch run --resume nightly                         # continue a stopped job
    """
    from ..job.process import tune  # noqa: PLC0415
    from ..job.run import resume_job, run_job  # noqa: PLC0415
    from ..job.store import JobStore  # noqa: PLC0415

    tune()  # the process is a batch job: see job.process
    ctx = click.get_current_context()
    quiet = options["quiet"]
    progress = not quiet and sys.stderr.isatty()
    if options["resume"] is not None:
        _only_resume_options(ctx)
        record = resume_job(
            options["resume"],
            JobStore(),
            workers=options["workers"],
            endpoint_url=options["endpoint_url"],
            progress=progress,
            warn=warn,
        )
        return _report(record, quiet)
    for param in ctx.command.params[:2]:  # --solution, --input: required without --resume
        if ctx.params[param.name] is None:
            raise click.MissingParameter(ctx=ctx, param=param)
    if options["dry_run"]:
        from .inspect import validate  # noqa: PLC0415

        return ctx.invoke(
            validate,
            solution=options["solution"],
            input_=options["input_"],
            endpoint_url=options["endpoint_url"],
            quiet=quiet,
        )
    record = run_job(job_params(options), JobStore(), progress=progress, warn=warn)
    return _report(record, quiet)


def job_params(options: dict[str, Any]) -> JobParams:
    """The job's options object, from the command's options."""
    from ..job.exploration import Exploration  # noqa: PLC0415
    from ..job.params import JobParams  # noqa: PLC0415

    o = dict(options)
    text, source = read_filter(o.pop("filter_expression"), o["filter_file"])
    exploration = Exploration(
        o.pop("exploration_weight"), o.pop("exploration_item_age_cutoff"), o.pop("seed")
    )
    for name in ("resume", "dry_run", "quiet"):
        del o[name]
    return JobParams(
        input=o.pop("input_"),
        filter_expression=text,
        filter_source=source,
        exploration=exploration,
        **o,
    )


def _only_resume_options(ctx: click.Context) -> None:
    """--resume continues a job as it was started: only RESUME_KEEPS may be given."""
    given = [
        p.opts[0]
        for p in ctx.command.params
        if p.name not in RESUME_KEEPS
        and ctx.get_parameter_source(p.name) != click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(
            f"--resume continues a job with the options it was started with; "
            f"not with {', '.join(given)}"
        )


def _report(record: dict, quiet: bool) -> int:
    """The job's summary and warnings on stderr; its exit code."""
    from ..job.diagnostics import summary_line  # noqa: PLC0415

    errors = record["linesWithErrors"]
    if not quiet:
        click.echo(
            f"pbatch: job {record['jobName']} {record['status']}: "
            f"{record['linesRead']:,} lines, {errors:,} errors, "
            f"{record['durationSeconds']:.2f}s -> {', '.join(record['outputs'])}",
            err=True,
        )
        unknown = summary_line(record.get("idDiagnostics", {}))
        if unknown:
            click.echo(f"pbatch: {unknown}", err=True)
    elif errors:
        click.echo(f"pbatch: {errors:,} {'line' if errors == 1 else 'lines'} had errors", err=True)
    for warning in record.get("idDiagnostics", {}).get("warnings", []):
        click.echo(f"pbatch: warning: {warning}", err=True)
    return lines_exit_code(errors)
