"""The four recipes. Each module has HYPERPARAMETERS, fit(data, hp, seed=, cache=) -> arrays
and Scorer."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import ALIASES, RECIPE_TYPES, canonical_recipe, seen_arrays

if TYPE_CHECKING:
    from ..data import Interactions

MODULES = {
    "user-personalization": "user_personalization",
    "popularity-count": "popularity",
    "personalized-ranking": "personalized_ranking",
    "sims": "sims",
}


def recipe_module(name: str) -> ModuleType:
    """The module implementing a recipe (imported only when needed)."""
    return import_module(f".{MODULES[canonical_recipe(name)]}", __name__)


def model_arrays(
    recipe: str,
    data: Interactions,
    hp: dict[str, Any],
    *,
    seed: int = 0,
    cache: dict | None = None,
) -> dict[str, np.ndarray]:
    """What a recipe's scorer reads: its own fitted arrays, the id maps, the item counts
    and the seen-items matrix (a solution without item metadata or filter data)."""
    arrays = recipe_module(recipe).fit(data, hp, seed=seed, cache=cache)
    arrays.update(
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        item_counts=np.bincount(data.items, minlength=data.n_items).astype(np.int64),
        **seen_arrays(data.users, data.items, data.n_users, data.n_items),
    )
    return arrays


__all__ = ["ALIASES", "RECIPE_TYPES", "canonical_recipe", "model_arrays", "recipe_module"]
