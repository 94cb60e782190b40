"""Lists cut from one fixed order of items, minus each user's own: what popularity-count
and trending-now answer (A.1, A.5).

A user's training items become the number of eligible items before each in the order
(numeric.eligible_before), and a chunk's lists are one cumulative count over them.
Items off the order (trending-now lists only the items that rose) are never answered
and change no list. Where users have many training items (PRECOMPUTE_MEAN on average)
the offsets are made once per job, keeping only the items with fewer than MAX_RESULTS
eligible items before them (the others cannot change a list); with few, they are made
per chunk, and the job starts without going through every interaction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .numeric import eligible_before, mask_rows, order_lists, row_positions, topk
from .protocol import MAX_RESULTS

INIT_ENTRIES = 1 << 20  # training interactions turned into offsets at a time
# users with this many training items on average have their offsets made once per job
PRECOMPUTE_MEAN = 32


class FixedOrderScorer:
    """Answers a chunk of users (or none): `order`'s first items, minus each user's own,
    each with its entry of `values` (one per item)."""

    block_rows = 1024  # no dense block x items matrix: larger blocks, less overhead

    def __init__(self, solution, order: np.ndarray, values: np.ndarray) -> None:
        self.solution = solution
        self.order, self.values = order, values
        n_items, listed = len(values), len(order)
        # an item's place in the order; items off it are placed after every listed one
        self.rank = np.full(n_items, listed, dtype=np.int64)
        self.rank[order] = np.arange(listed)
        self.partial = listed < n_items
        # a filter's path ranks keys: the order's, -inf off it
        self.keys = np.where(self.rank < listed, -self.rank.astype(np.float64), -np.inf)
        indptr = solution.arrays["seen_indptr"]
        n_users = len(indptr) - 1
        self.before: np.ndarray | None = None
        if not listed or int(indptr[-1]) < PRECOMPUTE_MEAN * n_users:
            return
        kept = []
        per_user = np.zeros(n_users, dtype=np.int64)
        self.listed_count = np.zeros(n_users, dtype=np.int64)
        step = max(1, INIT_ENTRIES * n_users // max(1, int(indptr[-1])))
        for u in range(0, n_users, step):  # in blocks: a few MiB of temporaries at a time
            users = np.arange(u, min(u + step, n_users))
            row, before = self._before(users)
            self.listed_count[users] = np.bincount(row, minlength=len(users))
            near = before < MAX_RESULTS
            per_user[users] = np.bincount(row[near], minlength=len(users))
            kept.append(before[near].astype(np.int32))
        self.before_indptr = np.concatenate([[0], np.cumsum(per_user)]).astype(np.int64)
        self.before = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int32)

    def _before(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, eligible items before it) of each listed training item of each user."""
        a = self.solution.arrays
        indptr, pos = row_positions(a["seen_indptr"], users)
        owner = np.repeat(np.arange(len(users)), np.diff(indptr))
        seen = a["seen_indices"][pos]
        if self.partial:  # only listed items change a list
            on = self.rank[seen] < len(self.order)
            owner, seen = owner[on], seen[on]
        return eligible_before(self.rank, owner, seen, len(self.order))

    def recommend(
        self, users: np.ndarray, k: int, include_seen: bool, mask: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k per user; `mask` (a filters.ChunkMask) blocks items before the cut."""
        if mask is not None:
            return self._filtered(users, k, include_seen, mask)
        if k > MAX_RESULTS:
            raise ValueError(f"at most {MAX_RESULTS} results")
        b = len(users)
        if not len(self.order):
            return np.zeros((b, 0), dtype=np.int64), np.zeros((b, 0)), np.zeros(b, np.int64)
        if include_seen:
            row = before = np.zeros(0, dtype=np.int64)
            count = np.zeros(b, dtype=np.int64)
        elif self.before is None:
            row, before = self._before(users)
            count = np.bincount(row, minlength=b)
        else:
            indptr, pos = row_positions(self.before_indptr, users)
            row = np.repeat(np.arange(b), np.diff(indptr))
            before = self.before[pos]
            count = np.where(users >= 0, self.listed_count[np.maximum(users, 0)], 0)
        idx, lengths = order_lists(self.order, row, before, count, b, k)
        return idx, self.values[idx], lengths

    def _filtered(
        self, users: np.ndarray, k: int, include_seen: bool, mask: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """With a filter the window may not hold k eligible items: one key matrix."""
        keys = np.tile(self.keys, (len(users), 1))
        if not include_seen:
            mask_rows(keys, self.solution.seen_rows(users))
        mask.apply(keys)
        idx, lengths = topk(keys, k)
        return idx, self.values[idx], lengths
