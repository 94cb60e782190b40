"""`pbatch run`: the synchronous batch inference job."""

from __future__ import annotations

import sys

import click

from ..engines import DEFAULT_PARTITION_SIZE
from . import (
    ENDPOINT,
    ITEM_METADATA,
    NUM_RESULTS,
    QUIET,
    SOLUTION,
    exploration_options,
    filter_options,
    main,
    read_filter,
)


@main.command()
@SOLUTION
@click.option(
    "--input",
    "-i",
    "input_",
    required=True,
    metavar="PATH",
    help="JSON Lines input: file, directory, s3://bucket/key or prefix, or - (stdin).",
)
@click.option(
    "--output",
    "-o",
    default=None,
    metavar="DIR",
    help="Output directory or s3:// prefix (default: beside the input), or - (stdout).",
)
@NUM_RESULTS
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
    "--dry-run",
    is_flag=True,
    help="Only validate the input against the recipe (as `pbatch validate`).",
)
@ENDPOINT
@QUIET
def run(
    solution: str,
    input_: str,
    output: str | None,
    num_results: int,
    filter_expression: str | None,
    filter_file: str | None,
    exploration_weight: float,
    exploration_item_age_cutoff: float,
    seed: int,
    item_metadata: tuple[str, ...],
    job_name: str | None,
    include_seen: bool,
    compress: str | None,
    compress_level: int,
    workers: int | None,
    errors_to: str | None,
    skip_errors: bool,
    max_error_rate: float | None,
    dry_run: bool,
    engine: str,
    scheduler: str | None,
    partition_size: int,
    endpoint_url: str | None,
    quiet: bool,
) -> None:
    """Run a batch inference job: INPUT lines in, NAME.out lines out, in order."""
    from ..batch import JobParams, exit_code, run_job  # noqa: PLC0415
    from ..diagnostics import summary_line  # noqa: PLC0415
    from ..jobs import JobStore  # noqa: PLC0415
    from ..recipes.exploration import Exploration  # noqa: PLC0415

    if dry_run:
        from .inspect import validate  # noqa: PLC0415

        click.get_current_context().invoke(
            validate, solution=solution, input_=input_, endpoint_url=endpoint_url, quiet=quiet
        )
    text, source = read_filter(filter_expression, filter_file)
    params = JobParams(
        solution=solution,
        input=input_,
        output=output,
        job_name=job_name,
        num_results=num_results,
        include_seen=include_seen,
        compress=compress,
        compress_level=compress_level,
        endpoint_url=endpoint_url,
        workers=workers,
        errors_to=errors_to,
        skip_errors=skip_errors,
        max_error_rate=max_error_rate,
        filter_expression=text,
        filter_source=source,
        exploration=Exploration(exploration_weight, exploration_item_age_cutoff, seed),
        engine=engine,
        scheduler=scheduler,
        partition_size=partition_size,
        item_metadata=item_metadata,
    )
    store = JobStore()
    progress = not quiet and sys.stderr.isatty()
    record = run_job(params, store, progress=progress)
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
        click.echo(f"pbatch: {errors:,} lines had errors", err=True)
    for warning in record.get("idDiagnostics", {}).get("warnings", []):
        click.echo(f"pbatch: warning: {warning}", err=True)
    sys.exit(exit_code(record))
