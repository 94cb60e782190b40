"""What a setting is worth on the validation part: the recipe is fitted with it, and
its own scorer answers the question its declaration names (recipes.validation), in
Personalize's metric names (B.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import recipes
from ..data.splits import Split
from ..solution import build_meta, in_memory, model_arrays

Objective = Callable[[dict[str, Any], dict], dict[str, float]]


def objective(recipe: str, split: Split, seed: int = 0) -> Objective:
    """A function of (hyperparameters, fit cache) -> the recipe's metrics on `split`."""
    declared = recipes.recipe(recipe)
    measure = declared.validation.question(split, seed)

    def fitted(hp: dict[str, Any], cache: dict) -> dict[str, float]:
        arrays = model_arrays(recipe, split.train, hp, seed=seed, cache=cache)
        return measure(declared.scorer(in_memory(build_meta(recipe, hp, {}), arrays)))

    return fitted
