"""personalized-ranking: the user-personalization model restricted to a given list (A.1).

Scores are the softmax of the model's logits over the list's known items; items unknown
to the solution are appended by the caller, in input order, with score 0.0 (A.5).
"""

from __future__ import annotations

import numpy as np

from . import user_personalization as up

HYPERPARAMETERS = up.HYPERPARAMETERS
fit = up.fit


class Scorer(up.Scorer):
    """Ranks each line's known items by the user model."""

    block_rows = None  # rank() builds dense block x items logits: cache-sized blocks

    def rank(
        self, users: np.ndarray, lists: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each user, its list's item indices best first, with their probabilities."""
        if not lists:
            return []
        width = max(1, max(len(x) for x in lists))
        cols = np.full((len(lists), width), -1, dtype=np.int64)
        for r, items in enumerate(lists):
            cols[r, : len(items)] = items
        valid = cols >= 0
        logits = self.logits(users)
        z = np.take_along_axis(logits, np.where(valid, cols, 0), axis=1) / self.hp["temperature"]
        z = np.where(valid, z, -np.inf)
        zmax = np.max(np.where(valid, z, -np.inf), axis=1, keepdims=True)
        zmax = np.where(np.isfinite(zmax), zmax, 0.0)
        e = np.where(valid, np.exp(z - zmax), 0.0)
        p = e / np.maximum(e.sum(axis=1, keepdims=True), 1e-300)
        tiebreak = np.where(valid, cols, np.iinfo(np.int64).max)
        order = np.lexsort((tiebreak, -np.where(valid, z, -np.inf)), axis=1)
        out = []
        for r, items in enumerate(lists):
            o = order[r, : len(items)]
            out.append((cols[r, o], p[r, o]))
        return out
