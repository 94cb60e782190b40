"""With worker processes, the reading process hands on blocks of whole lines and each
worker splits its own: the lines, their numbers and counts, and the output are those of
reading the input line by line."""

from __future__ import annotations

import functools
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize_batch.job.answering import LineOptions, answer_block, answer_chunk, answer_stream
from personalize_batch.job.counts import Counts
from personalize_batch.job.engines import local
from personalize_batch.job.framing import BOM, MAX_LINE_BYTES
from personalize_batch.job.reading import read_blocks, read_numbered_chunks
from personalize_batch.job.scoring import Answerer
from personalize_batch.job.workers import SLOT_BYTES, WorkerPool
from personalize_batch.solution import load


@pytest.fixture(scope="module")
def popularity(solutions):
    return Answerer(load(str(solutions["popularity-count"])), 5)


LINE_KINDS = [
    b'{"userId": "u1"}\n',
    b'{"userId": "nobody"}\r\n',
    b'{"userId": 7}\n',
    b"not json\n",
    b"\n",
    b"  \t\r\n",
    b'{"userId": "u2"}',  # the last line may have no newline
]


def _line_by_line(answerer, data, skip, options):
    """The reference: the reading process's own lines, answered a chunk at a time."""
    counts, out, aside = Counts(), [], []
    for chunk, numbers in read_numbered_chunks(io.BytesIO(data), counts, 3, skip=skip):
        result = answer_chunk(answerer, chunk, numbers, options)
        counts.add(result)
        out.append(result.data)
        aside.append(result.errors_data)
    return b"".join(out), b"".join(aside), counts.as_record()


def _by_blocks(answerer, data, skip, options, block_lines_wanted, min_bytes=4096):
    counts, out, aside, next_first = Counts(), [], [], 1
    for block, first, last in read_blocks(io.BytesIO(data), block_lines_wanted, min_bytes):
        assert first == next_first
        next_first = last + 1
        result = answer_block(answerer, block, first, skip, options)
        counts.add(result)
        out.append(result.data)
        aside.append(result.errors_data)
    return b"".join(out), b"".join(aside), counts.as_record()


@settings(max_examples=150, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(LINE_KINDS) - 2), max_size=30),
    last=st.booleans(),
    bom=st.booleans(),
    skip=st.integers(0, 35),
    aside=st.booleans(),
    per_block=st.integers(1, 8),
)
def test_blocks_answer_as_lines_read_one_by_one(
    popularity, picks, last, bom, skip, aside, per_block
):
    """Blank and bad lines, CRLF, a BOM, a last line with no newline, lines a resume
    skips, error lines set aside with their numbers: output, errors and counts alike."""
    data = b"".join(LINE_KINDS[k] for k in picks) + (LINE_KINDS[-1] if last else b"")
    data = (BOM if bom else b"") + data
    options = LineOptions(errors_aside=aside, source="in.json")
    want = _line_by_line(popularity, data, skip, options)
    assert _by_blocks(popularity, data, skip, options, per_block, 1) == want  # a few lines each


@pytest.mark.parametrize("line", [b'{"userId": "u1"}\n', b'{"userId": "%s"}\n' % (b"u" * 300)])
def test_blocks_hold_about_the_lines_wanted_from_the_first_on(line):
    """The first block is one small read, and it measures the lines: a guess of their
    length must not make it many times the lines wanted (one worker's work while the
    others wait for it in order). The blocks after it hold the lines wanted, to a line."""
    wanted, min_bytes = 500, 4096
    blocks = list(read_blocks(io.BytesIO(line * 20_000), wanted, min_bytes))
    sizes = [last - first + 1 for _, first, last in blocks]
    assert len(blocks[0][0]) <= min_bytes
    assert all(abs(n - wanted) <= 1 for n in sizes[1:-1])
    assert sum(sizes) == 20_000


@pytest.mark.parametrize("bom", [False, True])
def test_over_long_lines_in_blocks(popularity, bom):
    """A line over 1 MiB is an error line in a block as it is read alone (with a BOM at
    the start of the input counted in its length); an over-long blank line is blank."""
    just = b'{"userId": "u1", "pad": "' + b"x" * (MAX_LINE_BYTES - 27) + b'"}\n'
    assert len(just) == MAX_LINE_BYTES + 1  # at the limit, its newline aside
    data = (BOM if bom else b"") + b"".join(
        [
            just,
            b'{"userId": "u1"}\n',
            b"x" * (MAX_LINE_BYTES + 5) + b"\n",
            b" " * (3 * MAX_LINE_BYTES) + b"\n",
            b'{"userId": "u2"}\n' * 3,
            b"y" * (2 * MAX_LINE_BYTES),
        ]
    )
    options = LineOptions(errors_aside=True, source="in.json")
    want = _line_by_line(popularity, data, 0, options)
    got = _by_blocks(popularity, data, 0, options, 4096)
    assert got == want
    assert want[2]["linesWithErrors"] == 2 + bom and want[2]["blankLinesSkipped"] == 1


@pytest.mark.parametrize("slot_bytes", [SLOT_BYTES, 1])
def test_a_pool_reads_blocks_with_the_counts_of_one_process(popularity, slot_bytes):
    """answer_stream on two real worker processes (blocks) and on none (lines); the
    workers' output comes back through shared slots, or through the pipe when it is
    longer than a slot (1 byte: every block)."""
    rows = [b'{"userId": "u%d"}\n' % (k % 40) for k in range(3000)]
    rows[5:5] = [b"\n", b"bad\n", b"   \n"]
    data = BOM + b"".join(rows) + b'{"userId": "u3"}'
    results = []
    pool = WorkerPool(functools.partial(local._with, popularity), 2, slot_bytes)
    try:
        for p in (None, pool):
            counts, out, aside = Counts(), io.BytesIO(), io.BytesIO()
            answer_stream(
                io.BytesIO(data),
                out,
                popularity,
                counts,
                64,
                pool=p,
                options=LineOptions(errors_aside=True, source="in.json"),
                errors_out=aside,
            )
            results.append((out.getvalue(), aside.getvalue(), counts.as_record()))
    finally:
        pool.close()
    assert results[0] == results[1]
    assert results[0][2]["linesRead"] == 3002 and results[0][2]["blankLinesSkipped"] == 2
