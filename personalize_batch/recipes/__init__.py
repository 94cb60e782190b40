"""The four recipes. Each module has HYPERPARAMETERS, fit(data, hp, seed=, cache=) -> arrays
and Scorer."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from .base import ALIASES, RECIPE_TYPES, canonical_recipe

MODULES = {
    "user-personalization": "user_personalization",
    "popularity-count": "popularity",
    "personalized-ranking": "personalized_ranking",
    "sims": "sims",
}


def recipe_module(name: str) -> ModuleType:
    """The module implementing a recipe (imported only when needed)."""
    return import_module(f".{MODULES[canonical_recipe(name)]}", __name__)


__all__ = ["ALIASES", "RECIPE_TYPES", "canonical_recipe", "recipe_module"]
