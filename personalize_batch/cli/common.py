"""What every `pbatch` command shares: the group, its options and the error mapping.

Errors are mapped to exit codes in one place (`Group.main`): 1 for a failure the user
can act on, 2 for usage, 3 when a job finished with error lines (A.10).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from .. import recipes
from ..errors import ABORTED, READER_GONE, Interrupted, PbatchError
from ..version import __version__

RECIPE_HELP = ", ".join(recipes.names()[:-1]) + " or " + recipes.names()[-1]


def emit(obj: Any) -> None:
    """Print one JSON document on stdout (indented, as the aws CLI does)."""
    click.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


def warn(message: str) -> None:
    click.echo(f"pbatch: warning: {message}", err=True)


def say(message: str) -> None:
    click.echo(f"pbatch: {message}", err=True)


class Group(click.Group):
    """Maps pbatch's exceptions to one stderr line and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command; exit with the code it returns (an int: a finished job's, see
        errors.lines_exit_code) or with the code of the exception it raised."""
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(ABORTED)
        except click.exceptions.NoArgsIsHelpError as exc:  # `pbatch jobs`: its help
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:  # one line, as pbatch's own errors: not click's four
            where = exc.ctx.command_path if exc.ctx is not None else "pbatch"
            message = " ".join(exc.format_message().split()).removesuffix(".")
            click.echo(f"pbatch: error: {message} (see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"pbatch: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except (PbatchError, Interrupted) as exc:
            click.echo(f"pbatch: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except _ReaderGone:
            quiet_stdout()
            sys.exit(READER_GONE)
        if isinstance(result, int) and result:
            sys.exit(result)
        return result

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # before click's main, which would exit 1
            raise _ReaderGone() from None


class _ReaderGone(Exception):
    """stdout's reader went away: not an OSError, which click's main turns into exit 1."""


def quiet_stdout() -> None:
    """Point stdout at /dev/null: Python's last flush at exit would fail again and
    print a traceback on stderr."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _num_results(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value is not None and not 1 <= value <= 500:
        raise click.BadParameter("must be 1-500")
    return value


def _job_num_results(ctx: click.Context, param: click.Parameter, value: int | None) -> Any:
    from ..recipes.protocol import MAX_SEGMENT_RESULTS  # noqa: PLC0415

    if value is not None and not 1 <= value <= MAX_SEGMENT_RESULTS:
        raise click.BadParameter(
            f"must be 1-500 (1-{MAX_SEGMENT_RESULTS:,} users per line for a segment solution)"
        )
    return value


def _endpoint_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from ..storage import check_endpoint  # noqa: PLC0415

    if value is not None:
        try:
            check_endpoint(value)
        except PbatchError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


ENDPOINT = click.option(
    "--endpoint-url",
    envvar=["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
    default=None,
    callback=_endpoint_url,
    help="S3-compatible endpoint for s3:// paths ($AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL).",
)
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
RECIPE = click.option(
    "--recipe", "-r", required=True, help=f"Recipe: {RECIPE_HELP} (or aws-* names)."
)
INTERACTIONS = click.option(
    "--interactions",
    "-i",
    required=True,
    metavar="PATH",
    help="Interactions CSV (USER_ID, ITEM_ID, TIMESTAMP, ...); .gz and s3:// too.",
)
HP = click.option(
    "--hp", multiple=True, metavar="KEY=VALUE", help="A recipe hyperparameter; repeat for several."
)
EVENT_TYPE = click.option("--event-type", default=None, help="Use only interactions of this type.")
EVENT_VALUE_THRESHOLD = click.option(
    "--event-value-threshold",
    type=float,
    default=None,
    help="Drop interactions whose EVENT_VALUE is below this.",
)
SOLUTION_HELP = (
    "The solution file (.npz) made by `pbatch train`: a path, an s3:// URL or its arn:pbatch:… ARN."
)
SOLUTION = click.option("--solution", "-s", required=True, metavar="PATH", help=SOLUTION_HELP)
NUM_RESULTS = click.option(
    "--num-results",
    "-n",
    type=int,
    default=25,
    show_default=True,
    callback=_num_results,
    help="Items per list, 1-500.",
)

# a job's: its solution's recipe decides the range and the default (job.params)
JOB_NUM_RESULTS = click.option(
    "--num-results",
    "-n",
    type=int,
    default=None,
    callback=_job_num_results,
    help="Items per line, 1-500 (default 25); for a segment solution (item-affinity, "
    "item-attribute-affinity), users per line, 1-5,000,000 (default: the top 1 % of its "
    "users, at least 25).",
)


def _item_fields(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple:
    from ..job.params import parse_item_fields  # noqa: PLC0415

    return parse_item_fields(value)


ITEM_METADATA = click.option(
    "--item-metadata",
    metavar="FIELD,FIELD",
    default=None,
    callback=_item_fields,
    help="Add these item fields (from `train --items`) to each recommended item, as "
    "Personalize's metadataColumns: at most 10.",
)

FILTER_HELP = (
    "A Personalize filter expression, e.g. "
    "'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (\"purchase\")'; "
    "$NAME values come from each line's filterValues."
)


def filter_options(f: Callable) -> Callable:
    """--filter EXPR and --filter-file F (one of them)."""
    f = click.option(
        "--filter-file",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="Read the filter expression from this file (surrounding whitespace ignored).",
    )(f)
    return click.option(
        "--filter", "filter_expression", metavar="EXPR", default=None, help=FILTER_HELP
    )(f)


def read_filter(expression: str | None, path: str | None) -> tuple[str | None, str]:
    """The filter text and how errors should name its source."""
    if expression is not None and path is not None:
        raise click.UsageError("give --filter or --filter-file, not both")
    if path is None:
        return expression, "--filter"
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip(), f"--filter-file {path}"
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--filter-file") from None


def exploration_options(f: Callable) -> Callable:
    """--exploration-weight, --exploration-item-age-cutoff and --seed (A.7)."""
    f = click.option(
        "--seed",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Seed of the exploration draws: the same seed gives the same bytes.",
    )(f)
    f = click.option(
        "--exploration-item-age-cutoff",
        type=click.FloatRange(min=1),
        default=30.0,
        show_default=True,
        metavar="DAYS",
        help="Item exploration: items created within DAYS of the newest training "
        "interaction (CREATION_TIMESTAMP) count as cold, besides items with no interactions.",
    )(f)
    return click.option(
        "--exploration-weight",
        type=click.FloatRange(0, 1),
        default=0.3,
        show_default=True,
        help="Item exploration: the share of list slots that may go to cold items "
        "(0 = the model's list unchanged; recipes that explore only).",
    )(f)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="pbatch")
def main() -> None:
    """pbatch: Amazon Personalize batch inference, offline.

    Train a solution from a Personalize interactions CSV, then run batch inference jobs
    over JSON Lines files: each input NAME gives NAME.out, one answer per line.
    """
