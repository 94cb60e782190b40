"""Offline metrics with Personalize's names (B.6) and the splits they are measured on.

Relevance is binary: an item is relevant to a user when it is in the user's held-out
interactions. NDCG uses gain 1/log2(1 + position) with position 1 at the top; the ideal
DCG places min(K, #relevant) relevant items first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
    """Personalize's metric names, averaged over test users."""
    if not lists:
        return {}
    out: dict[str, float] = {}
    recommended = set()
    for recs in lists:
        recommended.update(recs[:25])
    out["coverage"] = len(recommended) / n_items if n_items else 0.0
    out["mean_reciprocal_rank_at_25"] = float(
        np.mean([reciprocal_rank_at_k(r, t, 25) for r, t in zip(lists, truths, strict=True)])
    )
    for k in (5, 10, 25):
        out[f"normalized_discounted_cumulative_gain_at_{k}"] = float(
            np.mean([ndcg_at_k(r, t, k) for r, t in zip(lists, truths, strict=True)])
        )
    for k in (5, 10, 25):
        out[f"precision_at_{k}"] = float(
            np.mean([precision_at_k(r, t, k) for r, t in zip(lists, truths, strict=True)])
        )
    return {k: round(v, 6) for k, v in out.items()}
