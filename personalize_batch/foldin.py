"""Fresh events at run time (`pbatch run --events recent.csv`): fold-in.

Events newer than the training data, in Personalize's interactions format, extend the
solution in memory before any line is scored, as Personalize's event tracker does for
real-time calls:

- user-personalization and personalized-ranking append each user's events to the end of
  their history (the latest items; an item seen again moves to the end), keeping the
  recipe's `max_history_length` most recent distinct items;
- the items excluded as already seen include the events' items (every recipe);
- `Interactions.EVENT_TYPE` filters see the events' items too;
- users unknown at training but present in the events become known users;
- user-personalization's recent-popularity term is brought up to the latest event: the
  trained counts decayed to its time, plus the events (what is popular now is what the
  events say, for every user and most of all for users the solution has not met).

Events go through the same selection as the training data (`eventType`,
`eventValueThreshold` recorded in the solution). Items unknown to the solution cannot be
scored and are left out (counted in the report). The solution file is never changed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from .data import read_interactions
from .errors import UsageError
from .recipes.base import csr_rows, latest_distinct
from .recipes.user_personalization import (
    POPULARITY_FLOOR,
    decayed_counts,
    scaled_prior,
)
from .solution import Solution

USER_RECIPES = ("user-personalization", "personalized-ranking", "popularity-count")


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


def fold_in(
    solution: Solution, events: str, endpoint_url: str | None = None
) -> tuple[Solution, dict[str, Any]]:
    """The solution extended with the events in `events`, and a report of what was used."""
    if solution.recipe not in USER_RECIPES:
        raise UsageError(
            f"--events: {solution.recipe} answers items, not users; fresh events change "
            f"only {', '.join(USER_RECIPES)}"
        )
    training = solution.meta.get("training", {})
    ev = read_interactions(
        events,
        event_type=training.get("eventType"),
        event_value_threshold=training.get("eventValueThreshold"),
        endpoint_url=endpoint_url,
        allow_empty=True,
    )
    a = dict(solution.arrays)
    n_users, n_items = len(solution.user_ids), len(solution.item_ids)
    item_of = solution.item_index.lookup(ev.item_ids)
    items = item_of[ev.items] if len(ev.items) else np.zeros(0, np.int64)
    known_item = items >= 0
    user_of = solution.user_index.lookup(ev.user_ids)
    new = user_of < 0
    new_ids = ev.user_ids[new].tolist()
    user_of[new] = n_users + np.arange(len(new_ids))
    users = user_of[ev.users] if len(ev.users) else np.zeros(0, np.int64)
    users, items = users[known_item], items[known_item]
    times, types = ev.timestamps[known_item], ev.event_types[known_item]
    # users whose only events were unknown items stay unknown
    used_new = np.unique(users[users >= n_users])
    if len(used_new) < len(new_ids):
        remap = np.full(len(new_ids), -1, dtype=np.int64)
        remap[used_new - n_users] = n_users + np.arange(len(used_new))
        users = np.where(users >= n_users, remap[np.maximum(users - n_users, 0)], users)
        new_ids = [new_ids[k] for k in (used_new - n_users).tolist()]
    total_users = n_users + len(new_ids)
    if new_ids:
        a["user_ids"] = np.concatenate([solution.user_ids, np.array(new_ids, dtype=str)])
    affected = np.unique(users)
    known = np.where(affected < n_users, affected, -1)  # new users have no rows yet

    # seen items: the union, sorted as the solution keeps them
    old = csr_rows(a["seen_indptr"], a["seen_indices"], known, n_items)
    owner = np.repeat(affected, np.diff(old.indptr))
    both = sp.csr_matrix(
        (
            np.ones(len(owner) + len(users), dtype=np.int8),
            (np.concatenate([owner, users]), np.concatenate([old.indices, items])),
        ),
        shape=(total_users, n_items),
    )
    both.sum_duplicates()
    both.sort_indices()
    lengths = np.diff(both.indptr)[affected]
    ptr, (seen,) = splice_rows(
        a["seen_indptr"], [a["seen_indices"]], affected, lengths, [both.indices], total_users
    )
    a["seen_indptr"], a["seen_indices"] = ptr, seen.astype(np.int32)

    if "up_history_indptr" in a:
        hp = solution.hyperparameters
        keep = hp["max_history_length"] if hp["recency_mask"] else None
        old = csr_rows(
            a["up_history_indptr"], a["up_history_items"], known, n_items, a["up_history_times"]
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
            total_users,
        )
        a["up_history_indptr"] = ptr
        a["up_history_items"], a["up_history_times"] = hi.astype(np.int32), ht.astype(np.int64)

    if "events_types" in a:
        a.update(_fold_events(a, n_users, total_users, n_items, users, items, types))
    prior_updated = "up_prior_counts" in a and len(items) > 0
    if prior_updated:
        has_time = bool(solution.meta.get("training", {}).get("hasTimestamps", True))
        a.update(_fold_prior(a, items, times, solution.hyperparameters, has_time))

    report = {
        "events": events,
        "eventsSha256": ev.sha256,
        "eventsRead": int(ev.rows_read),
        "eventsUsed": int(len(users)),
        "eventsUnknownItems": int((~known_item).sum()),
        "usersWithEvents": int(len(affected)),
        "newUsers": len(new_ids),
        "popularityUpdated": prior_updated,
    }
    meta = dict(solution.meta)
    meta["foldIn"] = report
    return (
        replace(solution, meta=meta, arrays=a, _user_index=None, _item_index=None, _scorer=None),
        report,
    )


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


def _fold_events(
    a: dict[str, np.ndarray],
    n_users: int,
    total_users: int,
    n_items: int,
    users: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
) -> dict[str, np.ndarray]:
    """The filters' per-(event type, user) item lists with the events' items added."""
    old_types = a["events_types"]
    new_types = np.char.lower(np.asarray(types, dtype=str)) if len(types) else np.array([], str)
    names = np.union1d(old_types, new_types).astype(str)
    indptr, indices = a["events_indptr"], a["events_indices"]
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    t_old, u_old = np.divmod(rows, max(n_users, 1))
    t_old = np.searchsorted(names, old_types)[t_old]
    t_new = np.searchsorted(names, new_types)
    r = np.concatenate([t_old * total_users + u_old, t_new * total_users + users])
    c = np.concatenate([indices.astype(np.int64), items])
    m = sp.csr_matrix(
        (np.ones(len(r), dtype=np.int8), (r, c)), shape=(len(names) * total_users, n_items)
    )
    m.sum_duplicates()
    m.sort_indices()
    return {
        "events_types": names,
        "events_indptr": m.indptr.astype(np.int64),
        "events_indices": m.indices.astype(np.int32),
    }
