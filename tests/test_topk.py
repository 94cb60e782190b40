"""`topk` and `round_sig` against slow, obviously correct pure-Python references.

topk's contract: per row, the columns by key descending, then column index ascending;
entries equal to -inf are excluded; at most k of them. round_sig's: the value rounded to
6 significant digits, as `float(f"{x:.6g}")` does it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize_batch.recipes.numeric import _topk_general, _topk_narrow, round_sig, topk

NEG_INF = float("-inf")
# few distinct values, so that most rows are full of ties (also across the k-th place)
TIE_VALUES = [0.0, -0.0, 1.0, 2.0, 0.5, -3.0, NEG_INF]


def reference_topk(keys: list[list[float]], k: int) -> list[list[int]]:
    """Per row: sort the columns by (-key, column), drop -inf, keep the first k."""
    out = []
    for row in keys:
        order = sorted(range(len(row)), key=lambda c: (-row[c], c))
        out.append([c for c in order if row[c] != NEG_INF][:k])
    return out


def check_topk(keys: list[list[float]], k: int) -> None:
    rows = len(keys)
    n = len(keys[0]) if rows else 0
    arr = np.array(keys, dtype=np.float64).reshape(rows, n)
    before = arr.copy()
    # topk picks one of two ways by the row width; where both apply, both are checked
    ways = [topk, _topk_general, _topk_narrow] if rows and 0 < k < n else [topk]
    for way in ways:
        idx, lengths = way(arr, k)
        assert np.array_equal(arr, before, equal_nan=True), "topk changed its input"
        assert idx.shape == (rows, min(k, n))
        assert lengths.shape == (rows,)
        got = [idx[r, : int(lengths[r])].tolist() for r in range(rows)]
        assert got == reference_topk(keys, k), way.__name__


@st.composite
def key_matrices(draw, values):
    rows = draw(st.integers(0, 6))
    n = draw(st.integers(0, 14))
    keys = draw(st.lists(st.lists(values, min_size=n, max_size=n), min_size=rows, max_size=rows))
    k = draw(st.integers(0, n + 3))
    return keys, k


@settings(deadline=None, max_examples=400, derandomize=True)
@given(key_matrices(st.sampled_from(TIE_VALUES)))
def test_topk_matches_reference_with_ties(case):
    keys, k = case
    check_topk(keys, k)


@settings(deadline=None, max_examples=200, derandomize=True)
@given(
    key_matrices(
        st.one_of(
            st.sampled_from(TIE_VALUES),
            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        )
    )
)
def test_topk_matches_reference_with_any_finite_keys(case):
    keys, k = case
    check_topk(keys, k)


@settings(deadline=None, max_examples=100, derandomize=True)
@given(st.integers(1, 40), st.integers(1, 200), st.data())
def test_topk_large_tied_rows(k, n, data):
    """Wide rows of two values only: the k-th value is almost always shared."""
    rows = data.draw(st.integers(1, 4))
    keys = [
        data.draw(st.lists(st.sampled_from([1.0, 2.0, NEG_INF]), min_size=n, max_size=n))
        for _ in range(rows)
    ]
    check_topk(keys, k)


def test_topk_examples():
    # hand-checked: ties go to the lower column, -inf never shows up
    idx, lengths = topk(np.array([[1.0, 2.0, 2.0, NEG_INF, 1.0]]), 3)
    assert idx[0, : lengths[0]].tolist() == [1, 2, 0]
    idx, lengths = topk(np.array([[NEG_INF, 5.0, NEG_INF]]), 3)
    assert lengths.tolist() == [1]
    assert idx[0, :1].tolist() == [1]
    idx, lengths = topk(np.zeros((0, 4)), 2)
    assert idx.shape == (0, 2) or idx.shape == (0, 0)
    assert lengths.shape == (0,)


# ---------------------------------------------------------------- round_sig


def format6(x: float) -> float:
    """The reference: Python's correctly rounded formatting to 6 significant digits."""
    return float(f"{x:.6g}")


# 7-digit decimals ending in 5: the binary value lies just off a half at the 7th digit,
# where rounding the float product x * 10**k (instead of x itself) can go the wrong way
decimal_halves = st.builds(
    lambda m, e: float(f"{m}5e{e}"), st.integers(100_000, 999_999), st.integers(-330, 300)
)


@settings(deadline=None, max_examples=1000, derandomize=True)
@given(
    st.one_of(st.floats(1e-12, 1e12), decimal_halves, st.floats(min_value=5e-324, max_value=1e300))
)
def test_round_sig_matches_format(x):
    got = round_sig(np.array([x, -x]))
    assert got[0] == format6(x), (x, float(got[0]), format6(x))
    assert got[1] == -got[0]


@settings(deadline=None, max_examples=300, derandomize=True)
@given(st.lists(st.one_of(st.floats(1e-12, 1e12), decimal_halves), min_size=1, max_size=20))
def test_round_sig_vectorized(xs):
    """A vector gives the same as its values one at a time (fast and slow paths mixed)."""
    arr = np.array([*xs, 0.0])
    got = round_sig(arr)
    assert got.tolist() == [format6(v) for v in xs] + [0.0]


@settings(deadline=None, max_examples=300, derandomize=True)
@given(st.floats(1e-12, 1.0))
def test_round_sig_is_idempotent(x):
    once = round_sig(np.array([x]))
    assert round_sig(once).tolist() == once.tolist()


def test_round_sig_examples():
    assert round_sig(np.array([1 / 3, 2 / 3, 0.1, 1.0, 123456789.0, 1e-7 / 3])).tolist() == [
        0.333333,
        0.666667,
        0.1,
        1.0,
        123457000.0,
        3.33333e-08,
    ]
    assert round_sig(np.array([0.0, np.inf, np.nan])).tolist() == [0.0, 0.0, 0.0]


def test_round_sig_tiny_values_are_not_nan():
    # was a bug: 10**(5 - floor(log10 x)) overflowed below ~1e-303 and gave nan
    tiny = np.array([1e-305, 5e-320, 2.2e-308, 1.5e-303])
    got = round_sig(tiny)
    assert np.isfinite(got).all()
    assert got.tolist() == [format6(x) for x in tiny.tolist()]


def test_round_sig_rounds_near_halves():
    # was a bug: x * 10**6 landed on .5 exactly and np.round rounded half to even.
    # 0.2500005 is 0.25000050000000000577..., 0.7090675 is just below its half
    assert round_sig(np.array([0.2500005, 0.7090675, 3.495235e-05])).tolist() == [
        0.250001,
        0.709067,
        3.49523e-05,
    ]
