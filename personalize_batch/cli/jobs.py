"""`pbatch jobs list|describe|delete|prune`: the job store's records, of both kinds."""

from __future__ import annotations

import click

from .common import ENDPOINT, QUIET, emit, main


@main.group()
def jobs() -> None:
    """List, describe and delete batch jobs, inference and segment (records in
    $PBATCH_HOME/jobs.db)."""


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
@click.option(
    "--kind",
    type=click.Choice(["inference", "segment"]),
    default=None,
    help="Only batch inference jobs or only batch segment jobs (default: both).",
)
def jobs_list(
    solution: str | None,
    status: str | None,
    max_results: int,
    next_token: str | None,
    kind: str | None,
) -> None:
    """List jobs newest first: a page of both kinds, batch inference jobs shaped like
    ListBatchInferenceJobs' and batch segment jobs like ListBatchSegmentJobs', each
    under its own key (one kind with --kind).

    \b
    Examples:
      pbatch jobs list --status "CREATE FAILED" --max-results 10
      pbatch jobs list --solution model.npz
      pbatch jobs list --kind segment
    """
    from ..arns import INFERENCE, SEGMENT  # noqa: PLC0415
    from ..job.store import JobStore  # noqa: PLC0415

    chosen = {"inference": INFERENCE, "segment": SEGMENT}.get(kind or "")
    emit(JobStore().list(solution, status, max_results, next_token, kind=chosen))


@jobs.command("describe")
@click.argument("name", metavar="NAME_OR_ARN")
def jobs_describe(name: str) -> None:
    """Describe one job, shaped like DescribeBatchInferenceJob (`batchInferenceJob`) or,
    for a segment job, DescribeBatchSegmentJob (`batchSegmentJob`).

    \b
    Examples:
      pbatch jobs describe nightly
    """
    from ..job.store import JobStore, described  # noqa: PLC0415

    emit(described(JobStore().get(name)))


@jobs.command("delete")
@click.argument("names", nargs=-1, required=True, metavar="NAME_OR_ARN...")
@ENDPOINT
@QUIET
def jobs_delete(names: tuple[str, ...], endpoint_url: str | None, quiet: bool) -> int:
    """Delete finished jobs: their records, checkpoints, kept temporary outputs (or pending
    S3 uploads) and logs. Outputs are kept; running jobs are refused.

    \b
    Examples:
      pbatch jobs delete nightly          # discard a stopped job instead of resuming it
      pbatch jobs delete a b c
    """
    from ..errors import PbatchError  # noqa: PLC0415
    from ..job.leftovers import delete_job  # noqa: PLC0415
    from ..job.store import JobStore  # noqa: PLC0415

    store, failed = JobStore(), None
    for name in names:  # as rm does: each name in turn, the first failure's code at the end
        try:
            record, removed = delete_job(store, name, endpoint_url)
        except PbatchError as exc:
            click.echo(f"pbatch: error: {exc}", err=True)
            failed = failed or exc
            continue
        if not quiet:
            _deleted(record, removed)
    return 0 if failed is None else failed.exit_code


@jobs.command("prune")
@click.option(
    "--older-than",
    required=True,
    metavar="DURATION",
    help="Delete finished jobs last updated longer ago than this: 30d, 12h, 90m, 2w.",
)
@click.option("--dry-run", is_flag=True, help="Only print the names of the jobs it would delete.")
@ENDPOINT
@QUIET
def jobs_prune(older_than: str, dry_run: bool, endpoint_url: str | None, quiet: bool) -> int:
    """Delete every finished job (ACTIVE or CREATE FAILED) older than DURATION, as
    `jobs delete` does; running jobs are kept.

    \b
    Examples:
      pbatch jobs prune --older-than 30d --dry-run
      pbatch jobs prune --older-than 30d -q       # from cron
    """
    from ..errors import PbatchError  # noqa: PLC0415
    from ..job.leftovers import delete_job, parse_duration  # noqa: PLC0415
    from ..job.leftovers import older_than as old_jobs
    from ..job.store import JobStore  # noqa: PLC0415

    seconds = parse_duration(older_than)
    store = JobStore()
    old = old_jobs(store, seconds)
    if dry_run:
        for record in old:
            click.echo(record["jobName"])
        return
    deleted, failed = 0, None
    for record in old:
        try:
            record, removed = delete_job(store, record["jobName"], endpoint_url)
        except PbatchError as exc:  # e.g. resumed meanwhile: left as it is
            click.echo(f"pbatch: error: {exc}", err=True)
            failed = failed or exc
            continue
        deleted += 1
        if not quiet:
            _deleted(record, removed)
    if not quiet:
        jobs_word = "job" if deleted == 1 else "jobs"
        click.echo(f"pbatch: pruned {deleted} {jobs_word} older than {older_than}", err=True)
    return 0 if failed is None else failed.exit_code


def _deleted(record: dict, removed: list[str]) -> None:
    also = f" and its {', '.join(removed)}" if removed else ""
    click.echo(f"pbatch: deleted job {record['jobName']} ({record['status']}){also}", err=True)
