"""user-personalization: a sequence-aware user model (Personalize's HRNN family, A.1).

A user is the ordered list of their most recent items. The score of an item is

    logit(i) = neighbour_weight   * sum_j w_j * sim(h_j, i)      (recency-weighted item-kNN)
             + transition_weight  * next(h_last, i)              (what follows the last item)
             + popularity_weight  * recent_popularity(i)         (time-decayed popularity)

with w_j decaying with the distance of h_j from the end of the history (half-life
`recency_half_life` positions) when `recency_mask` is true, and uniform otherwise (the
order-blind ablation, which also drops the transition term). Output scores are the
softmax of logit / temperature over all items, as Personalize's are. An unknown user
has no history: the popularity term alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..data import Interactions
from .base import (
    HyperParameter,
    HyperParameters,
    add_sparse,
    csr_rows,
    mask_rows,
    softmax_at,
    topk,
)
from .sims import neighbours

HYPERPARAMETERS = HyperParameters(
    [
        HyperParameter(
            "max_history_length",
            100,
            int,
            1,
            10000,
            "most recent items of a user that the model reads (like HRNN's bptt)",
        ),
        HyperParameter(
            "recency_mask",
            True,
            bool,
            help="weigh recent items more (false: order-blind, no transitions)",
        ),
        HyperParameter(
            "recency_half_life",
            8.0,
            float,
            0.1,
            10000.0,
            "history positions after which an item's weight halves",
        ),
        HyperParameter("neighbours", 100, int, 1, 1000, "item-item neighbours kept per item"),
        HyperParameter(
            "min_cointeraction_count",
            2,
            int,
            1,
            100,
            "item pairs shared by fewer users are not neighbours",
        ),
        HyperParameter("neighbour_weight", 1.0, float, 0.0, 100.0, "weight of the item-kNN term"),
        HyperParameter(
            "transition_weight", 0.5, float, 0.0, 100.0, "weight of the next-item transition term"
        ),
        HyperParameter(
            "popularity_weight", 0.3, float, 0.0, 100.0, "weight of the recent-popularity term"
        ),
        HyperParameter(
            "popularity_half_life_days",
            30.0,
            float,
            0.01,
            100000.0,
            "age after which an interaction counts half towards popularity",
        ),
        HyperParameter("temperature", 0.1, float, 1e-4, 100.0, "softmax temperature of the scores"),
    ]
)


def _histories(data: Interactions, max_len: int) -> dict[str, np.ndarray]:
    """Each user's last `max_len` distinct items in time order (latest occurrence kept)."""
    users, items = data.users, data.items
    n = len(users)
    # keep the last occurrence of each (user, item): walk rows backwards
    key = users.astype(np.int64) * data.n_items + items
    _, last_rev = np.unique(key[::-1], return_index=True)
    keep = np.zeros(n, dtype=bool)
    keep[n - 1 - last_rev] = True
    u, i, t = users[keep], items[keep], data.timestamps[keep]
    counts = np.bincount(u, minlength=data.n_users)
    ends = np.cumsum(counts)
    age = ends[u] - 1 - np.arange(len(u))  # 0 = the user's latest item
    sel = age < max_len
    u, i, t, age = u[sel], i[sel], t[sel], age[sel]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=data.n_users))])
    return {
        "up_history_indptr": indptr.astype(np.int64),
        "up_history_items": i.astype(np.int32),
        "up_history_times": t.astype(np.int64),
    }


def _transitions(data: Interactions, k: int) -> dict[str, np.ndarray]:
    """Row-normalised counts of 'item b came right after item a' in user sequences."""
    same = data.users[1:] == data.users[:-1]
    a, b = data.items[:-1][same], data.items[1:][same]
    keep = a != b
    m = sp.csr_matrix(
        (np.ones(keep.sum(), dtype=np.float64), (a[keep], b[keep])),
        shape=(data.n_items, data.n_items),
    )
    m.sum_duplicates()
    out = np.asarray(m.sum(axis=1)).ravel()
    m = sp.diags(1.0 / np.maximum(out, 1.0)) @ m
    m = m.tocoo()
    order = np.lexsort((m.col, -m.data, m.row))
    rows, cols, vals = m.row[order], m.col[order], m.data[order]
    start = np.searchsorted(rows, np.arange(data.n_items))
    sel = (np.arange(len(rows)) - start[rows]) < k
    rows, cols, vals = rows[sel], cols[sel], vals[sel]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=data.n_items))])
    return {
        "up_trans_indptr": indptr.astype(np.int64),
        "up_trans_indices": cols.astype(np.int32),
        "up_trans_data": vals.astype(np.float32),
    }


