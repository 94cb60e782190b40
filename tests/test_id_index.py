"""IdIndex: looking ids up in a solution's id arrays agrees with a plain dict over them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from personalize_batch.data.ids import IdIndex

# short ids over a small alphabet collide often; NUL is in it, inside and at the end
ids = st.text(alphabet=st.sampled_from(["a", "b", "é", "\x00", "😀"]), max_size=6)
# the two ways of looking up: a dict (small arrays) and binary search (large ones)
BOTH = (10**9, 0)
limits = st.sampled_from(BOTH)


def as_array(values: list[str]) -> np.ndarray:
    """What a solution holds: a numpy unicode array of distinct ids (which numpy keeps
    without trailing NULs)."""
    return np.array(list(dict.fromkeys(np.array(values, dtype=str).tolist())), dtype=str)


def expected(arr: np.ndarray, queries: list[str]) -> list[int]:
    index = {u: k for k, u in enumerate(arr.tolist())}
    return [index.get(q, -1) for q in queries]


@given(
    values=st.lists(ids, max_size=30),
    queries=st.lists(ids | st.text(max_size=12), max_size=30),
    order=st.sampled_from(["sorted", "unsorted", "reversed"]),
    limit=limits,
)
def test_lookup_agrees_with_a_dict(values, queries, order, limit) -> None:
    arr = as_array(values)
    if order == "sorted":
        arr = np.sort(arr)
    elif order == "reversed":
        arr = np.sort(arr)[::-1].copy()
    index = IdIndex(arr, limit)
    want = expected(arr, queries)
    got = index.lookup(queries)
    assert got.dtype == np.int64 and got.shape == (len(queries),)
    assert got.tolist() == want
    assert [index.get(q, -1) for q in queries] == want
    assert [q in index for q in queries] == [k >= 0 for k in want]
    assert len(index) == len(arr)
    # a unicode array of queries (trailing NULs already gone) and every stored id
    as_numpy = np.array(queries, dtype=str)
    assert index.lookup(as_numpy).tolist() == expected(arr, as_numpy.tolist())
    assert index.lookup(arr).tolist() == list(range(len(arr)))


@pytest.mark.parametrize("limit", BOTH)
def test_a_trailing_nul_is_not_the_id_without_it(limit) -> None:
    index = IdIndex(np.array(["a", "b\x00c", "c"]), limit)
    assert index.lookup(["a\x00", "a", "b\x00c", "b\x00c\x00", "\x00", "c\x00\x00"]).tolist() == [
        -1,
        0,
        1,
        -1,
        -1,
        -1,
    ]
    assert "a\x00" not in index
    assert index.get("a\x00") is None


@pytest.mark.parametrize("limit", BOTH)
def test_a_long_id_is_not_truncated_into_a_match(limit) -> None:
    arr = np.array(["abc", "abd", "x"])  # <U3
    for a in (arr, arr[::-1].copy()):  # sorted and not
        index = IdIndex(a, limit)
        queries = ["abcd", "abc", "abdabd", "x" * 100, "ab"]
        assert index.lookup(queries).tolist() == expected(a, queries)
        assert index.lookup(np.array(queries)).tolist() == expected(a, queries)


@pytest.mark.parametrize("limit", BOTH)
def test_empty(limit) -> None:
    index = IdIndex(np.array([], dtype=str), limit)
    assert len(index) == 0
    assert index.lookup(["a", ""]).tolist() == [-1, -1]
    assert index.lookup([]).dtype == np.int64
    assert index.lookup([]).shape == (0,)
    assert "a" not in index
    assert IdIndex(np.array(["a"]), limit).lookup([]).shape == (0,)


def test_sorted_ids_need_no_permutation() -> None:
    assert IdIndex(np.array(["a", "b", "c"]), 0)._sorter is None
    unsorted = IdIndex(np.array(["b", "a", "c"]), 0)
    assert unsorted._sorter is not None and unsorted._sorter.dtype == np.intp
    assert unsorted.lookup(["a", "b", "c", "d"]).tolist() == [1, 0, 2, -1]


@pytest.mark.parametrize("limit", BOTH)
def test_non_string_ids_are_unknown_to_membership(limit) -> None:
    index = IdIndex(np.array(["1", "2"]), limit)
    assert 1 not in index
    assert None not in index


@given(values=st.lists(ids, max_size=30), block=st.integers(1, 8), limit=limits)
def test_distinct_agrees_with_unique(values, block, limit) -> None:
    arr = np.array(values, dtype=str) if values else np.array([], dtype=str)
    assert IdIndex(arr, limit).distinct(block) == (len(np.unique(arr)) == len(arr))


@given(
    values=st.lists(ids, max_size=30),
    queries=st.lists(ids | st.text(max_size=12), max_size=30),
    shuffled=st.booleans(),
)
def test_ids_whose_hashes_collide_are_still_told_apart(values, queries, shuffled) -> None:
    """Above the dict limit ids are found by hash; with a hash of three values nearly
    every id shares its hash, and each must still be found, and only where it is."""
    from unittest import mock

    arr = as_array(values)
    if shuffled:
        arr = arr[::-1].copy()
    strong = IdIndex._hash
    with mock.patch.object(IdIndex, "_hash", lambda self, a: strong(self, a) % np.uint64(3)):
        index = IdIndex(arr, 0)
        assert index.lookup(queries).tolist() == expected(arr, queries)
        assert index.lookup(arr).tolist() == list(range(len(arr)))


def test_a_large_index_is_searched_by_hash() -> None:
    arr = np.array([f"u{k}" for k in range(1000)])
    index = IdIndex(arr, 0)
    assert index._hashes is not None and len(index._hashes) == len(arr)
    assert len(np.unique(index._hashes)) == len(arr)  # no collisions among these
    assert index.lookup(["u7", "u999", "u1000", "u"]).tolist() == [7, 999, -1, -1]
