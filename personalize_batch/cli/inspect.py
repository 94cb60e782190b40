"""`pbatch validate` and `pbatch diff`: look at inputs and outputs without scoring."""

from __future__ import annotations

import click

from ..errors import lines_exit_code
from .common import ENDPOINT, SOLUTION, emit, main


@main.command()
@SOLUTION
@click.option(
    "--input",
    "-i",
    "input_",
    required=True,
    metavar="PATH",
    help="JSON Lines input, as for `pbatch run`.",
)
@ENDPOINT
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
def validate(solution: str, input_: str, endpoint_url: str | None, quiet: bool) -> int:
    """Check every input line against the solution's recipe without scoring.

    Prints one 'FILE:LINE: problem' line per bad line on stdout and a JSON summary
    (counts, unknown ids, warnings) on stderr; exit 3 when any line is bad, as `run`.

    \b
    Examples:
      pbatch validate -s model.npz -i users.json
      pbatch validate -s model.npz -i s3://bkt/in/ -q | head
    """
    from ..job.validate import validate as check  # noqa: PLC0415

    report, problems = check(solution, input_, endpoint_url)
    for problem in problems:
        click.echo(problem)
    if not quiet:
        click.echo(orjson_line(report.summary()), err=True)
    for warning in report.diagnostics.get("warnings", []):
        click.echo(f"pbatch: warning: {warning}", err=True)
    return lines_exit_code(report.counts.errors)


def orjson_line(obj: object) -> str:
    import orjson  # noqa: PLC0415

    return orjson.dumps(obj).decode()


@main.command()
@click.argument("old", metavar="OLD.out")
@click.argument("new", metavar="NEW.out")
@click.option(
    "--changed",
    "changed",
    default=None,
    metavar="PATH",
    help="Write the NEW lines whose list changed (or whose input is new) here.",
)
@ENDPOINT
def diff(old: str, new: str, changed: str | None, endpoint_url: str | None) -> None:
    """Summarize what changed between two batch outputs (as JSON on stdout).

    \b
    Examples:
      pbatch diff monday/users.json.out tuesday/users.json.out
      pbatch diff monday/users.json.out tuesday/users.json.out --changed mail.jsonl
    """
    from .. import storage  # noqa: PLC0415
    from ..diff import diff as compare  # noqa: PLC0415
    from ..storage.paths import Named, check_disjoint  # noqa: PLC0415

    if changed is not None:
        check_disjoint(
            [Named("--changed", changed)],
            [Named("OLD.out", old), Named("NEW.out", new)],
            "choose another --changed",
        )
    if changed is None:
        summary = compare(old, new, None, endpoint_url)
    else:
        with storage.AtomicOutput(changed, endpoint_url=endpoint_url) as out:
            summary = compare(old, new, out, endpoint_url)
    emit(summary.as_dict())
