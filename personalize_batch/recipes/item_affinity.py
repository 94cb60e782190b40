"""item-affinity (Personalize's aws-item-affinity, USER_SEGMENTATION): for an item, the
users most likely to interact with it – user-personalization's model read the other way
round (see `segments` for the scoring).

Training fits user-personalization's model (the same fit, arrays and hyperparameters;
its search limited to what a segment reads of the model) and then chooses how a segment
is read from it on a held-out part of the data (`choose_rule`): the segment split (20 %
of each user's interactions; the newest when time carries signal) of at most RULE_ROWS
interactions, the user model fitted on its training part, and each candidate rule's
hit and recall at the top 1 % of users for up to SEGMENT_ITEMS held-out items.
Measured on MovieTweetings and anime, no fixed rule was best on both (the sparse data
wanted co-occurrence with active users favoured, the dense one the model's
neighbours): the data decides.

Users who already have the item are left out of its segment, unless the job keeps seen
items (`--include-seen`), as item recommendations leave out a user's own items. An item
unknown to the solution gets an error line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Interactions
from ..data.splits import split_segment, subset_users
from ..errors import UsageError
from .numeric import seen_arrays
from .protocol import (
    ITEM,
    USER_SEGMENTATION,
    USERS,
    Arrays,
    Query,
    Recipe,
    Search,
    Space,
    Validation,
)
from .segments import RULE_ARRAYS, SOURCES, Affinity, Rule, answer, one_hot
from .user_filter import UserFilter
from .user_fit import COMPONENTS
from .user_fit import fit as fit_user_model
from .user_personalization import ARRAYS, HYPERPARAMETERS, penalties_to_whole, search_space
from .validation import SEGMENT_METRICS, segment_metrics, segment_task, user_segments

RULE_ROWS = 1_000_000  # interactions the rule is chosen on (a sample of users above)
ACTIVITY_EXPONENTS = (-0.5, 0.0, 0.5, 1.0)
# n_h ** -exponent: 0.5 ranks as cosine item-kNN does, 1 sums the chances P(i | h); the
# step between them lets the data settle anywhere on that line, not at one end
COOCCURRENCE_EXPONENTS = (0.5, 0.75, 1.0)
MIN_ITEMS = 20  # fewer held-out items than this decide nothing: DEFAULT_RULE
# with too little data to choose on: item-kNN's ranking with active users favoured,
# the best of the candidates on MovieTweetings (the sparser of the data sets measured)
DEFAULT_RULE = Rule("cooccurrence", 0.5, 0.5)


def sources() -> list[tuple[str, float]]:
    """(source, cooccurrence exponent) of every rule choose_rule measures."""
    return [
        (source, gamma)
        for source in SOURCES
        for gamma in (COOCCURRENCE_EXPONENTS if source == "cooccurrence" else (0.5,))
    ]


def candidates() -> list[Rule]:
    """Every rule choose_rule measures, in the order ties are settled (first wins)."""
    return [Rule(s, beta, gamma) for s, gamma in sources() for beta in ACTIVITY_EXPONENTS]


# the hyperparameters each source reads of the user model (a search's trials reuse the
# measures of the sources whose hyperparameters did not change)
_NEIGHBOURS = ("neighbours", *COMPONENTS["neighbours"])
_ITEM_MODEL = COMPONENTS["item_model"]


def _reads(source: str, hp: dict[str, Any]) -> tuple[Any, ...]:
    if source == "cooccurrence":
        return ()
    names = _NEIGHBOURS + (_ITEM_MODEL if source == "neighbours+item-model" else ())
    return tuple(hp[n] for n in names)


def choose_rule(
    data: Interactions, hp: dict[str, Any], seed: int = 0, cache: dict | None = None
) -> tuple[Rule, dict[str, Any]]:
    """The rule with the best recall (then hit) at the top 1 % on a segment split of the
    data, and what each rule scored."""
    if len(data.users) > RULE_ROWS:
        data = subset_users(data, RULE_ROWS, seed)
    split = split_segment(data, seed)
    asked, relevant, top = segment_task(split, seed)
    if len(asked) < MIN_ITEMS:
        return DEFAULT_RULE, {"reason": f"fewer than {MIN_ITEMS} held-out items"}
    nested = None if cache is None else cache.setdefault(("segment rule", seed), {})
    train = split.train
    fitted: dict[str, np.ndarray] = {}

    def arrays() -> dict[str, np.ndarray]:
        """The user model on the split's training part (fitted when first needed)."""
        if not fitted:
            fitted.update(fit_user_model(train, hp, seed=seed, cache=nested))
            fitted.update(
                user_ids=train.user_ids,
                item_ids=train.item_ids,
                **seen_arrays(train.users, train.items, train.n_users, train.n_items),
            )
        return fitted

    q = one_hot(asked, train.n_items)
    scores = {}
    for source, gamma in sources():
        # a search's trials reuse what the hyperparameters they change cannot move
        key = ("segment rule scores", seed, source, gamma, *_reads(source, hp))
        if cache is not None and key in cache:
            scores.update(cache[key])
            continue
        affinity = Affinity(arrays(), Rule(source, 0.0, gamma))
        weights = [affinity.weights(beta) for beta in ACTIVITY_EXPONENTS]
        found = {}
        for beta, (users, _, lengths) in zip(
            ACTIVITY_EXPONENTS, affinity.rank_users_by(q, top, True, weights), strict=True
        ):
            lists = [row[:n] for row, n in zip(users, lengths, strict=True)]
            m = segment_metrics(lists, relevant, top)
            found[Rule(source, beta, gamma)] = (m["recall_at_1_percent"], m["hit_at_1_percent"])
        if cache is not None:
            cache[key] = found
        scores.update(found)
    best = max(scores.values())
    chosen = next(r for r, v in scores.items() if v == best)
    report = {
        "split": split.info,
        "items": len(asked),
        "top": top,
        "rules": [
            {**_rule_dict(r), "recall_at_1_percent": v[0], "hit_at_1_percent": v[1]}
            for r, v in scores.items()
        ],
    }
    return chosen, report


