"""The batch inference job: read lines, validate, score in chunks, write in order (A.3-A.10).

Memory is bounded by one chunk of lines and one chunk x items score matrix, whatever
the input's length. Every non-blank input line gives exactly one output line, in order.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import functools
import itertools
import os
import re
import secrets
import signal
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from .. import storage
from ..errors import Interrupted, JobFailed, NotFound, PbatchError, StorageError, UsageError
from ..filters.parse import parse_filter
from ..recipes.exploration import Exploration
from ..recipes.protocol import MAX_RESULTS
from ..solution import Solution, load, tuning_summary
from ..storage import paths
from . import checkpoint as resume_mod
from . import framing, preflight
from . import store as jobs_mod
from .diagnostics import IdTally, diagnose
from .engines import DEFAULT_PARTITION_SIZE
from .framing import BLANK, MAX_LINE_BYTES, without_bom
from .lines import BadLine, Request, error_line, success_line, success_lines
from .scoring import Answerer, check_field_count, metadata_columns
from .workers import ChunkResult, WorkerPool, default_workers

# a worker process is sent this many chunks' lines at a time when the input is all there
# (a file, an S3 object): one task of 1,024 cheap lines (popularity-count) cost about as
# much to hand over as to answer. A pipe's lines go out 1,024 at a time, so a slow
# writer's lines are answered as they come.
TASK_CHUNKS = 4
BLOCK_MIN_BYTES = 4096  # the smallest read for a block of lines (read_blocks)
TASK_SECONDS = 0.1  # a worker's time on one block of costly lines (_Pace)
SOLUTION_ARN_PREFIX = jobs_mod.SOLUTION_ARN_PREFIX
# ARN kinds that name a solution file (a campaign is a deployed solution version)
SOLUTION_ARN_KINDS = ("solution-version", "solution", "campaign")
PROGRESS_SECONDS = 2.0  # how often a running job writes its counts to its record
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
    events: str | None = None  # fresh interactions folded in before scoring (foldin.py)
    item_metadata: tuple[str, ...] = ()  # item fields to add beside recommendedItems
    filter_file: str | None = None  # the file filter_expression was read from: an input
    api: bool = False  # started through the SDK, aws-shaped commands or console: messages
    # name the request's members (jobOutput), not the CLI's options


@dataclass
class Counts:
    """What a job did, for its record and its exit code."""

    read: int = 0
    answered: int = 0
    errors: int = 0
    blank: int = 0

    ids_not_strings: int = 0
    lists_ignored: int = 0
    ids: IdTally = field(default_factory=IdTally)

    def add(self, result: ChunkResult) -> None:
        """Count what one answered chunk did."""
        self.read += result.read  # counted by a worker (answer_block)
        self.blank += result.blank
        self.answered += result.answered
        self.errors += result.errors
        self.ids_not_strings += result.ids_not_strings
        self.lists_ignored += result.lists_ignored
        self.ids.add(result.ids)

    def merge(self, other: Counts) -> None:
        """Add another reader's counts (a Dask partition's) to these."""
        for name in ("read", "answered", "errors", "blank", "ids_not_strings", "lists_ignored"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ids.merge(other.ids)

    def as_record(self) -> dict[str, int]:
        return {
            "unknownUsers": self.ids.unknown_users,
            "unknownItems": self.ids.unknown_items,
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
    arn = SOLUTION_ARN_PREFIX + storage.display_path(path)
    return arn + (f"@sha256:{sha256}" if sha256 else "")


def parse_solution_ref(ref: str) -> tuple[str, str | None]:
    """A solution named by its path or `arn:pbatch:local:solution-version/PATH[@sha256:HEX]`
    (also `.../solution/PATH`, `.../campaign/PATH`) -> (path, sha256 or None)."""
    if not ref.startswith("arn:"):
        return ref, None
    prefix, _, rest = ref.partition("/")
    parts = prefix.split(":")
    if len(parts) != 4 or parts[:3] != ["arn", "pbatch", "local"] or not rest:
        raise UsageError(
            f"not a pbatch solution ARN: {ref!r} (expected {SOLUTION_ARN_PREFIX}PATH or a path)"
        )
    if parts[3] not in SOLUTION_ARN_KINDS:
        raise UsageError(f"{ref!r} names a {parts[3]}, not a solution version")
    path, sep, sha = rest.rpartition("@sha256:")
    if not sep:
        return rest, None
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise UsageError(f"{ref!r}: @sha256: needs 64 lower-case hex digits")
    return path, sha


def check_solution_hash(path: str, loaded: str, wanted: str | None) -> None:
    """The file named by an ARN with @sha256: must still be that version."""
    if wanted is not None and loaded != wanted:
        raise NotFound(
            f"solution version not found: {path} has sha256 {loaded[:12]}…, "
            f"the ARN names {wanted[:12]}… (the file was replaced)"
        )


def check_params(p: JobParams) -> JobParams:
    """Usage errors, found before a job record exists."""
    if not 1 <= p.num_results <= MAX_RESULTS:
        raise UsageError(f"--num-results must be 1-{MAX_RESULTS}, not {p.num_results}")
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


def read_numbered_chunks(
    stream: IO[bytes],
    counts: Counts,
    chunk_lines: int,
    *,
    start: int = 0,
    end: int | None = None,
    skip: int = 0,
    pauses: bool = False,
) -> Iterator[tuple[list[tuple[bytes, bool]], list[int]] | None]:
    """The stream's non-blank lines as (raw, too_long), `chunk_lines` at a time (fewer when
    they hold `chunk_lines` KiB: long lines do not make a chunk huge), in order,
    with their line numbers (1-based, blank lines counted; within the range when one is
    given). A UTF-8 BOM at the start and CRLF endings are accepted.

    With `start`/`end`, only the lines of that byte range of a seekable stream (a Dask
    partition, see `framing.iter_partition_lines`); only the range at 0 may start with a BOM.
    The first `skip` lines are counted, not yielded (a resumed job answered them).
    With `pauses`, a pipe's lines so far are yielded as a shorter chunk, then None, when
    its writer is slower than the reader (the lines are answered as they come).
    """
    chunk: list[tuple[bytes, bool]] = []
    numbers: list[int] = []
    lineno = 0
    pipe = framing.pipe_source(stream) if pauses and start == 0 and end is None else None
    if pipe is not None:
        lines: Iterator[tuple[bytes, bool] | None] = framing.iter_pipe_lines(
            pipe[0], MAX_LINE_BYTES, pipe[1]
        )
    elif start == 0 and end is None:
        lines = framing.iter_lines(stream, MAX_LINE_BYTES)
    else:
        lines = framing.iter_partition_lines(stream, start, end, MAX_LINE_BYTES)
    if start == 0:  # only the start of a stream may hold a BOM
        first = next(lines, None)
        if first is None:
            return
        first = (without_bom(first[0]), first[1])
        lines = itertools.chain([first], lines)
    add, number = chunk.append, numbers.append
    size, chunk_bytes = 0, chunk_lines << 10
    for line in lines:  # the hot loop of the reading process: kept lean
        if line is None:  # the pipe's writer is slow: hand on what came
            if chunk:
                yield chunk, numbers
                chunk, numbers, size = [], [], 0
                add, number = chunk.append, numbers.append
            yield None
            continue
        raw, too_long = line
        lineno += 1
        if not too_long and not raw.strip(BLANK):
            counts.blank += 1
            continue
        counts.read += 1
        if lineno <= skip:
            continue
        add((raw, too_long))
        number(lineno)
        size += len(raw)
        if len(numbers) >= chunk_lines or size >= chunk_bytes:
            yield chunk, numbers
            chunk, numbers, size = [], [], 0
            add, number = chunk.append, numbers.append
    if chunk:
        yield chunk, numbers


def read_chunks(
    stream: IO[bytes],
    counts: Counts,
    chunk_lines: int,
    *,
    start: int = 0,
    end: int | None = None,
) -> Iterator[list[tuple[bytes, bool]]]:
    """read_numbered_chunks without the line numbers."""
    for numbered in read_numbered_chunks(stream, counts, chunk_lines, start=start, end=end):
        if numbered is not None:
            yield numbered[0]


@dataclass(frozen=True)
class LineOptions:
    """What to do with error lines: keep them out of NAME.out, copy them aside."""

    skip_errors: bool = False
    errors_aside: bool = False
    source: str = ""


def answer_chunk(
    answerer: Answerer,
    chunk: list[tuple[bytes, bool]],
    numbers: list[int] | None = None,
    options: LineOptions = LineOptions(),  # noqa: B008  (frozen, shared default)
) -> ChunkResult:
    """Parse, score and serialize one chunk of lines: the bytes of its output lines (and
    of its error lines with their line numbers, when they go aside)."""
    parsed = [answerer.parse(raw, too_long) for raw, too_long in chunk]
    valid = [r for r in parsed if isinstance(r, Request)]
    before = answerer.unknown_snapshot()
    answers = iter(answerer.answer(valid))
    # the usual chunk: every line valid, no filter (whose values may fail a line), no
    # metadata
    if len(valid) == len(parsed) and answerer.filter is None and not answerer.item_metadata:
        return ChunkResult(
            success_lines([r.obj for r in valid], answers, answerer.output.key),
            answered=len(valid),
            errors=0,
            errors_data=b"",
            ids=answerer.unknown_since(before),
            ids_not_strings=0,
            lists_ignored=sum(r.ignored is not None for r in valid),
        )
    buf, aside, not_strings = [], [], 0
    answered = 0
    for k, r in enumerate(parsed):
        result = next(answers) if isinstance(r, Request) else r  # a BadLine, or an answer
        if isinstance(result, BadLine):
            not_strings += result.error.endswith("must be a string")
            if not options.skip_errors:
                buf.append(error_line(result.echo, result.error))
            if options.errors_aside:
                number = numbers[k] if numbers else None
                aside.append(numbered_error(options.source, number, result.echo, result.error))
        else:
            items, scores = result
            answered += 1
            meta = answerer.metadata(items) if answerer.item_metadata else None
            buf.append(success_line(r.obj, items, scores, meta, answerer.output.key))
    return ChunkResult(
        b"".join(buf),
        answered=answered,
        errors=len(parsed) - answered,
        errors_data=b"".join(aside),
        ids=answerer.unknown_since(before),
        ids_not_strings=not_strings,
        lists_ignored=sum(r.ignored is not None for r in valid),
    )


def read_blocks(
    stream: IO[bytes], block_lines: int | Callable[[], int], min_bytes: int = BLOCK_MIN_BYTES
) -> Iterator[tuple[bytes, int, int]]:
    """The stream in blocks of whole lines of about `block_lines` lines each (or as many
    as it says when called; at most 1 MiB: framing.iter_blocks), with the numbers of each
    block's first and last line. The block's size follows the previous block's line
    length; its lines are counted only by their newlines. For a worker pool: the reading
    process hands blocks on as they are, and each worker splits and answers its own
    (answer_block)."""
    line_bytes = None  # known from the first block on
    wanted = block_lines if callable(block_lines) else lambda: block_lines

    def read_size() -> int:
        # the first block is one read of `min_bytes`, which measures the lines: a guess
        # of their length could make it many times `wanted` lines, one worker's work for
        # as long as the others take for all the blocks after it, waiting for it in order
        return min_bytes if line_bytes is None else max(min_bytes, int(wanted() * line_bytes))

    first = 1
    for block in framing.iter_blocks(stream, read_size, MAX_LINE_BYTES):
        n = block.count(b"\n") + (not block.endswith(b"\n"))
        line_bytes = len(block) / n
        yield block, first, first + n - 1
        first += n


def answer_block(
    answerer: Answerer,
    block: bytes,
    first: int,
    skip: int = 0,
    options: LineOptions = LineOptions(),  # noqa: B008  (frozen, shared default)
) -> ChunkResult:
    """answer_chunk for a block of whole lines from read_blocks, line `first` its first:
    its lines are split, counted (blank ones too, in the result) and answered here, the
    first `skip` lines of the stream only counted, as read_numbered_chunks does."""
    started = time.perf_counter()
    lines = framing.block_lines(block, MAX_LINE_BYTES)
    if first == 1 and lines:  # only the stream's start may hold a BOM
        lines[0] = (without_bom(lines[0][0]), lines[0][1])
    numbers = None
    if skip >= first or options.errors_aside:
        numbered = [(k, lt) for k, lt in enumerate(lines, first) if lt[1] or lt[0].strip(BLANK)]
        read = len(numbered)
        chunk = [lt for k, lt in numbered if k > skip]
        numbers = [k for k, _ in numbered if k > skip]
    else:
        chunk = [lt for lt in lines if lt[1] or lt[0].strip(BLANK)]
        read = len(chunk)
    counted = {"read": read, "blank": len(lines) - read}
    if not chunk:
        return ChunkResult(b"", answered=0, errors=0, **counted)
    result = answer_chunk(answerer, chunk, numbers, options)
    return dataclasses.replace(result, seconds=time.perf_counter() - started, **counted)


class _Pace:
    """Lines per block, for blocks of about TASK_SECONDS of a worker's time (between
    `most` and a sixteenth of it): a job's last blocks then end close together, and
    workers do not wait long on the last one; cheap lines still go out `most` at a time."""

    def __init__(self, most: int) -> None:
        self.most = self.wanted = most

    def lines(self) -> int:
        return self.wanted

    def took(self, result: ChunkResult) -> None:
        lines = result.answered + result.errors
        if lines and result.seconds > 0:
            fit = TASK_SECONDS * lines / result.seconds
            self.wanted = int(min(self.most, max(self.most // 16, fit)))


def answer_stream(
    stream: IO[bytes],
    out: IO[bytes],
    answerer: Answerer,
    counts: Counts,
    chunk_lines: int,
    tick: Callable[[], None] | None = None,
    pool: WorkerPool | None = None,
    options: LineOptions = LineOptions(),  # noqa: B008  (frozen, shared default)
    errors_out: IO[bytes] | None = None,
    max_error_rate: float | None = None,
    start: int = 0,
    end: int | None = None,
    skip: int = 0,
    checkpoint: Callable[[int, int], None] | None = None,
    pauses: bool = False,
) -> int:
    """Score a stream chunk by chunk and write one output line per input line, in order
    (on `pool`'s worker processes when given; only the byte range `start`-`end` when
    given). Returns the number of bytes written. After each chunk is written,
    `checkpoint(input lines consumed, bytes written)` when given; the first `skip`
    input lines are only counted (a resumed job). With `pauses`, a pipe's lines are
    answered and written as they come, whenever its writer is slower than the job."""
    ends: collections.deque[int] = collections.deque()  # each chunk's last line number
    whole = start == 0 and end is None
    pace = None
    if pool is not None and whole and not (pauses and framing.pipe_fd(stream) is not None):
        # the workers split the lines: the reading process only reads and writes
        pace = _Pace(chunk_lines)
        blocks = read_blocks(stream, pace.lines)
        results: Iterator[ChunkResult | None] = pool.map_ordered(
            _block_tasks(blocks, skip, options, ends, checkpoint)
        )
    else:
        numbered = read_numbered_chunks(
            stream, counts, chunk_lines, start=start, end=end, skip=skip, pauses=pauses
        )
        if checkpoint is not None:
            numbered = _noting_ends(numbered, ends)
        if pool is None:
            results = (
                None if cn is None else answer_chunk(answerer, *cn, options) for cn in numbered
            )
        else:  # None: the input paused; every result so far is handed on first
            results = pool.map_ordered(
                None if cn is None else (answer_chunk, *cn, options) for cn in numbered
            )
    written = 0
    for result in results:
        if result is None:  # the input paused: stdout's reader gets the answers so far
            if out is sys.stdout.buffer:
                out.flush()
            continue
        if pace is not None:
            pace.took(result)
        out.write(result.data)
        written += len(result.data)
        if errors_out is not None:
            errors_out.write(result.errors_data)
        counts.add(result)
        if checkpoint is not None and (last := ends.popleft()) > skip:
            checkpoint(last, written)  # not for a block of lines a resume skips
        if max_error_rate is not None and counts.read >= MIN_LINES_FOR_RATE:
            check_error_rate(counts, max_error_rate)
        if tick is not None:
            tick()
    if max_error_rate is not None:
        check_error_rate(counts, max_error_rate)
    return written


MIN_LINES_FOR_RATE = 100


def _block_tasks(
    blocks: Iterator[tuple[bytes, int, int]],
    skip: int,
    options: LineOptions,
    ends: collections.deque,
    checkpoint: Callable[[int, int], None] | None,
) -> Iterator[tuple]:
    for block, first, last in blocks:
        if checkpoint is not None:
            ends.append(last)
        yield answer_block, block, first, skip, options


def _noting_ends(
    numbered: Iterator[tuple[list, list[int]] | None], ends: collections.deque
) -> Iterator:
    for chunk_numbers in numbered:
        if chunk_numbers is not None:
            ends.append(chunk_numbers[1][-1])
        yield chunk_numbers


def check_error_rate(counts: Counts, limit: float) -> None:
    """Stop the job when more than a share `limit` of the lines so far are errors."""
    if counts.read and counts.errors / counts.read > limit:
        raise PbatchError(
            f"{counts.errors:,} of {counts.read:,} lines are errors "
            f"({counts.errors / counts.read:.0%}), above --max-error-rate {limit:g}; "
            "check the input against the solution's recipe (pbatch validate)"
        )


def numbered_error(source: str, line: int | None, echo: Any, error: str) -> bytes:
    """An error line for --errors-to: where it was, what it was, what was wrong."""
    return orjson.dumps(
        {"file": source, "line": line, "input": echo, "error": error},
        option=orjson.OPT_APPEND_NEWLINE,
    )


class _Progress:
    """Lines/s and errors so far on stderr, at most a few times a second; and every
    PROGRESS_SECONDS the counts into the job's record, so `describe` shows lines done."""

    def __init__(
        self, counts: Counts, enabled: bool, record: Callable[[], None] | None = None
    ) -> None:
        self.counts, self.enabled, self.record = counts, enabled, record
        self.start = self.last = self.recorded = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if self.record is not None and now - self.recorded >= PROGRESS_SECONDS:
            self.recorded = now
            self.record()
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


