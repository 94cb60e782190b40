"""The batch inference job: read lines, validate, score in chunks, write in order (A.3-A.10).

Memory is bounded by one chunk of lines and one chunk x items score matrix, whatever
the input's length. Every non-blank input line gives exactly one output line, in order.
"""

from __future__ import annotations

import functools
import re
import secrets
import signal
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from . import io as pio
from . import jobs as jobs_mod
from .engines import DEFAULT_PARTITION_SIZE
from .errors import Interrupted, JobFailed, PbatchError, StorageError, UsageError
from .lines import (
    BOM,
    MAX_LINE_BYTES,
    BadLine,
    Request,
    error_line,
    is_blank,
    parse_line,
    success_line,
)
from .scoring import Answerer
from .solution import Solution, load
from .workers import ChunkResult, WorkerPool, default_workers

MAX_RESULTS = 500
ENGINES = ("local", "dask")
# a Dask scheduler address: [tcp|tls|ws|wss|ucx://]HOST:PORT, HOST a name, IPv4 or [IPv6]
SCHEDULER_RE = re.compile(
    r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):\d{1,5}$"
)


@dataclass
class JobParams:
    """Everything a job needs; mirrors CreateBatchInferenceJob plus pbatch's options."""

    solution: str
    input: str
    output: str | None = None
    job_name: str | None = None
    num_results: int = 25
    include_seen: bool = False
    compress: str | None = None
    compress_level: int = 1
    endpoint_url: str | None = None
    chunk_lines: int = 1024
    workers: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"
    scheduler: str | None = None
    partition_size: int = DEFAULT_PARTITION_SIZE