def _prior(data: Interactions, half_life_days: float) -> np.ndarray:
    """Time-decayed popularity, scaled to a maximum of 1."""
    if data.has_timestamps and len(data.timestamps):
        age_days = (data.timestamps.max() - data.timestamps) / 86400.0
        w = np.power(0.5, age_days / half_life_days)
    else:
        w = np.ones(len(data.items))
    pop = np.bincount(data.items, weights=w, minlength=data.n_items)
    top = pop.max() if len(pop) else 0.0
    return (pop / top if top > 0 else pop).astype(np.float32)


def fit(data: Interactions, hp: dict) -> dict[str, np.ndarray]:
    arrays = _histories(data, hp["max_history_length"])
    nb = neighbours(data.matrix(), hp["neighbours"], 0.0, hp["min_cointeraction_count"])
    arrays.update({f"up_nb_{k}": v for k, v in nb.items()})
    arrays.update(_transitions(data, hp["neighbours"]))
    arrays["up_prior"] = _prior(data, hp["popularity_half_life_days"])
    return arrays


class Scorer:
    """The user model: logits for a chunk of users as two sparse products."""

    def __init__(self, solution) -> None:
        self.solution = solution
        a, hp = solution.arrays, solution.hyperparameters
        self.n_items = len(solution.item_ids)
        self.hp = hp
        self.h_indptr, self.h_items = a["up_history_indptr"], a["up_history_items"]
        lengths = np.diff(self.h_indptr)
        owner = np.repeat(np.arange(len(lengths)), lengths)
        self.h_age = (self.h_indptr[owner + 1] - 1 - np.arange(len(self.h_items))).astype(
            np.float64
        )
        n = self.n_items
        self.sim = sp.csr_matrix(
            (a["up_nb_data"].astype(np.float64), a["up_nb_indices"], a["up_nb_indptr"]),
            shape=(n, n),
        )
        self.trans = sp.csr_matrix(
            (a["up_trans_data"].astype(np.float64), a["up_trans_indices"], a["up_trans_indptr"]),
            shape=(n, n),
        )
        self.prior = a["up_prior"].astype(np.float64) * hp["popularity_weight"]

    def history_matrix(self, users: np.ndarray) -> sp.csr_matrix:
        """Per user, the item ages (0 = latest) as a sparse matrix (+1 so 0 is stored)."""
        return csr_rows(self.h_indptr, self.h_items, users, self.n_items, self.h_age + 1.0)

    def logits(self, users: np.ndarray) -> np.ndarray:
        """Dense chunk x items logits (before exclusions)."""
        hp = self.hp
        ages = self.history_matrix(users)
        out = np.tile(self.prior, (len(users), 1))
        if ages.nnz:
            age = ages.data - 1.0
            if hp["recency_mask"]:
                w = np.power(0.5, age / hp["recency_half_life"])
            else:
                w = np.ones_like(age)
            weights = sp.csr_matrix((w, ages.indices, ages.indptr), shape=ages.shape)
            norm = np.asarray(weights.sum(axis=1)).ravel()
            weights = sp.diags(1.0 / np.maximum(norm, 1e-12)) @ weights
            out = add_sparse(out, weights @ self.sim, hp["neighbour_weight"])
            last = sp.csr_matrix(
                ((age == 0).astype(np.float64), ages.indices, ages.indptr), shape=ages.shape
            )
            last.eliminate_zeros()
            if hp["recency_mask"] and hp["transition_weight"] and last.nnz:
                out = add_sparse(out, last @ self.trans, hp["transition_weight"])
        return out

    def probabilities(self, logits: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Softmax over all items of each row, evaluated at the columns `idx`."""
        return softmax_at(logits, idx, self.hp["temperature"])

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        include_seen: bool,
        mask: Any = None,
        explore: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k per user with softmax scores over all items. `mask` (a filters.ChunkMask)
        blocks items before the cut; `explore` replaces the top-k (item exploration)."""
        logits = self.logits(users)
        keys = logits.copy()
        if not include_seen:
            mask_rows(keys, self.solution.seen_rows(users))
        if mask is not None:
            mask.apply(keys)
        idx, lengths = explore(keys, k) if explore is not None else topk(keys, k)
        return idx, self.probabilities(logits, idx), lengths
