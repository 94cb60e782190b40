"""Read the data before choosing: its size, and whether its time means anything.

Two questions are settled from the interactions themselves, each by a one-sided test
at a fixed significance (z >= SIGNIFICANT, about 1 in 1,000 by chance):

- **order**: is a user's next item more like the item before it than like another item
  of the same user? Over sampled pairs of consecutive interactions (strictly later
  timestamps), the cosine similarity of the two items (from the other users' co-
  interactions) is compared with that of the first item and a random other item of the
  same user; the users' mean differences give z. Without it, recency weights and
  transitions are turned off: they can only fit noise.
- **drift**: does popularity move? The latest tenth of the interactions (by time) is
  predicted by the item frequencies of the tenth before it and by those of everything
  before it (add-one smoothing); drift is present when the recent tenth predicts better
  (mean log-likelihood per interaction). Without it, popularity is all-time popularity.

With either, timestamps carry signal and validation holds out the future (a time cut);
without both, a random tenth of each user's items.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .datasets import Interactions

SIGNIFICANT = 3.0  # one-sided z
MIN_PAIRS = 200  # fewer ordered pairs (or recent interactions) decide nothing
MAX_PAIRS = 100_000  # pairs sampled for the order test
MAX_ROWS = 2_000_000  # interactions of the users sampled for the order test


@dataclass(frozen=True)
class Signal:
    """The outcome of one test: present or not, its effect, z, and the sample size."""

    present: bool
    effect: float  # order: similarity ratio, next / random; drift: likelihood ratio per row
    z: float
    sample: int
    reason: str  # why, in words (for the decision lines)


@dataclass(frozen=True)
class Profile:
    """What the data says before any model is fitted."""

    interactions: int
    users: int
    items: int
    users_with_two: int  # users with at least 2 interactions (Personalize's minimum)
    density: float
    has_timestamps: bool
    span_days: float
    order: Signal
    drift: Signal

    @property
    def time_matters(self) -> bool:
        return self.order.present or self.drift.present

    def as_dict(self) -> dict[str, Any]:
        """camelCase keys, as in the rest of a solution's metadata."""

        def camel(name: str) -> str:
            head, *rest = name.split("_")
            return head + "".join(part.title() for part in rest)

        out = {camel(k): v for k, v in asdict(self).items()}
        out["timeMatters"] = self.time_matters
        return out


def _absent(reason: str) -> Signal:
    return Signal(False, 1.0, 0.0, 0, reason)


def profile(data: Interactions, seed: int = 0) -> Profile:
    """Counts, density, and the order and drift tests (deterministic for a seed)."""
    counts = np.bincount(data.users, minlength=data.n_users)
    n_rows, n_users, n_items = len(data.users), int((counts > 0).sum()), data.n_items
    span = 0.0
    if data.has_timestamps and n_rows:
        span = float(data.timestamps.max() - data.timestamps.min()) / 86400.0
    return Profile(
        interactions=n_rows,
        users=n_users,
        items=n_items,
        users_with_two=int((counts >= 2).sum()),
        density=n_rows / max(1, n_users * n_items),
        has_timestamps=data.has_timestamps,
        span_days=span,
        order=order_signal(data, seed),
        drift=drift_signal(data),
    )


def _z(diffs: np.ndarray) -> float:
    if len(diffs) < 2:
        return 0.0
    sd = float(diffs.std(ddof=1))
    mean = float(diffs.mean())
    if sd == 0.0:
        return 0.0 if mean == 0.0 else float(np.sign(mean)) * np.inf
    return mean / (sd / np.sqrt(len(diffs)))


