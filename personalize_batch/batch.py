"""The batch inference job: read lines, validate, score in chunks, write in order (A.3-A.10).

Memory is bounded by one chunk of lines and one chunk x items score matrix, whatever
the input's length. Every non-blank input line gives exactly one output line, in order.
"""

from __future__ import annotations

import os
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
from .recipes.base import chunk_rows
from .scoring import Answerer
from .solution import Solution, load

MAX_RESULTS = 500


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
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Counts:
    """What a job did, for its record and its exit code."""

    read: int = 0
    answered: int = 0
    errors: int = 0
    blank: int = 0

    def as_record(self) -> dict[str, int]:
        return {
            "linesRead": self.read,
            "linesAnswered": self.answered,
            "linesWithErrors": self.errors,
            "blankLinesSkipped": self.blank,
        }


def new_job_name() -> str:
    """A default name: pbatch-YYYYmmdd-HHMMSS-xxxxxx."""
    return time.strftime("pbatch-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def solution_arn(path: str, sha256: str | None = None) -> str:
    """`arn:pbatch:local:solution-version/<absolute path>[@sha256:<hex>]`."""
    arn = "arn:pbatch:local:solution-version/" + os.path.abspath(path)
    return arn + (f"@sha256:{sha256}" if sha256 else "")


def check_params(p: JobParams) -> JobParams:
    """Usage errors, found before a job record exists."""
    if not 1 <= p.num_results <= MAX_RESULTS:
        raise UsageError(f"--num-results must be 1-{MAX_RESULTS}, not {p.num_results}")
    if p.compress not in (None, "gzip"):
        raise UsageError(f"--compress takes gzip, not {p.compress!r}")
    if not 1 <= p.compress_level <= 9:
        raise UsageError("--compress-level must be 1-9")
    if p.job_name is not None:
        jobs_mod.check_name(p.job_name)
    return p


def iter_requests(stream: IO[bytes], query: str, counts: Counts) -> Iterator[Request | BadLine]:
    """Parse a stream's non-blank lines, in order (UTF-8 BOM and CRLF accepted)."""
    first = True
    for raw, too_long in pio.iter_lines(stream, MAX_LINE_BYTES):
        if first:
            first = False
            if raw.startswith(BOM):
                raw = raw[len(BOM) :]
        if not too_long and is_blank(raw):
            counts.blank += 1
            continue
        counts.read += 1
        yield parse_line(raw, query, too_long)


def answer_stream(
    stream: IO[bytes],
    out: IO[bytes],
    answerer: Answerer,
    counts: Counts,
    chunk_lines: int,
    tick: Callable[[], None] | None = None,
) -> None:
    """Score a stream chunk by chunk and write one output line per input line."""
    query = answerer.query
    pending: list[Request | BadLine] = []

    def flush() -> None:
        valid = [r for r in pending if isinstance(r, Request)]
        answers = iter(answerer.answer(valid))
        buf = []
        for r in pending:
            if isinstance(r, BadLine):
                counts.errors += 1
                buf.append(error_line(r.echo, r.error))
            else:
                items, scores = next(answers)
                counts.answered += 1
                buf.append(success_line(r.obj, items, scores))
        out.write(b"".join(buf))
        pending.clear()
        if tick is not None:
            tick()

    for request in iter_requests(stream, query, counts):
        pending.append(request)
        if len(pending) >= chunk_lines:
            flush()
    if pending:
        flush()


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


_stops: list[int] = []  # the stop signal received, until run_job has caught its Interrupted


def _raise_on_signal(signum: int, frame: Any) -> None:
    """Raise Interrupted, and again every 0.25 s (SIGALRM) until run_job has caught it.

    Python runs a handler wherever the main thread is, also inside a __del__ or a weakref
    callback, which print the exception and drop it: the job ran on (on an idle pipe,
    forever). While the stop is on its way out (cleanup in an __exit__ or finally sees
    it as the exception being handled) the repeat stays quiet.
    """
    if signum == signal.SIGALRM:
        if not _stops or isinstance(sys.exc_info()[1], Interrupted):
            return
        signum = _stops[0]
    else:
        _stops[:] = [signum]
        signal.setitimer(signal.ITIMER_REAL, 0.25, 0.25)
    raise Interrupted(f"stopped by {signal.Signals(signum).name}", signum)


def _stop_caught() -> None:
    """run_job has the stop (or another failure): no more repeats."""
    if _stops:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _stops.clear()


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
    name = p.job_name or new_job_name()
    output = p.output or (pio.default_output(p.input) if p.input else "-")
    shown_input, shown_output = pio.display_path(p.input), pio.display_path(output)
    store.create(
        {
            "jobName": name,
            "batchInferenceJobArn": jobs_mod.ARN_PREFIX + name,
            "solutionVersionArn": solution_arn(p.solution),
            "solutionPath": os.path.abspath(p.solution),
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
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        try:
            old_handlers[sig] = signal.signal(sig, _raise_on_signal)
        except ValueError:
            pass  # not the main thread: signals stay with the caller
    outputs: list[str] = []
    try:
        solution = load(p.solution)
        store.update(
            name,
            status=jobs_mod.IN_PROGRESS,
            solutionVersionArn=solution_arn(p.solution, solution.sha256),
            recipe=solution.recipe,
        )
        if on_solution is not None:
            on_solution(solution)
        answerer = Answerer(solution, p.num_results, p.include_seen)
        chunk = min(p.chunk_lines, chunk_rows(len(solution.item_ids)))
        refs = pio.list_inputs(p.input, p.endpoint_url)
        tick = _Progress(counts, progress)
        for ref in refs:
            url = pio.output_url(output, ref.name, p.compress)
            stream = pio.open_input(ref.url, p.endpoint_url)
            try:
                with pio.AtomicOutput(
                    url, endpoint_url=p.endpoint_url, compresslevel=p.compress_level
                ) as out:
                    _answer_guarded(stream, out, answerer, counts, chunk, tick, ref.url)
            finally:
                if stream is not sys.stdin.buffer:
                    stream.close()
            outputs.append(url)
        tick.done()
    except (PbatchError, Interrupted) as exc:
        _stop_caught()
        store.update(
            name,
            status=jobs_mod.FAILED,
            failureReason=str(exc),
            durationSeconds=round(time.monotonic() - started, 3),
            outputs=outputs,
            **counts.as_record(),
        )
        if isinstance(exc, Interrupted):
            raise
        raise JobFailed(f"job {name} failed: {exc}") from None
    except BaseException as exc:  # a bug or a broken pipe: the record must still tell
        _stop_caught()
        store.update(
            name,
            status=jobs_mod.FAILED,
            failureReason=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            outputs=outputs,
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
        unknownUsers=answerer.unknown_users,
        unknownItems=answerer.unknown_items,
        **counts.as_record(),
    )


def _answer_guarded(
    stream: IO[bytes],
    out: IO[bytes],
    answerer: Answerer,
    counts: Counts,
    chunk: int,
    tick: Callable[[], None],
    url: str,
) -> None:
    """answer_stream, with read/write failures turned into one StorageError."""
    try:
        answer_stream(stream, out, answerer, counts, chunk, tick)
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
