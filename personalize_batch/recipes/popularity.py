"""popularity-count: the most interacted-with items, minus the user's own (A.1, A.5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Interactions
from .base import (
    HyperParameters,
    fill_from_order,
    fill_keys,
    mask_rows,
    popularity_order,
    popularity_rank,
    topk,
)

HYPERPARAMETERS = HyperParameters([])


def fit(data: Interactions, hp: dict, **_: object) -> dict[str, np.ndarray]:
    """Nothing beyond the shared arrays: the item counts are the model."""
    return {}


class Scorer:
    """Answers a chunk of users: the popularity order, minus each user's items."""

    block_rows = 1024  # no dense block x items matrix: larger blocks, less overhead

    def __init__(self, solution) -> None:
        self.solution = solution
        counts = solution.arrays["item_counts"]
        self.order = popularity_order(counts)
        self.rank = popularity_rank(counts)
        total = counts.sum()
        self.share = counts / total if total else counts.astype(np.float64)

    def recommend(
        self, users: np.ndarray, k: int, include_seen: bool, mask: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k per user; `mask` (a filters.ChunkMask) blocks items before the cut."""
        if mask is not None:
            return self._filtered(users, k, include_seen, mask)
        if include_seen:
            rows = cols = np.zeros(0, dtype=np.int64)
        else:
            seen = self.solution.seen_rows(users)
            rows, cols = np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices
        idx, lengths = fill_from_order(self.order, self.rank, rows, cols, len(users), k)
        return idx, self.share[idx], lengths

    def _filtered(
        self, users: np.ndarray, k: int, include_seen: bool, mask: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """With a filter the window may not hold k eligible items: one key matrix."""
        keys = np.tile(fill_keys(self.solution.arrays["item_counts"]), (len(users), 1))
        if not include_seen:
            mask_rows(keys, self.solution.seen_rows(users))
        mask.apply(keys)
        idx, lengths = topk(keys, k)
        return idx, self.share[idx], lengths
