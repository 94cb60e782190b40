"""The closed-form item-item model of user-personalization.

Every item is regressed on all the others over the binary user x item matrix X, with
no self-loop (EASE, Steck 2019) and a ridge penalty that grows with an item's popularity
(the dropout-emphasis of EDLAE, Steck 2020):

    P = (XᵀX + Λ)⁻¹,   Λ = diag(regularization + dropout / (1 - dropout) · n_i)
    B_ji = -P_ji / P_ii   (j != i),   B_ii = 0

A user's score for item i is then Σ_j x_j B_ji. How B is found depends on the number n
of modelled items:

- n ≤ `max_dense_items`: exactly – XᵀX as a dense matrix and one Cholesky inverse,
  O(n³) time and O(n²) memory;
- above: the `max_dense_items` most popular items (the core) keep the exact B among
  themselves; every other entry comes from a randomized eigendecomposition of
  Λ^-½ XᵀX Λ^-½ of rank `hidden_dimension` (products with X only, never an item x item
  matrix), evaluated on each item's co-occurrence neighbours – O(core³) plus
  O(nnz(X) · hidden_dimension) time, O(core² + n · hidden_dimension) memory.

Either way only the largest `item_model_neighbours` weights of each row (by absolute
value) are kept, so the stored model is sparse and scoring is a sparse product.

Dense arithmetic (BLAS and LAPACK) is done in float64 and its results are rounded to
float32, the solution's precision, before any weight is chosen or stored. The BLAS
kernel a machine runs (OpenBLAS picks one per processor) orders its additions its own
way: in float32, two processors trained different weights and kept different neighbours
on the example data, so their solutions, and the sixth digit of their scores, differed.
float64's differences are about 1e-16, far below a float32 rounding step, so the same
data and hyperparameters give the same solution, bit for bit, on any processor.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ..errors import DataError
from .numeric import positions_in_rows, topk

ROW_BLOCK = 1024  # rows of B handled at once (bounds temporary memory)
OVERSAMPLE = 16  # extra random directions of the randomized eigendecomposition
POWER_ITERATIONS = 4  # subspace iterations of the randomized eigendecomposition
# OpenBLAS's threaded Cholesky factorization (potrf) overruns a buffer and kills the
# process on large matrices: with its SkylakeX kernel (0.3.30 and 0.3.31, two threads)
# above 15,540 items; its Haswell, Sandybridge, Zen, Cooperlake and SapphireRapids kernels
# passed 15,000. On one thread it has no such limit, so above this many items (the default
# max_dense_items stays below) it runs on one, at about half the speed; the inverse from
# the factor (potri) keeps every thread.
THREADED_CHOLESKY_ITEMS = 12_000


def penalties(counts: np.ndarray, regularization: float, dropout: float) -> np.ndarray:
    """The diagonal of Λ: a constant ridge plus a popularity-proportional one."""
    return regularization + dropout / (1.0 - dropout) * counts.astype(np.float64)


def _to_csr(
    rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray], n: int
) -> dict[str, np.ndarray]:
    """Row-major pieces (each row's entries contiguous, rows ascending) as CSR parts."""
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    v = np.concatenate(vals) if vals else np.zeros(0, np.float32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n))])
    return {
        "indptr": indptr.astype(np.int64),
        "indices": c.astype(np.int32),
        "data": v.astype(np.float32),
    }