_deferring = 0  # > 0 while an output is being created, committed or aborted
_deferred: list[int] = []
_stops: list[int] = []  # the stop signal received, until run_job has caught its Interrupted


def _raise_on_signal(signum: int, frame: Any) -> None:
    """Raise Interrupted, and again every 0.25 s (SIGALRM) until run_job has caught it.

    Python runs a handler wherever the main thread is, also inside a __del__ or a weakref
    callback, which print the exception and drop it: the job ran on (on an idle pipe,
    forever). While the stop is on its way out (cleanup in an __exit__ or finally sees
    it as the exception being handled) the repeat stays quiet. While an output changes
    state the stop is held and raised when that is done.
    """
    if signum == signal.SIGALRM:
        if not _stops or isinstance(sys.exc_info()[1], Interrupted):
            return
        signum = _stops[0]
    else:
        _stops[:] = [signum]
        signal.setitimer(signal.ITIMER_REAL, 0.25, 0.25)
    if _deferring:
        _deferred.append(signum)  # raised when the critical section ends
        return
    raise Interrupted(f"stopped by {signal.Signals(signum).name}", signum)


def _stop_caught() -> None:
    """run_job has the stop (or another failure): no more repeats."""
    if _stops:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _stops.clear()


@contextlib.contextmanager
def _signals_deferred(drop: bool = False) -> Iterator[None]:
    """Hold SIGINT/SIGTERM while an output file changes state, so a stop can never
    fall between creating a temp file and the code that removes it. With `drop`, a stop
    held meanwhile is forgotten instead of raised (the job it would stop is done)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if drop and not _deferring and _deferred:
            _deferred.clear()
            _stop_caught()
    if not _deferring and _deferred:
        signum = _deferred.pop()
        _deferred.clear()
        _raise_on_signal(signum, None)


@contextlib.contextmanager
def _output(
    target: storage.Target,
    compresslevel: int | None = None,
    keep: Callable[[BaseException], bool] | None = None,
    opened: Callable[[IO[bytes]], None] | None = None,
    committed: Callable[[], None] | None = None,
) -> Iterator[IO[bytes]]:
    """An AtomicOutput whose creation, commit and abort a signal cannot interrupt; on a
    failure for which `keep(exc)` is true its temporary file or its S3 upload's completed
    parts are kept (for a resume). `opened(stream)` runs once it exists and `committed()`
    once it is committed, before a stop held meanwhile is raised (so the checkpoint never
    names an upload or temp file that became the output)."""
    output = storage.AtomicOutput(target, compresslevel=compresslevel)
    try:
        with _signals_deferred():  # a stop held here is raised as this block ends
            stream = output.__enter__()
            if opened is not None:  # records the temp file or upload: before any stop
                opened(stream)
        yield stream
    except BaseException as exc:
        with _signals_deferred():
            output.abort(keep=keep is not None and keep(exc))
        raise
    with _signals_deferred():
        output.commit(keep=keep)
        if committed is not None:
            committed()


def _output_of(p: JobParams) -> str:
    return p.output or (storage.default_output(p.input) if p.input else "-")


def start_job(p: JobParams, store: jobs_mod.JobStore) -> str:
    """Check a job's parameters and record it PENDING (a used name is refused); its name."""
    check_params(p)
    if p.engine == "dask":
        from .engines import dask as dask_engine  # noqa: PLC0415  (an optional extra)

        dask_engine.require()
    name = p.job_name or new_job_name()
    path, sha = parse_solution_ref(p.solution)
    store.create(
        {
            "jobName": name,
            "batchInferenceJobArn": jobs_mod.ARN_PREFIX + name,
            "solutionVersionArn": solution_arn(path, sha or p.solution_sha256),
            "solutionPath": storage.display_path(path),
            "numResults": p.num_results,
            **({"filterExpression": p.filter_expression} if p.filter_expression else {}),
            "jobInput": {"s3DataSource": {"path": storage.display_path(p.input)}},
            "jobOutput": {"s3DataDestination": {"path": storage.display_path(_output_of(p))}},
            "batchInferenceJobConfig": {
                **p.config,
                "itemExplorationConfig": p.exploration.as_config(),
            },
            "batchInferenceJobMode": "BATCH_INFERENCE",
            "includeSeen": p.include_seen,
            **({"itemMetadata": list(p.item_metadata)} if p.item_metadata else {}),
            **p.record_extra,
        },
        api=p.api,
    )
    return name


