"""Bytes into lines: reading an input as JSON Lines are cut (A.3), a line at a time, in
blocks of whole lines for worker processes, from a pipe as its lines arrive, or a byte
range of a file (a Dask partition). A line longer than MAX_LINE_BYTES is cut to its
head and marked too long, never held whole; a UTF-8 byte-order mark at the start of an
input is dropped here (`without_bom`), and nowhere else.
"""

from __future__ import annotations

import io
import os
import select
import stat
from collections.abc import Callable, Iterator
from typing import IO

DEFAULT_PARTITION_SIZE = 4 << 20  # bytes of input per Dask task: a minute or two of work
MAX_LINE_BYTES = 1 << 20  # 1 MiB
BOM = b"\xef\xbb\xbf"
BLANK = b" \t\r\n"  # what a blank line holds (A.3)


def without_bom(first: bytes) -> bytes:
    """The first bytes of an input without a UTF-8 byte-order mark."""
    return first[len(BOM) :] if first.startswith(BOM) else first


def is_blank(raw: bytes) -> bool:
    """Nothing but spaces, tabs and line endings (A.3): no output line."""
    return not raw.strip(BLANK)


def iter_lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """Yield (line, too_long) from a binary stream without ever holding more than
    `max_bytes` of one line: an over-long line yields its first `max_bytes` bytes and
    True, and the rest of it is skipped (an over-long blank line yields a blank line)."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        if len(line) > max_bytes and not line.endswith(b"\n"):
            head = line[:max_bytes]
            blank = not line.strip(BLANK)
            while line and not line.endswith(b"\n"):
                line = stream.readline(1 << 20)
                blank = blank and not line.strip(BLANK)
            yield (b"\n", False) if blank else (head, True)  # A.3: blank however long
            continue
        yield line, False


class LineCutter:
    """Whole lines from bytes fed in reads of any size, as `iter_lines` cuts them, without
    holding more than `max_bytes` of one line: `feed(data)` returns the lines that `data`
    ends (each with its newline; b"" if none), `finish()` the stream's last line (ended
    with a newline when cut). An over-long line keeps its first `max_bytes + 1` bytes
    (still over-long: `block_lines` marks it) and the rest is skipped; an over-long blank
    line becomes an empty one."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._begun: list[bytes] = []  # the line begun by earlier reads (no newline yet)
        self._begun_size = 0
        self._head: bytes | None = None  # an over-long line's head, while its rest is skipped
        self._blank = False  # and whether all of it so far is blank

    def feed(self, data: bytes) -> bytes:
        step = self.max_bytes
        if len(data) <= step:
            return self._feed(data)
        # in pieces of at most max_bytes: a line a piece ends and begins is never too long
        return b"".join(self._feed(data[i : i + step]) for i in range(0, len(data), step))

    def _feed(self, data: bytes) -> bytes:
        first = data.find(b"\n")
        if first < 0:  # the begun line goes on
            if self._head is not None:
                self._blank = self._blank and not data.strip(BLANK)
                return b""
            self._begun.append(data)
            self._begun_size += len(data)
            if self._begun_size > self.max_bytes:
                line = b"".join(self._begun)
                self._begun.clear()
                self._head, self._blank = line[: self.max_bytes + 1], not line.strip(BLANK)
                self._begun_size = 0
            return b""
        last = data.rfind(b"\n")
        block = data[: last + 1]
        if self._begun or self._head is not None:
            block = self._end_begun(data[: first + 1]) + data[first + 1 : last + 1]
        if last + 1 < len(data):  # shorter than a piece, so never over-long yet
            self._begun.append(data[last + 1 :])
            self._begun_size = len(data) - last - 1
        return block

    def finish(self) -> bytes:
        return self._end_begun(b"") if self._begun or self._head is not None else b""

    def _end_begun(self, tail: bytes) -> bytes:
        """The begun line, ended by `tail` (which holds its newline, if any)."""
        if self._head is not None:
            line = b"\n" if self._blank and not tail.strip(BLANK) else self._head + b"\n"
            self._head = None
            return line
        line = b"".join(self._begun) + tail if self._begun else tail
        self._begun.clear()
        self._begun_size = 0
        if len(line) - line.endswith(b"\n") > self.max_bytes:
            return b"\n" if not line.strip(BLANK) else line[: self.max_bytes + 1] + b"\n"
        return line


