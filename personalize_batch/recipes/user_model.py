"""The scorer of the user model (see user_personalization for its definition): logits
for a chunk of users as a few sparse products, softmax scores over the catalogue, and
a top k that needs no dense row per user."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from .numeric import (
    chunk_rows,
    csr_rows,
    mask_rows,
    positions_in_rows,
    row_positions,
    softmax_at,
    topk,
)

# items of the prior's order that every row of the sparse scoring path considers beyond k
WINDOW = 64
# candidates of a row whose k-th best bounds the rest, when a row has more
SAMPLE_WIDTH = 256
# history items this many half-lives back or older are not read (w_j < 2 ** -30)
WEIGHT_HALVINGS = 30
# exp() of this much is far from overflowing, even summed over every item
MAX_EXPONENT = 500.0


def _normalised(m: sp.csr_matrix, weight: float) -> sp.csr_matrix:
    """weight · m with each row of m (values >= 0, each column once) divided by its
    largest value, in place: m is a product or a copy made for this."""
    lengths = np.diff(m.indptr)
    top = np.zeros(m.shape[0])
    filled = lengths > 0
    if m.nnz:
        top[filled] = np.maximum.reduceat(m.data, m.indptr[:-1][filled])
    scale = np.where(top > 0, weight / np.where(top > 0, top, 1.0), 0.0)
    m.data *= np.repeat(scale, lengths)
    return m


def _kth_of_sample(
    b: int, k: int, rows: np.ndarray, pos: np.ndarray, val: np.ndarray
) -> np.ndarray:
    """Per row of `b`, the k-th best of the values `val` placed at `pos` (< SAMPLE_WIDTH)
    of rows `rows`; -inf where a row has fewer than k."""
    sample = np.full((b, SAMPLE_WIDTH), -np.inf)
    sample[rows, pos] = val
    return np.partition(sample, SAMPLE_WIDTH - k, axis=1)[:, SAMPLE_WIDTH - k]


def find_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of `keys`: its position in `sorted_keys` (ascending, unique) and whether
    it is there (where it is not, the position means nothing)."""
    if not len(sorted_keys):
        return np.zeros(keys.shape, dtype=np.int64), np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return pos, sorted_keys[pos] == keys


