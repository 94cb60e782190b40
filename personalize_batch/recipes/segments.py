"""User segments: the users most likely to interact with an item (item-affinity) or with
any of a set of items (item-attribute-affinity), read from a user x item affinity the
other way round.

The affinity of user u for item i is

    s(u, i) = a_u ** activity_exponent · Σ_{h in H_u} M(h, i)

where H_u is the user's training items, a_u how many there are, and M an item-item
matrix, one of `SOURCES`:

- `cooccurrence`: C(h, i) / n_h ** cooccurrence_exponent, C(h, i) the users who have
  both items (h != i) and n_h those who have h, for the COOCCURRENCE_KEPT items h
  strongest for i (times the number of a line's items); at exponent 0.5 and without
  that cut the sum ranks users as item-kNN over cosine similarity does.
- `neighbours`: the user model's item neighbours (cosine, each item's strongest ones).
- `neighbours+item-model`: those plus the positive part of the user model's item-item
  model, each divided by its largest entry.

A set of items S is scored by Σ_{i in S} s(u, i): the chance of an interaction with any
of them, on the same scale. The rule – source and exponents – is chosen when the
solution is trained (item_affinity.choose_rule). A line's score is the user's share of
the line's total affinity over the users it may name: s(u, i) / Σ_v s(v, i).

Users are scored in blocks of USER_BLOCK: one sparse product per block (that block's
histories times the lines' columns of M), whose entries above each line's current k-th
best join a pool, cut back to each line's k best when it grows; memory is the pool and
one block, never users x items. Users no term reaches (affinity 0) follow the scored
ones, most active first. Ties: lower user index first. A filter (`user_filter`) takes
users out of a line's candidates block by block, before the pool and the line's total,
and out of its fill. Every sum runs in a fixed order
(a user's items in index order, a block's users in index order) whatever the other
lines of the call, so an answer is the same bytes for any chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .numeric import fill_from_order, positions_in_rows
from .user_filter import BoundFilter, UserFilter

SOURCES = ("cooccurrence", "neighbours", "neighbours+item-model")
# co-occurring items kept per line item (the strongest): the rest add little but cost a
# product term for nearly every user of a large catalogue (a popular item co-occurs with
# most items), and item neighbours cut the same way ranked users better on anime
COOCCURRENCE_KEPT = 500
USER_BLOCK = 8192  # users per sparse product (fixed: the normalising sums depend on it)
LIST_BUDGET = 1 << 21  # lines x k entries a pass keeps: lines are scored in such groups
POOL_FACTOR = 2  # the pool is cut back when it holds this many times the lists


@dataclass(frozen=True)
class Rule:
    """How affinity is read from a solution (see the module's docstring)."""

    source: str
    activity_exponent: float
    cooccurrence_exponent: float = 0.5

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "segment_source": np.array(self.source),
            "segment_activity_exponent": np.array(self.activity_exponent, dtype=np.float64),
            "segment_cooccurrence_exponent": np.array(self.cooccurrence_exponent, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> Rule:
        return cls(
            str(a["segment_source"]),
            float(a["segment_activity_exponent"]),
            float(a["segment_cooccurrence_exponent"]),
        )


RULE_ARRAYS = {
    "segment_source": ("U", 0),
    "segment_activity_exponent": ("f", 0),
    "segment_cooccurrence_exponent": ("f", 0),
}


def _csr(a: dict[str, np.ndarray], prefix: str, n: int) -> sp.csr_matrix:
    """A stored item x item matrix, copied: a loaded solution's arrays are read-only, and
    scipy sorts a matrix's indices in place before an element-wise operation."""
    return sp.csr_matrix(
        (a[f"{prefix}_data"].astype(np.float64), a[f"{prefix}_indices"], a[f"{prefix}_indptr"]),
        shape=(n, n),
        copy=True,
    )


def _scaled(m: sp.csr_matrix) -> sp.csr_matrix:
    """m's positive part divided by its largest entry."""
    m = m.maximum(0).tocsr()
    top = m.data.max(initial=0.0)
    return m / top if top > 0 else m


class Affinity:
    """Ranks users for columns of item weights (see the module's docstring)."""

    def __init__(self, arrays: dict[str, np.ndarray], rule: Rule) -> None:
        n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
        self.n_users, self.n_items, self.rule = n_users, n_items, rule
        indptr = arrays["seen_indptr"]
        self.x = sp.csr_matrix(
            (np.ones(len(arrays["seen_indices"])), arrays["seen_indices"], indptr),
            shape=(n_users, n_items),
        )
        self.xt = self.x.T.tocsr()  # item -> its users, ascending
        self.activity = activity = np.diff(indptr).astype(np.float64)
        self.user_weight = self.weights(rule.activity_exponent)
        self.order = np.lexsort((np.arange(n_users), -activity))  # the most active first
        self.rank = np.empty(n_users, dtype=np.int64)
        self.rank[self.order] = np.arange(n_users)
        holders = np.diff(self.xt.indptr).astype(np.float64)
        if rule.source == "cooccurrence":
            self.holders = holders
            self.item_scale = np.power(np.maximum(holders, 1.0), -rule.cooccurrence_exponent)
            self.m = None
        elif rule.source == "neighbours":
            self.m = _csr(arrays, "up_nb", n_items)
        elif rule.source == "neighbours+item-model":
            self.m = (
                _scaled(_csr(arrays, "up_nb", n_items)) + _scaled(_csr(arrays, "up_im", n_items))
            ).tocsr()
        else:
            raise ValueError(f"unknown segment source {rule.source!r}")

    def weights(self, activity_exponent: float) -> np.ndarray:
        """a_u ** activity_exponent (0 for a user without training items)."""
        with np.errstate(divide="ignore"):
            return np.where(self.activity > 0, np.power(self.activity, activity_exponent), 0.0)

    def columns(self, q: sp.csr_matrix) -> sp.csr_matrix:
        """Σ_{i in line} M(h, i) for every item h and line (q: items x lines weights)."""
        if self.m is not None:
            return (self.m @ q).tocsr()
        held = (self.x @ q).tocsr()  # per user and line: how many of its items they have
        g = (self.xt @ held).tocsr() - sp.diags(self.holders) @ q  # h != i
        g = (sp.diags(self.item_scale) @ g).tocsc()
        g.eliminate_zeros()
        return _strongest(g, COOCCURRENCE_KEPT * np.maximum(1, np.diff(q.tocsc().indptr)))

    def rank_users(
        self,
        q: sp.csr_matrix,
        k: int,
        exclude_holders: bool,
        users: UserFilter | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each line's (column of q's) top k users, best first, with their shares, as
        (indices, scores, lengths). `exclude_holders` leaves out the users who have every
        one of a line's items (item-affinity's lines hold one item each); `users`, the
        users a filter does not let a line name."""
        return self.rank_users_by(q, k, exclude_holders, [self.user_weight], users)[0]

    def rank_users_by(
        self,
        q: sp.csr_matrix,
        k: int,
        exclude_holders: bool,
        weights: list[np.ndarray],
        users: UserFilter | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """rank_users once per vector of user weights (a_u ** activity_exponent), from
        one pass over the users: what choosing the exponent on held-out data needs."""
        lines = q.shape[1]
        k = min(k, self.n_users)
        step = max(1, LIST_BUDGET // max(k, 1))
        if lines > step:  # lines are independent: the same answers in groups
            groups = [
                self.rank_users_by(
                    q[:, s : s + step],
                    k,
                    exclude_holders,
                    weights,
                    None if users is None else users.lines(np.arange(s, min(s + step, lines))),
                )
                for s in range(0, lines, step)
            ]
            return [
                tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[misc]
                for parts in zip(*groups, strict=True)
            ]
        q = q.tocsr()
        sizes = np.diff(q.tocsc().indptr)  # items per line
        bound = None if users is None else users.bind(q)
        g = self.columns(q)
        pools = [_Pool(lines, k) for _ in weights]
        totals = [np.zeros(lines) for _ in weights]
        for start in range(0, self.n_users, USER_BLOCK):
            block = self.x[start : start + USER_BLOCK]
            s = (block @ g).tocoo()
            rows, cols, raw = s.row.astype(np.int64), s.col.astype(np.int64), s.data
            free = np.ones(len(rows), dtype=bool)
            if exclude_holders:
                free &= ~_marked(_holders(block @ q, sizes), rows, cols)
            if bound is not None:
                included, excluded = bound.matches(start, start + block.shape[0])
                free &= ~_marked(excluded, rows, cols)
                if included is not None:
                    free &= _marked(included, rows, cols)
            for w, pool, total in zip(weights, pools, totals, strict=True):
                vals = raw * w[start + rows]
                keep = free & (vals > 0)
                r, c, v = rows[keep], cols[keep], vals[keep]
                total += np.bincount(c, weights=v, minlength=lines)
                pool.add(c, r + start, v)
        out = []
        users_filter = users
        for pool, total in zip(pools, totals, strict=True):
            found, shares, counts = pool.lists(total)
            out.append(self._fill(q, found, shares, counts, k, exclude_holders, users_filter))
        return out

    def _fill(
        self,
        q: sp.csr_matrix,
        users: np.ndarray,
        shares: np.ndarray,
        counts: np.ndarray,
        k: int,
        exclude_holders: bool,
        users_filter: UserFilter | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lines with fewer than k scored users go on with the most active others (that
        the filter lets them name)."""
        lines = len(counts)
        short = np.flatnonzero(counts < k)
        if not len(short):
            return users, shares, counts
        # a short line's excluded users: its scored ones, and its items' holders
        width = users.shape[1]
        j = np.arange(width)[None, :]
        listed = j < counts[short, None]
        rows = [np.nonzero(listed)[0]]
        cols = [users[short][listed]]
        if exclude_holders:
            held = _holders(self.x @ q[:, short], np.diff(q[:, short].tocsc().indptr))
            rows.append(held.col.astype(np.int64))
            cols.append(held.row.astype(np.int64))
        included = None
        if users_filter is not None:  # its exclusions join the others
            bound = users_filter.lines(short).bind(q[:, short])
            included = self._filtered(bound, rows, cols)
        rows_, cols_ = np.concatenate(rows), np.concatenate(cols)
        if included is None:
            fill, fill_len = fill_from_order(self.order, self.rank, rows_, cols_, len(short), k)
        else:
            fill, fill_len = self._fill_from(included, rows_, cols_, len(short), k)
        out_users = np.zeros((lines, k), dtype=np.int64)
        out_scores = np.zeros((lines, k))
        out_users[:, :width] = users[:, :k]
        out_scores[:, :width] = shares[:, :k]
        have = counts[short, None]
        at = np.clip(np.arange(k)[None, :] - have, 0, max(0, fill.shape[1] - 1))
        from_fill = np.arange(k)[None, :] >= have
        filled = np.take_along_axis(fill, at, axis=1) if fill.shape[1] else out_users[short]
        out_users[short] = np.where(from_fill, filled, out_users[short])
        out_scores[short] = np.where(from_fill, 0.0, out_scores[short])
        lengths = counts.copy()
        lengths[short] = np.minimum(k, counts[short] + fill_len)
        return out_users, out_scores, lengths

    def _filtered(
        self, bound: BoundFilter, rows: list[np.ndarray], cols: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Add the (line, user) pairs the filter excludes to `rows`, `cols`, a block of
        users at a time; the pairs it includes, or None without INCLUDE expressions."""
        inc_lines, inc_users = [], []
        for start in range(0, self.n_users, USER_BLOCK):
            stop = min(start + USER_BLOCK, self.n_users)
            included, excluded = bound.matches(start, stop)
            excluded = excluded.tocoo()
            rows.append(excluded.col.astype(np.int64))
            cols.append(excluded.row.astype(np.int64) + start)
            if included is not None:
                included = included.tocoo()
                inc_lines.append(included.col.astype(np.int64))
                inc_users.append(included.row.astype(np.int64) + start)
        if not bound.has_includes:
            return None
        return np.concatenate(inc_lines), np.concatenate(inc_users)

    def _fill_from(
        self,
        included: tuple[np.ndarray, np.ndarray],
        rows: np.ndarray,
        cols: np.ndarray,
        n_lines: int,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per line, its first k included users in the order of activity that are not
        among the excluded (line, user) pairs: as fill_from_order, from a filter's
        INCLUDE pairs in place of every user."""
        lines, users = included
        n = self.n_users
        blocked = np.unique(rows.astype(np.int64) * n + cols)
        keep = ~np.isin(lines * n + users, blocked)
        key = np.unique(lines[keep] * n + self.rank[users[keep]])  # (line, activity rank)
        lines, users = key // n, self.order[key % n]
        pos = positions_in_rows(np.bincount(lines, minlength=n_lines))
        keep = pos < k
        fill = np.zeros((n_lines, k), dtype=np.int64)
        fill[lines[keep], pos[keep]] = users[keep]
        return fill, np.bincount(lines[keep], minlength=n_lines)


def _marked(m: sp.spmatrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether each (row, col) pair is a stored entry of m."""
    m = m.tocoo()
    if not m.nnz or not len(rows):
        return np.zeros(len(rows), dtype=bool)
    width = m.shape[1]
    keys = np.sort(m.row.astype(np.int64) * width + m.col)
    key = rows * width + cols
    at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
    return keys[at] == key


def _strongest(g: sp.csc_matrix, kept: np.ndarray) -> sp.csr_matrix:
    """Each column's `kept[column]` largest entries (ties: lower row first)."""
    lengths = np.diff(g.indptr)
    if not (lengths > kept).any():
        return g.tocsr()
    cols = np.repeat(np.arange(g.shape[1]), lengths)
    order = np.lexsort((g.indices, -g.data, cols))
    pos = np.arange(len(order)) - np.repeat(g.indptr[:-1], lengths)
    keep = order[pos < kept[cols]]
    return sp.csr_matrix((g.data[keep], (g.indices[keep], cols[keep])), shape=g.shape)


def _holders(held: sp.spmatrix, sizes: np.ndarray) -> sp.coo_matrix:
    """The (user, line) entries of `held` (how many of a line's items a user has) where
    the user has every one of them: nothing is left for them to meet."""
    held = held.tocoo()
    full = held.data >= sizes[held.col]
    return sp.coo_matrix((held.data[full], (held.row[full], held.col[full])), shape=held.shape)


class _Pool:
    """Each line's best (user, value) pairs so far; users arrive in ascending order, so
    a later user equal to a line's k-th best value ranks after it and is not kept, and a
    line's entries of equal value lie in ascending user order (see _cut)."""

    def __init__(self, lines: int, k: int) -> None:
        self.lines, self.k = lines, k
        self.kth = np.full(lines, -np.inf)  # a line's k-th best value once it has k
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.size = 0

    def add(self, lines: np.ndarray, users: np.ndarray, vals: np.ndarray) -> None:
        keep = vals > self.kth[lines]
        if not keep.any():
            return
        self.parts.append((lines[keep], users[keep], vals[keep]))
        self.size += int(keep.sum())
        if self.size > POOL_FACTOR * max(self.lines * self.k, USER_BLOCK):
            self._cut()

    def _cut(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Keep each line's k best (value descending, user ascending)."""
        if self.parts:
            lines, users, vals = (np.concatenate(p) for p in zip(*self.parts, strict=True))
        else:
            lines = users = np.zeros(0, dtype=np.int64)
            vals = np.zeros(0)
        # (line, value descending, user ascending) from two stable sorts: the pool holds
        # a line's entries of equal value in ascending user order already (the kept ones
        # sorted, then later blocks' users, each block's in order), and a stable sort
        # keeps that order; a line number sorts as 16 bits (radix) where it fits
        order = np.argsort(-vals, kind="stable")
        by_line = lines[order].astype(np.int16) if self.lines < 2**15 else lines[order]
        order = order[np.argsort(by_line, kind="stable")]
        lines, users, vals = lines[order], users[order], vals[order]
        pos = positions_in_rows(np.bincount(lines, minlength=self.lines))
        keep = pos < self.k
        lines, users, vals, pos = lines[keep], users[keep], vals[keep], pos[keep]
        full = pos == self.k - 1
        self.kth[lines[full]] = vals[full]
        self.parts = [(lines, users, vals)]
        self.size = len(lines)
        return lines, users, vals, pos

    def lists(self, totals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, shares of the line's total, counts) per line, best first."""
        lines, users, vals, pos = self._cut()
        counts = np.bincount(lines, minlength=self.lines)
        width = int(counts.max(initial=0))
        out_users = np.zeros((self.lines, width), dtype=np.int64)
        out_vals = np.zeros((self.lines, width))
        out_users[lines, pos] = users
        safe = np.where(totals > 0, totals, 1.0)
        out_vals[lines, pos] = vals / safe[lines]
        return out_users, out_vals, counts


def one_hot(items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """items x lines: 1 at each line's item (no entry for -1, an unknown item)."""
    items = np.asarray(items, dtype=np.int64)
    known = np.flatnonzero(items >= 0)
    return sp.csr_matrix((np.ones(len(known)), (items[known], known)), shape=(n_items, len(items)))


def indicator(masks: list[np.ndarray | None], n_items: int) -> sp.csr_matrix:
    """items x lines: 1 at each item a line's mask holds (None: no item)."""
    rows, cols = [], []
    for line, mask in enumerate(masks):
        if mask is not None:
            hit = np.flatnonzero(mask)
            rows.append(hit)
            cols.append(np.full(len(hit), line, dtype=np.int64))
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_items, len(masks)))


def empty_answers(lines: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros((lines, 0), dtype=np.int64),
        np.zeros((lines, 0)),
        np.zeros(lines, dtype=np.int64),
    )


def answer(
    affinity: Affinity,
    q: sp.csr_matrix,
    k: int,
    exclude_holders: bool,
    answered: np.ndarray,
    users: UserFilter | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rank_users for the lines `answered` (bool per line); other lines have length 0.
    `users`: a filter of the users each line may name (one per line of q)."""
    lines = q.shape[1]
    out_users, out_scores, lengths = empty_answers(lines)
    some = np.flatnonzero(answered)
    if not len(some) or k <= 0:
        return out_users, out_scores, lengths
    chosen = None if users is None else users.lines(some)
    found, scores, got = affinity.rank_users(q[:, some], k, exclude_holders, chosen)
    out_users = np.zeros((lines, found.shape[1]), dtype=np.int64)
    out_scores = np.zeros((lines, found.shape[1]))
    out_users[some], out_scores[some], lengths[some] = found, scores, got
    return out_users, out_scores, lengths
