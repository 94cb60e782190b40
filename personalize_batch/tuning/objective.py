"""What a setting is worth on the validation part: each recipe answers the questions its
batch jobs answer, through its own scorer, and is measured with Personalize's metric
names (B.6).

- user-personalization: each validation user's top 25 (training items excluded)
  against their held-out items.
- personalized-ranking: each validation user's held-out item ranked among 99 items they
  have not met, drawn at random (seeded): the metrics of that one ranked list.
- sims: the items most similar to each validation user's latest item (with no
  timestamps, a random one of theirs) against the user's held-out items;
  `hit_rate_at_10` is the share of users with a held-out item among the first 10.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.splits import Split
from ..metrics import summarize
from ..recipes import model_arrays, recipe_module
from ..recipes.base import chunk_rows
from ..solution import build_meta, in_memory

NUM_RESULTS = 25  # the longest list a metric reads (MRR@25, NDCG@25, P@25)
RANKED_LIST = 100  # the held-out item and 99 others
METRICS = {
    "user-personalization": (
        "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_5",
        "normalized_discounted_cumulative_gain_at_25",
        "precision_at_5",
        "precision_at_10",
        "precision_at_25",
        "mean_reciprocal_rank_at_25",
        "coverage",
    ),
    "personalized-ranking": (
        "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_5",
        "normalized_discounted_cumulative_gain_at_25",
        "mean_reciprocal_rank_at_25",
    ),
    "sims": (
        "hit_rate_at_10",
        "normalized_discounted_cumulative_gain_at_10",
        "precision_at_10",
        "mean_reciprocal_rank_at_25",
    ),
}
DEFAULT_METRIC = {recipe: names[0] for recipe, names in METRICS.items()}

Objective = Callable[[dict[str, Any], dict], dict[str, float]]


def recommend_lists(scorer: Any, queries: np.ndarray, k: int = NUM_RESULTS) -> list[list[int]]:
    """Each query's top-k item indices (training items excluded), chunk by chunk."""
    out: list[list[int]] = []
    step = chunk_rows(len(scorer.solution.item_ids))
    for s in range(0, len(queries), step):
        idx, _, lengths = scorer.recommend(queries[s : s + step], k, False)
        out += [row[:n].tolist() for row, n in zip(idx, lengths, strict=True)]
    return out


def _scorer(recipe: str, split: Split, hp: dict[str, Any], cache: dict, seed: int) -> Any:
    arrays = model_arrays(recipe, split.train, hp, seed=seed, cache=cache)
    return recipe_module(recipe).Scorer(in_memory(build_meta(recipe, hp, {}), arrays))


def objective(recipe: str, split: Split, seed: int = 0) -> Objective:
    """A function of (hyperparameters, fit cache) -> the recipe's metrics on `split`."""
    truths = [set(t.tolist()) for t in split.truths]
    n_items = split.info["items"]
    if recipe == "personalized-ranking":
        users, lists, positives = _ranking_task(split, seed)

        def ranking(hp: dict[str, Any], cache: dict) -> dict[str, float]:
            scorer = _scorer(recipe, split, hp, cache, seed)
            ranked = scorer.rank(users, lists)
            recs = [order.tolist() for order, _ in ranked]
            return summarize(recs, [{p} for p in positives], n_items)

        return ranking
    if recipe == "sims":
        queries = _sims_queries(split, seed)

        def sims(hp: dict[str, Any], cache: dict) -> dict[str, float]:
            scorer = _scorer(recipe, split, hp, cache, seed)
            recs = recommend_lists(scorer, queries)
            out = summarize(recs, truths, n_items)
            hits = [bool(t.intersection(r[:10])) for r, t in zip(recs, truths, strict=True)]
            return {"hit_rate_at_10": round(float(np.mean(hits)), 6), **out}

        return sims

    def top_n(hp: dict[str, Any], cache: dict) -> dict[str, float]:
        scorer = _scorer(recipe, split, hp, cache, seed)
        return summarize(recommend_lists(scorer, split.users), truths, n_items)

    return top_n


def _ranking_task(split: Split, seed: int) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    """Per validation user with a known held-out item: the list to rank (that item at a
    random place among up to 99 items the user has not met) and the item."""
    rng = np.random.default_rng(seed)
    x = split.train.matrix().tocsr()
    n = split.train.n_items
    users, lists, positives = [], [], []
    for u, truth in zip(split.users.tolist(), split.truths, strict=True):
        known = truth[truth >= 0]
        if not len(known):
            continue
        pos = int(known[0])
        banned = np.zeros(n, dtype=bool)
        banned[x.indices[x.indptr[u] : x.indptr[u + 1]]] = True
        banned[pos] = True
        free = np.flatnonzero(~banned)
        others = rng.choice(free, size=min(RANKED_LIST - 1, len(free)), replace=False)
        items = np.insert(others, rng.integers(0, len(others) + 1), pos)
        users.append(u)
        lists.append(items.astype(np.int64))
        positives.append(pos)
    return np.array(users, dtype=np.int64), lists, positives


def _sims_queries(split: Split, seed: int) -> np.ndarray:
    """Each validation user's latest training item (a random one without timestamps)."""
    train = split.train
    counts = np.bincount(train.users, minlength=train.n_users)
    ends = np.cumsum(counts)
    if train.has_timestamps:
        at = ends[split.users] - 1
    else:
        rng = np.random.default_rng(seed)
        at = ends[split.users] - 1 - rng.integers(0, counts[split.users])
    return train.items[at].astype(np.int64)
