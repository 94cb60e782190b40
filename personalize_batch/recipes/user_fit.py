"""Fitting the user model's components (see user_personalization for the model), and
folding fresh events into those that hold a user's history and recent popularity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..data import Interactions
from .numeric import csr_rows, latest_distinct, positions_in_rows, splice_rows
from .protocol import FreshEvents

POPULARITY_FLOOR = 1e-4  # the least an old interaction counts towards popularity

# which hyperparameters each fitted component depends on (for reuse while tuning)
COMPONENTS = {
    "matrix": (),
    "history": ("max_history_length", "recency_mask"),
    "neighbours": ("min_cointeraction_count",),  # and how many: see fit
    "transitions": ("neighbours",),
    "prior": ("popularity_half_life_days",),
    "item_model": (
        "regularization",
        "dropout",
        "min_item_interactions",
        "item_model_neighbours",
        "max_dense_items",
        "hidden_dimension",
        "neighbours",
        "min_cointeraction_count",
    ),
}


def _histories(data: Interactions, max_len: int) -> dict[str, np.ndarray]:
    """Each user's last `max_len` distinct items in time order (latest occurrence kept)."""
    keep = latest_distinct(data.users, data.items, max_len)
    u, i, t = data.users[keep], data.items[keep], data.timestamps[keep]
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
    counts = np.bincount(rows, minlength=data.n_items)
    sel = positions_in_rows(counts) < k
    rows, cols, vals = rows[sel], cols[sel], vals[sel]
    indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, k))])
    return {
        "up_trans_indptr": indptr.astype(np.int64),
        "up_trans_indices": cols.astype(np.int32),
        "up_trans_data": vals.astype(np.float32),
    }


def _prior(data: Interactions, half_life_days: float) -> dict[str, np.ndarray]:
    """Time-decayed popularity, scaled to a maximum of 1 (`up_prior`), and what fresh
    events update it from: the decayed counts and the time they were decayed to."""
    if data.has_timestamps and len(data.timestamps):
        now = int(data.timestamps.max())
        counts = decayed_counts(data.items, data.timestamps, now, half_life_days, data.n_items)
    else:  # no time: all-time counts
        now, counts = 0, np.bincount(data.items, minlength=data.n_items).astype(np.float64)
    return {
        "up_prior": scaled_prior(counts),
        # float32, as every weight a solution keeps: numpy's power() differs in the last
        # bits between processors (its SIMD kernels), which float64 would keep
        "up_prior_counts": counts.astype(np.float32),
        "up_prior_time": np.array(now, dtype=np.int64),
    }


def decayed_counts(
    items: np.ndarray, times: np.ndarray, now: int, half_life_days: float, n_items: int
) -> np.ndarray:
    """Each item's interactions weighted 0.5 ** (age / half-life) at time `now`. An
    interaction never counts less than POPULARITY_FLOOR, so items without recent
    interactions keep their all-time order (below the recent ones) instead of tying at 0."""
    age_days = (now - times) / 86400.0
    w = np.maximum(np.power(0.5, age_days / half_life_days), POPULARITY_FLOOR)
    return np.bincount(items, weights=w, minlength=n_items)


def scaled_prior(counts: np.ndarray) -> np.ndarray:
    top = counts.max() if len(counts) else 0.0
    return (counts / top if top > 0 else counts).astype(np.float32)


