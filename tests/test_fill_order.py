"""fill_from_order (sims' fill), popularity-count's and trending-now's lists against a
plain loop over the order: the first k items of each row that are not excluded."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from personalize_batch.recipes import fixed_order, popularity, trending
from personalize_batch.recipes.numeric import fill_from_order
from personalize_batch.solution import Solution


@st.composite
def cases(draw):
    n = draw(st.integers(0, 40))
    n_rows = draw(st.integers(1, 6))
    k = draw(st.integers(1, 45))
    order = np.array(draw(st.permutations(list(range(n)))), dtype=np.int64)
    pairs = draw(
        st.lists(st.tuples(st.integers(0, n_rows - 1), st.integers(0, max(n - 1, 0))), max_size=80)
    )
    if n == 0:
        pairs = []
    return order, n_rows, k, pairs


@given(cases(), st.booleans())
def test_first_k_not_excluded(case, shuffle) -> None:
    order, n_rows, k, pairs = case
    if shuffle:
        pairs = pairs[::-1]  # callers may give pairs in any order, with repeats
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    cols = np.array([c for _, c in pairs], dtype=np.int64)
    idx, lengths = fill_from_order(order, rank, rows, cols, n_rows, k)
    assert idx.shape == (n_rows, min(k, len(order)))
    for r in range(n_rows):
        excluded = {c for row, c in pairs if row == r}
        want = [i for i in order.tolist() if i not in excluded][:k]
        assert lengths[r] == len(want)
        assert idx[r, : lengths[r]].tolist() == want


def scorer_of(module, recipe: str, seen: list[set[int]], arrays: dict, precompute: bool):
    """The recipe's scorer over 640 items for users with the training items `seen`,
    each user's offsets made once per job (`precompute`) or per chunk."""
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in seen])])
    arrays = {
        **arrays,
        "seen_indptr": indptr,
        "seen_indices": np.array([i for s in seen for i in sorted(s)], dtype=np.int32),
        "item_ids": np.array([f"i{i}" for i in range(640)]),
    }
    mean = fixed_order.PRECOMPUTE_MEAN
    fixed_order.PRECOMPUTE_MEAN = 0 if precompute else 10**9
    try:
        scorer = module.Scorer(Solution("", recipe, {}, arrays))
    finally:
        fixed_order.PRECOMPUTE_MEAN = mean
    assert (scorer.before is not None) == (precompute and len(scorer.order) > 0)
    return scorer


@given(
    seen=st.lists(st.sets(st.integers(0, 639), max_size=600), min_size=1, max_size=3),
    k=st.sampled_from([1, 25, 499, 500]),
    precompute=st.booleans(),
)
def test_popularity_lists_with_long_histories(seen, k, precompute) -> None:
    """popularity-count's lists, with each user's offsets made once per job (keeping only
    the training items with fewer than 500 eligible items before them) or per chunk."""
    n = 640
    counts = np.arange(n, 0, -1, dtype=np.int64)  # item i is the i-th most popular
    arrays = {"item_counts": counts}
    scorer = scorer_of(popularity, "popularity-count", seen, arrays, precompute)
    users = np.array([*range(len(seen)), -1])  # and an unknown user
    idx, _, lengths = scorer.recommend(users, k, include_seen=False)
    for r, excluded in enumerate([*seen, set()]):
        want = [i for i in range(n) if i not in excluded][:k]
        assert idx[r, : lengths[r]].tolist() == want


@given(
    seen=st.lists(st.sets(st.integers(0, 639), max_size=600), min_size=1, max_size=3),
    k=st.sampled_from([1, 25, 499, 500]),
    precompute=st.booleans(),
    data=st.data(),
)
def test_trending_lists_with_long_histories(seen, k, precompute, data) -> None:
    """trending-now's lists: only the items that rose are listed, z descending; a user's
    own items (listed or not) are left out, offsets made once per job or per chunk."""
    n = 640
    latest = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    earlier = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    arrays = {"trend_latest": latest, "trend_before": earlier}
    scorer = scorer_of(trending, "trending-now", seen, arrays, precompute)
    z = [(c1 - c0) / (c0 + c1 + 1.0) ** 0.5 for c1, c0 in zip(latest, earlier, strict=True)]
    ranked = sorted((i for i in range(n) if latest[i] > 0), key=lambda i: (-z[i], i))
    users = np.array([*range(len(seen)), -1])  # and an unknown user
    idx, scores, lengths = scorer.recommend(users, k, include_seen=False)
    for r, excluded in enumerate([*seen, set()]):
        want = [i for i in ranked if i not in excluded][:k]
        assert idx[r, : lengths[r]].tolist() == want
        assert np.allclose(scores[r, : lengths[r]], [z[i] for i in want])
