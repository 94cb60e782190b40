"""`pbatch run`: the synchronous batch inference job."""

from __future__ import annotations

import sys

import click

from ..engines import DEFAULT_PARTITION_SIZE
from . import ENDPOINT, NUM_RESULTS, QUIET, SOLUTION, main


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
@ENDPOINT
@QUIET
def run(
    solution: str,
    input_: str,
    output: str | None,
    num_results: int,
    job_name: str | None,
    include_seen: bool,
    compress: str | None,
    compress_level: int,
    workers: int | None,
    engine: str,
    scheduler: str | None,
    partition_size: int,
    endpoint_url: str | None,
    quiet: bool,
) -> None:
    """Run a batch inference job: INPUT lines in, NAME.out lines out, in order."""
    from ..batch import JobParams, exit_code, run_job  # noqa: PLC0415
    from ..jobs import JobStore  # noqa: PLC0415

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
        engine=engine,
        scheduler=scheduler,
        partition_size=partition_size,
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
    elif errors:
        click.echo(f"pbatch: {errors:,} lines had errors", err=True)
    sys.exit(exit_code(record))