def _rule_dict(rule: Rule) -> dict[str, Any]:
    return {
        "source": rule.source,
        "activityExponent": rule.activity_exponent,
        "cooccurrenceExponent": rule.cooccurrence_exponent,
    }


def describe_rule(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The segment rule a solution keeps, as `pbatch describe` shows it."""
    return {"segmentRule": _rule_dict(Rule.from_arrays(arrays))}


def fit(
    data: Interactions, hp: dict, *, seed: int = 0, cache: dict | None = None
) -> dict[str, np.ndarray]:
    """user-personalization's arrays, and the segment rule chosen on held-out data."""
    arrays = fit_user_model(data, hp, seed=seed, cache=cache)
    rule, _ = choose_rule(data, hp, seed, cache)
    arrays.update(rule.arrays())
    return arrays


# what a segment reads of the user model: its item neighbours and item-item model (the
# other terms – recency, transitions, popularity – shape a user's item list only)
SEGMENT_DIMENSIONS = ("regularization", "dropout", "item_model_neighbours")
SEARCH_BUDGET = 15


def segment_space(data: Interactions, prof: Any, hp: dict[str, Any]) -> Space:
    """user-personalization's search space, limited to what a segment reads of the user
    model: nothing, when the rule chosen on this data at the start reads no item-item
    model (each setting tried would give the same segments)."""
    space = search_space(data, prof, hp)
    rule, _ = choose_rule(data, {**hp, **space.start}, seed=0)
    if rule.source != "neighbours+item-model":
        why = f"the segment rule chosen on this data ({rule.source}) reads no item-item model"
        fixed = {**space.fixed, **{n: (hp[n], why) for n in SEGMENT_DIMENSIONS}}
        return Space(space.start, [], fixed)
    dims = [d for d in space.dimensions if d.name in SEGMENT_DIMENSIONS]
    return Space(space.start, dims, space.fixed)


UNKNOWN_ITEM = "the item is not in the solution (no interactions in its training data)"


class Scorer:
    """Answers a chunk of item queries with users (see `segments`)."""

    block_rows = 256  # lines per pass over the users: each pass reads every history

    def __init__(self, solution) -> None:
        self.solution = solution
        self.affinity = Affinity(solution.arrays, Rule.from_arrays(solution.arrays))

    def problems(self, items: np.ndarray) -> list[str | None]:
        """Why a line cannot be answered (None where it can): an unknown item (-1)."""
        return [UNKNOWN_ITEM if i < 0 else None for i in np.asarray(items).tolist()]

    def recommend(
        self, items: np.ndarray, k: int, include_seen: bool, mask: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each item's top-k users, with their share of the item's affinity; an unknown
        item (-1) gets an empty answer (see `problems`). `mask`: a UserFilter of the
        users each line may name (filters/: INCLUDE / EXCLUDE UserID)."""
        if mask is not None and not isinstance(mask, UserFilter):
            raise UsageError("a segment job's filter selects users: INCLUDE or EXCLUDE UserID")
        items = np.asarray(items, dtype=np.int64)
        q = one_hot(items, self.affinity.n_items)
        return answer(self.affinity, q, k, not include_seen, items >= 0, mask)


ITEM_AFFINITY_ARRAYS = Arrays(
    required={**ARRAYS.required, **RULE_ARRAYS},
    optional=ARRAYS.optional,
    matrices=ARRAYS.matrices,
    per_item=ARRAYS.per_item,
)

RECIPE = Recipe(
    name="item-affinity",
    recipe_type=USER_SEGMENTATION,
    query=Query("itemId", ITEM),
    output=USERS,
    example='{"itemId": "105"}',
    hyperparameters=HYPERPARAMETERS,
    arrays=ITEM_AFFINITY_ARRAYS,
    fit=fit,
    scorer=Scorer,
    validation=Validation(user_segments, SEGMENT_METRICS),
    search=Search(segment_space, budget=SEARCH_BUDGET, to_whole=penalties_to_whole),
    describe=describe_rule,
)
