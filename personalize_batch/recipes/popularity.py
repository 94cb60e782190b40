"""popularity-count: the most interacted-with items, minus the user's own (A.1, A.5)."""

from __future__ import annotations

import numpy as np

from ..data import Interactions
from .fixed_order import FixedOrderScorer
from .numeric import popularity_order, round_sig
from .protocol import (
    ITEMS,
    USER_PERSONALIZATION,
    Arrays,
    HyperParameters,
    Query,
    Recipe,
    Validation,
)
from .validation import TOP_N_METRICS, top_n


def fit(data: Interactions, hp: dict, **_: object) -> dict[str, np.ndarray]:
    """Nothing beyond the shared arrays: the item counts are the model."""
    return {}


class Scorer(FixedOrderScorer):
    """Answers a chunk of users: the popularity order, minus each user's items; the
    score of an item is its share of the training interactions."""

    def __init__(self, solution) -> None:
        counts = solution.arrays["item_counts"]
        total = counts.sum()
        # rounded once here: shares such as count / 8,000,000 end in an exact 5 at the
        # seventh digit, which round_sig settles one value at a time (rounding a rounded
        # value again changes nothing and is quick)
        share = round_sig(counts / total if total else counts.astype(np.float64))
        super().__init__(solution, popularity_order(counts), share)


RECIPE = Recipe(
    name="popularity-count",
    recipe_type=USER_PERSONALIZATION,
    query=Query("userId", required=False),  # a user's own items are left out
    output=ITEMS,
    example='{} or {"userId": "12"}',
    hyperparameters=HyperParameters([]),
    arrays=Arrays(),  # the item counts, which every solution keeps, are the model
    fit=fit,
    scorer=Scorer,
    validation=Validation(top_n, TOP_N_METRICS),
    fresh_events=True,
)
