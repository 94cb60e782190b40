"""A job's options: one object that the CLI, the SDK, the service, the console, the
Dask engine and a resumed job all build or read, checked in one place and serialized
one way (`to_json` / `from_json`, which checkpoints and the background worker use).

`AnswerOptions` is the part of them that decides each line's answer: the scorer
(job.scoring) takes it from a job, a Dask partition or a one-off request alike.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from .. import storage
from ..arns import INFERENCE, SEGMENT, job_arn, solution_arn
from ..errors import UsageError
from ..filters.parse import check_target, parse_filter
from ..recipes.protocol import (
    MAX_RESULTS,
    MAX_SEGMENT_RESULTS,
    MIN_SEGMENT_RESULTS,
    SEGMENT_SHARE,
    USER_SEGMENTATION,
)
from . import store as jobs_mod
from .exploration import Exploration
from .framing import DEFAULT_PARTITION_SIZE

ENGINES = ("local", "dask")
# a Dask scheduler address: [tcp|tls|ws|wss|ucx://]HOST:PORT, HOST a name, IPv4 or [IPv6]
SCHEDULER_RE = re.compile(
    r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):\d{1,5}$"
)
MAX_METADATA_FIELDS = 10  # Personalize's metadataColumns limit per request (B.7)


@dataclass(frozen=True)
class AnswerOptions:
    """How each line is answered: a filter expression (with how its errors name where
    it came from), item exploration, item fields beside each item, the list's length and
    whether a user's own items may be in it."""

    filter_expression: str | None = None
    filter_source: str = "--filter"
    exploration: Exploration | None = None
    item_metadata: tuple[str, ...] = ()  # item fields for each item's metadata
    metadata_source: str = "--item-metadata"  # how errors name the item fields' source
    num_results: int = 25
    include_seen: bool = False


# answers (lines x numResults entries) a chunk of lines holds: a segment job's lines may
# ask for millions of users each, and a chunk's answers are held until it is written
CHUNK_ANSWERS = 1 << 21


