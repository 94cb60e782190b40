"""`pbatch jobs list|describe`."""

from __future__ import annotations

import click

from . import emit, main


@main.group()
def jobs() -> None:
    """List and describe batch inference jobs (records in $PBATCH_HOME/jobs.db)."""


@jobs.command("list")
@click.option("--solution", default=None, help="Only jobs of this solution (path or ARN).")
@click.option(
    "--status",
    default=None,
    type=click.Choice(["PENDING", "IN PROGRESS", "ACTIVE", "CREATE FAILED"]),
    help="Only jobs with this status.",
)
@click.option(
    "--max-results",
    type=click.IntRange(1, 100),
    default=100,
    show_default=True,
    help="Jobs per page, newest first.",
)
@click.option("--next-token", default=None, help="The nextToken of the previous page.")
def jobs_list(
    solution: str | None, status: str | None, max_results: int, next_token: str | None
) -> None:
    """List jobs, shaped like ListBatchInferenceJobs."""
    from ..jobs import JobStore  # noqa: PLC0415

    emit(JobStore().list(solution, status, max_results, next_token))


@jobs.command("describe")
@click.argument("name", metavar="NAME_OR_ARN")
def jobs_describe(name: str) -> None:
    """Describe one job, shaped like DescribeBatchInferenceJob."""
    from ..jobs import JobStore  # noqa: PLC0415

    emit({"batchInferenceJob": JobStore().get(name)})