def _first_per_row(nb: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The first k entries of each row of sorted CSR parts."""
    indptr = nb["indptr"]
    lengths = np.minimum(np.diff(indptr), k)
    pos = np.repeat(indptr[:-1], lengths) + positions_in_rows(lengths)
    return {
        "indptr": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "indices": nb["indices"][pos],
        "data": nb["data"][pos],
    }


def _will_be_low_rank(x: sp.csr_matrix, hp: dict) -> bool:
    counts = np.diff(x.tocsc().indptr)
    return int((counts >= max(1, hp["min_item_interactions"])).sum()) > hp["max_dense_items"]


def fit(
    data: Interactions, hp: dict, *, seed: int = 0, cache: dict | None = None
) -> dict[str, np.ndarray]:
    """Fit every component. `cache` (optional, one per training data) reuses components
    whose hyperparameters did not change, for tuning loops; `seed` drives the low-rank
    path's random start."""
    # fitting code only: scoring starts without scipy.linalg
    from . import item_model  # noqa: PLC0415
    from .sims import COSINE, neighbours  # noqa: PLC0415

    searching = cache is not None
    cache = {} if cache is None else cache

    def part(name: str, make: Callable[[], Any], *extra: Any) -> Any:
        key = (name, seed, *(hp[k] for k in COMPONENTS[name]), *extra)
        if key not in cache:
            cache[key] = make()
        return cache[key]

    x = part("matrix", data.matrix)
    # the low-rank path reads its item model's entries where neighbours are
    k_nb = hp["neighbours"]
    if _will_be_low_rank(x, hp):
        k_nb = max(k_nb, hp["item_model_neighbours"])
    nb_all = part(
        "neighbours", lambda: neighbours(x, k_nb, COSINE, hp["min_cointeraction_count"]), k_nb
    )

    def make_item_model() -> tuple[dict[str, np.ndarray], str]:
        support = sp.csr_matrix(
            (nb_all["data"], nb_all["indices"], nb_all["indptr"]), shape=(data.n_items,) * 2
        )
        return item_model.fit(
            x,
            min_users=hp["min_item_interactions"],
            regularization=hp["regularization"],
            dropout=hp["dropout"],
            k=hp["item_model_neighbours"],
            max_dense_items=hp["max_dense_items"],
            rank=hp["hidden_dimension"],
            support=support,
            seed=seed,
            cache=cache if searching else None,
        )

    im, path = part("item_model", make_item_model)
    # the order-blind model reads whole histories: keeping the latest items is order too
    length = hp["max_history_length"] if hp["recency_mask"] else data.n_items
    arrays = dict(part("history", lambda: _histories(data, length)))
    nb = _first_per_row(nb_all, hp["neighbours"])
    arrays.update({f"up_nb_{k}": v for k, v in nb.items()})
    arrays.update(part("transitions", lambda: _transitions(data, hp["neighbours"])))
    arrays.update(part("prior", lambda: _prior(data, hp["popularity_half_life_days"])))
    arrays.update({f"up_im_{k}": v for k, v in im.items()})
    arrays["up_im_path"] = np.array(path)
    return arrays


def fold_in(
    arrays: dict[str, np.ndarray], events: FreshEvents, meta: dict[str, Any]
) -> tuple[dict[str, np.ndarray], bool]:
    """Fresh events folded into the model's arrays (`run --events`): each user's events
    appended to the end of their history (the latest items; an item seen again moves to
    the end), keeping the `max_history_length` most recent distinct items, and the
    recent-popularity term brought up to the latest event. Returns the new arrays and
    whether popularity was updated (a solution older than its counts keeps its term)."""
    hp = meta["hyperparameters"]
    out = _fold_histories(arrays, events, hp)
    updated = "up_prior_counts" in arrays and len(events.items) > 0
    if updated:
        has_time = bool(meta.get("training", {}).get("hasTimestamps", True))
        out.update(_fold_prior(arrays, events.items, events.times, hp, has_time))
    return out, updated


def _fold_histories(
    a: dict[str, np.ndarray], events: FreshEvents, hp: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The histories with each affected user's events after their old items."""
    users, items, times, affected = events.users, events.items, events.times, events.affected
    keep = hp["max_history_length"] if hp["recency_mask"] else None
    old = csr_rows(
        a["up_history_indptr"],
        a["up_history_items"],
        events.known,
        events.n_items,
        a["up_history_times"],
    )
    owner = np.repeat(affected, np.diff(old.indptr))
    # old history first, then the events in time order: the events are the latest
    order = np.argsort(np.concatenate([owner, users]), kind="stable")
    o = np.concatenate([owner, users])[order]
    i = np.concatenate([old.indices.astype(np.int64), items])[order]
    t = np.concatenate([old.data.astype(np.int64), times])[order]
    latest = latest_distinct(o, i, keep)
    o, i, t = o[latest], i[latest], t[latest]
    lengths = np.bincount(np.searchsorted(affected, o), minlength=len(affected))
    ptr, (hi, ht) = splice_rows(
        a["up_history_indptr"],
        [a["up_history_items"], a["up_history_times"]],
        affected,
        lengths,
        [i, t],
        events.n_users,
    )
    return {
        "up_history_indptr": ptr,
        "up_history_items": hi.astype(np.int32),
        "up_history_times": ht.astype(np.int64),
    }


def _fold_prior(
    a: dict[str, np.ndarray],
    items: np.ndarray,
    times: np.ndarray,
    hp: dict[str, Any],
    has_time: bool,
) -> dict[str, np.ndarray]:
    """The recent-popularity term brought up to the latest event: the trained counts
    decayed to its time (an item's interactions never below their floor), plus the
    events' own weights. Without timestamps at training, every interaction counts 1."""
    counts = a["up_prior_counts"].astype(np.float64)
    if not has_time:
        counts = counts + np.bincount(items, minlength=len(counts))
        now = int(a["up_prior_time"])
    else:
        before, now = int(a["up_prior_time"]), max(int(a["up_prior_time"]), int(times.max()))
        half_life = hp["popularity_half_life_days"]
        aged = counts * np.power(0.5, (now - before) / 86400.0 / half_life)
        counts = np.maximum(aged, POPULARITY_FLOOR * a["item_counts"])
        counts += decayed_counts(items, times, now, half_life, len(counts))
    return {
        "up_prior": scaled_prior(counts),
        "up_prior_counts": counts.astype(np.float32),
        "up_prior_time": np.array(now, dtype=np.int64),
    }
