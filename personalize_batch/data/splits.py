"""Splits of interactions into a training part and held-out items per test user (A.13),
for offline evaluation (`pbatch evaluate`) and for choosing settings in `pbatch train`.

- `personalize` (Personalize's solution metrics): a random `test_fraction` of the users
  with at least 2 interactions are test users; each one's newest 10 % of interactions
  (at least 1) is the ground truth, the rest is the input. Unlike Personalize, whose
  model sees the input only at inference, the input is part of the training data, as
  in a solution retrained with those users' histories.
- `leave-last-out`: each user's last interaction (by time) is the ground truth.
- `time-cut`: everything before the `cut_quantile` quantile of timestamps trains; a user
  with training interactions is tested on the first new item after the cut. Unlike the
  per-user splits, no future event of anyone enters training.
- `random`: a random tenth (at least 1) of the items of every user with at least 2,
  for data whose order means nothing.
- `segment` (USER_SEGMENTATION recipes, as Personalize measures them): 20 % (at least 1)
  of the interactions of every user with at least 2 are held out – the newest when
  time carries signal (`profile`), else a random 20 %, since an order that means
  nothing would make "newest" an arbitrary choice.

Ground truth leaves out items the user already has in training (recommendations exclude
them); items absent from the training part stay in it (no model can recommend them: a
miss for every method; counted in `heldOutUnknownItems`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from .datasets import Interactions
from .profile import profile

SPLITS = ("personalize", "leave-last-out", "time-cut", "random", "segment")
SEGMENT_FRACTION = 0.2  # Personalize's USER_SEGMENTATION split: 80/20 within each user


@dataclass
class Split:
    """A training part and, per test user, the held-out items (training indices)."""

    name: str
    train: Interactions
    users: np.ndarray
    truths: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


def shuffle_within_users(data: Interactions, seed: int) -> Interactions:
    """Each user's rows in a seeded random order (for files whose order means nothing)."""
    if data.has_timestamps:
        raise UsageError("--shuffle is for interactions without a TIMESTAMP column")
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(data.users)), data.users))
    return _rows(data, order, data.has_timestamps, renumber_time=True)


def _rows(
    data: Interactions, rows: np.ndarray, has_timestamps: bool, renumber_time: bool = False
) -> Interactions:
    """The given rows (in the given order), ids unchanged."""
    return Interactions(
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        users=data.users[rows],
        items=data.items[rows],
        timestamps=np.arange(len(rows), dtype=np.int64) if renumber_time else data.timestamps[rows],
        event_types=data.event_types[rows],
        has_timestamps=has_timestamps,
        sha256=data.sha256,
        source=data.source,
        rows_read=data.rows_read,
    )


def _compact(data: Interactions, keep: np.ndarray) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """The rows `keep`, with users and items renumbered to those present; also the
    old -> new maps (-1: absent)."""
    sub = _rows(data, np.flatnonzero(keep), data.has_timestamps)
    user_map = np.full(data.n_users, -1, dtype=np.int64)
    item_map = np.full(data.n_items, -1, dtype=np.int64)
    users = np.unique(sub.users)
    items = np.unique(sub.items)
    user_map[users] = np.arange(len(users))
    item_map[items] = np.arange(len(items))
    sub.user_ids, sub.item_ids = data.user_ids[users], data.item_ids[items]
    sub.users = user_map[sub.users].astype(np.int32)
    sub.items = item_map[sub.items].astype(np.int32)
    return sub, user_map, item_map


def _finish(
    name: str,
    data: Interactions,
    train_rows: np.ndarray,
    held: dict[int, list[int]],
    info: dict[str, Any],
) -> Split:
    """Build the Split: compact the training part, map and clean the ground truth."""
    train, user_map, item_map = _compact(data, train_rows)
    seen = set(zip(data.users[train_rows].tolist(), data.items[train_rows].tolist(), strict=True))
    users, truths, unknown, dropped = [], [], 0, 0
    for u in sorted(held):
        new = [i for i in dict.fromkeys(held[u]) if (u, i) not in seen]
        dropped += len(held[u]) - len(new)
        # an item absent from training stays in the truth as a negative id: a miss for
        # every method, as it would be for Personalize
        truth = [int(item_map[i]) if item_map[i] >= 0 else -1 - i for i in new]
        unknown += sum(1 for t in truth if t < 0)
        if truth and user_map[u] >= 0:
            users.append(int(user_map[u]))
            truths.append(np.array(truth, dtype=np.int64))
    info = {
        "split": name,
        **info,
        "trainingInteractions": int(len(train.users)),
        "testUsers": len(users),
        "heldOutItems": int(sum(len(t) for t in truths)),
        "heldOutUnknownItems": unknown,
        "heldOutAlreadySeen": dropped,
        "items": int(data.n_items),
    }
    return Split(name, train, np.array(users, dtype=np.int64), truths, info)


