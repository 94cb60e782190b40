"""popularity-count: the most interacted-with items, minus the user's own (A.1, A.5)."""

from __future__ import annotations

import numpy as np

from ..data import Interactions
from .base import HyperParameters, fill_keys, mask_rows, topk

HYPERPARAMETERS = HyperParameters([])


def fit(data: Interactions, hp: dict, **_: object) -> dict[str, np.ndarray]:
    """Nothing beyond the shared arrays: the item counts are the model."""
    return {}


class Scorer:
    """Scores a chunk of users: one key matrix, one top-k."""

    def __init__(self, solution) -> None:
        self.solution = solution
        counts = solution.arrays["item_counts"]
        self.keys = fill_keys(counts)
        total = counts.sum()
        self.share = counts / total if total else counts.astype(np.float64)

    def recommend(
        self, users: np.ndarray, k: int, include_seen: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys = np.tile(self.keys, (len(users), 1))
        if not include_seen:
            mask_rows(keys, self.solution.seen_rows(users))
        idx, lengths = topk(keys, k)
        return idx, self.share[idx], lengths
