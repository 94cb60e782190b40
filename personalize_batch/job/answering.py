"""Answering a job's lines: a chunk (parse, score as one matrix operation, serialize),
a block of whole lines on a worker process, and a whole stream or byte range written in
order, with error lines aside and the error rate watched. Engines call `answer_stream`
(through `answer_guarded`, which turns read and write failures into one StorageError)."""

from __future__ import annotations

import collections
import dataclasses
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from .. import storage
from ..errors import PbatchError, StorageError
from . import framing
from .counts import Counts
from .framing import BLANK, MAX_LINE_BYTES, without_bom
from .lines import BadLine, Request, error_line, success_line, success_lines
from .reading import read_blocks, read_numbered_chunks
from .scoring import Answerer
from .workers import ChunkResult, WorkerPool

TASK_SECONDS = 0.1  # a worker's time on one block of costly lines (_Pace)
MIN_LINES_FOR_RATE = 100  # lines read before --max-error-rate is first checked


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
    # metadata, a recipe that answers every valid line
    if (
        len(valid) == len(parsed)
        and answerer.filter is None
        and not answerer.item_metadata
        and not answerer.may_refuse
    ):
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
    return answer_stream_guarded(
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


def answer_stream_guarded(url: str, counts: Counts, **stream_args: Any) -> int:
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