def split_personalize(data: Interactions, seed: int = 0, test_fraction: float = 0.1) -> Split:
    """Personalize's split (B.6): test users' newest 10 % is the ground truth."""
    counts = np.bincount(data.users, minlength=data.n_users)
    eligible = np.flatnonzero(counts >= 2)
    n_test = min(len(eligible), max(1, round(test_fraction * len(eligible))))
    rng = np.random.default_rng(seed)
    test = np.sort(rng.choice(eligible, size=n_test, replace=False)) if n_test else eligible[:0]
    is_test = np.zeros(data.n_users, dtype=bool)
    is_test[test] = True
    starts = np.concatenate([[0], np.cumsum(counts)])[data.users]
    pos = np.arange(len(data.users)) - starts
    n = counts[data.users]
    hold = is_test[data.users] & (pos >= n - np.maximum(1, n // 10))
    held: dict[int, list[int]] = {}
    for u, i in zip(data.users[hold].tolist(), data.items[hold].tolist(), strict=True):
        held.setdefault(u, []).append(i)
    info = {"seed": seed, "testFraction": test_fraction}
    return _finish("personalize", data, ~hold, held, info)


def split_leave_last_out(data: Interactions) -> Split:
    """Each user's last interaction by time is the ground truth (users with >= 2)."""
    counts = np.bincount(data.users, minlength=data.n_users)
    last = np.r_[data.users[1:] != data.users[:-1], True] & (counts[data.users] >= 2)
    held = {
        u: [i] for u, i in zip(data.users[last].tolist(), data.items[last].tolist(), strict=True)
    }
    return _finish("leave-last-out", data, ~last, held, {})


def split_time_cut(data: Interactions, cut_quantile: float = 0.9) -> Split:
    """Train before a global cut; the ground truth is each user's next new item after it."""
    if not data.has_timestamps:
        raise UsageError("the time-cut split needs a TIMESTAMP column")
    cut = int(np.quantile(data.timestamps, cut_quantile))
    before = data.timestamps < cut
    has_train = np.zeros(data.n_users, dtype=bool)
    has_train[data.users[before]] = True
    seen = set(zip(data.users[before].tolist(), data.items[before].tolist(), strict=True))
    held: dict[int, list[int]] = {}
    for u, i in zip(data.users[~before].tolist(), data.items[~before].tolist(), strict=True):
        if has_train[u] and u not in held and (u, i) not in seen:
            held[u] = [i]
    info = {"cutQuantile": cut_quantile, "cutTimestamp": cut}
    return _finish("time-cut", data, before, held, info)


def split_random(
    data: Interactions, seed: int = 0, fraction: float = 0.1, max_users: int | None = None
) -> Split:
    """A seeded random `fraction` (at least 1) of the items of each user with at least 2
    interactions is held out: the split for data whose order means nothing. With
    `max_users`, only that many users (a seeded sample) are test users."""
    counts = np.bincount(data.users, minlength=data.n_users)
    rng = np.random.default_rng(seed)
    eligible = counts >= 2
    if max_users is not None and eligible.sum() > max_users:
        chosen = rng.choice(np.flatnonzero(eligible), max_users, replace=False)
        eligible = np.zeros(data.n_users, dtype=bool)
        eligible[chosen] = True
    order = np.lexsort((rng.random(len(data.users)), data.users))
    starts = np.concatenate([[0], np.cumsum(counts)])[data.users[order]]
    pos = np.arange(len(order)) - starts
    n = counts[data.users[order]]
    hold = np.zeros(len(order), dtype=bool)
    hold[order] = eligible[data.users[order]] & (pos < np.maximum(1, np.floor(n * fraction)))
    held: dict[int, list[int]] = {}
    for u, i in zip(data.users[hold].tolist(), data.items[hold].tolist(), strict=True):
        held.setdefault(u, []).append(i)
    return _finish("random", data, ~hold, held, {"seed": seed, "fraction": fraction})


def split_segment(data: Interactions, seed: int = 0, fraction: float = SEGMENT_FRACTION) -> Split:
    """`fraction` of each user's interactions held out (users with at least 2): the
    newest when the data's time carries signal, else a seeded random part."""
    if not (data.has_timestamps and profile(data, seed).time_matters):
        split = split_random(data, seed, fraction)
        split.name = split.info["split"] = "segment"
        split.info["held"] = "random"
        return split
    counts = np.bincount(data.users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)])[data.users]
    pos = np.arange(len(data.users)) - starts  # rows are in time order within a user
    n = counts[data.users]
    hold = (n >= 2) & (pos >= n - np.maximum(1, np.floor(n * fraction)))
    held: dict[int, list[int]] = {}
    for u, i in zip(data.users[hold].tolist(), data.items[hold].tolist(), strict=True):
        held.setdefault(u, []).append(i)
    return _finish("segment", data, ~hold, held, {"fraction": fraction, "held": "newest"})


def subset_users(data: Interactions, max_rows: int, seed: int = 0) -> Interactions:
    """A seeded random sample of the users, all their interactions, about `max_rows` in
    all; users and items renumbered to those present."""
    counts = np.bincount(data.users, minlength=data.n_users)
    order = np.random.default_rng(seed).permutation(data.n_users)
    take = order[: max(1, int(np.searchsorted(np.cumsum(counts[order]), max_rows)))]
    keep = np.zeros(data.n_users, dtype=bool)
    keep[take] = True
    return _compact(data, keep[data.users])[0]


def split_data(
    data: Interactions,
    split: str = "personalize",
    *,
    seed: int = 0,
    test_fraction: float = 0.1,
    cut_quantile: float = 0.9,
) -> Split:
    """One of SPLITS by name."""
    if split == "personalize":
        return split_personalize(data, seed, test_fraction)
    if split == "leave-last-out":
        return split_leave_last_out(data)
    if split == "time-cut":
        return split_time_cut(data, cut_quantile)
    if split == "random":
        return split_random(data, seed, test_fraction)
    if split == "segment":
        return split_segment(data, seed)
    raise UsageError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