@dataclass
class JobParams:
    """Everything a job needs; mirrors CreateBatchInferenceJob / CreateBatchSegmentJob
    plus pbatch's options. `kind` and `num_results` left None are decided by the
    solution's recipe when it is loaded (`fit_to_recipe`)."""

    solution: str
    input: str
    output: str | None = None
    job_name: str | None = None
    num_results: int | None = None
    include_seen: bool = False
    compress: str | None = None
    compress_level: int = 1
    endpoint_url: str | None = None
    chunk_lines: int = 1024
    workers: int | None = None
    skip_errors: bool = False
    errors_to: str | None = None
    max_error_rate: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    solution_sha256: str | None = None  # refuse the solution file if its hash differs
    record_extra: dict[str, Any] = field(default_factory=dict)  # e.g. roleArn, as given
    filter_expression: str | None = None
    filter_source: str = "--filter"  # how errors name where the expression came from
    exploration: Exploration = field(default_factory=Exploration)
    engine: str = "local"
    scheduler: str | None = None
    partition_size: int = DEFAULT_PARTITION_SIZE
    events: str | None = None  # fresh interactions folded in before scoring (job/foldin.py)
    item_metadata: tuple[str, ...] = ()  # item fields to add beside recommendedItems
    filter_file: str | None = None  # the file filter_expression was read from: an input
    api: bool = False  # started through the SDK, aws-shaped commands or console: messages
    # name the request's members (jobOutput), not the CLI's options
    kind: str | None = None  # INFERENCE or SEGMENT (arns); None: the solution's recipe decides

    def answer_options(self) -> AnswerOptions:
        """What decides each line's answer (once fit_to_recipe has set num_results)."""
        return AnswerOptions(
            self.filter_expression,
            self.filter_source,
            self.exploration,
            tuple(self.item_metadata),
            num_results=self.results(),
            include_seen=self.include_seen,
        )

    def results(self) -> int:
        """numResults, decided (fit_to_recipe); before that, the inference default."""
        return 25 if self.num_results is None else self.num_results

    def lines_per_chunk(self) -> int:
        """Lines read and answered at a time: chunk_lines, fewer when each line asks for
        so many answers that a chunk would hold more than CHUNK_ANSWERS (a segment job's
        answers are the same bytes whatever the chunking)."""
        return max(1, min(self.chunk_lines, CHUNK_ANSWERS // self.results()))

    def output_url(self) -> str:
        """The output folder or prefix: as given, or beside the input."""
        return self.output or (storage.default_output(self.input) if self.input else "-")


def check_params(p: JobParams) -> JobParams:
    """Usage errors, found before a job record exists."""
    if p.num_results is not None and not 1 <= p.num_results <= MAX_SEGMENT_RESULTS:
        raise UsageError(
            f"{'numResults' if p.api else '--num-results'} must be 1-{MAX_RESULTS} "
            f"(1-{MAX_SEGMENT_RESULTS:,} users per line of a segment job), not {p.num_results}"
        )
    if p.compress not in (None, "gzip"):
        raise UsageError(f"--compress takes gzip, not {p.compress!r}")
    if p.workers is not None and not 1 <= p.workers <= 256:
        raise UsageError(f"--workers must be 1-256, not {p.workers}")
    if p.max_error_rate is not None and not 0.0 <= p.max_error_rate <= 1.0:
        raise UsageError("--max-error-rate must be between 0 and 1")
    if not 1 <= p.compress_level <= 9:
        raise UsageError("--compress-level must be 1-9")
    if p.job_name is not None:
        jobs_mod.check_name(p.job_name)
    if p.filter_expression is not None:
        parse_filter(
            p.filter_expression, p.filter_source
        )  # syntax errors before the job exists (A.6)
    p.exploration.check()
    p.item_metadata = check_field_count(tuple(p.item_metadata), "--item-metadata")
    _check_engine(p)
    return p


def default_results(segment: bool, n_users: int) -> int:
    """numResults when not given: 25 items (Personalize's default), or for a segment job
    the top SEGMENT_SHARE of the solution's users, at least MIN_SEGMENT_RESULTS."""
    if not segment:
        return 25
    return min(MAX_SEGMENT_RESULTS, max(MIN_SEGMENT_RESULTS, round(SEGMENT_SHARE * n_users)))


def fit_to_recipe(p: JobParams, recipe: str, recipe_type: str, n_users: int) -> None:
    """Decide the job's kind and numResults from its solution's recipe (check_recipe
    first)."""
    p.kind = check_recipe(p, recipe, recipe_type)
    if p.num_results is None:
        p.num_results = default_results(p.kind == SEGMENT, n_users)


def check_recipe(p: JobParams, recipe: str, recipe_type: str) -> str:
    """The kind of job a solution's recipe runs; refused, what it cannot do: a job of
    the other kind, more than MAX_RESULTS items a line, item fields beside users, a
    filter of the other kind (ItemID for users, UserID for items)."""
    segment = recipe_type == USER_SEGMENTATION
    kind = SEGMENT if segment else INFERENCE
    if p.kind is not None and p.kind != kind:
        raise UsageError(wrong_kind(p.kind, recipe))
    if p.num_results is not None and not segment and p.num_results > MAX_RESULTS:
        name = "numResults" if p.api else "--num-results"
        raise UsageError(
            f"{name} must be 1-{MAX_RESULTS} for {a(recipe)} solution, not {p.num_results} "
            f"(only a segment solution takes more: up to {MAX_SEGMENT_RESULTS:,} users per line)"
        )
    if p.filter_expression is not None:
        filt = parse_filter(p.filter_expression, p.filter_source)
        check_target(filt, segment, recipe, p.filter_source)
    if segment and p.item_metadata:
        raise UsageError(
            f"{'metadataColumns' if p.api else '--item-metadata'} adds item fields to "
            f"recommended items; {a(recipe)} solution answers users"
        )
    return kind


def a(word: str) -> str:
    """`word` with its indefinite article (recipe names: user- is "a")."""
    return f"{'an' if word[0] in 'aeio' else 'a'} {word}"


def wrong_kind(kind: str, recipe: str) -> str:
    """Why a job of `kind` cannot use a solution of `recipe`, and what to do instead."""
    if kind == SEGMENT:
        return (
            "a batch segment job needs a USER_SEGMENTATION solution (item-affinity or "
            f"item-attribute-affinity), not {a(recipe)} solution, which answers items: "
            "create a batch inference job for it"
        )
    return (
        f"a batch inference job needs a solution that answers items, not {a(recipe)} "
        "solution, which answers users (USER_SEGMENTATION): create a batch segment job for it"
    )


def _check_engine(p: JobParams) -> None:
    if p.engine not in ENGINES:
        raise UsageError(f"--engine takes local or dask, not {p.engine!r}")
    if p.engine == "local" and p.scheduler is not None:
        raise UsageError("--scheduler needs --engine dask")
    if p.scheduler is not None and not SCHEDULER_RE.match(p.scheduler):
        raise UsageError(f"--scheduler takes tcp://HOST:PORT, not {p.scheduler!r}")
    if p.engine != "dask":
        return
    if p.input == "-":
        raise UsageError("--engine dask reads files or s3:// inputs, not stdin")
    if p.output == "-" and p.scheduler is not None:
        raise UsageError("--engine dask with --scheduler cannot write to stdout; give --output")
    if p.scheduler is not None and p.workers is not None:
        raise UsageError("--workers sizes a local cluster; not with --scheduler")
    if p.partition_size < 1:
        raise UsageError(f"--partition-size must be at least 1 byte, not {p.partition_size}")
    if p.errors_to or p.skip_errors or p.max_error_rate is not None:
        raise UsageError(
            "--errors-to, --skip-errors and --max-error-rate work with --engine local only"
        )


def parse_item_fields(text: str | None, option: str = "--item-metadata") -> tuple[str, ...]:
    """`TITLE,GENRES` -> ("TITLE", "GENRES"): upper-cased (the solution stores item field
    names so), first occurrence kept; at most MAX_METADATA_FIELDS."""
    if text is None:
        return ()
    fields = tuple(dict.fromkeys(f.strip().upper() for f in text.split(",") if f.strip()))
    if not fields:
        raise UsageError(f"{option} needs item field names, like TITLE,GENRES")
    return check_field_count(fields, option)


def check_field_count(fields: tuple[str, ...], option: str) -> tuple[str, ...]:
    if len(fields) > MAX_METADATA_FIELDS:
        raise UsageError(
            f"{option} names {len(fields)} fields (at most {MAX_METADATA_FIELDS}, "
            "as Personalize's metadataColumns)"
        )
    return fields


# -- the one serialization -----------------------------------------------------------


def to_json(p: JobParams) -> dict[str, Any]:
    """A job's parameters as JSON, local paths absolute (a resume may run elsewhere)."""
    d = dataclasses.asdict(p)
    for key in ("solution", "input", "output", "events"):
        if d.get(key) is not None and not d[key].startswith("arn:"):
            d[key] = storage.display_path(d[key])
    return d


def from_json(d: dict[str, Any]) -> JobParams:
    """The JobParams `to_json` wrote."""
    d = dict(d)
    d["exploration"] = Exploration(**d["exploration"])
    d["item_metadata"] = tuple(d.get("item_metadata") or ())
    return JobParams(**d)


def exploration_from_config(config: dict[str, Any]) -> Exploration:
    """itemExplorationConfig's string values as an Exploration (defaults otherwise)."""
    given = config.get("itemExplorationConfig") or {}
    default = Exploration()
    return Exploration(
        float(given.get("explorationWeight", default.weight)),
        float(given.get("explorationItemAgeCutOff", default.item_age_cutoff_days)),
        default.seed,
    )


# the members of one kind's record that the other kind's has not
KIND_KEYS = {
    INFERENCE: ("batchInferenceJobArn", "batchInferenceJobConfig", "batchInferenceJobMode"),
    SEGMENT: ("batchSegmentJobArn",),
}


def to_record(p: JobParams, name: str, solution: str, sha256: str | None) -> dict[str, Any]:
    """A new job's record, shaped as Personalize's DescribeBatchInferenceJob or, for a
    segment job, DescribeBatchSegmentJob: what `from_record` reads back (the background
    worker runs the job from it). A job whose kind is not decided yet is recorded as an
    inference job until its solution is loaded (see job.run)."""
    common = {
        "jobName": name,
        "solutionVersionArn": solution_arn(solution, sha256),
        "solutionPath": storage.display_path(solution),
        "numResults": p.num_results,
        **({"filterExpression": p.filter_expression} if p.filter_expression else {}),
        "jobInput": {"s3DataSource": {"path": storage.display_path(p.input)}},
        "jobOutput": {"s3DataDestination": {"path": storage.display_path(p.output_url())}},
    }
    if p.kind == SEGMENT:
        return {
            "jobName": name,
            "batchSegmentJobArn": job_arn(name, SEGMENT),
            **common,
            "includeSeen": p.include_seen,
            **p.record_extra,
        }
    return {
        "jobName": name,
        "batchInferenceJobArn": job_arn(name),
        **common,
        "batchInferenceJobConfig": {
            **p.config,
            "itemExplorationConfig": p.exploration.as_config(),
        },
        "batchInferenceJobMode": "BATCH_INFERENCE",
        "includeSeen": p.include_seen,
        **({"itemMetadata": list(p.item_metadata)} if p.item_metadata else {}),
        **p.record_extra,
    }


def from_record(record: dict[str, Any]) -> JobParams:
    """The JobParams of a job recorded PENDING by the service (its Personalize-shaped
    record is what CreateBatchInferenceJob or CreateBatchSegmentJob was given)."""
    arn = record["solutionVersionArn"]
    _, sep, sha = arn.rpartition("@sha256:")
    config = record.get("batchInferenceJobConfig") or {}
    return JobParams(
        kind=jobs_mod.kind_of(record),
        solution=record["solutionPath"],
        input=record["jobInput"]["s3DataSource"]["path"],
        output=record["jobOutput"]["s3DataDestination"]["path"],
        job_name=record["jobName"],
        num_results=record["numResults"],
        include_seen=record.get("includeSeen", False),
        config=config,
        filter_expression=record.get("filterExpression"),
        exploration=exploration_from_config(config),
        solution_sha256=sha if sep else None,
        item_metadata=tuple(record.get("itemMetadata", ())),
    )
