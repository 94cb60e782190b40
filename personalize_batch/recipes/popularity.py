"""popularity-count: the most interacted-with items, minus the user's own (A.1, A.5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Interactions
from .numeric import (
    eligible_before,
    fill_keys,
    mask_rows,
    order_lists,
    popularity_order,
    popularity_rank,
    round_sig,
    row_positions,
    topk,
)
from .protocol import (
    ITEMS,
    MAX_RESULTS,
    USER_PERSONALIZATION,
    Arrays,
    HyperParameters,
    Query,
    Recipe,
    Validation,
)
from .validation import TOP_N_METRICS, top_n


def fit(data: Interactions, hp: dict, **_: object) -> dict[str, np.ndarray]:
    """Nothing beyond the shared arrays: the item counts are the model."""
    return {}


INIT_ENTRIES = 1 << 20  # training interactions turned into offsets at a time
# users with this many training items on average have their offsets made once per job
PRECOMPUTE_MEAN = 32


class Scorer:
    """Answers a chunk of users: the popularity order, minus each user's items.

    A user's training items become the number of eligible items before each in the
    order (numeric.eligible_before), and a chunk's lists are one cumulative count
    over them. Where users have many training items (PRECOMPUTE_MEAN on average) that is
    done once per job, keeping only the items with fewer than MAX_RESULTS before them
    (the others cannot change a list); with few, it is done per chunk, and the job
    starts without going through every interaction."""

    block_rows = 1024  # no dense block x items matrix: larger blocks, less overhead

    def __init__(self, solution) -> None:
        self.solution = solution
        counts = solution.arrays["item_counts"]
        self.order = popularity_order(counts)
        self.rank = popularity_rank(counts)
        total = counts.sum()
        # rounded once here: shares such as count / 8,000,000 end in an exact 5 at the
        # seventh digit, which round_sig settles one value at a time (rounding a rounded
        # value again changes nothing and is quick)
        self.share = round_sig(counts / total if total else counts.astype(np.float64))
        indptr = solution.arrays["seen_indptr"]
        self.seen_count = np.diff(indptr)
        n_users = len(self.seen_count)
        self.before: np.ndarray | None = None
        if int(indptr[-1]) < PRECOMPUTE_MEAN * n_users:
            return
        kept, per_user = [], np.zeros(n_users, dtype=np.int64)
        step = max(1, INIT_ENTRIES * n_users // max(1, int(indptr[-1])))
        for u in range(0, n_users, step):  # in blocks: a few MiB of temporaries at a time
            users = np.arange(u, min(u + step, n_users))
            row, before = self._before(users)
            near = before < MAX_RESULTS
            per_user[users] = np.bincount(row[near], minlength=len(users))
            kept.append(before[near].astype(np.int32))
        self.before_indptr = np.concatenate([[0], np.cumsum(per_user)]).astype(np.int64)
        self.before = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int32)

    def _before(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, eligible items before it) of each training item of each user."""
        a = self.solution.arrays
        indptr, pos = row_positions(a["seen_indptr"], users)
        owner = np.repeat(np.arange(len(users)), np.diff(indptr))
        return eligible_before(self.rank, owner, a["seen_indices"][pos], len(self.order))

    def recommend(
        self, users: np.ndarray, k: int, include_seen: bool, mask: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k per user; `mask` (a filters.ChunkMask) blocks items before the cut."""
        if mask is not None:
            return self._filtered(users, k, include_seen, mask)
        if k > MAX_RESULTS:
            raise ValueError(f"at most {MAX_RESULTS} results")
        b = len(users)
        if include_seen:
            row = before = np.zeros(0, dtype=np.int64)
            count = np.zeros(b, dtype=np.int64)
        else:
            count = np.where(users >= 0, self.seen_count[np.maximum(users, 0)], 0)
            if self.before is None:
                row, before = self._before(users)
            else:
                indptr, pos = row_positions(self.before_indptr, users)
                row = np.repeat(np.arange(b), np.diff(indptr))
                before = self.before[pos]
        idx, lengths = order_lists(self.order, row, before, count, b, k)
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


RECIPE = Recipe(
    name="popularity-count",
    recipe_type=USER_PERSONALIZATION,
    query=Query("userId", required=False),  # a user's own items are left out
    output=ITEMS,
    example='{} or {"userId": "12"}',
    hyperparameters=HyperParameters([]),
    arrays=Arrays(),  # the item counts, which every solution keeps, are the model
    fit=fit,
    scorer=Scorer,
    validation=Validation(top_n, TOP_N_METRICS),
    fresh_events=True,
)