def order_signal(data: Interactions, seed: int = 0) -> Signal:
    """Is the next item of a user more like the previous one than a random one of theirs?"""
    if not data.has_timestamps:
        return _absent("no TIMESTAMP column")
    rng = np.random.default_rng(seed)
    counts = np.bincount(data.users, minlength=data.n_users)
    users = np.flatnonzero(counts >= 3)
    if len(users) and counts[users].sum() > MAX_ROWS:  # a sample of users bounds the cost
        users = np.sort(rng.permutation(users)[: int(MAX_ROWS / counts[users].mean())])
    keep = np.zeros(data.n_users, dtype=bool)
    keep[users] = True
    rows = np.flatnonzero(keep[data.users])
    u, i, t = data.users[rows], data.items[rows], data.timestamps[rows]
    # consecutive interactions of a user, the second strictly later
    pair = np.flatnonzero((u[1:] == u[:-1]) & (t[1:] > t[:-1]))
    if len(pair) < MIN_PAIRS:
        return _absent(f"only {len(pair)} pairs of interactions at different times")
    if len(pair) > MAX_PAIRS:
        pair = np.sort(rng.choice(pair, MAX_PAIRS, replace=False))
    # a random other interaction of the same user (never the pair's own two)
    start = np.searchsorted(u, u[pair])
    n = counts[u[pair]]
    other = start + rng.integers(0, n - 2, size=len(pair))
    other += other >= pair
    other += other >= pair + 1
    x = _columns(u, i, data.n_users, data.n_items)
    adjacent = _cosine_without(x, i[pair], i[pair + 1])
    random_ = _cosine_without(x, i[pair], i[other])
    diffs = np.bincount(u[pair], weights=adjacent - random_, minlength=data.n_users)
    per_user = np.bincount(u[pair], minlength=data.n_users)
    means = diffs[per_user > 0] / per_user[per_user > 0]
    z = _z(means)
    ratio = float(adjacent.mean() / random_.mean()) if random_.mean() > 0 else 1.0
    present = bool(z >= SIGNIFICANT)
    reason = (
        f"a user's next item is {ratio:.2f}x as similar to the one before as another of "
        f"theirs (z = {z:.1f}, {len(pair):,} pairs)"
    )
    return Signal(present, ratio, float(z), len(pair), reason)


def _columns(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int):
    """The binary item x user matrix (CSR) of the given interactions."""
    import scipy.sparse as sp  # noqa: PLC0415

    m = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (items, users)), shape=(n_items, n_users)
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _cosine_without(x, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of item columns a and b over users, leaving out the one user the pair
    comes from (who has both): (C_ab - 1) / sqrt((n_a - 1)(n_b - 1)), 0 where undefined."""
    co = np.asarray(x[a].multiply(x[b]).sum(axis=1)).ravel() - 1.0
    n = np.diff(x.indptr).astype(np.float64)
    denom = np.sqrt(np.maximum(n[a] - 1.0, 0.0) * np.maximum(n[b] - 1.0, 0.0))
    same = a == b
    out = np.where(denom > 0, co / np.where(denom > 0, denom, 1.0), 0.0)
    out[same] = 1.0
    return out


def drift_signal(data: Interactions) -> Signal:
    """Does the previous tenth of the interactions predict the latest tenth better than
    everything before it does?"""
    if not data.has_timestamps:
        return _absent("no TIMESTAMP column")
    t = data.timestamps
    if len(t) == 0:
        return _absent("no interactions")
    q80, q90 = np.quantile(t, [0.8, 0.9])
    last, before = t >= q90, t < q90
    recent = before & (t >= q80)
    if recent.sum() < MIN_PAIRS or last.sum() < MIN_PAIRS or q80 == q90:
        return _absent("too few distinct times to compare periods")
    n = data.n_items

    def log_p(rows: np.ndarray) -> np.ndarray:
        c = np.bincount(data.items[rows], minlength=n).astype(np.float64)
        return np.log((c + 1.0) / (c.sum() + n))

    gain = (log_p(recent) - log_p(before))[data.items[last]]
    z = _z(gain)
    ratio = float(np.exp(gain.mean()))
    present = bool(z >= SIGNIFICANT)
    reason = (
        f"the latest tenth of the interactions is {ratio:.2f}x as likely under the "
        f"popularity of the tenth before it as under all-time popularity (z = {z:.1f})"
    )
    return Signal(present, ratio, float(z), int(last.sum()), reason)
