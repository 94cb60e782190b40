"""Offline evaluation (A.13): split the interactions (see `splits`), train on the
training part, recommend for the test users and measure with Personalize's metric names
(B.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .data import Interactions, read_interactions
from .errors import UsageError
from .metrics import summarize
from .recipes import canonical_recipe, model_arrays, recipe_module
from .recipes.base import chunk_rows
from .solution import build_meta, in_memory
from .splits import (  # noqa: F401  (the splits are part of evaluation's interface)
    SPLITS,
    Split,
    shuffle_within_users,
    split_data,
    split_leave_last_out,
    split_personalize,
    split_random,
    split_time_cut,
)

NUM_RESULTS = 25  # the longest list a metric reads (MRR@25, NDCG@25, P@25)


def prepare(
    recipe: str,
    interactions: str,
    hp_pairs: tuple[str, ...],
    event_type: str | None,
    event_value_threshold: float | None,
    endpoint_url: str | None,
    warn: Any,
) -> tuple[str, dict[str, Any], Interactions]:
    """The canonical recipe, its parsed hyperparameters and the interactions (their
    warnings passed to `warn`): what train and evaluate start from."""
    recipe = canonical_recipe(recipe)
    hp = recipe_module(recipe).HYPERPARAMETERS.parse(hp_pairs, recipe)
    data = read_interactions(
        interactions,
        event_type=event_type,
        event_value_threshold=event_value_threshold,
        endpoint_url=endpoint_url,
    )
    for message in data.warnings:
        if warn is not None:
            warn(message)
    return recipe, hp, data


def recommend_lists(scorer: Any, queries: np.ndarray, k: int = NUM_RESULTS) -> list[list[int]]:
    """Each query's top-k item indices (training items excluded), chunk by chunk."""
    out: list[list[int]] = []
    step = chunk_rows(len(scorer.solution.item_ids))
    for s in range(0, len(queries), step):
        idx, _, lengths = scorer.recommend(queries[s : s + step], k, False)
        out += [row[:n].tolist() for row, n in zip(idx, lengths, strict=True)]
    return out


def _queries(recipe: str, split: Split) -> np.ndarray:
    """What each test user's line asks: the user, or for sims their latest item."""
    if recipe != "sims":
        return split.users
    train = split.train
    ends = np.cumsum(np.bincount(train.users, minlength=train.n_users)) - 1
    return train.items[ends[split.users]].astype(np.int64)


def score_split(
    recipe: str,
    split: Split,
    hp: dict[str, Any],
    *,
    seed: int = 0,
    cache: dict | None = None,
    lists: Callable[[Any, np.ndarray], list[list[int]]] | None = None,
) -> dict[str, float]:
    """Fit `recipe` on the split's training part and return Personalize's metrics."""
    arrays = model_arrays(recipe, split.train, hp, seed=seed, cache=cache)
    solution = in_memory(build_meta(recipe, hp, {}), arrays)
    scorer = recipe_module(recipe).Scorer(solution)
    recs = (lists or recommend_lists)(scorer, _queries(recipe, split))
    truths = [set(t.tolist()) for t in split.truths]
    return summarize(recs, truths, split.info["items"])


def evaluate_data(
    recipe: str,
    data: Interactions,
    hp: dict[str, Any],
    *,
    split: str = "personalize",
    seed: int = 0,
    shuffle: bool = False,
    test_fraction: float = 0.1,
    cut_quantile: float = 0.9,
) -> dict[str, Any]:
    """Split, fit, measure: the report `pbatch evaluate` prints."""
    recipe = canonical_recipe(recipe)
    if shuffle:
        data = shuffle_within_users(data, seed)
    parts = split_data(
        data, split, seed=seed, test_fraction=test_fraction, cut_quantile=cut_quantile
    )
    if not len(parts.users):
        raise UsageError(f"the {split} split leaves no test user with a known held-out item")
    metrics = score_split(recipe, parts, hp, seed=seed)
    return {"recipe": recipe, **parts.info, "shuffled": shuffle, "metrics": metrics}


def evaluate(
    recipe: str,
    interactions: str,
    *,
    hp_pairs: tuple[str, ...] = (),
    event_type: str | None = None,
    event_value_threshold: float | None = None,
    endpoint_url: str | None = None,
    warn: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Read an interactions CSV and evaluate `recipe` on it (`options`: see evaluate_data)."""
    recipe, hp, data = prepare(
        recipe, interactions, hp_pairs, event_type, event_value_threshold, endpoint_url, warn
    )
    if not data.has_timestamps and not options.get("shuffle") and warn is not None:
        warn(
            "held-out items are the last rows in file order; "
            "add --shuffle if that order means nothing"
        )
    report = evaluate_data(recipe, data, hp, **options)
    return {"interactions": interactions, "hyperparameters": hp, **report}
