"""The numeric kit the recipes share: exact top-k with a fixed tie-break, score rounding,
popularity order and the fill it gives, gathering and splicing CSR rows, softmax.

Ties are broken explicitly (score descending, then item index ascending; popularity:
count descending, then index ascending), never left to a sort algorithm: numpy may
order ties differently on different CPUs, and an output must be the same bytes on
every machine (A.4). scipy is imported only by the functions that build sparse
matrices, so a job whose recipe answers with numpy alone starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

POWERS_OF_TEN = 10.0 ** np.arange(23)  # 10**0 … 10**22, each exact in binary


def round_sig(x: np.ndarray, digits: int = 6) -> np.ndarray:
    """Round to `digits` significant digits (A.4), as `float(f"{v:.6g}")` would.

    Vectorized for the usual case; values whose scaled form lands near a half (where the
    float product may round the other way) or whose power of ten is not exact in binary
    are rounded one by one through Python's correctly rounded formatting.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    nz = (x != 0) & np.isfinite(x)
    if not nz.any():
        return out
    v = x[nz]
    exp = digits - 1 - np.floor(np.log10(np.abs(v)))
    exact = (exp >= 0) & (exp <= 22)  # 10**exp is exact in binary
    scale = POWERS_OF_TEN[np.where(exact, exp, 0.0).astype(np.intp)]
    y = v * scale
    frac = np.abs(y - np.trunc(y))
    # a log10 off by one near a power of ten (libm differs between CPUs) would round to
    # 5 or 7 digits: such values take the slow path too
    mant = np.abs(np.round(y))
    fast = (
        exact & (np.abs(frac - 0.5) > 1e-6) & (mant >= 10.0 ** (digits - 1)) & (mant < 10.0**digits)
    )
    r = np.where(fast, np.round(y) / scale, 0.0)
    slow = np.flatnonzero(~fast)
    if len(slow):
        fmt = f"{{:.{digits}g}}"
        r[slow] = [float(fmt.format(val)) for val in v[slow].tolist()]
    out[nz] = r
    return out