def run_job(
    p: JobParams,
    store: jobs_mod.JobStore,
    *,
    progress: bool = False,
    on_solution: Callable[[Solution], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one batch inference job to ACTIVE (returning its record) or raise JobFailed.

    The job record goes PENDING -> IN PROGRESS -> ACTIVE / CREATE FAILED.
    """
    check_params(p)
    if p.job_name is not None and store.exists(p.job_name):  # say what the job is
        raise jobs_mod.name_in_use(p.job_name, store.get(p.job_name), api=p.api)
    check_paths(p)  # before the job exists: a refused job leaves its name free
    name = start_job(p, store)
    return execute_job(name, p, store, progress=progress, on_solution=on_solution, warn=warn)


def _first_warnings(
    p: JobParams,
    name: str,
    store: jobs_mod.JobStore,
    refs: list[storage.InputRef],
    output: str,
    note: Callable[[str], None],
) -> None:
    """What a job says before it scores: kept files of stopped jobs that would become
    one of its outputs (leftovers)."""
    from . import leftovers  # noqa: PLC0415

    urls = [storage.output_url(output, r.name, p.compress) for r in refs]
    for message in leftovers.warnings_for(urls, store, own=name):
        note(message)


def _nothing_read(refs: list[storage.InputRef], counts: Counts) -> str:
    """The warning for a job that found no line to answer."""
    one = len(refs) == 1
    name = storage.redact(refs[0].url) if one else f"the {len(refs)} input files"
    name = "stdin" if name == "-" else name
    if counts.blank:
        lines = "1 blank line" if counts.blank == 1 else f"{counts.blank:,} blank lines"
        return f"{name} {'holds' if one else 'hold'} only {lines}: no line to answer"
    return f"{name} {'is' if one else 'are'} empty: no line to answer"


def check_paths(p: JobParams, refs: list[storage.InputRef] | None = None) -> None:
    """A job writes none of its inputs and no path twice (A.18). Without `refs`, local
    inputs are listed here, and an s3:// input is compared as given (its listing waits
    for the job, which checks again with the objects it lists); an input that cannot be
    listed is left for the job to report."""
    if refs is None:
        refs = []
        if not storage.is_s3(p.input):
            with contextlib.suppress(PbatchError):
                refs = storage.list_inputs(p.input, p.endpoint_url)
        elif not p.input.endswith("/"):
            refs = [storage.InputRef(p.input, p.input.rsplit("/", 1)[-1])]
    output = _output_of(p)
    solution, _ = parse_solution_ref(p.solution) if p.solution else (None, None)
    paths.check_job(
        paths.JobPaths(
            inputs=[r.url for r in refs if r.url != "-"],
            outputs=[storage.output_url(output, r.name, p.compress) for r in refs],
            output=output,
            solution=solution,
            events=p.events,
            filter_file=p.filter_file,
            errors_to=p.errors_to,
            api=p.api,
        )
    )


def resume_job(
    name: str,
    store: jobs_mod.JobStore,
    *,
    workers: int | None = None,
    endpoint_url: str | None = None,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Continue a CREATE FAILED job after its last written chunk (`pbatch run --resume`):
    the same name goes back to IN PROGRESS and on to ACTIVE, with the bytes an
    uninterrupted run writes. Refused, leaving the job as it was, when the job is not
    failed, has no checkpoint, or its solution or an input changed."""
    name = jobs_mod.job_name_from(name)
    record = store.get(name)  # a job whose process is gone reads as CREATE FAILED
    if record["status"] != jobs_mod.FAILED:
        running = record["status"] in (jobs_mod.PENDING, jobs_mod.IN_PROGRESS)
        raise PbatchError(
            f"job {name} is {record['status']}: only a CREATE FAILED job can be resumed"
            + (" (its process is still running)" if running else "")
        )
    why = (record.get("resume") or {}).get("notResumable")
    if why:
        raise PbatchError(f"job {name} cannot be resumed: {why}; run it again under a new name")
    ckpt = resume_mod.Checkpointer.load(resume_mod.checkpoint_path(store.home, name), name)
    p = resume_mod.params_from_json(ckpt.state["params"])
    p.job_name = name
    p.workers = workers if workers is not None else p.workers
    p.endpoint_url = endpoint_url if endpoint_url is not None else p.endpoint_url
    path, _ = parse_solution_ref(p.solution)
    solution = load(path, p.endpoint_url)
    ckpt.check_unchanged(
        solution.sha256, storage.list_inputs(p.input, p.endpoint_url), p.endpoint_url
    )
    store.reopen(name, resumes=record.get("resumes", 0) + 1)
    return execute_job(name, p, store, progress=progress, resume=(ckpt, solution), warn=warn)


def execute_job(
    name: str,
    p: JobParams,
    store: jobs_mod.JobStore,
    *,
    progress: bool = False,
    on_solution: Callable[[Solution], None] | None = None,
    resume: tuple[resume_mod.Checkpointer, Solution] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the job recorded (PENDING) under `name`: the one implementation of a job, for
    `pbatch run` and for the background worker of asynchronous jobs. `resume`: the
    checkpoint and loaded solution of a failed job to continue (see resume_job). The
    job's warnings go to its record's `warnings`, and to `warn` as they are found."""
    output = _output_of(p)
    ckpt = resume[0] if resume is not None else None
    path, sha = parse_solution_ref(p.solution)
    wanted_sha = sha or p.solution_sha256
    counts = Counts()
    started = time.monotonic()
    old_handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        try:
            old_handlers[sig] = signal.signal(sig, _raise_on_signal)
        except ValueError:
            pass  # not the main thread: signals stay with the caller
    outputs: list[str] = []
    done = False  # every output committed: the signal handlers stay for the last record
    notes: list[str] = []
    engine: dict[str, Any] = {"engine": p.engine, "warnings": notes}

    def note(message: str) -> None:
        notes.append(message)
        if warn is not None:
            warn(message)

    try:
        solution = resume[1] if resume is not None else load(path, p.endpoint_url)
        check_solution_hash(path, solution.sha256, wanted_sha)
        metadata_columns(solution, p.item_metadata)  # a usage error before any output
        types = solution.arrays.get("events_types")
        said = preflight.unknown_event_types(
            p.filter_expression, p.filter_source, None if types is None else types.tolist()
        )
        if said is not None:
            note(said)
        store.update(
            name,
            status=jobs_mod.IN_PROGRESS,
            solutionVersionArn=solution_arn(path, solution.sha256),
            recipe=solution.recipe,
            solutionTuning=tuning_summary(solution.meta),
        )
        if p.events is not None:
            from .foldin import fold_in  # noqa: PLC0415

            solution, fold = fold_in(solution, p.events, p.endpoint_url)
            engine["foldIn"] = {**fold, "events": storage.display_path(p.events)}
        if on_solution is not None:
            on_solution(solution)
        refs = storage.list_inputs(p.input, p.endpoint_url)
        check_paths(p, refs)  # with the objects an s3:// input lists
        if resume is None:  # refused up front, not a file of error lines (preflight)
            preflight.check(refs, solution.recipe, p.endpoint_url)
        _first_warnings(p, name, store, refs, output, note)
        tick = _Progress(counts, progress, lambda: store.update(name, **counts.as_record()))
        if p.engine == "dask":
            from .engines import dask as dask_engine  # noqa: PLC0415  (an optional extra)

            report = functools.partial(store.update, name)
            engine.update(
                dask_engine.run(p, name, solution, refs, output, counts, outputs, tick, report)
            )
        else:
            if ckpt is None and resume_mod.not_resumable(p) is None:
                where = resume_mod.checkpoint_path(store.home, name)
                ckpt = resume_mod.Checkpointer.start(where, p, solution.sha256, refs)
                store.update(name, resume={"checkpoint": str(where)})
            if ckpt is not None and "counts" in ckpt.state:
                resume_mod.restore_counts(counts, ckpt.state["counts"])
            engine.update(_run_local(p, solution, refs, output, counts, outputs, tick, ckpt))
        tick.done()
        if not counts.read:
            note(_nothing_read(refs, counts))
        done = True
    except (PbatchError, Interrupted) as exc:
        _stop_caught()
        store.update(
            name,
            status=jobs_mod.FAILED,
            failureReason=str(exc),
            **_kept(ckpt, p, exc),
            durationSeconds=round(time.monotonic() - started, 3),
            outputs=outputs,
            **engine,
            **counts.as_record(),
        )
        if isinstance(exc, (Interrupted, UsageError)):  # e.g. a filter field the solution lacks
            raise
        raise JobFailed(f"job {name} failed: {exc}") from None
    except BrokenPipeError:  # stdout's reader went away (`| head`): normal in a pipeline
        _stop_caught()
        store.update(
            name,
            status=jobs_mod.FAILED,
            failureReason=(
                f"stdout's reader stopped reading (a closed pipe, e.g. `| head`) after "
                f"{counts.answered + counts.errors:,} lines were written; the rest of the "
                "input was not answered"
            ),
            **_kept(ckpt, p, BrokenPipeError()),
            durationSeconds=round(time.monotonic() - started, 3),
            outputs=outputs,
            **engine,
            **counts.as_record(),
        )
        raise
    except BaseException as exc:  # a bug: the record must still tell
        _stop_caught()
        store.update(
            name,
            status=jobs_mod.FAILED,
            failureReason=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            **_kept(ckpt, p, exc),
            outputs=outputs,
            **engine,
            **counts.as_record(),
        )
        raise
    finally:
        if not done:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
    try:
        # Every output is committed: a stop now is held until the record says ACTIVE,
        # then dropped (the job is done). With the default handlers back, a SIGTERM here
        # killed the process and left the record IN PROGRESS ("process exited").
        with _signals_deferred(drop=True):
            ids, _ = diagnose(
                counts.ids,
                counts.ids_not_strings,
                solution.user_ids,
                solution.item_ids,
                lists_ignored=counts.lists_ignored,
                recipe=solution.recipe,
            )
            if ckpt is not None:
                ckpt.remove()
            return store.update(
                name,
                drop=("resume",),
                status=jobs_mod.ACTIVE,
                durationSeconds=round(time.monotonic() - started, 3),
                outputs=outputs,
                **engine,
                idDiagnostics=ids,
                **({"errorsTo": storage.display_path(p.errors_to)} if p.errors_to else {}),
                **counts.as_record(),
            )
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def _keep_for_resume(exc: BaseException) -> bool:
    """Failures worth resuming after: a stop, a storage outage, a crash; not a job that
    is wrong in itself (too many error lines, a usage error)."""
    cause = exc.__context__  # a StorageError is raised from the OSError it reports
    if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return False  # a full disk needs its space back more than a resume
    if isinstance(cause, (EOFError, zlib.error)):
        return False  # a damaged input: the same input would fail the same way
    return isinstance(exc, (Interrupted, StorageError)) or not isinstance(exc, PbatchError)


def _kept(ckpt: resume_mod.Checkpointer | None, p: JobParams, exc: BaseException) -> dict[str, Any]:
    """The record's `resume` field for a failed job: its kept checkpoint and temporary
    output, or why its kind of job is not resumable; a job that cannot be resumed
    loses its checkpoint (and the field). A job stopped between two outputs (or before
    the first) keeps its checkpoint: the resume starts the next output afresh."""
    if ckpt is None:
        why = resume_mod.not_resumable(p)
        return {"resume": {"notResumable": why}} if why else {}
    between = ckpt.state["current"] is None and (ckpt.state["done"] or _keep_for_resume(exc))
    # a resumed job that failed before it reopened its kept output left that as it was
    untouched = ckpt.state["current"] is not None and ckpt.out is None
    if ckpt.kept or between or untouched:
        return {"resume": ckpt.summary()}
    ckpt.remove()
    return {"drop": ("resume",)}


def _run_local(
    p: JobParams,
    solution: Solution,
    refs: list[storage.InputRef],
    output: str,
    counts: Counts,
    outputs: list[str],
    tick: Callable[[], None],
    ckpt: resume_mod.Checkpointer | None = None,
) -> dict[str, Any]:
    """The local engine: each input in turn, its chunks on this machine's worker
    processes; returns the record fields that describe the engine. With a checkpoint,
    progress is saved after each chunk and a failed job's state is continued."""
    answerer = Answerer(
        solution,
        p.num_results,
        p.include_seen,
        p.filter_expression,
        p.exploration,
        p.filter_source,
        p.item_metadata,
    )
    workers = p.workers or default_workers()
    pool = None
    if workers > 1:
        with _signals_deferred():  # a signal inside fork's at-fork hooks would be swallowed
            pool = WorkerPool(functools.partial(_with, answerer), workers)
    try:
        with contextlib.ExitStack() as stack:
            errors_out = None
            if p.errors_to:
                errors_out = stack.enter_context(
                    _output(storage.target_for(p.errors_to, p.endpoint_url))
                )
            state = ckpt.state if ckpt is not None else {"done": [], "current": None}
            for index, ref in enumerate(refs):
                url = storage.output_url(output, ref.name, p.compress)
                if index < len(state["done"]):  # committed before a resume
                    outputs.append(url)
                    continue
                options = LineOptions(p.skip_errors, errors_out is not None, ref.name)
                cur = (
                    state["current"]
                    if state["current"] and state["current"]["index"] == index
                    else None
                )
                target = storage.target_for(url, p.endpoint_url)
                output_args: dict[str, Any] = {}
                resume_args: dict[str, Any] = {}
                if ckpt is not None:
                    target, output_args, resume_args = _resume_args(
                        ckpt, index, cur, counts, url, p.endpoint_url
                    )
                stream = storage.open_input(ref.url, p.endpoint_url)
                try:
                    with _output(
                        target,
                        p.compress_level,
                        committed=functools.partial(_committed, url, outputs, counts, ckpt),
                        **output_args,
                    ) as out:
                        _answer_guarded(
                            ref.url,
                            counts,
                            stream=stream,
                            out=out,
                            answerer=answerer,
                            chunk_lines=_task_lines(p.chunk_lines, pool, ref.url),
                            pauses=True,
                            tick=tick,
                            pool=pool,
                            options=options,
                            errors_out=errors_out,
                            max_error_rate=p.max_error_rate,
                            **resume_args,
                        )
                finally:
                    if stream is not sys.stdin.buffer:
                        stream.close()
    finally:
        if pool is not None:
            pool.close()
    return {"workers": workers}


def _with(answerer: Answerer, task: Callable[..., ChunkResult], *args: Any) -> ChunkResult:
    """A worker's task: answer_chunk or answer_block, with the answerer it forked with."""
    return task(answerer, *args)


def _task_lines(chunk_lines: int, pool: WorkerPool | None, url: str) -> int:
    """Lines per task: larger ones for worker processes when the input is all there."""
    if pool is not None and storage.is_complete(url):
        return chunk_lines * TASK_CHUNKS
    return chunk_lines


def _committed(
    url: str, outputs: list[str], counts: Counts, ckpt: resume_mod.Checkpointer | None
) -> None:
    """An input's output is committed: the record and the checkpoint say so."""
    outputs.append(url)
    if ckpt is not None:
        ckpt.finish(url, counts)


def _naming(ckpt: resume_mod.Checkpointer, index: int, counts: Counts, temp: str) -> None:
    """The checkpoint names a temp file before it is created (see storage.LocalFile)."""
    with _signals_deferred():
        ckpt.begin(index, temp, counts)


def _resume_args(
    ckpt: resume_mod.Checkpointer,
    index: int,
    cur: dict[str, Any] | None,
    counts: Counts,
    url: str,
    endpoint_url: str | None,
) -> tuple[storage.Target, dict[str, Any], dict[str, Any]]:
    """How input `index` is written under a checkpoint: continued from the kept temporary
    file (or S3 upload) when the checkpoint is in it, and saved after each chunk. Returns
    the output's target, and the arguments of _output and of answer_stream.

    An S3 output is written in parts cut at chunk boundaries (S3PartsWriter): after a
    chunk, once at least a part's worth is buffered, it is uploaded and the checkpoint
    records it with the lines it covers; a resume goes on after the last recorded part
    (the lines buffered since are answered again)."""
    before = cur["bytes"] if cur is not None else 0
    if cur is not None:
        resume_mod.restore_counts(counts, cur["counts"])
        counts.read, counts.blank = cur["base"]["read"], cur["base"]["blank"]  # recounted
    upload = (cur or {}).get("upload")
    target: storage.Target
    if storage.is_s3(url):
        kept_parts = None
        if upload and cur.get("parts"):
            kept_parts = (upload["uploadId"], cur["parts"])
        elif upload:  # no part was completed: start afresh, dropping the old upload
            storage.abort_upload(upload["url"], upload["uploadId"], endpoint_url)
        target = storage.S3Object(url, endpoint_url, resumable=True, resume_upload=kept_parts)
    else:
        # a temp file the checkpoint named just before a kill kept it from being created
        fresh = cur is None or (before == 0 and not os.path.exists(cur["temp"]))
        target = storage.LocalFile(
            url,
            resume_from=None if fresh else (cur["temp"], before),
            naming=functools.partial(_naming, ckpt, index, counts),
        )
    writers: list[storage.S3PartsWriter] = []

    def opened(stream: IO[bytes]) -> None:
        ckpt.out = stream
        # a local temp file is in the checkpoint already: named before it was created
        # (_naming), or the kept one being continued
        if isinstance(stream, storage.S3PartsWriter):
            writers.append(stream)
            ckpt.begin(index, "", counts, upload={"url": url, "uploadId": stream.upload_id})

    def keep(exc: BaseException) -> bool:
        ckpt.kept = _keep_for_resume(exc)
        if ckpt.kept and not writers:  # chunks since the last checkpoint count too
            try:
                with _signals_deferred():
                    ckpt.save()
            except (PbatchError, OSError, ValueError):
                pass  # the last checkpoint written still holds
        return ckpt.kept

    def checkpoint(lines: int, size: int) -> None:
        # a stop waits for the checkpoint to be saved: the record then shows what it says
        if not writers:
            with _signals_deferred():
                ckpt.chunk(lines, before + size, counts)
        elif writers[0].cut():
            with _signals_deferred():
                ckpt.chunk(lines, writers[0].uploaded, counts, parts=writers[0].parts)

    skip = cur["lines"] if cur is not None else 0
    return target, {"keep": keep, "opened": opened}, {"skip": skip, "checkpoint": checkpoint}


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
    """answer_stream for one input or byte range (the Dask engine's workers use it for a
    partition), with read/write failures turned into one StorageError; bytes written."""
    return _answer_guarded(
        url,
        counts,
        stream=stream,
        out=out,
        answerer=answerer,
        chunk_lines=chunk,
        tick=tick,
        pool=pool,
        start=start,
        end=end,
    )


def _answer_guarded(url: str, counts: Counts, **stream_args: Any) -> int:
    """answer_stream, with read/write failures turned into one StorageError."""
    try:
        return answer_stream(counts=counts, **stream_args)
    except PbatchError:
        raise
    except BrokenPipeError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise StorageError(f"{url}: failed after {counts.read} lines: {exc}") from None
    except Exception as exc:
        name = type(exc).__module__
        if name.startswith("botocore") or name.startswith("urllib3"):
            raise StorageError(
                f"{url}: failed after {counts.read} lines: {storage.describe_s3_error(exc)}"
            ) from None
        raise


def exit_code(record: dict[str, Any]) -> int:
    """0 when every line was answered, 3 when some were error lines (A.10)."""
    return 3 if record.get("linesWithErrors") else 0