def iter_blocks(stream: IO[bytes], read_size: Callable[[], int], max_bytes: int) -> Iterator[bytes]:
    """The stream in blocks of whole lines, each read `read_size()` bytes at a time (at
    most `max_bytes`): a block ends with a newline, but for the stream's last line when
    it has none. Split at its newlines (`block_lines`), a block gives the lines
    `iter_lines` gives (see LineCutter). So a reader hands whole blocks on without
    looking at each line."""
    cutter = LineCutter(max_bytes)
    while data := stream.read(min(read_size(), max_bytes)):
        if block := cutter.feed(data):
            yield block
    if block := cutter.finish():
        yield block


def block_lines(block: bytes, max_bytes: int) -> list[tuple[bytes, bool]]:
    """A block's lines (see iter_blocks) as (line, too_long), cut as `iter_lines` cuts
    them, without their newlines."""
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    return [(line, False) if len(line) <= max_bytes else (line[:max_bytes], True) for line in lines]


def pipe_fd(stream: IO[bytes]) -> int | None:
    """The descriptor of a pipe, FIFO or terminal the stream reads; None for a file or a
    decompressed stream, and off POSIX."""
    if os.name != "posix" or not isinstance(stream, io.BufferedReader):
        return None
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(mode) else fd


def pipe_source(stream: IO[bytes]) -> tuple[int, bytes] | None:
    """A pipe, FIFO or terminal to read directly: its descriptor and the bytes the stream
    had buffered from it; None for a file or a decompressed stream, and off POSIX."""
    fd = pipe_fd(stream)
    if fd is None:
        return None
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)  # take what is buffered or has arrived, without waiting
    try:
        buffered = stream.peek(0)
    except BlockingIOError:
        buffered = b""
    finally:
        os.set_blocking(fd, blocking)
    return fd, stream.read(len(buffered)) if buffered else b""


def iter_pipe_lines(
    fd: int, max_bytes: int, head: bytes = b""
) -> Iterator[tuple[bytes, bool] | None]:
    """`iter_lines` for a pipe (after `head`, bytes already read from it), reading what
    has arrived; before a read that would wait for the writer, None (once a line came
    since the last None), so that the lines so far can be answered meanwhile."""
    cutter = LineCutter(max_bytes)
    fresh = False  # a line was yielded since the last None
    while True:
        if fresh and not select.select([fd], [], [], 0)[0]:
            fresh = False
            yield None
        data, head = head or os.read(fd, 1 << 20), b""
        if not data:
            break
        if block := cutter.feed(data):
            yield from _as_read(block, max_bytes)
            fresh = True
    yield from _as_read(cutter.finish(), max_bytes)


def _as_read(block: bytes, max_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """A LineCutter's lines as `iter_lines` yields them: (line, too_long), each line with
    its newline (but for a stream's last one without), an over-long one its head."""
    lines = block.split(b"\n")
    last = lines.pop()  # b"" when the block ends with a newline
    for line in lines:
        yield (line[:max_bytes], True) if len(line) > max_bytes else (line + b"\n", False)
    if last:
        yield last, False


class _Tracked:
    """A binary stream that knows the offset of the next byte `readline` returns."""

    def __init__(self, stream: IO[bytes], pos: int) -> None:
        self.stream, self.pos = stream, pos

    def readline(self, size: int = -1) -> bytes:
        line = self.stream.readline(size)
        self.pos += len(line)
        return line


def iter_partition_lines(
    stream: IO[bytes], start: int, end: int | None, max_bytes: int
) -> Iterator[tuple[bytes, bool]]:
    """The lines of the byte range [start, end) of a seekable stream, as `iter_lines`.

    The rule of Hadoop and Dask (`read_block`): a range that does not start at 0 starts
    after the first newline at or after `start`; it ends with the line that holds byte
    `end` (a line starting at `end` included). Ranges that tile a file therefore yield
    every line exactly once. `end=None` reads to the end of the stream.
    """
    if start > 0:
        stream.seek(start)
        while True:  # skip through the first newline at or after `start`
            rest = stream.readline(1 << 20)
            start += len(rest)
            if not rest or rest.endswith(b"\n"):
                break
    tracked = _Tracked(stream, start)
    lines = iter_lines(tracked, max_bytes)
    while end is None or tracked.pos <= end:
        item = next(lines, None)
        if item is None:
            return
        yield item
