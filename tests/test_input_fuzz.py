"""Hostile input lines (A.3, A.4): random bytes, invalid UTF-8, huge numbers, deep nesting,
1–10 MiB lines, NUL bytes, duplicate keys, ids and filterValues of every JSON type. Every
non-blank line gets exactly one well-formed output line, in order; the job ends ACTIVE
with exit 3; memory does not grow with the input."""

from __future__ import annotations

import io
import itertools
import json
import os
import threading
import zlib

import faultkit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_batch.job.answering import answer_stream
from personalize_batch.job.counts import Counts
from personalize_batch.job.framing import block_lines, iter_blocks, iter_lines, iter_pipe_lines
from personalize_batch.job.scoring import Answerer
from personalize_batch.solution import load

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # past 64 bits: orjson refuses
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
ID_KEYS = ["userId", "itemId", "items", "itemList", "itemIds", "inputList", "filterValues"]
request = st.builds(
    lambda base, extra: json.dumps({**base, **extra}).encode(),
    st.fixed_dictionaries({"userId": st.sampled_from(["653", "1984", "8"])}),
    st.dictionaries(st.sampled_from(ID_KEYS), json_values, max_size=3),
)
hostile = st.one_of(
    request,
    st.sampled_from(faultkit.HOSTILE_FIXED),
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda d: b'{"userId": "653", "d": ' + b"[" * d + b"]" * d + b"}"),
    st.builds(lambda b, cut: b[:cut], request, st.integers(0, 40)),
)


@pytest.fixture(scope="module")
def answerers(solutions) -> dict[str, Answerer]:
    return {recipe: Answerer(load(str(path)), 3) for recipe, path in solutions.items()}


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    recipe=st.sampled_from(sorted(faultkit.QUERY_RECIPES)),
    lines=st.lists(hostile, max_size=40),
    chunk=st.integers(1, 9),
)
def test_every_line_gets_one_answer_in_order(answerers, recipe, lines, chunk) -> None:
    corpus = [b'{"userId": "653"}\n'] + [line + b"\n" for line in lines]
    out = io.BytesIO()
    counts = Counts()
    answer_stream(io.BytesIO(b"".join(corpus)), out, answerers[recipe], counts, chunk)
    lines_out, lost, errors = faultkit.check_echoes(corpus, out.getvalue())
    assert lost == 0
    assert lines_out == counts.read == counts.answered + counts.errors
    assert errors == counts.errors


@pytest.mark.parametrize("depth", [250, 251, 252, 253, 300, 1023, 1024])
def test_deep_line_is_an_error_line_not_a_crash(answerers, depth) -> None:
    """orjson reads 1024 levels but writes only 255: a line 253–1024 levels deep parsed,
    then its answer could not be written and the whole job stopped (TypeError). Now a
    line deeper than 250 levels is an error line echoing its text."""
    line = b'{"userId": "653", "d": ' + b"[" * depth + b"]" * depth + b"}\n"
    out = io.BytesIO()
    answer_stream(io.BytesIO(line), out, answerers["user-personalization"], Counts(), 10)
    assert faultkit.check_echoes([line], out.getvalue()) == (1, 0, int(depth + 1 > 250))


@pytest.mark.parametrize("recipe", ["user-personalization", "sims"])
def test_hostile_file_through_the_cli(ctx, recipe) -> None:
    """2,000 hostile lines, three of them 1 MiB - 1, 1 MiB + 1 and 10 MiB long."""
    trial = faultkit.trial_hostile_lines(
        ctx, 2000, recipe, huge=3, seed=zlib.crc32(recipe.encode()) % 1000
    )
    assert trial.problems == [] and trial.lost == 0, trial


def test_memory_does_not_grow_with_the_input(ctx) -> None:
    """Peak RSS (VmHWM) of the pbatch process for 2,000 and for 20,000 hostile lines (a
    10 MiB line in each): the input streams through in chunks, so the peaks stay close."""
    small = faultkit.trial_hostile_lines(ctx, 2000, "popularity-count", huge=1, seed=1)
    large = faultkit.trial_hostile_lines(ctx, 20000, "popularity-count", huge=1, seed=2)
    for trial in (small, large):
        assert trial.problems == [], trial
    assert large.peak_rss_mib < small.peak_rss_mib + 32, (small.peak_rss_mib, large.peak_rss_mib)


@pytest.mark.slow
def test_hundred_thousand_hostile_lines(ctx) -> None:
    """The 100k-line corpus with ten 1–10 MiB lines (also `benchmarks/reliability.py`)."""
    trial = faultkit.trial_hostile_lines(ctx, 100_000, "user-personalization", huge=10, seed=3)
    assert trial.problems == [] and trial.lost == 0, trial


@pytest.fixture
def ctx(solutions, tmp_path) -> faultkit.Context:
    return faultkit.Context(solutions=solutions, scratch=tmp_path)


def test_a_long_blank_line_is_skipped(answerers) -> None:
    """A.3: a line of nothing but spaces, tabs and `\\r` gives no output line, however
    long. Over 1 MiB it used to become an error line."""
    data = b'{"userId": "653"}\n' + b" \t" * (1 << 20) + b"\r\n" + b'{"userId": "1984"}\n'
    out = io.BytesIO()
    counts = Counts()
    answer_stream(io.BytesIO(data), out, answerers["user-personalization"], counts, 10)
    assert (counts.read, counts.blank, counts.errors) == (2, 1, 0)
    assert len(out.getvalue().splitlines()) == 2


# short inputs of blank, long and JSON lines, for readers with a small max_bytes
line_soup = st.lists(
    st.sampled_from([b"a", b"b", b" ", b"\t", b"\r", b"\n", b"\n", b'{"userId": "1"}']),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    data=line_soup,
    max_bytes=st.integers(1, 12),
    step=st.integers(1, 9),
    head=st.integers(0, 12),
)
def test_a_pipe_is_cut_into_the_same_lines_as_a_file(data, max_bytes, step, head) -> None:
    """Lines read straight from a pipe, however its writer splits them, are the lines
    (and over-long line marks) that reading the same bytes from a file gives."""
    r, w = os.pipe()

    def write() -> None:
        for i in range(head, len(data), step):
            os.write(w, data[i : i + step])
        os.close(w)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        got = [x for x in iter_pipe_lines(r, max_bytes, data[:head]) if x is not None]
    finally:
        writer.join()
        os.close(r)
    assert got == list(iter_lines(io.BytesIO(data), max_bytes))


@settings(max_examples=400, deadline=None)
@given(
    data=line_soup,
    max_bytes=st.integers(1, 12),
    sizes=st.lists(st.integers(1, 20), min_size=1, max_size=5),
)
def test_blocks_hold_the_lines_a_file_is_read_as(data, max_bytes, sizes) -> None:
    """However the reads fall, the lines of the blocks handed to worker processes are
    the lines (and over-long line marks) read one by one; only the last block may end
    without a newline."""
    reads = itertools.cycle(sizes)
    blocks = list(iter_blocks(io.BytesIO(data), lambda: next(reads), max_bytes))
    got = [lt for block in blocks for lt in block_lines(block, max_bytes)]
    lines = iter_lines(io.BytesIO(data), max_bytes)
    want = [(raw.removesuffix(b"\n"), long) for raw, long in lines]
    assert got == want
    assert all(block.endswith(b"\n") for block in blocks[:-1])
