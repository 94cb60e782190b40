"""user-personalization: a sequence-aware user model (Personalize's HRNN family, A.1).

A user is the ordered list of their most recent distinct items, h_1 … h_L (h_L latest),
with weights w_j = 0.5 ** (age_j / recency_half_life) · c_j ** -rare_item_emphasis, age 0
being the latest item and c_j the item's interaction count (items WEIGHT_HALVINGS
half-lives back or older are not read: their weights are negligible). The logit of item
i is a weighted sum of four terms:

    item_model_weight  · N(max(0, Σ_j w_j B(h_j, i)))   closed-form item-item model
  + neighbour_weight   · N(Σ_j w_j cos(h_j, i))   item neighbours (sparse top-k cosine)
  + transition_weight  · N(next(h_L, i))          what followed the latest item in sequences
  + popularity_weight  · recent_popularity(i)     time-decayed popularity, maximum 1

where N(·) divides a user's row by its largest absolute value, so the weights compare terms
of the same scale whatever the history's length. `recency_mask=false` makes every w_j 1,
reads the whole history (keeping the latest items would be order too) and drops the
transition term: the order-blind ablation. Scores are the softmax of
logit / temperature over all items, as Personalize's are. An unknown user has no history:
the popularity term alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Interactions
from ..data.profile import Profile
from .protocol import (
    ITEMS,
    USER_PERSONALIZATION,
    Arrays,
    Dimension,
    HyperParameter,
    HyperParameters,
    Query,
    Recipe,
    Search,
    Space,
    Validation,
    tidy,
)
from .user_fit import fit, fold_in
from .user_model import Scorer
from .validation import TOP_N_METRICS, top_n

HYPERPARAMETERS = HyperParameters(
    [
        HyperParameter(
            "max_history_length",
            100,
            int,
            1,
            10000,
            "most recent distinct items of a user that the model reads (HRNN's bptt)",
        ),
        HyperParameter(
            "recency_mask",
            True,
            bool,
            help="weigh recent items more and use transitions (false: order-blind)",
        ),
        HyperParameter(
            "recency_half_life",
            2.0,
            float,
            0.1,
            10000.0,
            "history positions after which an item's weight halves",
        ),
        HyperParameter(
            "item_model_weight", 1.0, float, 0.0, 100.0, "weight of the item-item model term"
        ),
        HyperParameter(
            "regularization", 300.0, float, 0.01, 1e7, "ridge penalty of the item-item model"
        ),
        HyperParameter(
            "dropout",
            0.1,
            float,
            0.0,
            0.95,
            "extra ridge penalty in proportion to item popularity (EDLAE's dropout rate)",
        ),
        HyperParameter(
            "min_item_interactions",
            3,
            int,
            1,
            1000000,
            "items with fewer users are left out of the item-item model",
        ),
        HyperParameter(
            "rare_item_emphasis",
            0.0,
            float,
            0.0,
            1.0,
            "a history item's weight is divided by its interaction count to this power",
        ),
        HyperParameter(
            "item_model_neighbours",
            50,
            int,
            1,
            2000,
            "item-item model weights kept per item (the largest in absolute value)",
        ),
        HyperParameter(
            "max_dense_items",
            10000,
            int,
            0,
            50000,
            "items fitted exactly; above, the most popular ones plus a low-rank model",
        ),
        HyperParameter(
            "hidden_dimension",
            256,
            int,
            8,
            2048,
            "rank of the low-rank item-item model (used above max_dense_items)",
        ),
        HyperParameter("neighbours", 100, int, 1, 1000, "cosine item neighbours kept per item"),
        HyperParameter(
            "min_cointeraction_count",
            2,
            int,
            1,
            100,
            "item pairs shared by fewer users are not neighbours",
        ),
        HyperParameter(
            "neighbour_weight", 0.0, float, 0.0, 100.0, "weight of the item-neighbour term"
        ),
        HyperParameter(
            "transition_weight", 0.3, float, 0.0, 100.0, "weight of the next-item transition term"
        ),
        HyperParameter(
            "popularity_weight", 1.0, float, 0.0, 100.0, "weight of the recent-popularity term"
        ),
        HyperParameter(
            "popularity_half_life_days",
            7.0,
            float,
            0.01,
            100000.0,
            "age after which an interaction counts half towards popularity",
        ),
        HyperParameter("temperature", 0.1, float, 1e-4, 100.0, "softmax temperature of the scores"),
    ]
)

# what the model keeps in a solution (personalized-ranking keeps the same)
ARRAYS = Arrays(
    required={
        "up_history_indptr": ("i", 1),
        "up_history_items": ("i", 1),
        "up_history_times": ("i", 1),
        "up_nb_indptr": ("i", 1),
        "up_nb_indices": ("i", 1),
        "up_nb_data": ("f", 1),
        "up_trans_indptr": ("i", 1),
        "up_trans_indices": ("i", 1),
        "up_trans_data": ("f", 1),
        "up_prior": ("f", 1),
        "up_im_indptr": ("i", 1),
        "up_im_indices": ("i", 1),
        "up_im_data": ("f", 1),
        "up_im_path": ("U", 0),
    },
    # what fresh events update the recent-popularity term from (absent from older
    # solutions)
    optional={"up_prior_counts": ("f", 1), "up_prior_time": ("i", 0)},
    matrices={
        "history": ("up_history_indptr", "up_history_items", "up_history_times", "users", "items"),
        "neighbours": ("up_nb_indptr", "up_nb_indices", "up_nb_data", "items", "items"),
        "transitions": ("up_trans_indptr", "up_trans_indices", "up_trans_data", "items", "items"),
        "item model": ("up_im_indptr", "up_im_indices", "up_im_data", "items", "items"),
    },
    per_item=("up_prior", "up_prior_counts"),
)

# Ranges that depend on the data's scale are set from the data (see docs/reference.md,
# "How pbatch train chooses its settings"):
#
# - `regularization` is a ridge added to item counts (the diagonal of XᵀX), so its range
#   is a multiple of the mean count of an item the item-item model keeps: from 1/64 to
#   64 times it, starting at that mean.
# - `popularity_half_life_days` ranges over the data's own time span (a thousandth of it
#   to all of it), starting at a twentieth.
# - Terms that read order (recency weights and transitions) exist only when the order
#   test finds order; recent popularity only when timestamps carry signal.

# popularity_half_life_days when time carries no signal: all-time popularity
ALL_TIME_DAYS = 100000.0


def modelled_mean_count(data: Interactions, min_users: int) -> float:
    """The mean number of users of the items the item-item model keeps."""
    counts = np.bincount(
        np.unique(data.users.astype(np.int64) * data.n_items + data.items) % data.n_items,
        minlength=data.n_items,
    )
    kept = counts[counts >= max(1, min_users)]
    return float(kept.mean()) if len(kept) else 1.0


def search_space(data: Interactions, prof: Profile, hp: dict[str, Any]) -> Space:
    """What the search may change, and what the data fixes before it starts."""
    fixed: dict[str, tuple[Any, str]] = {}
    start = dict(hp)
    if not prof.order.present:
        fixed["recency_mask"] = (False, f"no order: {prof.order.reason}")
    if not prof.time_matters:
        why = "no TIMESTAMP column" if not prof.has_timestamps else "time carries no signal"
        fixed["popularity_half_life_days"] = (ALL_TIME_DAYS, f"all-time popularity ({why})")
    start.update({k: v for k, (v, _) in fixed.items()})

    mean = modelled_mean_count(data, hp["min_item_interactions"])
    start["regularization"] = tidy(mean)
    span = max(prof.span_days, 1.0 / 24.0)
    if "popularity_half_life_days" not in fixed:
        start["popularity_half_life_days"] = tidy(span / 20.0)

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
        # its whole declared range: from no damping (0) to dividing by the count (1)
        Dimension("rare_item_emphasis", "linear", 0.0, 1.0),
        Dimension("recency_half_life", "log", 0.5, 64.0, when=ordered),
        Dimension("transition_weight", "log", 0.01, 10.0, can_be_off=True, when=ordered),
        Dimension("neighbour_weight", "log", 0.01, 10.0, can_be_off=True),
        Dimension("max_history_length", "log", 4, 1024, integer=True, when=ordered),
        Dimension("item_model_neighbours", "log", 4, 512, integer=True),
    ]
    dims = [d for d in dims if d.name not in fixed]
    return Space(start, dims, fixed)


def penalties_to_whole(values: dict[str, Any], ratio: float) -> dict[str, Any]:
    """Searched values chosen on a sample of the users, for data `ratio` times as large:
    every item keeps the ridge penalty the search chose for it. The constant
    `regularization` stays; the popularity-proportional part, `dropout / (1 - dropout) ·
    n_i`, grows with the item's count n_i, so its odds are divided by `ratio` (measured:
    docs/reference.md, "Large data")."""
    out = dict(values)
    if "dropout" in out:
        odds = out["dropout"] / (1.0 - out["dropout"]) / ratio
        out["dropout"] = tidy(odds / (1.0 + odds))
    return out


SEARCH = Search(search_space, budget=50, to_whole=penalties_to_whole)

RECIPE = Recipe(
    name="user-personalization",
    recipe_type=USER_PERSONALIZATION,
    query=Query("userId"),
    output=ITEMS,
    example='{"userId": "653"}',
    hyperparameters=HYPERPARAMETERS,
    arrays=ARRAYS,
    fit=fit,
    scorer=Scorer,
    validation=Validation(top_n, TOP_N_METRICS),
    search=SEARCH,
    explores=True,
    fresh_events=True,
    fold_in=fold_in,
)