class Scorer:
    """The user model: logits for a chunk of users as a few sparse products."""

    block_rows = 512  # recommend() keeps no block x items matrix (see _recommend_sparse)

    def __init__(self, solution) -> None:
        self.solution = solution
        a, hp = solution.arrays, solution.hyperparameters
        self.n_items = len(solution.item_ids)
        self.hp = hp
        self.h_indptr, self.h_items = a["up_history_indptr"], a["up_history_items"]
        # what a user's weights make worth reading (see history_matrix)
        self.read_length = (
            math.ceil(WEIGHT_HALVINGS * hp["recency_half_life"]) if hp["recency_mask"] else None
        )
        n = self.n_items

        def matrix(prefix: str) -> sp.csr_matrix:
            return sp.csr_matrix(
                (
                    a[f"{prefix}_data"].astype(np.float64),
                    a[f"{prefix}_indices"],
                    a[f"{prefix}_indptr"],
                ),
                shape=(n, n),
            )

        # only the terms a weight keeps are made (float64 copies of their values)
        self.sim = matrix("up_nb") if hp["neighbour_weight"] else None
        # the transition term of a user: their latest item's row, normalised
        self.trans_rows = (
            _normalised(matrix("up_trans"), hp["transition_weight"])
            if hp["recency_mask"] and hp["transition_weight"]
            else None
        )
        self.item_model = matrix("up_im") if hp["item_model_weight"] else None
        b = hp.get("rare_item_emphasis", 0.0)
        counts = np.maximum(a["item_counts"], 1).astype(np.float64)
        self.emphasis = np.power(counts, -b) if b else None
        self.prior = a["up_prior"].astype(np.float64) * hp["popularity_weight"]
        # for the sparse path: the prior's order (value desc, index asc) and the softmax
        # sum of a row that holds the prior alone
        self.prior_order = np.lexsort((np.arange(n), -self.prior))
        self.inv_t = 1.0 / hp["temperature"]
        z = self.prior * self.inv_t
        self.z_prior_max = z.max() if n else 0.0
        z -= self.z_prior_max
        np.exp(z, out=z)
        self.prior_exp = z
        self.prior_sum = z.sum()
        # the most the terms can add to a logit, over the temperature: when exp of it
        # cannot overflow, softmax sums need no per-row maximum (see _softmax_sparse)
        most = hp["item_model_weight"] + hp["neighbour_weight"]
        most += hp["transition_weight"] if hp["recency_mask"] else 0.0
        self.bounded = most * self.inv_t <= MAX_EXPONENT
        self.window_pos = np.empty(n, dtype=np.int64)
        self.window_pos[self.prior_order] = np.arange(n)

    def history_matrix(self, users: np.ndarray) -> sp.csr_matrix:
        """Per user, the item ages (0 = latest) as a sparse matrix (+1 so 0 is stored).
        Items WEIGHT_HALVINGS half-lives back or older are left out: their weight is
        below 2 ** -WEIGHT_HALVINGS."""
        indptr, pos = row_positions(self.h_indptr, users, self.read_length)
        age = np.repeat(indptr[1:], np.diff(indptr)) - np.arange(len(pos), dtype=np.int64)
        return sp.csr_matrix(
            (age.astype(np.float64), self.h_items[pos], indptr), shape=(len(users), self.n_items)
        )

    def terms(self, users: np.ndarray) -> list[sp.csr_matrix]:
        """What each model term adds to the prior (every value >= 0)."""
        hp = self.hp
        ages = self.history_matrix(users)
        if not ages.nnz:
            return []
        age = ages.data - 1.0
        ordered = hp["recency_mask"]
        w = np.power(0.5, age / hp["recency_half_life"]) if ordered else np.ones_like(age)
        if self.emphasis is not None:  # what a rare item says about a user counts more
            w = w * self.emphasis.take(ages.indices)
        weights = ages  # the same matrix, holding weights from here on
        weights.data = w
        out = []
        if self.item_model is not None:
            # negative evidence is dropped: it would put an item below ones the model
            # knows nothing about (cold items), which matters when ranking a given list
            im = (weights @ self.item_model).tocsr()
            np.maximum(im.data, 0.0, out=im.data)
            out.append(_normalised(im, hp["item_model_weight"]))
        if self.sim is not None:
            out.append(_normalised(weights @ self.sim, hp["neighbour_weight"]))
        if self.trans_rows is not None:
            # a user's row of the term is their latest item's row (already normalised)
            latest = np.full(len(users), -1, dtype=np.int64)
            now = age == 0
            latest[np.repeat(np.arange(len(users)), np.diff(ages.indptr))[now]] = ages.indices[now]
            t = self.trans_rows
            out.append(csr_rows(t.indptr, t.indices, latest, self.n_items, t.data))
        return [t for t in out if t.nnz]

    def excess(self, users: np.ndarray) -> sp.csr_matrix:
        """The sum of the terms: logits = prior + excess, as a CSR (>= 0) whose rows
        hold each column once, in no particular order."""
        terms = self.terms(users)
        if not terms:
            return sp.csr_matrix((len(users), self.n_items))
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    def logits(self, users: np.ndarray, ex: sp.csr_matrix | None = None) -> np.ndarray:
        """Dense chunk x items logits (before exclusions); `ex` is the rows' excess,
        when already known."""
        out = np.tile(self.prior, (len(users), 1))
        s = self.excess(users) if ex is None else ex
        out[np.repeat(np.arange(len(users)), np.diff(s.indptr)), s.indices] += s.data
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
        if mask is None and explore is None and k + WINDOW < self.n_items:
            return self._recommend_sparse(users, k, include_seen)
        return self._recommend_dense(users, k, include_seen, mask, explore)

    def _recommend_dense(self, users, k, include_seen, mask=None, explore=None, ex=None):
        step = chunk_rows(self.n_items)
        if len(users) > step and mask is None and explore is None:
            cut = range(0, len(users), step)
            exs = [None] * len(cut) if ex is None else [ex[s : s + step] for s in cut]
            parts = [
                self._recommend_dense(users[s : s + step], k, include_seen, ex=e)
                for s, e in zip(cut, exs, strict=True)
            ]
            return tuple(np.concatenate(x) for x in zip(*parts, strict=True))
        logits = self.logits(users, ex)
        keys = logits.copy()
        if not include_seen:
            mask_rows(keys, self.solution.seen_rows(users))
        if mask is not None:
            mask.apply(keys)
        idx, lengths = explore(keys, k) if explore is not None else topk(keys, k)
        return idx, self.probabilities(logits, idx), lengths

    def _recommend_sparse(
        self,
        users: np.ndarray,
        k: int,
        include_seen: bool,
        ex: sp.csr_matrix | None = None,
        window: int = WINDOW,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The same lists as the dense path without a dense row per user.

        A logit is prior + terms, and every term is >= 0, so an item no term touches
        scores its prior: the best of those are the first items of the prior's order.
        The candidates of a row are the items its terms touch plus the prior's first
        k + window items; when at least k of those are not excluded, the row's top k lies
        among the candidates (ties: lower index first, as in the dense path). Other rows
        (users who have seen most of the window) try again with a window four times
        wider, and take the dense path once it would cover the catalogue. The softmax sum
        over all items is the prior-only row's sum plus what each touched item adds.
        `ex` is the rows' excess, when already known.
        """
        n, b = self.n_items, len(users)
        if ex is None:
            ex = self.excess(users)
        urow = np.repeat(np.arange(b, dtype=np.int64), np.diff(ex.indptr))
        ucol = ex.indices  # int32 or int64: gathers use take(), which needs no int64 copy
        uval = self.prior.take(ucol) + ex.data
        seen = np.zeros(0, dtype=np.int64)
        if not include_seen:
            s = self.solution.seen_rows(users)
            seen = np.repeat(np.arange(b, dtype=np.int64), np.diff(s.indptr)) * n + s.indices
        # the window: the prior's first items, for every row, with their logits
        wcol = self.prior_order[: k + window]
        width_w = len(wcol)
        wval = np.tile(self.prior[wcol], (b, 1))
        touched = np.zeros((b, width_w), dtype=bool)
        wpos = self.window_pos.take(ucol)
        hit = np.flatnonzero(wpos < width_w)
        at = urow[hit] * width_w + wpos[hit]
        wval.ravel()[at] = uval[hit]
        touched.ravel()[at] = True
        if len(seen):
            srow, scol = np.divmod(seen, n)
            spos = self.window_pos[scol]
            shit = np.flatnonzero(spos < width_w)
            wval.ravel()[srow[shit] * width_w + spos[shit]] = -np.inf
        # every item of a row's top k scores at least the k-th best of its window
        kth = np.partition(wval, width_w - k, axis=1)[:, width_w - k]
        enough = np.isfinite(kth)
        # rows without enough of the window available are answered again below: no
        # candidates here
        kth[~enough] = np.inf
        keep = uval >= kth[urow]
        kept = np.flatnonzero(keep)  # in row order
        counts = np.bincount(urow[kept], minlength=b)
        if k < SAMPLE_WIDTH < counts.max(initial=0):
            # a row's top k also scores at least the k-th best of its first SAMPLE_WIDTH
            # kept touched items (seen ones left out): those below it need no sorting
            tpos = positions_in_rows(counts)
            sampled = tpos < SAMPLE_WIDTH
            first = kept[sampled]
            trow, tval = urow[first], uval[first]
            if len(seen):
                tval[find_sorted(seen, trow * n + ucol.take(first))[1]] = -np.inf
            np.maximum(kth, _kth_of_sample(b, k, trow, tpos[sampled], tval), out=kth)
            keep = uval >= kth[urow]
        fresh = ~touched & (wval >= kth[:, None])  # untouched, may rank
        frow, fpos = np.nonzero(fresh)
        ckey = np.concatenate([urow[keep] * n + ucol[keep], frow * n + wcol[fpos]])
        cval = np.concatenate([uval[keep], wval[frow, fpos]])
        if len(seen):
            cval[find_sorted(seen, ckey)[1]] = -np.inf
        order = np.argsort(ckey, kind="stable")
        ckey, cval = ckey[order], cval[order]
        crow, ccol = np.divmod(ckey, n)
        counts = np.bincount(crow, minlength=b)
        pos = positions_in_rows(counts)
        if k < SAMPLE_WIDTH < counts.max(initial=0):
            # every item of a row's top k scores at least the k-th best of any of its
            # candidates: the k-th best of the first SAMPLE_WIDTH prunes the rest, and the
            # block topk selects in stays narrow (a wide block, mostly -inf padding, is
            # what argpartition is slowest at)
            first = pos < SAMPLE_WIDTH
            bound = _kth_of_sample(b, k, crow[first], pos[first], cval[first])
            keep = cval >= bound[crow]
            crow, ccol, cval = crow[keep], ccol[keep], cval[keep]
            counts = np.bincount(crow, minlength=b)
            pos = positions_in_rows(counts)
        width = max(int(counts.max(initial=0)), k)
        block = np.full((b, width), -np.inf)
        cols = np.zeros((b, width), dtype=np.int64)
        block[crow, pos] = cval
        cols[crow, pos] = ccol
        at, lengths = topk(block, k)
        idx = np.take_along_axis(cols, at, axis=1)
        chosen = np.take_along_axis(block, at, axis=1)
        scores = self._softmax_sparse(ex, urow, ucol, uval, chosen)
        if not enough.all():
            short = np.flatnonzero(~enough)
            if k + 4 * window < n:
                again = self._recommend_sparse(users[short], k, include_seen, ex[short], 4 * window)
            else:
                again = self._recommend_dense(users[short], k, include_seen, ex=ex[short])
            idx[short], scores[short], lengths[short] = again
        return idx, scores, lengths

    def _softmax_sparse(
        self,
        ex: sp.csr_matrix,
        urow: np.ndarray,
        ucol: np.ndarray,
        uval: np.ndarray,
        chosen: np.ndarray,
    ) -> np.ndarray:
        """Softmax over all items at the logits `chosen`, for rows whose logits are the
        prior plus `ex` (at rows `urow`, columns `ucol`, logits `uval`): the prior-only
        row's sum plus what each touched item adds."""
        t, b = self.inv_t, ex.shape[0]
        if self.bounded:
            # relative to the prior's largest exponent: an item adds
            # exp(prior * t - max) * (exp(ex * t) - 1), and nothing overflows. exp - 1
            # rather than expm1, which has no vectorised loop and takes twice as long:
            # for small terms its absolute error (~1e-16) is nothing to a sum >= 1
            gain = ex.data * t
            np.exp(gain, out=gain)
            gain -= 1.0
            gain *= self.prior_exp.take(ucol)
            total = self.prior_sum + np.bincount(urow, weights=gain, minlength=b)
            return np.exp(chosen * t - self.z_prior_max) / total[:, None]
        # relative to each row's largest exponent (small differences of terms below the
        # maximum's 1: their rounding is far below the scores' 6 digits)
        z = uval * t
        zmax = np.full(b, self.z_prior_max)
        filled = np.diff(ex.indptr) > 0  # a row's touched items lie together (CSR)
        if filled.any():
            row_max = np.maximum.reduceat(z, ex.indptr[:-1][filled])
            zmax[filled] = np.maximum(zmax[filled], row_max)
        shift = np.exp(self.z_prior_max - zmax)
        z -= zmax[urow]
        np.exp(z, out=z)
        added = z - self.prior_exp.take(ucol) * shift[urow]
        total = shift * self.prior_sum + np.bincount(urow, weights=added, minlength=b)
        return np.exp(chosen * t - zmax[:, None]) / total[:, None]
