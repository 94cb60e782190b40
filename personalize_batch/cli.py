"""The `pbatch` command line: parse options, call one library function, print JSON.

Errors are mapped to exit codes in one place (`Group.main`): 1 for a failure the user
can act on, 2 for usage, 3 when a job finished with error lines (A.10).
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from typing import Any

import click
import orjson

from . import __version__
from .errors import PbatchError, UsageError

RECIPE_HELP = "user-personalization, popularity-count, personalized-ranking or sims"


def emit(obj: Any) -> None:
    """Print one JSON document on stdout (indented, as the aws CLI does)."""
    click.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


def warn(message: str) -> None:
    click.echo(f"pbatch: warning: {message}", err=True)


class Group(click.Group):
    """Maps pbatch's exceptions to one stderr line and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except PbatchError as exc:
            click.echo(f"pbatch: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (`| head`): stop quietly
            sys.exit(1)


def _num_results(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value is not None and not 1 <= value <= 500:
        raise click.BadParameter("must be 1-500")
    return value


ENDPOINT = click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None,
                        help="S3-compatible endpoint for s3:// paths (or $AWS_ENDPOINT_URL).")
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
SOLUTION = click.option("--solution", "-s", required=True, metavar="PATH",
                        help="The solution file (.npz) made by `pbatch train`.")
NUM_RESULTS = click.option("--num-results", "-n", type=int, default=25, show_default=True,
                           callback=_num_results, help="Items per list, 1-500.")


@click.group(cls=Group)
@click.version_option(__version__, prog_name="pbatch")
def main() -> None:
    """pbatch: Amazon Personalize batch inference, offline.

    Train a solution from a Personalize interactions CSV, then run batch inference jobs
    over JSON Lines files: each input NAME gives NAME.out, one answer per line.
    """


@main.command()
@click.option("--recipe", "-r", required=True, help=f"Recipe: {RECIPE_HELP} (or aws-* names).")
@click.option("--interactions", "-i", required=True, metavar="PATH",
              help="Interactions CSV (USER_ID, ITEM_ID, TIMESTAMP, ...); .gz and s3:// too.")
@click.option("--items", metavar="PATH", default=None,
              help="Items CSV (ITEM_ID plus metadata columns), kept in the solution.")
@click.option("--hp", multiple=True, metavar="KEY=VALUE",
              help="A recipe hyperparameter; repeat for several.")
@click.option("--event-type", default=None, help="Train only on interactions of this type.")
@click.option("--event-value-threshold", type=float, default=None,
              help="Drop interactions whose EVENT_VALUE is below this.")
@click.option("--output", "-o", required=True, metavar="PATH",
              help="Where to write the solution (.npz).")
@ENDPOINT
@QUIET
def train(recipe: str, interactions: str, items: str | None, hp: tuple[str, ...],
          event_type: str | None, event_value_threshold: float | None, output: str,
          endpoint_url: str | None, quiet: bool) -> None:
    """Train a solution (a versioned .npz file) from an interactions CSV."""
    from .training import train as train_solution  # noqa: PLC0415  (numpy/scipy on demand)

    meta = train_solution(recipe, interactions, output, items=items, hp_pairs=hp,
                          event_type=event_type, event_value_threshold=event_value_threshold,
                          endpoint_url=endpoint_url, warn=None if quiet else warn)
    if not quiet:
        t = meta["training"]
        click.echo(f"pbatch: trained {meta['recipe']} on {t['interactionsUsed']:,} interactions "
                   f"({t['users']:,} users, {t['items']:,} items) -> {output}", err=True)


@main.command()
@SOLUTION
@click.option("--input", "-i", "input_", required=True, metavar="PATH",
              help="JSON Lines input: file, directory, s3://bucket/key or prefix, or - (stdin).")
@click.option("--output", "-o", default=None, metavar="DIR",
              help="Output directory or s3:// prefix (default: beside the input), or - (stdout).")
@NUM_RESULTS
@click.option("--job-name", default=None, help="The job's name (default: generated).")
@click.option("--include-seen", is_flag=True,
              help="Keep the items a user interacted with in training.")
@click.option("--compress", type=click.Choice(["gzip"]), default=None,
              help="Write NAME.out.gz.")
@click.option("--compress-level", type=click.IntRange(1, 9), default=1, show_default=True,
              help="gzip level for --compress (1 is fast, 6 is smaller).")
@ENDPOINT
@QUIET
def run(solution: str, input_: str, output: str | None, num_results: int,
        job_name: str | None, include_seen: bool, compress: str | None, compress_level: int,
        endpoint_url: str | None, quiet: bool) -> None:
    """Run a batch inference job: INPUT lines in, NAME.out lines out, in order."""
    from .batch import JobParams, exit_code, run_job  # noqa: PLC0415
    from .jobs import JobStore  # noqa: PLC0415

    params = JobParams(solution=solution, input=input_, output=output, job_name=job_name,
                       num_results=num_results, include_seen=include_seen, compress=compress,
                       compress_level=compress_level, endpoint_url=endpoint_url)
    store = JobStore()
    progress = not quiet and sys.stderr.isatty()
    record = run_job(params, store, progress=progress)
    errors = record["linesWithErrors"]
    if not quiet:
        click.echo(f"pbatch: job {record['jobName']} {record['status']}: "
                   f"{record['linesRead']:,} lines, {errors:,} errors, "
                   f"{record['durationSeconds']:.2f}s -> {', '.join(record['outputs'])}",
                   err=True)
    elif errors:
        click.echo(f"pbatch: {errors:,} lines had errors", err=True)
    sys.exit(exit_code(record))


@main.command()
@click.argument("solution", metavar="SOLUTION")
def describe(solution: str) -> None:
    """Print a solution's recipe, hyperparameters, counts and metrics as JSON."""
    from .solution import load  # noqa: PLC0415

    emit(load(solution).describe())


def _recommendation_id(sha: str, request: dict[str, Any]) -> str:
    """A recommendationId that is the same for the same solution and request."""
    digest = hashlib.sha256(sha.encode() + orjson.dumps(request, option=orjson.OPT_SORT_KEYS))
    return "RID-" + str(uuid.UUID(bytes=digest.digest()[:16]))


def _one(solution_path: str, request: dict[str, Any], num_results: int,
         include_seen: bool) -> tuple[list[str], list[float], str]:
    from .lines import QUERY, BadLine, parse_line  # noqa: PLC0415
    from .scoring import Answerer  # noqa: PLC0415
    from .solution import load  # noqa: PLC0415

    sol = load(solution_path)
    parsed = parse_line(orjson.dumps(request), QUERY[sol.recipe])
    if isinstance(parsed, BadLine):
        raise UsageError(f"{sol.recipe}: {parsed.error}")
    [(items, scores)] = Answerer(sol, num_results, include_seen).answer([parsed])
    return items, scores, _recommendation_id(sol.sha256, request)


@main.command()
@SOLUTION
@click.option("--user-id", default=None, help="The user (user-personalization, popularity-count).")
@click.option("--item-id", default=None, help="The item to find similar items for (sims).")
@NUM_RESULTS
@click.option("--include-seen", is_flag=True, help="Keep the user's training items.")
def recommend(solution: str, user_id: str | None, item_id: str | None, num_results: int,
              include_seen: bool) -> None:
    """Answer one user or item, shaped like GetRecommendations."""
    request = {k: v for k, v in (("userId", user_id), ("itemId", item_id)) if v is not None}
    items, scores, rid = _one(solution, request, num_results, include_seen)
    emit({"itemList": [{"itemId": i, "score": s} for i, s in zip(items, scores)],
          "recommendationId": rid})


@main.command()
@SOLUTION
@click.option("--user-id", required=True, help="The user whose ranking is wanted.")
@click.option("--items", required=True, metavar="A,B,C", help="Comma-separated item ids.")
def rank(solution: str, user_id: str, items: str) -> None:
    """Re-rank items for one user, shaped like GetPersonalizedRanking."""
    request = {"userId": user_id, "itemList": [i for i in items.split(",") if i]}
    ranked, scores, rid = _one(solution, request, 25, False)
    emit({"personalizedRanking": [{"itemId": i, "score": s} for i, s in zip(ranked, scores)],
          "recommendationId": rid})


@main.group()
def jobs() -> None:
    """List and describe batch inference jobs (records in $PBATCH_HOME/jobs.db)."""


@jobs.command("list")
@click.option("--solution", default=None, help="Only jobs of this solution (path or ARN).")
@click.option("--status", default=None,
              type=click.Choice(["PENDING", "IN PROGRESS", "ACTIVE", "CREATE FAILED"]),
              help="Only jobs with this status.")
@click.option("--max-results", type=click.IntRange(1, 100), default=100, show_default=True,
              help="Jobs per page, newest first.")
@click.option("--next-token", default=None, help="The nextToken of the previous page.")
def jobs_list(solution: str | None, status: str | None, max_results: int,
              next_token: str | None) -> None:
    """List jobs, shaped like ListBatchInferenceJobs."""
    from .jobs import JobStore  # noqa: PLC0415

    emit(JobStore().list(solution, status, max_results, next_token))


@jobs.command("describe")
@click.argument("name", metavar="NAME_OR_ARN")
def jobs_describe(name: str) -> None:
    """Describe one job, shaped like DescribeBatchInferenceJob."""
    from .jobs import JobStore  # noqa: PLC0415

    emit({"batchInferenceJob": JobStore().get(name)})


if __name__ == "__main__":  # pragma: no cover
    main()
