"""Fresh events at run time (`pbatch run --events recent.csv`): fold-in.

Events newer than the training data, in Personalize's interactions format, extend the
solution in memory before any line is scored, as Personalize's event tracker does for
real-time calls, for the recipes that declare `fresh_events`:

- the items excluded as already seen include the events' items;
- `Interactions.EVENT_TYPE` filters see the events' items too;
- users unknown at training but present in the events become known users;
- the recipe's own arrays take the events through its `fold_in` (the user model appends
  them to each user's history and brings its recent popularity up to the latest event:
  what is popular now is what the events say, for every user and most of all for users
  the solution has not met).

Events go through the same selection as the training data (`eventType`,
`eventValueThreshold` recorded in the solution). Items unknown to the solution cannot be
scored and are left out (counted in the report). The solution file is never changed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from .. import recipes
from ..data import read_interactions
from ..errors import UsageError
from ..recipes.numeric import csr_rows, splice_rows
from ..recipes.protocol import FreshEvents
from ..solution import Solution


def fold_in(
    solution: Solution, events: str, endpoint_url: str | None = None
) -> tuple[Solution, dict[str, Any]]:
    """The solution extended with the events in `events`, and a report of what was used."""
    recipe = recipes.recipe(solution.recipe)
    if not recipe.fresh_events:
        # those whose every line names a user first
        takers = sorted((r for r in recipes.recipes() if r.fresh_events), key=_user_optional)
        raise UsageError(
            f"--events: {solution.recipe} does not take fresh events (train it again with "
            f"them); fresh events change only {', '.join(r.name for r in takers)}"
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

    if "events_types" in a:
        a.update(_fold_events(a, n_users, total_users, n_items, users, items, types))
    popularity_updated = False
    if recipe.fold_in is not None:
        fresh = FreshEvents(users, items, times, affected, known, total_users, n_items)
        own, popularity_updated = recipe.fold_in(a, fresh, solution.meta)
        a.update(own)

    report = {
        "events": events,
        "eventsSha256": ev.sha256,
        "eventsRead": int(ev.rows_read),
        "eventsUsed": int(len(users)),
        "eventsUnknownItems": int((~known_item).sum()),
        "usersWithEvents": int(len(affected)),
        "newUsers": len(new_ids),
        "popularityUpdated": popularity_updated,
    }
    meta = dict(solution.meta)
    meta["foldIn"] = report
    return (
        replace(solution, meta=meta, arrays=a, _user_index=None, _item_index=None, _scorer=None),
        report,
    )


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


def _user_optional(recipe: recipes.Recipe) -> bool:
    return not recipe.query.required
