"""sims: item-to-item cosine over user co-interactions, with Personalize's
hyperparameters (A.1, B.4). Neighbours are computed at training time with blocked sparse
products (never a dense item x item matrix) and stored sorted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import Interactions
from ..data.profile import Profile
from .numeric import (
    csr_rows,
    fill_from_order,
    fill_keys,
    popularity_order,
    popularity_rank,
    positions_in_rows,
    row_positions,
    topk,
)
from .protocol import (
    ITEM,
    ITEMS,
    MAX_RESULTS,
    RELATED_ITEMS,
    Arrays,
    Dimension,
    HyperParameter,
    HyperParameters,
    Query,
    Recipe,
    Search,
    Space,
    Validation,
)
from .validation import RELATED_ITEMS_METRICS, related_items

if TYPE_CHECKING:
    import scipy.sparse as sp

MAX_NEIGHBOURS = MAX_RESULTS  # a line may ask for as many

HYPERPARAMETERS = HyperParameters(
    [
        HyperParameter(
            "popularity_discount_factor",
            0.5,
            float,
            0.0,
            1.0,
            "0 ranks neighbours by co-interaction count (popular first), 0.5 = cosine, "
            "higher values favour less popular neighbours",
        ),
        HyperParameter(
            "min_cointeraction_count",
            3,
            int,
            0,
            10,
            "item pairs shared by fewer users are not neighbours",
        ),
        HyperParameter(
            "min_user_history_length_percentile",
            0.005,
            float,
            0.0,
            1.0,
            "users with shorter histories than this percentile are left out",
        ),
        HyperParameter(
            "max_user_history_length_percentile",
            0.995,
            float,
            0.0,
            1.0,
            "users with longer histories than this percentile are left out",
        ),
        HyperParameter(
            "min_item_interaction_count_percentile",
            0.01,
            float,
            0.0,
            1.0,
            "items rarer than this interaction-weighted percentile are never neighbours",
        ),
        HyperParameter(
            "max_item_interaction_count_percentile",
            0.9,
            float,
            0.0,
            1.0,
            "items more popular than this interaction-weighted percentile are never neighbours",
        ),
    ]
)


def training_matrix(data: Interactions, hp: dict) -> tuple[sp.csr_matrix, np.ndarray]:
    """The binary user x item matrix after the user-history percentile bounds, and the
    items within the interaction-count percentile bounds (the possible neighbours)."""
    import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

    x = data.matrix()
    lengths = np.diff(x.indptr)
    lo, hi = np.quantile(
        lengths,
        [hp["min_user_history_length_percentile"], hp["max_user_history_length_percentile"]],
    )
    keep_users = (lengths >= lo) & (lengths <= hi)
    x = sp.diags(keep_users.astype(np.float32)) @ x
    x = x.tocsr()
    x.eliminate_zeros()
    counts = np.asarray(x.sum(axis=0)).ravel()
    keep_items = counts > 0
    if counts.sum() > 0:
        # percentiles of the item count seen by a random interaction (weighted by count)
        order = np.sort(counts[counts > 0])
        cum = np.cumsum(order) / order.sum()

        def at(q: float) -> float:
            return float(order[min(len(order) - 1, np.searchsorted(cum, q, side="left"))])

        lo_c, hi_c = (
            at(hp["min_item_interaction_count_percentile"]),
            at(hp["max_item_interaction_count_percentile"]),
        )
        keep_items &= (counts >= lo_c) & (counts <= hi_c)
    return x, keep_items


COSINE = 0.5  # the exponent of `neighbours` that gives cosine similarity


def neighbours(
    x: sp.csr_matrix,
    k: int,
    exponent: float,
    min_co: int,
    candidates: np.ndarray | None = None,
    block: int = 1024,
) -> dict[str, np.ndarray]:
    """Top-k neighbours of every item, as sorted CSR parts.

    sim(i, j) = C_ij / (sqrt(n_i) * n_j ** exponent), C_ij = users sharing i and j,
    n_i = users of i: cosine at exponent 0.5; below, popular neighbours gain (at 0 a row
    ranks by co-interaction count); above, they lose. Pairs with C_ij < min_co (or 0)
    are dropped, and so are neighbours j outside `candidates` (when given). Row order:
    sim descending, then item index ascending.
    """
    n = x.shape[1]
    xt = x.T.tocsr()
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    indptr = [np.zeros(1, dtype=np.int64)]
    indices, data = [], []
    total = 0
    for start in range(0, n, block):
        stop = min(n, start + block)
        c = (xt[start:stop] @ x).tocoo()
        rows, cols, co = c.row, c.col, c.data.astype(np.float64)
        keep = (rows + start != cols) & (co >= max(1, min_co))
        if candidates is not None:
            keep &= candidates[cols]
        rows, cols, co = rows[keep], cols[keep], co[keep]
        sim = co / (np.sqrt(counts[rows + start]) * counts[cols] ** exponent)
        sim = sim.astype(np.float32)
        order = np.lexsort((cols, -sim, rows))
        rows, cols, sim = rows[order], cols[order], sim[order]
        per_row = np.bincount(rows, minlength=stop - start)  # before the cut at k
        keep = positions_in_rows(per_row) < k
        rows, cols, sim = rows[keep], cols[keep], sim[keep]
        indptr.append(total + np.cumsum(np.minimum(per_row, k)))
        total += len(rows)
        indices.append(cols.astype(np.int32))
        data.append(sim)
    return {
        "indptr": np.concatenate(indptr).astype(np.int64),
        "indices": np.concatenate(indices) if indices else np.zeros(0, np.int32),
        "data": np.concatenate(data) if data else np.zeros(0, np.float32),
    }


def fit(data: Interactions, hp: dict, **_: object) -> dict[str, np.ndarray]:
    x, candidates = training_matrix(data, hp)
    nb = neighbours(
        x,
        MAX_NEIGHBOURS,
        hp["popularity_discount_factor"],
        hp["min_cointeraction_count"],
        candidates,
    )
    return {f"sims_{k}": v for k, v in nb.items()}


class Scorer:
    """Answers a chunk of item queries: neighbours first, then popular items (A.5)."""

    block_rows = 1024  # no dense block x items matrix: larger blocks, less overhead

    def __init__(self, solution) -> None:
        self.solution = solution
        a = solution.arrays
        self.n_items = len(solution.item_ids)
        self.indptr, self.indices, self.data = a["sims_indptr"], a["sims_indices"], a["sims_data"]
        self.order = popularity_order(a["item_counts"])
        self.rank = popularity_rank(a["item_counts"])

    def recommend(
        self, items: np.ndarray, k: int, include_seen: bool, mask: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each query's first k stored neighbours (already in order), then popular items
        that are neither the query nor a neighbour, with score 0.0. `mask` (a
        filters.ChunkMask) blocks items before the cut."""
        if mask is not None:
            return self._filtered(items, k, mask)
        n_rows = len(items)
        nb_indptr, pos = row_positions(self.indptr, items)  # the queries' stored rows
        nb_indices, nb_data, nnz = self.indices[pos], self.data[pos], len(pos)
        have = np.minimum(np.diff(nb_indptr), k)
        j = np.arange(k)[None, :]
        from_nb = j < have[:, None]
        at = np.minimum(nb_indptr[:-1, None] + j, max(0, nnz - 1))
        left = np.where(from_nb, nb_indices[at] if nnz else -1, -1)
        left_scores = np.where(from_nb, nb_data[at] if nnz else 0.0, 0.0)
        known = np.flatnonzero(items >= 0)
        rows = np.concatenate([np.nonzero(from_nb)[0], known])
        cols = np.concatenate([left[from_nb], items[known]])
        fill, fill_len = fill_from_order(self.order, self.rank, rows, cols, n_rows, k)
        fill_at = np.clip(j - have[:, None], 0, max(0, fill.shape[1] - 1))
        fill_idx = np.take_along_axis(fill, fill_at, axis=1) if fill.shape[1] else left
        idx = np.where(from_nb, left, fill_idx)
        scores = np.where(from_nb, left_scores, 0.0)
        return idx, scores, np.minimum(k, have + fill_len)

    def _filtered(
        self, items: np.ndarray, k: int, mask: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """With a filter the stored order may not hold k eligible items: one key matrix."""
        sims = csr_rows(self.indptr, self.indices, items, self.n_items, self.data)
        keys = np.tile(fill_keys(self.solution.arrays["item_counts"]), (len(items), 1))
        coo = sims.tocoo()
        keys[coo.row, coo.col] = coo.data
        known = np.flatnonzero(items >= 0)
        keys[known, items[known]] = -np.inf  # never the query item itself
        mask.apply(keys)
        idx, lengths = topk(keys, k)
        scores = np.take_along_axis(keys, idx, axis=1)
        return idx, np.where(scores > 0, scores, 0.0), lengths


def search_space(data: Interactions, prof: Profile, hp: dict[str, Any]) -> Space:
    """Personalize's hyperparameters over their documented ranges."""
    dims = [
        Dimension("popularity_discount_factor", "linear", 0.0, 1.0),
        Dimension("max_item_interaction_count_percentile", "linear", 0.5, 1.0),
        Dimension("min_cointeraction_count", "linear", 1, 9, integer=True),
        Dimension("min_item_interaction_count_percentile", "linear", 0.0, 0.2),
        Dimension("min_user_history_length_percentile", "linear", 0.0, 0.2),
        Dimension("max_user_history_length_percentile", "linear", 0.8, 1.0),
    ]
    return Space(dict(hp), dims, {})


RECIPE = Recipe(
    name="sims",
    recipe_type=RELATED_ITEMS,
    query=Query("itemId", ITEM, spellings=("items",), user=True),  # userId: for filters
    output=ITEMS,
    example='{"itemId": "105"}',
    hyperparameters=HYPERPARAMETERS,
    arrays=Arrays(
        required={"sims_indptr": ("i", 1), "sims_indices": ("i", 1), "sims_data": ("f", 1)},
        matrices={"sims": ("sims_indptr", "sims_indices", "sims_data", "items", "items")},
    ),
    fit=fit,
    scorer=Scorer,
    # what follows an item: asked of each user's last item from the one before it,
    # every user with two items being a pair (not only those who span a time cut)
    validation=Validation(
        related_items,
        RELATED_ITEMS_METRICS,
        time_splits=(("leave-last-out", "each user's last item, asked from the item before it"),),
    ),
    search=Search(search_space, budget=30),
)
