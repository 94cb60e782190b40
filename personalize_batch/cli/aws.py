"""aws-CLI-shaped commands (A.15, A.17): `pbatch create-batch-inference-job` (returns the
ARN at once; the job runs in a detached process), `describe-batch-inference-job`,
`list-batch-inference-jobs` and `wait batch-inference-job-active`, and for batch segment
jobs `create-batch-segment-job`, `describe-batch-segment-job` and
`list-batch-segment-jobs`. Option names are the aws CLI's (plus the camelCase spellings
of Personalize's older docs); each command calls one function of `service.control`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .common import emit, main

ARN_HELP = "The job's ARN (arn:pbatch:local:batch-inference-job/NAME) or its name."
SEGMENT_ARN_HELP = "The job's ARN (arn:pbatch:local:batch-segment-job/NAME) or its name."


def _structure(option: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        from .shorthand import parse_structure  # noqa: PLC0415

        return None if value is None else parse_structure(value, option)

    return parse


def _field(name: str, dest: str, **kwargs: Any) -> Callable[..., Any]:
    """An option under the aws CLI's spelling (--job-name) and the request field's
    (--jobName)."""
    dashed = "--" + "".join(f"-{c.lower()}" if c.isupper() else c for c in name)
    return click.option(dashed, f"--{name}", dest, **kwargs)


_JOB_ARN = _field("batchInferenceJobArn", "arn", required=True, help=ARN_HELP)
_SEGMENT_JOB_ARN = _field("batchSegmentJobArn", "arn", required=True, help=SEGMENT_ARN_HELP)


def _job_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options both kinds of job share, as their Create calls name them."""
    for option in reversed(
        [
            _field("jobName", "job_name", required=True, help="The job's name."),
            _field(
                "solutionVersionArn",
                "solution",
                required=True,
                metavar="PATH|ARN",
                help="The solution file, or arn:pbatch:local:solution-version/PATH[@sha256:HEX].",
            ),
            _field(
                "jobInput",
                "job_input",
                required=True,
                metavar="SHORTHAND|JSON",
                callback=_structure("--job-input"),
                help="s3DataSource={path=PATH} (a file, folder, s3://bucket/key or prefix), "
                "JSON, or file://request.json.",
            ),
            _field(
                "jobOutput",
                "job_output",
                required=True,
                metavar="SHORTHAND|JSON",
                callback=_structure("--job-output"),
                help="s3DataDestination={path=DIR} (a folder or s3:// prefix), JSON or file://.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _aws_globals(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--region and --profile, so copied aws-cli lines run; neither is used."""
    fn = click.option(
        "--profile", default=None, expose_value=False, help="Accepted for aws-cli scripts; unused."
    )(fn)
    return click.option(
        "--region", default=None, expose_value=False, help="Accepted for aws-cli scripts; unused."
    )(fn)


def _store() -> Any:
    from ..job.store import JobStore  # noqa: PLC0415

    return JobStore()


def _list_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every list-… command takes (aws-cli's paging and the solution)."""
    for option in reversed(
        [
            _field(
                "solutionVersionArn",
                "solution",
                default=None,
                help="Only jobs of this solution (path or ARN).",
            ),
            click.option(
                "--max-items",
                type=click.IntRange(min=1),
                default=None,
                help="At most this many jobs; NextToken is printed when there are more.",
            ),
            click.option(
                "--starting-token", default=None, help="The NextToken of an earlier call."
            ),
            click.option(
                "--page-size",
                type=click.IntRange(1, 100),
                default=100,
                help="Jobs fetched per page.",
            ),
            _aws_globals,
        ]
    ):
        fn = option(fn)
    return fn


@main.command("create-batch-inference-job")
@_job_options
@_field(
    "numResults", "num_results", type=int, default=None, help="Items per line, 1-500 (default 25)."
)
@_field("filterArn", "filter_arn", default=None, help="A filter.")
@_field(
    "batchInferenceJobConfig",
    "config",
    default=None,
    metavar="SHORTHAND|JSON",
    callback=_structure("--batch-inference-job-config"),
    help='e.g. {"itemExplorationConfig":{"explorationWeight":"0.3"}}.',
)
@_field("roleArn", "role_arn", default=None, help="Recorded with the job; unused.")
@_aws_globals
def create_batch_inference_job(
    job_name: str,
    solution: str,
    job_input: Any,
    job_output: Any,
    num_results: int | None,
    filter_arn: str | None,
    config: Any,
    role_arn: str | None,
) -> None:
    """Create a batch inference job, like `aws personalize create-batch-inference-job`:
    prints {"batchInferenceJobArn": ...} at once, the job runs in the background.

    \b
    Examples:
      pbatch create-batch-inference-job --job-name nightly --solution-version-arn model.npz
        --job-input s3DataSource={path=s3://bkt/in/} --job-output s3DataDestination={path=s3://bkt/out/}
    """
    from ..service.control import create_batch_inference_job as create  # noqa: PLC0415

    emit(
        create(
            _store(),
            jobName=job_name,
            solutionVersionArn=solution,
            jobInput=job_input,
            jobOutput=job_output,
            numResults=num_results,
            filterArn=filter_arn,
            batchInferenceJobConfig=config,
            roleArn=role_arn,
        )
    )


@main.command("describe-batch-inference-job")
@_JOB_ARN
@_aws_globals
def describe_batch_inference_job(arn: str) -> None:
    """Describe a job, like `aws personalize describe-batch-inference-job` (with pbatch's
    counts: lines read so far, errors, outputs)."""
    from ..service.control import describe_batch_inference_job as describe  # noqa: PLC0415

    emit(describe(_store(), batchInferenceJobArn=arn))


@main.command("list-batch-inference-jobs")
@_list_options
def list_batch_inference_jobs(
    solution: str | None, max_items: int | None, starting_token: str | None, page_size: int
) -> None:
    """List jobs newest first, like `aws personalize list-batch-inference-jobs` (pages are
    fetched and joined, as aws-cli does)."""
    from ..service.control import list_batch_inference_jobs as list_jobs  # noqa: PLC0415

    emit(_joined(list_jobs, "batchInferenceJobs", solution, max_items, starting_token, page_size))


def _joined(
    list_jobs: Callable[..., dict[str, Any]],
    key: str,
    solution: str | None,
    max_items: int | None,
    starting_token: str | None,
    page_size: int,
) -> dict[str, Any]:
    """The pages of a listing joined, as aws-cli does (NextToken when --max-items cut it)."""
    store, jobs, token = _store(), [], starting_token
    while True:
        size = page_size if max_items is None else min(page_size, max_items - len(jobs))
        page = list_jobs(store, solutionVersionArn=solution, maxResults=size, nextToken=token)
        jobs.extend(page[key])
        token = page["nextToken"]
        if token is None or (max_items is not None and len(jobs) >= max_items):
            break
    out: dict[str, Any] = {key: jobs}
    if token is not None:
        out["NextToken"] = token
    return out


@main.command("create-batch-segment-job")
@_job_options
@_field(
    "numResults",
    "num_results",
    type=int,
    default=None,
    help="Users per line, 1-5,000,000 (default: the top 1 % of the solution's users, at least 25).",
)
@_field("filterArn", "filter_arn", default=None, help="A filter of users (INCLUDE/EXCLUDE UserID).")
@_field("roleArn", "role_arn", default=None, help="Recorded with the job; unused.")
@_aws_globals
def create_batch_segment_job(
    job_name: str,
    solution: str,
    job_input: Any,
    job_output: Any,
    num_results: int | None,
    filter_arn: str | None,
    role_arn: str | None,
) -> None:
    """Create a batch segment job, like `aws personalize create-batch-segment-job`: prints
    {"batchSegmentJobArn": ...} at once, the job runs in the background. The solution is
    an item-affinity or item-attribute-affinity one; lines ask {"itemId": ...} or
    {"itemAttributes": ...} and are answered with recommendedUsers.

    \b
    Examples:
      pbatch create-batch-segment-job --job-name mailing --solution-version-arn affinity.npz
        --job-input s3DataSource={path=items.json} --job-output s3DataDestination={path=out/}
    """
    from ..service.control import create_batch_segment_job as create  # noqa: PLC0415

    emit(
        create(
            _store(),
            jobName=job_name,
            solutionVersionArn=solution,
            jobInput=job_input,
            jobOutput=job_output,
            numResults=num_results,
            filterArn=filter_arn,
            roleArn=role_arn,
        )
    )


@main.command("describe-batch-segment-job")
@_SEGMENT_JOB_ARN
@_aws_globals
def describe_batch_segment_job(arn: str) -> None:
    """Describe a batch segment job, like `aws personalize describe-batch-segment-job`
    (with pbatch's counts: lines read so far, errors, outputs)."""
    from ..service.control import describe_batch_segment_job as describe  # noqa: PLC0415

    emit(describe(_store(), batchSegmentJobArn=arn))


@main.command("list-batch-segment-jobs")
@_list_options
def list_batch_segment_jobs(
    solution: str | None, max_items: int | None, starting_token: str | None, page_size: int
) -> None:
    """List batch segment jobs newest first, like `aws personalize list-batch-segment-jobs`
    (pages are fetched and joined, as aws-cli does)."""
    from ..service.control import list_batch_segment_jobs as list_jobs  # noqa: PLC0415

    emit(_joined(list_jobs, "batchSegmentJobs", solution, max_items, starting_token, page_size))


@main.group("wait")
def wait() -> None:
    """Wait for a job, like `aws ... wait` (exit 255 on failure)."""


@wait.command("batch-inference-job-active")
@_JOB_ARN
@click.option(
    "--delay",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=1800,
    show_default=True,
    help="Polls before giving up (exit 255).",
)
@_aws_globals
def wait_active(arn: str, delay: float, max_attempts: int) -> None:
    """Return (exit 0, no output) once the job is ACTIVE; exit 255 when it is CREATE
    FAILED, unknown, or not ACTIVE after --max-attempts polls."""
    from ..service.control import wait_batch_inference_job_active  # noqa: PLC0415

    wait_batch_inference_job_active(
        _store(), batchInferenceJobArn=arn, delay=delay, max_attempts=max_attempts
    )