def topk(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k per row: (indices, lengths).

    Order: key descending, then column index ascending – never left to the sort
    algorithm, so the result is the same on every CPU. Entries equal to -inf are
    excluded items; a row's length is the number of finite entries it has (at most k).
    """
    rows, n = keys.shape
    k = min(k, n)
    if rows == 0 or k == 0:
        return np.zeros((rows, 0), dtype=np.int64), np.zeros(rows, dtype=np.int64)
    if k < n <= NARROW_ROWS:
        return _topk_narrow(keys, k)
    return _topk_general(keys, k)


# Up to this width, a partition of the values and a mask find the top k faster than
# argpartition does (measured at 512 rows: about 2x at 100-400 columns; slower from
# about 1,000)
NARROW_ROWS = 512


def _topk_narrow(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """topk for k < n. Rows whose k-th largest key is finite and shared with no unchosen
    entry are answered from a mask of the keys at least that large; the others (ties
    across the cut, fewer than k finite keys) by _topk_general."""
    rows, n = keys.shape
    kth = np.partition(keys, n - k, axis=1)[:, n - k]
    chosen = keys >= kth[:, None]
    plain = np.count_nonzero(chosen, axis=1) == k
    idx = np.empty((rows, k), dtype=np.int64)
    lengths = np.full(rows, k, dtype=np.int64)
    some = np.flatnonzero(plain)
    # per row the k chosen columns, ascending; a stable sort of the keys keeps that
    # order among equal keys
    cols = np.nonzero(chosen[some])[1].reshape(len(some), k)
    vals = np.take_along_axis(keys[some], cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx[some] = np.take_along_axis(cols, order, axis=1)
    if len(some) < rows:
        rest = np.flatnonzero(~plain)
        idx[rest], lengths[rest] = _topk_general(keys[rest], k)
    return idx, lengths


def _topk_general(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    rows, n = keys.shape
    if k < n:
        # partition so that the k largest keys come last and the (k+1)-th largest sits
        # just before them: a tie across the boundary shows as equal neighbours there
        full = np.argpartition(keys, n - k - 1, axis=1)
        part = full[:, n - k :]
        boundary = np.take_along_axis(keys, full[:, n - k - 1 : n - k], axis=1)[:, 0]
    else:
        part = np.broadcast_to(np.arange(n), (rows, n)).copy()
    vals = np.take_along_axis(keys, part, axis=1)
    if k < n:
        kth = vals.min(axis=1)
        # a row whose k-th value is shared with an unchosen entry: pick the lowest indices
        for r in np.flatnonzero((kth == boundary) & np.isfinite(kth)):
            above = np.flatnonzero(keys[r] > kth[r])
            equal = np.flatnonzero(keys[r] == kth[r])[: k - len(above)]
            part[r] = np.concatenate([above, equal])
            vals[r] = keys[r, part[r]]
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    lengths = np.isfinite(vals).sum(axis=1)
    return idx, lengths


def popularity_order(counts: np.ndarray) -> np.ndarray:
    """Item indices in popularity order (count descending, then index ascending)."""
    return np.lexsort((np.arange(len(counts)), -counts))


def popularity_rank(counts: np.ndarray) -> np.ndarray:
    """rank[i] = position of item i in popularity order (count desc, then index asc)."""
    order = popularity_order(counts)
    rank = np.empty(len(counts), dtype=np.int64)
    rank[order] = np.arange(len(counts))
    return rank


def fill_keys(counts: np.ndarray) -> np.ndarray:
    """Keys below every model score (all model scores are >= 0) that order the
    remaining items by popularity: the fill of A.5."""
    return (-1.0 - popularity_rank(counts)).astype(np.float64)


def fill_from_order(
    order: np.ndarray,
    rank: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    n_rows: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first k items of `order` that are not among the excluded (row, item)
    pairs `rows`, `cols` (`rank`: each item's position in `order`). Returns (indices,
    lengths); a row's entries past its length mean nothing. No window of the order is
    scanned: the cost is a sort of the excluded pairs, however many a row has."""
    row, before = eligible_before(rank, rows, cols, len(order))
    count = np.bincount(row, minlength=n_rows)
    return order_lists(order, row, before, count, n_rows, k)


def eligible_before(
    rank: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The excluded (row, item) pairs, each once, sorted by row and then by position in
    the order, as (row, eligible items before it): with a row's excluded positions
    s_0 < s_1 < …, the one at s_j has s_j − j eligible items before it."""
    rows = np.asarray(rows, dtype=np.int64)
    key = rows * n + rank[cols]
    if len(key) and int(key.max()) < 2**31:
        key = key.astype(np.int32)  # sorts in half the time
    key = np.sort(key)
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]  # each pair once
    row, pos = np.divmod(key.astype(np.int64), n)
    count = np.bincount(row) if len(row) else np.zeros(0, dtype=np.int64)
    return row, pos - (np.arange(len(pos)) - np.repeat(np.cumsum(count) - count, count))


def order_lists(
    order: np.ndarray,
    row: np.ndarray,
    before: np.ndarray,
    count: np.ndarray,
    n_rows: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first k eligible items of `order`, from eligible_before's (row,
    before) of its excluded items and `count`, how many items each row excludes: the
    i-th eligible position is i + #{excluded : before ≤ i}, a cumulative count."""
    n = len(order)
    width = min(n, k)
    near = before < width
    hist = np.bincount(row[near] * width + before[near], minlength=n_rows * width)
    at = np.arange(width) + np.cumsum(hist.reshape(n_rows, width), axis=1)
    lengths = np.minimum(width, n - count)
    return order[np.minimum(at, max(n - 1, 0))], lengths


def positions_in_rows(lengths: np.ndarray) -> np.ndarray:
    """For rows of these lengths laid end to end, each entry's place within its row."""
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def row_positions(
    indptr: np.ndarray, rows: np.ndarray, tail: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Where rows `rows` of a CSR matrix lie in its parts: the gathered matrix's indptr
    and the positions of its entries. Rows < 0 are empty; `tail` keeps each row's last
    `tail` entries only."""
    rows = np.asarray(rows, dtype=np.int64)
    known = rows >= 0
    safe = np.where(known, rows, 0)
    ends = indptr[safe + 1]
    starts = indptr[safe] if tail is None else np.maximum(indptr[safe], ends - tail)
    lengths = np.where(known, ends - starts, 0)
    new_indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    pos = np.repeat(starts - new_indptr[:-1], lengths) + np.arange(new_indptr[-1])
    return new_indptr, pos


def csr_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    rows: np.ndarray,
    n_cols: int,
    data: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Rows `rows` of a CSR matrix given by its parts; rows < 0 give empty rows.

    A pure gather: each row keeps its stored order, whatever else is in the chunk, so
    later sums add in the same order on every run (byte-identical output, A.4).
    """
    import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

    new_indptr, pos = row_positions(indptr, rows)
    values = data[pos] if data is not None else np.ones(len(pos), dtype=np.float32)
    return sp.csr_matrix((values, indices[pos], new_indptr), shape=(len(rows), n_cols))


def latest_distinct(owner: np.ndarray, items: np.ndarray, keep: int | None = None) -> np.ndarray:
    """Which entries to keep of entries grouped by `owner` and in time order within each
    group: the latest occurrence of each (owner, item), then each owner's `keep` latest of
    those (None: all). The rule of users' histories and of the filters' interactions."""
    n = len(owner)
    key = owner.astype(np.int64) * (int(np.max(items, initial=-1)) + 1) + items
    _, last_rev = np.unique(key[::-1], return_index=True)  # walk backwards: the latest
    mask = np.zeros(n, dtype=bool)
    mask[n - 1 - last_rev] = True
    if keep is not None and n:
        kept = np.flatnonzero(mask)
        _, first, counts = np.unique(owner[kept], return_index=True, return_counts=True)
        age = np.repeat(first + counts, counts) - 1 - np.arange(len(kept))  # 0 = latest
        mask[kept[age >= keep]] = False
    return mask


def softmax_at(logits: np.ndarray, idx: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) over each whole row, read at the columns `idx`
    (one temporary the size of `logits`, computed in place)."""
    z = logits * (1.0 / temperature)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    denom = z.sum(axis=1, keepdims=True)
    return np.take_along_axis(z, idx, axis=1) / denom


def mask_rows(keys: np.ndarray, sub: sp.csr_matrix, value: float = -np.inf) -> None:
    """Set keys[r, c] = value for every stored entry (r, c) of `sub` (same row count)."""
    r, c = sub.nonzero()
    keys[r, c] = value


def seen_arrays(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int
) -> dict[str, np.ndarray]:
    """The user x item 'seen' matrix as CSR parts (A.5 exclusion of training items)."""
    import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

    m = sp.csr_matrix(
        (np.ones(len(users), dtype=np.int8), (users, items)), shape=(n_users, n_items)
    )
    m.sum_duplicates()
    m.sort_indices()
    return {
        "seen_indptr": m.indptr.astype(np.int64),
        "seen_indices": m.indices.astype(np.int32),
    }


def chunk_rows(n_items: int, budget_bytes: int = 4 << 20, max_rows: int = 1024) -> int:
    """How many rows of a dense chunk x items float64 matrix fit a cache-sized budget
    (a few MiB: the matrix is read several times, by the product, top-k and softmax)."""
    return int(max(16, min(max_rows, budget_bytes // max(1, 8 * n_items))))


def splice_rows(
    indptr: np.ndarray,
    columns: list[np.ndarray],
    rows: np.ndarray,
    lengths: np.ndarray,
    new_columns: list[np.ndarray],
    n_rows: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Replace whole rows of a CSR-like layout (several parallel column arrays).

    `rows` (sorted, unique, may be >= the old row count) get `lengths[k]` entries each,
    taken in order from `new_columns`; every other row keeps its entries. The result has
    `n_rows` rows. Unchanged rows are copied as runs, so the cost is one pass over the
    entries plus one step per replaced row.
    """
    old_n = len(indptr) - 1
    sizes = np.zeros(n_rows, dtype=np.int64)
    sizes[:old_n] = np.diff(indptr)
    sizes[rows] = lengths
    out_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    outs = [
        np.empty(out_ptr[-1], dtype=np.result_type(c, n))
        for c, n in zip(columns, new_columns, strict=True)
    ]
    # runs of unchanged old rows between the replaced ones
    bounds = np.concatenate([[-1], rows[rows < old_n], [old_n]])
    for a, b in zip(bounds[:-1] + 1, bounds[1:], strict=True):
        if a < b:
            src = slice(indptr[a], indptr[b])
            dst = slice(out_ptr[a], out_ptr[a] + (indptr[b] - indptr[a]))
            for out, col in zip(outs, columns, strict=True):
                out[dst] = col[src]
    starts = np.cumsum(lengths) - lengths
    dest = np.repeat(out_ptr[rows] - starts, lengths) + np.arange(int(np.sum(lengths)))
    for out, col in zip(outs, new_columns, strict=True):
        out[dest] = col
    return out_ptr, outs
