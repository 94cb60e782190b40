"""item-attribute-affinity (Personalize's aws-item-attribute-affinity, USER_SEGMENTATION):
for an expression over item metadata, `ITEMS.genres = "Comedy" AND ITEMS.genres =
"Action"` (see `attributes`), the users most likely to interact with any of the items
it matches: item-affinity's model (the same fit, rule and scorer, see `segments`), a
user's affinity for the items summed.

It reads the item metadata a solution keeps when trained with `--items` (one string per
item and field, multi-valued fields joined with `|`); without any, every line names a
missing field. An expression that cannot be read, names a field the metadata does not
have or matches no item gets an error line saying so. A user who has every matching
item is left out (as item-affinity leaves out the item's holders, unless the job keeps
seen items); one who has some of them is not: that is what makes them likely.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import UsageError
from . import item_affinity
from .attributes import ExpressionError, matching_items, parse, unparse
from .catalogue import Catalogue
from .protocol import TEXT, USER_SEGMENTATION, USERS, Query, Recipe, Validation
from .segments import Affinity, Rule, answer, indicator
from .user_filter import UserFilter
from .validation import SEGMENT_METRICS, user_segments

PARSED_KEPT = 4096  # expressions whose matching items a scorer remembers


class Scorer:
    """Answers a chunk of attribute expressions with users."""

    block_rows = item_affinity.Scorer.block_rows

    def __init__(self, solution) -> None:
        self.solution = solution
        self.affinity = Affinity(solution.arrays, Rule.from_arrays(solution.arrays))
        self.catalogue = Catalogue.from_solution(solution)
        self.known: OrderedDict[str, np.ndarray | str] = OrderedDict()

    def items_of(self, text: str) -> np.ndarray | str:
        """The mask of the items an expression matches, or why it cannot be answered."""
        if text in self.known:
            self.known.move_to_end(text)
            return self.known[text]
        try:
            mask = matching_items(parse(text), self.catalogue)
            found: np.ndarray | str = mask
            if not mask.any():
                found = f"the expression matches no item: {unparse(parse(text))}"
        except ExpressionError as exc:
            found = f"itemAttributes: {exc}"
        self.known[text] = found
        if len(self.known) > PARSED_KEPT:
            self.known.popitem(last=False)
        return found

    def problems(self, texts: list[str]) -> list[str | None]:
        """Why a line cannot be answered (None where it can)."""
        out: list[str | None] = []
        for text in texts:
            found = self.items_of(text)
            out.append(found if isinstance(found, str) else None)
        return out

    def recommend(
        self, texts: list[str], k: int, include_seen: bool, mask: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each expression's top-k users, with their share of its affinity; a line that
        cannot be answered gets an empty answer (see `problems`)."""
        if mask is not None and not isinstance(mask, UserFilter):
            raise UsageError("a segment job's filter selects users: INCLUDE or EXCLUDE UserID")
        found = [self.items_of(t) for t in texts]
        masks = [None if isinstance(f, str) else f for f in found]
        q = indicator(masks, self.affinity.n_items)
        answered = np.array([m is not None for m in masks], dtype=bool)
        return answer(self.affinity, q, k, not include_seen, answered, mask)


def item_expressions(solution_ids: np.ndarray):
    """Item indices -> `ITEMS.ITEM_ID = "…"` expressions (what validation asks)."""

    def queries(items: np.ndarray) -> list[str]:
        return [unparse(("=", "ITEM_ID", str(solution_ids[i]))) for i in items.tolist()]

    return queries


def by_item_id(split, seed: int = 0):
    """item-affinity's question, each held-out item asked as its ITEM_ID expression."""
    return user_segments(split, seed, item_expressions(split.train.item_ids))


RECIPE = Recipe(
    name="item-attribute-affinity",
    recipe_type=USER_SEGMENTATION,
    query=Query("itemAttributes", TEXT),
    output=USERS,
    example='{"itemAttributes": "ITEMS.genres = \\"Comedy\\" AND ITEMS.genres = \\"Action\\""}',
    hyperparameters=item_affinity.HYPERPARAMETERS,
    arrays=item_affinity.ITEM_AFFINITY_ARRAYS,
    fit=item_affinity.fit,
    scorer=Scorer,
    validation=Validation(by_item_id, SEGMENT_METRICS),
    needs_items="its lines are expressions over the item metadata (ITEMS.genres = ...)",
    describe=item_affinity.describe_rule,
    search=item_affinity.RECIPE.search,
)
