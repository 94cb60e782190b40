"""Offline evaluation (A.13): split the interactions (see `splits`), train on the
training part, recommend for the test users and measure with Personalize's metric names
(B.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import recipes
from .data import Interactions, read_interactions
from .data.splits import (  # noqa: F401  (the splits are part of evaluation's interface)
    SPLITS,
    Split,
    shuffle_within_users,
    split_data,
    split_leave_last_out,
    split_personalize,
    split_random,
    split_time_cut,
)
from .errors import UsageError
from .recipes.protocol import USER_SEGMENTATION
from .tuning import choose, given_names, read_hpo_config
from .tuning.hpo import HpoConfig
from .tuning.objective import objective


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
    recipe = recipes.canonical(recipe)
    hp = recipes.recipe(recipe).hyperparameters.parse(hp_pairs, recipe)
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


def score_split(
    recipe: str, split: Split, hp: dict[str, Any], *, seed: int = 0, cache: dict | None = None
) -> dict[str, float]:
    """Fit `recipe` on the split's training part and return Personalize's metrics (of
    the question the recipe answers: see tuning.objective)."""
    return objective(recipe, split, seed)(hp, {} if cache is None else cache)


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
    tune: bool = False,
    given: frozenset[str] = frozenset(),
    hpo: HpoConfig | None = None,
    say: Callable[[str], None] | None = None,
    validation: str | None = None,
) -> dict[str, Any]:
    """Split, fit, measure: the report `pbatch evaluate` prints. With `tune`, the
    settings are chosen on the split's training part first (the test part is never seen
    while choosing), on a validation part of `validation`'s kind: by default (None) the
    kind being measured, as Personalize's HPO chooses for the metrics it reports; "auto"
    is what a plain `pbatch train` holds out."""
    recipe = recipes.canonical(recipe)
    if split == "personalize" and recipes.recipe(recipe).recipe_type == USER_SEGMENTATION:
        split = "segment"  # Personalize's split for segments: 80/20 within each user
    if shuffle:
        data = shuffle_within_users(data, seed)
    parts = split_data(
        data, split, seed=seed, test_fraction=test_fraction, cut_quantile=cut_quantile
    )
    if not len(parts.users):
        raise UsageError(f"the {split} split leaves no test user with a known held-out item")
    report: dict[str, Any] = {"recipe": recipe, **parts.info, "shuffled": shuffle}
    if tune:
        chosen = choose(
            recipe,
            parts.train,
            hp,
            given=given,
            hpo=hpo,
            seed=seed,
            say=say or _quiet,
            validation=split if validation is None else validation,
        )
        hp = chosen.hyperparameters
        report["tuning"] = chosen.report
    report["hyperparameters"] = hp
    report["metrics"] = score_split(recipe, parts, hp, seed=seed)
    return report


def _quiet(_: str) -> None:
    pass


def evaluate(
    recipe: str,
    interactions: str,
    *,
    hp_pairs: tuple[str, ...] = (),
    event_type: str | None = None,
    event_value_threshold: float | None = None,
    endpoint_url: str | None = None,
    warn: Any = None,
    hpo_config: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Read an interactions CSV and evaluate `recipe` on it (`options`: see evaluate_data)."""
    recipe, hp, data = prepare(
        recipe, interactions, hp_pairs, event_type, event_value_threshold, endpoint_url, warn
    )
    options["hpo"] = read_hpo_config(hpo_config, recipe, options.get("tune", False), endpoint_url)
    if not data.has_timestamps and not options.get("shuffle") and warn is not None:
        warn(
            "held-out items are the last rows in file order; "
            "add --shuffle if that order means nothing"
        )
    report = evaluate_data(recipe, data, hp, given=given_names(hp_pairs), **options)
    return {"interactions": interactions, **report}