def _keep_largest(
    block: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # (row, col, value) of the kept entries
    """Per row, the k entries of largest absolute value (ties: lower column first)."""
    idx, lengths = topk(np.abs(block), k)
    rows = np.repeat(np.arange(len(block)), idx.shape[1])
    cols = idx.ravel()
    vals = block[rows, cols]
    keep = vals != 0
    return rows[keep], cols[keep], vals[keep]


def gram(xh: sp.csr_matrix) -> np.ndarray:
    """XᵀX as a dense float64 matrix, built a block of columns at a time (a sparse
    product never holds more than one block; its counts are exact in float32)."""
    n = xh.shape[1]
    xt = xh.T.tocsr().astype(np.float32)
    xc = xh.tocsc().astype(np.float32)
    g = np.zeros((n, n), dtype=np.float64)
    for s in range(0, n, ROW_BLOCK):
        e = min(n, s + ROW_BLOCK)
        g[:, s:e] = (xt @ xc[:, s:e]).toarray()
    return g


def dense(
    xh: sp.csr_matrix,
    lam: np.ndarray,
    k: int,
    cache: dict | None = None,
    key: tuple = (),
) -> dict[str, np.ndarray]:
    """Exact B over the columns of `xh` (float64 Cholesky inverse), top k per row.

    With a `cache` (a search fitting the same data again and again), XᵀX is kept under
    `key` and the whole unpruned B of the latest penalties too (n² float32 values), so
    another k costs a top-k only. Without, B is pruned a block of rows at a time."""
    n = xh.shape[1]
    k = min(k, max(n - 1, 0))
    weights = None
    if cache is not None:
        held = cache.get("dense_weights")
        if held is not None and held[0] == key and np.array_equal(held[1], lam):
            weights = held[2]
    if weights is None:
        blocks = _weight_blocks(_cached_gram(xh, cache, key), lam)
        if cache is None:
            return _prune_blocks(blocks, k, n)
        weights = np.empty((n, n), dtype=np.float32)
        for s, block in blocks:
            weights[s : s + len(block)] = block
        cache["dense_weights"] = (key, lam.copy(), weights)  # the latest one only
    step = ROW_BLOCK
    return _prune_blocks(((s, weights[s : s + step]) for s in range(0, n, step)), k, n)


def _cached_gram(xh: sp.csr_matrix, cache: dict | None, key: tuple) -> np.ndarray:
    """XᵀX in float64, from the cache when it holds it (kept as float32: counts are
    exact in it up to 2**24)."""
    if cache is None:
        return gram(xh)
    held = cache.get(("gram", key))
    if held is None:
        held = cache[("gram", key)] = gram(xh).astype(np.float32)
    return held.astype(np.float64)


def _weight_blocks(g: np.ndarray, lam: np.ndarray):
    """B = -P / diag(P) without its diagonal, P = (g + diag(lam))⁻¹, a block of rows at a
    time, each rounded to float32 as stored before any weight is chosen. `g` is
    overwritten."""
    n = len(g)
    g[np.diag_indices(n)] += lam
    chol, info = cholesky(g)
    if info == 0:
        p, info = sl.lapack.dpotri(chol, lower=1, overwrite_c=1)
    if info != 0:
        raise DataError(
            "the item-item model is numerically singular: raise regularization or dropout"
        )
    # p holds P in its lower triangle: row j of P is p[j, :j+1] then p[j+1:, j]
    diag = np.diag(p).copy()
    for s in range(0, n, ROW_BLOCK):
        e = min(n, s + ROW_BLOCK)
        upper = np.arange(n)[None, :] > np.arange(s, e)[:, None]
        full = np.where(upper, p[:, s:e].T, p[s:e, :])
        block = (-full / diag[None, :]).astype(np.float32)  # chosen as stored
        block[np.arange(e - s), np.arange(s, e)] = 0.0
        yield s, block


def cholesky(g: np.ndarray) -> tuple[np.ndarray, int]:
    """The lower Cholesky factor of `g` (overwritten) and LAPACK's info, on one BLAS
    thread above THREADED_CHOLESKY_ITEMS (see there)."""
    large = len(g) > THREADED_CHOLESKY_ITEMS
    with threadpool_limits(limits=1, user_api="blas") if large else nullcontext():
        return sl.lapack.dpotrf(g, lower=1, clean=1, overwrite_a=1)


def _prune_blocks(blocks, k: int, n: int) -> dict[str, np.ndarray]:
    """The k largest weights (absolute value) of each row of the (start, rows) blocks."""
    rows, cols, vals = [], [], []
    for s, block in blocks:
        r, c, v = _keep_largest(block, k) if k else ([], [], [])
        rows.append(np.asarray(r, dtype=np.int64) + s)
        cols.append(np.asarray(c, dtype=np.int64))
        vals.append(np.asarray(v, dtype=np.float32))
    return _to_csr(rows, cols, vals, n)


def _gram_times(xs: sp.csr_matrix, q: np.ndarray, block: int = 1 << 17) -> np.ndarray:
    """XᵀX q, a block of users at a time (never a users x width dense matrix)."""
    out = np.zeros((xs.shape[1], q.shape[1]), dtype=np.float64)
    for s in range(0, xs.shape[0], block):
        xb = xs[s : s + block]
        out += xb.T @ (xb @ q)
    return out


def eigen(
    xh: sp.csr_matrix,
    scale: np.ndarray,
    rank: int,
    seed: int,
    warm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top `rank` eigenpairs (values, vectors) of diag(scale) XᵀX diag(scale), by a
    seeded randomized subspace iteration that multiplies by X and Xᵀ only; also the
    subspace found. `warm`, a subspace found for nearby penalties (a search refitting
    the same data), replaces the random start and one iteration the usual ones."""
    n = xh.shape[1]
    xs = (xh @ sp.diags(scale)).tocsr().astype(np.float64, copy=False)  # float64 already
    width = min(n, rank + OVERSAMPLE)
    if warm is not None and warm.shape == (n, width):
        q, iterations = warm, 1
    else:
        q, iterations = np.random.default_rng(seed).standard_normal((n, width)), POWER_ITERATIONS
    for _ in range(iterations):
        q, _ = np.linalg.qr(_gram_times(xs, q))
    small = q.T @ _gram_times(xs, q)
    values, vectors = np.linalg.eigh((small + small.T) / 2.0)
    top = np.argsort(-values, kind="stable")[: min(rank, width)]
    return np.maximum(values[top], 0.0), q @ vectors[:, top], q


Triplets = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, columns, values


def low_rank(
    xh: sp.csr_matrix,
    lam: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    rank: int,
    seed: int,
    cache: dict | None = None,
) -> Triplets:
    """B from a rank-`rank` approximation, evaluated at the (row, column) `pairs`.

    With D = Λ^-½ and D XᵀX D ≈ V S Vᵀ: P ≈ D (I - V W Vᵀ) D, W = S / (S + 1), so
    B_ji = (D_j / D_i) · (V_j W V_iᵀ) / (1 - V_i W V_iᵀ). With a `cache`, the subspace
    found is kept to start the next fit's from (see eigen).
    """
    d = 1.0 / np.sqrt(lam)
    warm = None if cache is None else cache.get("eigen_warm")
    values, vectors, basis = eigen(xh, d, rank, seed, warm)
    if cache is not None:
        cache["eigen_warm"] = basis
    w = values / (values + 1.0)
    vw = vectors * w
    denom = np.maximum(1.0 - np.einsum("ik,ik->i", vw, vectors), 1e-6)
    srow, scol = pairs
    vals = np.empty(len(srow), dtype=np.float32)  # rounded as stored, before any choice
    per_block = max(1, (64 << 20) // (8 * max(1, vectors.shape[1])))  # ~64 MB gathered
    for s in range(0, len(srow), per_block):
        r, c = srow[s : s + per_block], scol[s : s + per_block]
        dots = np.einsum("ik,ik->i", vw[r], vectors[c])
        vals[s : s + per_block] = (d[r] / d[c]) * dots / denom[c]
    return srow, scol, vals


def _top_per_row(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int, k: int) -> dict:
    """CSR parts keeping each row's k entries of largest absolute value (ties: lower
    column first), columns ascending within a row."""
    order = np.lexsort((cols, -np.abs(vals), rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    keep = (positions_in_rows(np.bincount(rows, minlength=n)) < k) & (vals != 0)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    order = np.lexsort((cols, rows))
    return _to_csr([rows[order]], [cols[order]], [vals[order]], n)


def fit(
    x: sp.csr_matrix,
    *,
    min_users: int,
    regularization: float,
    dropout: float,
    k: int,
    max_dense_items: int,
    rank: int,
    support: sp.csr_matrix,
    seed: int,
    cache: dict | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """The sparse item model over the whole catalogue, and the path taken.

    Items with fewer than `min_users` users are left out (their rows and columns stay
    empty). Up to `max_dense_items` modelled items, B is exact. Above, the
    `max_dense_items` most popular ones (the core) keep the exact B among themselves, and
    every other entry comes from the low-rank model, evaluated where `support` (items x
    items, e.g. co-occurrence neighbours) has an entry. `cache` (one per `x`) keeps what
    a search refits again: see `dense`.
    """
    n_items = x.shape[1]
    counts = np.diff(x.tocsc().indptr)
    head = np.flatnonzero(counts >= max(1, min_users))
    if len(head) < 2:
        return _to_csr([], [], [], n_items), "none"
    lam = penalties(counts, regularization, dropout)
    if len(head) <= max_dense_items:
        key = ("head", min_users)
        part, path = dense(x[:, head].tocsr(), lam[head], k, cache, key), "dense"
        core, pieces = head, []
    else:
        by_popularity = head[np.lexsort((head, -counts[head]))]
        core = np.sort(by_popularity[:max_dense_items]) if max_dense_items >= 2 else head[:0]
        in_head = np.zeros(n_items, dtype=bool)
        in_head[head] = True
        in_core = np.zeros(n_items, dtype=bool)
        in_core[core] = True
        sup = support.tocoo()
        keep = in_head[sup.row] & in_head[sup.col] & ~(in_core[sup.row] & in_core[sup.col])
        keep &= sup.row != sup.col
        local = np.full(n_items, -1, dtype=np.int64)
        local[head] = np.arange(len(head))
        r, c, v = low_rank(
            x[:, head].tocsr(),
            lam[head],
            (local[sup.row[keep]], local[sup.col[keep]]),
            rank,
            seed,
            cache,
        )
        pieces = [(head[r], head[c], v)]
        key = ("core", min_users, max_dense_items)
        part = (
            dense(x[:, core].tocsr(), lam[core], k, cache, key)
            if len(core)
            else _to_csr([], [], [], 0)
        )
        path = "dense core + low-rank" if len(core) else "low-rank"
    lengths = np.diff(part["indptr"])
    if not pieces:  # rows already hold their top k: columns back to catalogue order
        rows = core[np.repeat(np.arange(len(lengths)), lengths)]
        cols = core[part["indices"]]
        order = np.lexsort((cols, rows))
        return _to_csr([rows[order]], [cols[order]], [part["data"][order]], n_items), path
    # the dense part back to catalogue indices, merged with the low-rank entries
    rows = [core[np.repeat(np.arange(len(lengths)), lengths)]] + [p[0] for p in pieces]
    cols = [core[part["indices"]]] + [p[1] for p in pieces]
    vals = [part["data"]] + [p[2] for p in pieces]
    out = _top_per_row(
        np.concatenate(rows).astype(np.int64),
        np.concatenate(cols).astype(np.int64),
        np.concatenate(vals).astype(np.float32),
        n_items,
        k,
    )
    return out, path
