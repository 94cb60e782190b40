"""user-personalization's sparse scoring path against the dense one it replaces.

The dense path builds every logit of a row; the sparse path only the items the user's
history touches plus the prior's first items. Both must give the same lists, and scores
equal far below the 6 significant digits the output keeps.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_batch.recipes import user_model as up_model
from personalize_batch.recipes import user_personalization as up
from personalize_batch.solution import load
from personalize_batch.training import train


def make_solution(path: Path, rows: list[tuple[int, int, int]], hp: tuple[str, ...] = ()):
    csv_path = path.with_suffix(".csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP"])
        w.writerows((f"u{u}", f"i{i:04d}", t) for u, i, t in rows)
    train("user-personalization", str(csv_path), str(path), hp_pairs=hp, tune=False)
    return load(str(path))


def assert_same(scorer: up.Scorer, users: np.ndarray, k: int, include_seen: bool) -> None:
    d_idx, d_scores, d_len = scorer._recommend_dense(users, k, include_seen)
    s_idx, s_scores, s_len = scorer._recommend_sparse(users, k, include_seen)
    assert d_len.tolist() == s_len.tolist()
    for r, n in enumerate(d_len.tolist()):
        assert d_idx[r, :n].tolist() == s_idx[r, :n].tolist(), f"row {r}"
        np.testing.assert_allclose(s_scores[r, :n], d_scores[r, :n], rtol=1e-9, atol=1e-300)


def random_rows(rng: np.random.Generator, users: int, items: int, n: int) -> list:
    pop = 1.0 / (np.arange(items) + 3.0)
    item = rng.choice(items, size=n, p=pop / pop.sum())
    return [
        (int(u), int(i), 1_600_000_000 + int(t))
        for u, i, t in zip(
            rng.integers(0, users, n), item, rng.integers(0, 90 * 86400, n), strict=True
        )
    ]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**16),
    items=st.integers(95, 300),
    k=st.sampled_from([1, 5, 25]),
    include_seen=st.booleans(),
    hp=st.sampled_from(
        [
            (),
            ("neighbour_weight=0.7",),
            ("recency_mask=false",),
            ("item_model_weight=0",),
            # terms over the temperature large enough for exp() to overflow: the softmax
            # sums are taken relative to each row's maximum
            ("temperature=0.001", "item_model_weight=100"),
        ]
    ),
)
def test_sparse_path_matches_dense(tmp_path, seed, items, k, include_seen, hp) -> None:
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, 60, items, 2500)
    # a user who has seen every popular item: the window has too few left (dense rows)
    rows += [(999, i, 1_700_000_000 + i) for i in range(80)]
    sol = make_solution(tmp_path / f"s{seed}-{items}-{k}.npz", rows, hp)
    scorer = up.Scorer(sol)
    users = np.append(sol.user_index.lookup(sorted(sol.user_ids.tolist())), -1)
    # every user, and an unknown one
    assert_same(scorer, users, k, include_seen)


def test_recommend_takes_the_sparse_path_and_the_fallback(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(7)
    rows = random_rows(rng, 50, 400, 3000)
    rows += [(999, i, 1_700_000_000 + i) for i in range(120)]  # most of the first window
    rows += [(998, i, 1_700_000_000 + i) for i in range(380)]  # most of the catalogue
    sol = make_solution(tmp_path / "s.npz", rows)
    scorer = up.Scorer(sol)
    calls: list[list[int]] = []
    dense = scorer._recommend_dense

    def spy(users, *args, **kw):
        calls.append(users.tolist())
        return dense(users, *args, **kw)

    monkeypatch.setattr(scorer, "_recommend_dense", spy)
    users = np.arange(len(sol.user_ids), dtype=np.int64)
    scorer.recommend(users, 25, False)
    # user 999 is answered by a wider window; only user 998 went dense
    assert calls == [sol.user_index.lookup(["u998"]).tolist()]
    monkeypatch.setattr(scorer, "_recommend_dense", dense)
    assert_same(scorer, users, 25, False)


@pytest.mark.parametrize(
    ("k", "sample_width"),
    # rows with more candidates than sample_width are pruned by the k-th best of their
    # first sample_width: the default width (which prunes the example's rows at k = 100)
    # and narrow ones
    [(25, up_model.SAMPLE_WIDTH), (100, up_model.SAMPLE_WIDTH), (25, 40), (5, 8)],
)
def test_example_solution(solutions, monkeypatch, k, sample_width) -> None:
    monkeypatch.setattr(up_model, "SAMPLE_WIDTH", sample_width)
    sol = load(str(solutions["user-personalization"]))
    scorer = up.Scorer(sol)
    users = np.arange(len(sol.user_ids), dtype=np.int64)
    assert_same(scorer, users, k, False)
    assert_same(scorer, users[:200], k, True)


def test_ranking_reads_the_same_logits_as_the_dense_model(solutions) -> None:
    from personalize_batch.recipes import personalized_ranking as pr

    sol = load(str(solutions["personalized-ranking"]))
    scorer = pr.Scorer(sol)
    rng = np.random.default_rng(3)
    users = np.concatenate([rng.choice(len(sol.user_ids), 300), [-1]]).astype(np.int64)
    cols = rng.integers(-1, len(sol.item_ids), size=(len(users), 40))
    dense = np.take_along_axis(scorer.logits(users), np.maximum(cols, 0), axis=1)
    assert np.array_equal(scorer.list_logits(users, cols), dense)  # bit for bit
