"""Lines with the same answer share it: it is made and serialized once, and the output
bytes are those of answering and writing every line on its own."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from conftest import EXAMPLE_INPUTS, EXAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

import personalize_batch.job.scoring as scoring
from personalize_batch.job.answering import answer_chunk
from personalize_batch.job.lines import success_line, success_lines
from personalize_batch.job.scoring import Answerer, shared_rows
from personalize_batch.solution import load

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
answer_pool = st.lists(
    st.tuples(
        st.lists(st.text(min_size=1, max_size=6), max_size=5),
        st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=5),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    objs=st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=12),
    pool=answer_pool,
    picks=st.lists(st.integers(0, 3), max_size=12),
    kinds=st.lists(st.sampled_from(["shared", "equal", "other scores"]), max_size=12),
)
def test_success_lines_are_the_lines_one_by_one(objs, pool, picks, kinds):
    """Shared answers (the same list objects), equal but separate ones, and the same
    items list with another answer's scores alike."""
    n = min(len(objs), len(picks))
    answers = []
    for k in range(n):
        items, scores = pool[picks[k] % len(pool)]
        kind = kinds[k] if k < len(kinds) else "shared"
        if kind == "equal":
            items, scores = list(items), list(scores)
        elif kind == "other scores":
            scores = pool[(picks[k] + 1) % len(pool)][1]
        answers.append((items, scores))
    expected = b"".join(success_line(o, i, s) for o, (i, s) in zip(objs[:n], answers, strict=True))
    assert success_lines(objs[:n], iter(answers)) == expected


rows = st.tuples(
    st.lists(st.integers(0, 5), min_size=3, max_size=3),
    st.lists(st.sampled_from([0.5, 0.25, -0.0, 0.0, float("nan"), 1e-9]), min_size=3, max_size=3),
    st.integers(0, 3),
)


def _block(distinct, picks):
    chosen = [distinct[p % len(distinct)] for p in picks]
    idx = np.array([r[0] for r in chosen], dtype=np.int64)
    scores = np.array([r[1] for r in chosen], dtype=np.float64)
    lengths = np.array([r[2] for r in chosen], dtype=np.int64)
    return idx, scores, lengths


@settings(max_examples=300, deadline=None)
@given(
    distinct=st.lists(rows, min_size=1, max_size=4), picks=st.lists(st.integers(0, 3), max_size=9)
)
def test_shared_rows_rebuild_the_block_exactly(distinct, picks):
    idx, scores, lengths = _block(distinct, picks)
    shared = shared_rows(idx, scores, lengths)
    keys = [
        (i.tobytes(), s.tobytes(), int(n)) for i, s, n in zip(idx, scores, lengths, strict=True)
    ]
    if shared is None:  # too few rows alike, or two with the same items and other scores
        hashed = {(k[0], k[2]) for k in keys}
        assert (
            len(keys) < 2
            or len(hashed) > len(keys) * scoring.MAX_DISTINCT_SHARE
            or len(hashed) < len(set(keys))
        )
        return
    first, which = shared
    assert len(first) <= len(idx) * scoring.MAX_DISTINCT_SHARE
    assert np.array_equal(idx[first][which], idx)
    assert scores[first][which].tobytes() == scores.tobytes()  # -0.0 is not 0.0 here
    assert np.array_equal(lengths[first][which], lengths)


def test_rows_that_share_a_hash_but_differ_are_not_shared(monkeypatch):
    """Every row hashes alike here: the full comparison is what keeps answers apart."""
    monkeypatch.setattr(scoring, "_ROW_WEIGHTS", np.zeros(501, dtype=np.uint64))
    idx = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3], [3, 2, 1]])
    scores = np.array([[0.3, 0.2, 0.1]] * 4)
    lengths = np.array([3, 3, 3, 3])
    assert shared_rows(idx, scores, lengths) is None
    first, which = shared_rows(idx[:2], scores[:2], lengths[:2])
    assert first.tolist() == [0] and which.tolist() == [0, 0]


@pytest.mark.parametrize("recipe", ["popularity-count", "sims", "user-personalization"])
def test_a_chunk_answers_as_its_lines_would_one_at_a_time(recipe, solutions):
    """The slow reference: each line answered and written alone, where nothing is shared."""
    answerer = Answerer(load(str(solutions[recipe])), 7)
    lines = (EXAMPLES / EXAMPLE_INPUTS[recipe]).read_bytes().splitlines()
    chunk = [(raw + b"\n", False) for raw in (lines * 3)[:300] if raw.strip()]
    together = answer_chunk(answerer, chunk).data
    alone = b"".join(answer_chunk(answerer, [line]).data for line in chunk)
    assert together == alone
    if recipe == "popularity-count":  # most users get the popular list: it is shared
        requests = [answerer.parse(raw) for raw, _ in chunk]
        answers = answerer.answer(requests)
        assert len({id(a) for a in answers}) < len(answers) / 2
        assert [orjson.loads(line) for line in together.splitlines()][0]["error"] is None
