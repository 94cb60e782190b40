"""trending-now: the items whose interactions grow fastest (Personalize's Trending-Now,
which answers in real time only; pbatch answers it in batch and in `pbatch recommend`).

Time is cut into windows of `trend_discovery_frequency` ending at the latest timestamp
of the data: c1 counts an item's interactions in the latest window, c0 in the window
before it. Items are ranked by the evidence of growth, the Poisson-difference z score

    z = (c1 - c0) / sqrt(c0 + c1 + 1)

(the same rise counts more when it rests on more interactions), ties by item index.
Only items with an interaction in the latest window appear: one popular long ago and
quiet now never does, and a list may be shorter than numResults. A user's own items
are left out, as popularity-count leaves them out. The score of an item is its z.

The default frequency, `auto`, is chosen from the data: for each of Personalize's
frequencies F, the list that the data before its last window would have given (made
from the windows F and 2F before that) is measured on what that last window holds, as
a lift: the share of the last window's interactions on the list's first
VALIDATION_LENGTH items over their share of the two windows the list was made from.
Above 1, the items found rising went on rising. A share of everything would reward
lists of merely popular items, which short windows give (few items have an
interaction in half an hour); the lift asks whether a trend was found. The largest
lift wins, but the longest window within one standard error of it (of the last
window's share, binomial) is kept: a short window's lift rests on few interactions.
Data without timestamps has no trend: training refuses it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from ..data import Interactions
from ..errors import DataError
from .fixed_order import FixedOrderScorer
from .protocol import (
    ITEMS,
    USER_PERSONALIZATION,
    Arrays,
    HyperParameter,
    HyperParameters,
    Query,
    Recipe,
    Validation,
)
from .validation import TOP_N_METRICS, top_n

# Personalize's "trend discovery frequency" values, in seconds
FREQUENCIES = {"30 minutes": 1800, "1 hour": 3600, "3 hours": 10800, "1 day": 86400}
AUTO = "auto"
VALIDATION_LENGTH = 25  # the list length the automatic choice measures


HYPERPARAMETERS = HyperParameters(
    [
        HyperParameter(
            "trend_discovery_frequency",
            AUTO,
            str,
            help="window of the trend: 30 minutes, 1 hour, 3 hours or 1 day; auto: the "
            "one that best foretold the data's last window",
            choices=(AUTO, *FREQUENCIES),
        )
    ]
)


def window_counts(
    items: np.ndarray, times: np.ndarray, end: int, width: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(c1, c0): each item's interactions in (end - width, end] and in the window of the
    same width before it."""
    recent = (times > end - width) & (times <= end)
    before = (times > end - 2 * width) & (times <= end - width)
    return (
        np.bincount(items[recent], minlength=n_items).astype(np.int64),
        np.bincount(items[before], minlength=n_items).astype(np.int64),
    )


def growth(c1: np.ndarray, c0: np.ndarray) -> np.ndarray:
    """The z score of growth; -inf where an item has no interaction in the latest window."""
    z = (c1 - c0) / np.sqrt(c0 + c1 + 1.0)
    return np.where(c1 > 0, z, -np.inf)


def trend_order(z: np.ndarray) -> np.ndarray:
    """The items with a finite z, z descending, then index ascending."""
    keep = np.flatnonzero(np.isfinite(z))
    return keep[np.lexsort((keep, -z[keep]))]


def choose_frequency(data: Interactions) -> tuple[str, dict[str, float]]:
    """The frequency whose rising items went on rising in the data's last window (the
    largest lift, see the module's docstring; within one standard error of it, the
    longest window), and every frequency's lift."""
    end = int(data.timestamps.max())
    lifts, errors = {}, {}
    for name, width in FREQUENCIES.items():
        c1, c0 = window_counts(data.items, data.timestamps, end - width, width, data.n_items)
        listed = trend_order(growth(c1, c0))[:VALIDATION_LENGTH]
        future = data.items[data.timestamps > end - width]
        made = (data.timestamps > end - 3 * width) & (data.timestamps <= end - width)
        base = float(np.isin(data.items[made], listed).mean()) if made.any() else 0.0
        share = float(np.isin(future, listed).mean()) if len(future) else 0.0
        lifts[name] = share / base if base > 0 else 0.0
        errors[name] = np.sqrt(share * (1 - share) / max(len(future), 1)) / base if base else 0.0
    best = max(lifts, key=lambda n: lifts[n])
    near = [name for name, lift in lifts.items() if lift >= lifts[best] - errors[best]]
    return near[-1], lifts  # FREQUENCIES run from the shortest window to the longest


def fit(data: Interactions, hp: dict, **_: object) -> dict[str, np.ndarray]:
    """The growth score of every item at the end of the data."""
    if not data.has_timestamps:
        raise DataError(
            "trending-now needs a TIMESTAMP column: a trend is a change over time, and "
            f"{data.source or 'the interactions'} has none"
        )
    frequency = hp["trend_discovery_frequency"]
    chosen: dict[str, np.ndarray] = {}
    if frequency == AUTO:
        frequency, lifts = choose_frequency(data)
        chosen["trend_lifts"] = np.array([lifts[name] for name in FREQUENCIES])
    width = FREQUENCIES[frequency]
    end = int(data.timestamps.max()) if len(data.timestamps) else 0
    c1, c0 = window_counts(data.items, data.timestamps, end, width, data.n_items)
    return {
        "trend_latest": c1,
        "trend_before": c0,
        "trend_window": np.array(width, dtype=np.int64),
        "trend_end": np.array(end, dtype=np.int64),
        **chosen,
    }


def describe_window(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The window a solution uses, as `pbatch describe` shows it: its frequency, when
    the latest window ends (the trend is as of then), and, when `auto` chose it, every
    frequency's lift."""
    width = int(arrays["trend_window"])
    name = next((n for n, w in FREQUENCIES.items() if w == width), f"{width} seconds")
    end = dt.datetime.fromtimestamp(int(arrays["trend_end"]), dt.timezone.utc)
    shown: dict[str, Any] = {
        "frequency": name,
        "latestWindowEnds": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if "trend_lifts" in arrays:
        lifts = arrays["trend_lifts"].tolist()
        shown["lifts"] = {n: round(v, 4) for n, v in zip(FREQUENCIES, lifts, strict=True)}
    return {"trendWindow": shown}


class Scorer(FixedOrderScorer):
    """Answers a chunk of users (or none): the trend order, minus each user's items; the
    score of an item is its z."""

    def __init__(self, solution) -> None:
        a = solution.arrays
        z = growth(a["trend_latest"].astype(np.float64), a["trend_before"].astype(np.float64))
        super().__init__(solution, trend_order(z), np.where(np.isfinite(z), z, 0.0))


RECIPE = Recipe(
    name="trending-now",
    recipe_type=USER_PERSONALIZATION,
    query=Query("userId", required=False),  # a user's own items are left out
    output=ITEMS,
    example='{} or {"userId": "12"}',
    hyperparameters=HYPERPARAMETERS,
    arrays=Arrays(
        required={
            "trend_latest": ("i", 1),
            "trend_before": ("i", 1),
            "trend_window": ("i", 0),
            "trend_end": ("i", 0),
        },
        optional={"trend_lifts": ("f", 1)},  # when `auto` chose the window
        per_item=("trend_latest", "trend_before"),
    ),
    fit=fit,
    scorer=Scorer,
    validation=Validation(top_n, TOP_N_METRICS),
    describe=describe_window,
)