@dataclass
class Counts:
    """What a job did, for its record and its exit code."""

    read: int = 0
    answered: int = 0
    errors: int = 0
    blank: int = 0

    unknown_users: int = 0
    unknown_items: int = 0

    def add(self, result: ChunkResult) -> None:
        """Count what one answered chunk did."""
        self.answered += result.answered
        self.errors += result.errors
        self.unknown_users += result.unknown_users
        self.unknown_items += result.unknown_items

    def merge(self, other: Counts) -> None:
        """Add another reader's counts (a Dask partition's) to these."""
        for name in ("read", "answered", "errors", "blank", "unknown_users", "unknown_items"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_record(self) -> dict[str, int]:
        return {
            "unknownUsers": self.unknown_users,
            "unknownItems": self.unknown_items,
            "linesRead": self.read,
            "linesAnswered": self.answered,
            "linesWithErrors": self.errors,
            "blankLinesSkipped": self.blank,
        }


def new_job_name() -> str:
    """A default name: pbatch-YYYYmmdd-HHMMSS-xxxxxx."""
    return time.strftime("pbatch-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def solution_arn(path: str, sha256: str | None = None) -> str:
    """`arn:pbatch:local:solution-version/<absolute path or s3:// URL>[@sha256:<hex>]`."""
    arn = "arn:pbatch:local:solution-version/" + pio.display_path(path)
    return arn + (f"@sha256:{sha256}" if sha256 else "")


def check_params(p: JobParams) -> JobParams:
    """Usage errors, found before a job record exists."""
    if not 1 <= p.num_results <= MAX_RESULTS:
        raise UsageError(f"--num-results must be 1-{MAX_RESULTS}, not {p.num_results}")
    if p.compress not in (None, "gzip"):
        raise UsageError(f"--compress takes gzip, not {p.compress!r}")
    if p.workers is not None and not 1 <= p.workers <= 256:
        raise UsageError(f"--workers must be 1-256, not {p.workers}")
    if not 1 <= p.compress_level <= 9:
        raise UsageError("--compress-level must be 1-9")
    if p.job_name is not None:
        jobs_mod.check_name(p.job_name)
    if p.engine not in ENGINES:
        raise UsageError(f"--engine takes local or dask, not {p.engine!r}")
    if p.engine == "local" and p.scheduler is not None:
        raise UsageError("--scheduler needs --engine dask")
    if p.scheduler is not None and not SCHEDULER_RE.match(p.scheduler):
        raise UsageError(f"--scheduler takes tcp://HOST:PORT, not {p.scheduler!r}")
    if p.engine == "dask":
        if p.input == "-":
            raise UsageError("--engine dask reads files or s3:// inputs, not stdin")
        if p.output == "-" and p.scheduler is not None:
            raise UsageError("--engine dask with --scheduler cannot write to stdout; give --output")
        if p.scheduler is not None and p.workers is not None:
            raise UsageError("--workers sizes a local cluster; not with --scheduler")
        if p.partition_size < 1:
            raise UsageError(f"--partition-size must be at least 1 byte, not {p.partition_size}")
    return p


def read_chunks(
    stream: IO[bytes],
    counts: Counts,
    chunk_lines: int,
    *,
    start: int = 0,
    end: int | None = None,
) -> Iterator[list[tuple[bytes, bool]]]:
    """The stream's non-blank lines as (raw, too_long), `chunk_lines` at a time, in order
    (a UTF-8 BOM at the start and CRLF endings are accepted; blank lines are counted).

    With `start`/`end`, only the lines of that byte range of a seekable stream (a Dask
    partition, see `io.iter_partition_lines`); only the range at 0 may start with a BOM.
    """
    chunk: list[tuple[bytes, bool]] = []
    first = start == 0
    if start == 0 and end is None:
        lines = pio.iter_lines(stream, MAX_LINE_BYTES)
    else:
        lines = pio.iter_partition_lines(stream, start, end, MAX_LINE_BYTES)
    for raw, too_long in lines:
        if first:
            first = False
            if raw.startswith(BOM):
                raw = raw[len(BOM) :]
        if not too_long and is_blank(raw):
            counts.blank += 1
            continue
        counts.read += 1
        chunk.append((raw, too_long))
        if len(chunk) >= chunk_lines:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def answer_chunk(answerer: Answerer, chunk: list[tuple[bytes, bool]]) -> ChunkResult:
    """Parse, score and serialize one chunk of lines: the bytes of its output lines."""
    parsed = [parse_line(raw, answerer.query, too_long) for raw, too_long in chunk]
    valid = [r for r in parsed if isinstance(r, Request)]
    users0, items0 = answerer.unknown_users, answerer.unknown_items
    answers = iter(answerer.answer(valid))
    buf = []
    for r in parsed:
        if isinstance(r, BadLine):
            buf.append(error_line(r.echo, r.error))
        else:
            items, scores = next(answers)
            buf.append(success_line(r.obj, items, scores))
    return ChunkResult(
        b"".join(buf),
        answered=len(valid),
        errors=len(parsed) - len(valid),
        unknown_users=answerer.unknown_users - users0,
        unknown_items=answerer.unknown_items - items0,
    )


def answer_stream(
    stream: IO[bytes],
    out: IO[bytes],
    answerer: Answerer,
    counts: Counts,
    chunk_lines: int,
    tick: Callable[[], None] | None = None,
    pool: WorkerPool | None = None,
    *,
    start: int = 0,
    end: int | None = None,
) -> int:
    """Score a stream chunk by chunk and write one output line per input line, in order
    (on `pool`'s worker processes when given; only the byte range `start`-`end` when
    given). Returns the number of bytes written."""
    chunks = read_chunks(stream, counts, chunk_lines, start=start, end=end)
    if pool is None:
        results = (answer_chunk(answerer, chunk) for chunk in chunks)
    else:
        results = pool.map_ordered(chunks)
    written = 0
    for result in results:
        out.write(result.data)
        written += len(result.data)
        counts.add(result)
        if tick is not None:
            tick()
    return written


class _Progress:
    """Lines/s and errors so far on stderr, at most a few times a second."""

    def __init__(self, counts: Counts, enabled: bool) -> None:
        self.counts, self.enabled = counts, enabled
        self.start = self.last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.5:
            return
        self.last = now
        rate = self.counts.read / max(now - self.start, 1e-9)
        sys.stderr.write(
            f"\r{self.counts.read:,} lines, {rate:,.0f} lines/s, {self.counts.errors:,} errors"
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.last != self.start:
            sys.stderr.write("\n")


def _raise_on_signal(signum: int, frame: Any) -> None:
    raise Interrupted(f"stopped by {signal.Signals(signum).name}", signum)


def run_job(
    p: JobParams,
    store: jobs_mod.JobStore,
    *,
    progress: bool = False,
    on_solution: Callable[[Solution], None] | None = None,
) -> dict[str, Any]:
    """Run one batch inference job to ACTIVE (returning its record) or raise JobFailed.

    The job record goes PENDING -> IN PROGRESS -> ACTIVE / CREATE FAILED.
    """
    check_params(p)
    if p.engine == "dask":
        from .engines import dask as dask_engine  # noqa: PLC0415  (an optional extra)

        dask_engine.require()
    name = p.job_name or new_job_name()
    output = p.output or (pio.default_output(p.input) if p.input else "-")
    shown_input, shown_output = pio.display_path(p.input), pio.display_path(output)
    store.create(
        {
            "jobName": name,
            "batchInferenceJobArn": jobs_mod.ARN_PREFIX + name,
            "solutionVersionArn": solution_arn(p.solution),
            "solutionPath": pio.display_path(p.solution),
            "numResults": p.num_results,
            "jobInput": {"s3DataSource": {"path": shown_input}},
            "jobOutput": {"s3DataDestination": {"path": shown_output}},
            "batchInferenceJobConfig": p.config,
            "batchInferenceJobMode": "BATCH_INFERENCE",
            "includeSeen": p.include_seen,
        }
    )
    counts = Counts()
    started = time.monotonic()
    old_handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            old_handlers[sig] = signal.signal(sig, _raise_on_signal)
        except ValueError:
            pass  # not the main thread: signals stay with the caller
    outputs: list[str] = []
    engine: dict[str, Any] = {"engine": p.engine}
    try:
        solution = load(p.solution, p.endpoint_url)
        store.update(
            name,
            status=jobs_mod.IN_PROGRESS,
            solutionVersionArn=solution_arn(p.solution, solution.sha256),
            recipe=solution.recipe,
        )
        if on_solution is not None:
            on_solution(solution)
        refs = pio.list_inputs(p.input, p.endpoint_url)
        tick = _Progress(counts, progress)
        if p.engine == "dask":
            report = functools.partial(store.update, name)
            engine.update(
                dask_engine.run(p, name, solution, refs, output, counts, outputs, tick, report)
            )
        else:
            engine.update(_run_local(p, solution, refs, output, counts, outputs, tick))
        tick.done()
    except PbatchError as exc:
        store.update(
            name,
            status=jobs_mod.FAILED,
            failureReason=str(exc),
            durationSeconds=round(time.monotonic() - started, 3),
            outputs=outputs,
            **engine,
            **counts.as_record(),
        )
        if isinstance(exc, Interrupted):
            raise
        raise JobFailed(f"job {name} failed: {exc}") from None
    except BaseException as exc:  # a bug or a broken pipe: the record must still tell
        store.update(
            name,
            status=jobs_mod.FAILED,
            failureReason=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            outputs=outputs,
            **engine,
            **counts.as_record(),
        )
        raise
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    return store.update(
        name,
        status=jobs_mod.ACTIVE,
        durationSeconds=round(time.monotonic() - started, 3),
        outputs=outputs,
        **engine,
        **counts.as_record(),
    )


def _run_local(
    p: JobParams,
    solution: Solution,
    refs: list[pio.InputRef],
    output: str,
    counts: Counts,
    outputs: list[str],
    tick: Callable[[], None],
) -> dict[str, Any]:
    """The local engine: each input in turn, its chunks on this machine's worker
    processes; returns the record fields that describe the engine."""
    answerer = Answerer(solution, p.num_results, p.include_seen)
    workers = p.workers or default_workers()
    pool = WorkerPool(functools.partial(answer_chunk, answerer), workers) if workers > 1 else None
    try:
        for ref in refs:
            url = pio.output_url(output, ref.name, p.compress)
            stream = pio.open_input(ref.url, p.endpoint_url)
            try:
                with pio.AtomicOutput(
                    url, endpoint_url=p.endpoint_url, compresslevel=p.compress_level
                ) as out:
                    answer_guarded(
                        stream, out, answerer, counts, p.chunk_lines, tick, ref.url, pool
                    )
            finally:
                if stream is not sys.stdin.buffer:
                    stream.close()
            outputs.append(url)
    finally:
        if pool is not None:
            pool.close()
    return {"workers": workers}


def answer_guarded(
    stream: IO[bytes],
    out: IO[bytes],
    answerer: Answerer,
    counts: Counts,
    chunk: int,
    tick: Callable[[], None] | None,
    url: str,
    pool: WorkerPool | None = None,
    *,
    start: int = 0,
    end: int | None = None,
) -> int:
    """answer_stream, with read/write failures turned into one StorageError (also used
    by the Dask engine's workers for one partition). Returns the bytes written."""
    try:
        return answer_stream(stream, out, answerer, counts, chunk, tick, pool, start=start, end=end)
    except PbatchError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise StorageError(f"{url}: failed after {counts.read} lines: {exc}") from None
    except Exception as exc:
        name = type(exc).__module__
        if name.startswith("botocore") or name.startswith("urllib3"):
            raise StorageError(
                f"{url}: failed after {counts.read} lines: {pio.describe_s3_error(exc)}"
            ) from None
        raise


def exit_code(record: dict[str, Any]) -> int:
    """0 when every line was answered, 3 when some were error lines (A.10)."""
    return 3 if record.get("linesWithErrors") else 0
