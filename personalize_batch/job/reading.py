"""Reading a job's input: its lines in numbered chunks (one process reads and answers),
or in blocks of whole lines that worker processes split themselves. Both accept a UTF-8
BOM at the start and CRLF endings, and count blank lines without answering them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import IO

from . import framing
from .counts import Counts
from .framing import BLANK, MAX_LINE_BYTES, without_bom

BLOCK_MIN_BYTES = 4096  # the smallest read for a block of lines (read_blocks)


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
