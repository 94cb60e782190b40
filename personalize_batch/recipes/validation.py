"""How a recipe is measured offline (A.13, B.6): the questions each kind of recipe is
asked on a held-out part of the data, and Personalize's metrics of its answers. A
recipe's `Validation` names its question and the metrics it reports; `pbatch train`
(choosing settings) and `pbatch evaluate` ask it through the recipe's own scorer.

- top-n (recipes that recommend items to a user): each validation user's top 25
  (training items excluded) against their held-out items.
- ranked list (recipes that re-rank a user's list): each validation user's known
  held-out items (at most 99, a seeded sample) at random places among 99 items they
  have not met, drawn at random (seeded): the metrics of that one list. Where a user
  holds one item out (time cut, leave-last-out), the list holds it and 99 others.
- related items (recipes that answer an item with items): the items most similar to
  each validation user's latest item (with no timestamps, a random one of theirs)
  against the user's held-out items; `hit_rate_at_10` is the share of users with a
  held-out item among the first 10.
- user segments (recipes that answer an item with users): for held-out items (at most
  SEGMENT_ITEMS, a seeded sample), the top 1 % of users (training holders of the item
  left out) against the users who hold the item out: `hit_at_1_percent` (share of items
  with at least one of them in the top 1 %) and `recall_at_1_percent` (of them, the
  share in the top 1 %, out of at most the top's size). Personalize measures
  USER_SEGMENTATION on an 80/20 split within each user (see data.splits, `segment`).

Relevance is binary: an item is relevant to a user when it is in the user's held-out
interactions. NDCG uses gain 1/log2(1 + position) with position 1 at the top; the ideal
DCG places min(K, #relevant) relevant items first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .numeric import chunk_rows
from .protocol import SEGMENT_SHARE  # the top 1 % of users

if TYPE_CHECKING:
    from ..data.splits import Split

NUM_RESULTS = 25  # the longest list a metric reads (MRR@25, NDCG@25, P@25)
RANKED_LIST = 100  # a held-out item and 99 others (at most 99 held-out items per list)

Measure = Callable[[Any], dict[str, float]]  # a fitted scorer -> metrics


def precision_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """(# relevant in the top k) / k."""
    return sum(1 for i in recommended[:k] if i in relevant) / k


def ndcg_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """Normalized discounted cumulative gain of the top k."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / np.log2(pos + 2) for pos, i in enumerate(recommended[:k]) if i in relevant)
    ideal = sum(1.0 / np.log2(pos + 2) for pos in range(min(k, len(relevant))))
    return float(dcg / ideal)


def reciprocal_rank_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """1 / rank of the highest-ranked relevant item within the top k (0 if none)."""
    for pos, i in enumerate(recommended[:k]):
        if i in relevant:
            return 1.0 / (pos + 1)
    return 0.0


def summarize(
    lists: Sequence[Sequence[str]], truths: Sequence[set[str]], n_items: int
) -> dict[str, float]:
    """Personalize's metric names, averaged over test users: the functions above, for
    every list at once (a search measures thousands of lists per setting)."""
    if not lists:
        return {}
    depth = NUM_RESULTS
    # hit[u, p]: the item at position p + 1 of list u is relevant (False past its end)
    hit = np.zeros((len(lists), depth), dtype=bool)
    recommended = set()
    for u, (recs, truth) in enumerate(zip(lists, truths, strict=True)):
        top = recs[:depth]
        recommended.update(top)
        hit[u, : len(top)] = [i in truth for i in top]
    n_relevant = np.array([len(t) for t in truths])
    gain = 1.0 / np.log2(np.arange(depth) + 2.0)
    # running sums in list order, as the functions add
    dcg = np.cumsum(np.where(hit, gain, 0.0), axis=1)
    ideal = np.cumsum(gain)
    found = np.cumsum(hit, axis=1)
    first = np.where(hit.any(axis=1), 1.0 / (hit.argmax(axis=1) + 1.0), 0.0)
    out: dict[str, float] = {"coverage": len(recommended) / n_items if n_items else 0.0}
    out["mean_reciprocal_rank_at_25"] = float(np.mean(first))
    for k in (5, 10, 25):
        best = ideal[np.minimum(k, np.maximum(n_relevant, 1)) - 1]
        ndcg = np.where(n_relevant > 0, dcg[:, k - 1] / best, 0.0)
        out[f"normalized_discounted_cumulative_gain_at_{k}"] = float(np.mean(ndcg))
    for k in (5, 10, 25):
        out[f"precision_at_{k}"] = float(np.mean(found[:, k - 1] / k))
    return {k: round(v, 6) for k, v in out.items()}


def recommend_lists(scorer: Any, queries: np.ndarray, k: int = NUM_RESULTS) -> list[list[int]]:
    """Each query's top-k item indices (training items excluded), chunk by chunk."""
    out: list[list[int]] = []
    step = chunk_rows(len(scorer.solution.item_ids))
    for s in range(0, len(queries), step):
        idx, _, lengths = scorer.recommend(queries[s : s + step], k, False)
        out += [row[:n].tolist() for row, n in zip(idx, lengths, strict=True)]
    return out


# -- the questions: (split, seed) -> a measure of a scorer fitted on split.train --------

TOP_N_METRICS = (
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
    "mean_reciprocal_rank_at_25",
    "coverage",
)


def top_n(split: Split, seed: int = 0) -> Measure:
    """Each validation user's top NUM_RESULTS against their held-out items."""
    truths = [set(t.tolist()) for t in split.truths]

    def measure(scorer: Any) -> dict[str, float]:
        return summarize(recommend_lists(scorer, split.users), truths, split.info["items"])

    return measure


RANKED_LIST_METRICS = (
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_25",
    "mean_reciprocal_rank_at_25",
)


def ranked_list(split: Split, seed: int = 0) -> Measure:
    """Each validation user's held-out items ranked among RANKED_LIST - 1 others."""
    users, lists, positives = _ranking_task(split, seed)

    def measure(scorer: Any) -> dict[str, float]:
        ranked = scorer.rank(users, lists)
        recs = [order.tolist() for order, _ in ranked]
        return summarize(recs, positives, split.info["items"])

    return measure


def _ranking_task(split: Split, seed: int) -> tuple[np.ndarray, list[np.ndarray], list[set[int]]]:
    """Per validation user with a known held-out item: the list to rank (their known
    held-out items, at most RANKED_LIST - 1 of them (a seeded sample), each at a random
    place among up to RANKED_LIST - 1 items the user has not met) and those items.
    Every held-out item counts, not only the first: a choice made on one item per user
    follows which 99 others were drawn (see docs/reference.md, "Search")."""
    rng = np.random.default_rng(seed)
    x = split.train.matrix().tocsr()
    n = split.train.n_items
    users, lists, positives = [], [], []
    for u, truth in zip(split.users.tolist(), split.truths, strict=True):
        known = np.unique(truth[truth >= 0])
        if not len(known):
            continue
        if len(known) > RANKED_LIST - 1:
            known = np.sort(rng.choice(known, RANKED_LIST - 1, replace=False))
        banned = np.zeros(n, dtype=bool)
        banned[x.indices[x.indptr[u] : x.indptr[u + 1]]] = True
        banned[known] = True
        free = np.flatnonzero(~banned)
        others = rng.choice(free, size=min(RANKED_LIST - 1, len(free)), replace=False)
        places = rng.integers(0, len(others) + 1, size=len(known))
        items = np.insert(others, places, known)
        users.append(u)
        lists.append(items.astype(np.int64))
        positives.append(set(known.tolist()))
    return np.array(users, dtype=np.int64), lists, positives


RELATED_ITEMS_METRICS = (
    "hit_rate_at_10",
    "normalized_discounted_cumulative_gain_at_10",
    "precision_at_10",
    "mean_reciprocal_rank_at_25",
)


def related_items(split: Split, seed: int = 0) -> Measure:
    """The items related to each validation user's latest item, against their held-out
    items (hit_rate_at_10 besides Personalize's metrics)."""
    truths = [set(t.tolist()) for t in split.truths]
    queries = _latest_items(split, seed)

    def measure(scorer: Any) -> dict[str, float]:
        recs = recommend_lists(scorer, queries)
        out = summarize(recs, truths, split.info["items"])
        hits = [bool(t.intersection(r[:10])) for r, t in zip(recs, truths, strict=True)]
        return {"hit_rate_at_10": round(float(np.mean(hits)), 6), **out}

    return measure


def _latest_items(split: Split, seed: int) -> np.ndarray:
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


SEGMENT_METRICS = ("recall_at_1_percent", "hit_at_1_percent")
SEGMENT_ITEMS = 500  # held-out items asked (a seeded sample)


def segment_task(split: Split, seed: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The items asked (ascending), each one's relevant users (ascending), and the
    length of the top: 1 % of the training users, at least 1."""
    users = np.repeat(split.users, [len(t) for t in split.truths])
    items = np.concatenate(split.truths) if split.truths else np.zeros(0, dtype=np.int64)
    known = items >= 0
    users, items = users[known], items[known]
    asked = np.unique(items)
    if len(asked) > SEGMENT_ITEMS:
        rng = np.random.default_rng(seed)
        asked = np.sort(rng.choice(asked, SEGMENT_ITEMS, replace=False))
    order = np.lexsort((users, items))
    users, items = users[order], items[order]
    lo, hi = np.searchsorted(items, asked), np.searchsorted(items, asked, side="right")
    relevant = [users[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
    top = max(1, round(SEGMENT_SHARE * split.train.n_users))
    return asked.astype(np.int64), relevant, top


def segment_metrics(
    lists: Sequence[np.ndarray], relevant: Sequence[np.ndarray], top: int
) -> dict[str, float]:
    """Hit and recall at the top of each list (the first `top` users)."""
    if not lists:
        return {}
    hits, recalls = [], []
    for got, want in zip(lists, relevant, strict=True):
        found = len(np.intersect1d(got[:top], want))
        hits.append(found > 0)
        recalls.append(found / min(len(want), top))
    return {
        "recall_at_1_percent": round(float(np.mean(recalls)), 6),
        "hit_at_1_percent": round(float(np.mean(hits)), 6),
    }


def user_segments(split: Split, seed: int = 0, queries: Any = None) -> Measure:
    """The top 1 % of users for each held-out item, against the users holding it out.
    `queries(items)` turns item indices into the scorer's queries (default: as they
    are; item-attribute-affinity asks ITEMS.ITEM_ID expressions)."""
    asked, relevant, top = segment_task(split, seed)

    def measure(scorer: Any) -> dict[str, float]:
        lists = []
        for s in range(0, len(asked), SEGMENT_BLOCK):
            part = asked[s : s + SEGMENT_BLOCK]
            asks = part if queries is None else queries(part)
            idx, _, lengths = scorer.recommend(asks, top, False)
            lists += [row[:n] for row, n in zip(idx, lengths, strict=True)]
        return segment_metrics(lists, relevant, top)

    return measure


SEGMENT_BLOCK = 64  # items asked per scoring call
