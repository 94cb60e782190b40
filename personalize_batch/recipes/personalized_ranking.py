"""personalized-ranking: the user-personalization model restricted to a given list (A.1).

Scores are the softmax of the model's logits over the list's known items; items unknown
to the solution are appended by the caller, in input order, with score 0.0 (A.5).
"""

from __future__ import annotations

import numpy as np

from . import user_model
from .protocol import ITEMS, PERSONALIZED_RANKING, Query, Recipe, Validation
from .user_fit import fit, fold_in
from .user_personalization import ARRAYS, HYPERPARAMETERS, SEARCH
from .validation import RANKED_LIST_METRICS, ranked_list


class Scorer(user_model.Scorer):
    """Ranks each line's known items by the user model."""

    block_rows = 512  # rank() reads the logits of the listed items only

    def list_logits(self, users: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """logits[r, cols[r, j]] without a dense row: prior plus the row's terms
        (the same sums as the dense logits); cols < 0 give the prior of item 0."""
        n = self.n_items
        ex = self.excess(users)
        ex.sort_indices()
        ukey = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(ex.indptr)) * n
        ukey += ex.indices
        safe = np.maximum(cols, 0)
        out = self.prior[safe]
        pos, hit = user_model.find_sorted(
            ukey, np.arange(len(users), dtype=np.int64)[:, None] * n + safe
        )
        out[hit] += ex.data[pos[hit]]
        return out

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
        z = self.list_logits(users, cols) / self.hp["temperature"]
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


RECIPE = Recipe(
    name="personalized-ranking",
    recipe_type=PERSONALIZED_RANKING,
    query=Query("userId", ranks=True),
    output=ITEMS,
    example='{"userId": "891", "itemList": ["27", "886", "101"]}',
    hyperparameters=HYPERPARAMETERS,
    arrays=ARRAYS,
    fit=fit,
    scorer=Scorer,
    validation=Validation(ranked_list, RANKED_LIST_METRICS),
    search=SEARCH,
    fresh_events=True,
    fold_in=fold_in,
)
