"""What the search may change, per recipe, and what the data fixes before it starts.

Ranges that depend on the data's scale are set from the data (see docs/reference.md,
"How pbatch train chooses its settings"):

- `regularization` is a ridge added to item counts (the diagonal of XᵀX), so its range
  is a multiple of the mean count of an item the item-item model keeps: from 1/64 to
  64 times it, starting at that mean.
- `popularity_half_life_days` ranges over the data's own time span (a thousandth of it
  to all of it), starting at a twentieth.
- Terms that read order (recency weights and transitions) exist only when the order
  test finds order; recent popularity only when timestamps carry signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import Interactions
from ..data.profile import Profile
from .search import Dimension

# popularity_half_life_days when time carries no signal: all-time popularity
ALL_TIME_DAYS = 100000.0


@dataclass
class Space:
    """The start of the search, its dimensions, and the values the data fixed (with why)."""

    start: dict[str, Any]
    dimensions: list[Dimension]
    fixed: dict[str, tuple[Any, str]]  # name -> (value, reason)


def modelled_mean_count(data: Interactions, min_users: int) -> float:
    """The mean number of users of the items the item-item model keeps."""
    counts = np.bincount(
        np.unique(data.users.astype(np.int64) * data.n_items + data.items) % data.n_items,
        minlength=data.n_items,
    )
    kept = counts[counts >= max(1, min_users)]
    return float(kept.mean()) if len(kept) else 1.0


def user_model_space(data: Interactions, prof: Profile, hp: dict[str, Any]) -> Space:
    """user-personalization and personalized-ranking."""
    fixed: dict[str, tuple[Any, str]] = {}
    start = dict(hp)
    if not prof.order.present:
        fixed["recency_mask"] = (False, f"no order: {prof.order.reason}")
    if not prof.time_matters:
        why = "no TIMESTAMP column" if not prof.has_timestamps else "time carries no signal"
        fixed["popularity_half_life_days"] = (ALL_TIME_DAYS, f"all-time popularity ({why})")
    start.update({k: v for k, (v, _) in fixed.items()})

    mean = modelled_mean_count(data, hp["min_item_interactions"])
    start["regularization"] = _tidy(mean)
    span = max(prof.span_days, 1.0 / 24.0)
    if "popularity_half_life_days" not in fixed:
        start["popularity_half_life_days"] = _tidy(span / 20.0)

    def ordered(h: dict[str, Any]) -> bool:
        return bool(h["recency_mask"])

    def popular(h: dict[str, Any]) -> bool:
        return h["popularity_weight"] > 0

    dims = [
        Dimension("recency_mask", "choice", choices=(True, False)),
        Dimension("popularity_weight", "log", 0.01, 100.0, can_be_off=True),
        Dimension("popularity_half_life_days", "log", span / 1000.0, span, when=popular),
        Dimension("regularization", "log", mean / 64.0, mean * 64.0),
        Dimension("dropout", "linear", 0.0, 0.5),
        Dimension("rare_item_emphasis", "linear", 0.0, 0.4),
        Dimension("recency_half_life", "log", 0.5, 64.0, when=ordered),
        Dimension("transition_weight", "log", 0.01, 10.0, can_be_off=True, when=ordered),
        Dimension("neighbour_weight", "log", 0.01, 10.0, can_be_off=True),
        Dimension("max_history_length", "log", 4, 1024, integer=True, when=ordered),
        Dimension("item_model_neighbours", "log", 4, 512, integer=True),
    ]
    dims = [d for d in dims if d.name not in fixed]
    return Space(start, dims, fixed)


def sims_space(data: Interactions, prof: Profile, hp: dict[str, Any]) -> Space:
    """sims: Personalize's hyperparameters over their documented ranges."""
    dims = [
        Dimension("popularity_discount_factor", "linear", 0.0, 1.0),
        Dimension("max_item_interaction_count_percentile", "linear", 0.5, 1.0),
        Dimension("min_cointeraction_count", "linear", 1, 9, integer=True),
        Dimension("min_item_interaction_count_percentile", "linear", 0.0, 0.2),
        Dimension("min_user_history_length_percentile", "linear", 0.0, 0.2),
        Dimension("max_user_history_length_percentile", "linear", 0.8, 1.0),
    ]
    return Space(dict(hp), dims, {})


SPACES = {
    "user-personalization": user_model_space,
    "personalized-ranking": user_model_space,
    "sims": sims_space,
}


def _tidy(v: float) -> float:
    return float(f"{v:.4g}")
