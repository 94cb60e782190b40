"""`pbatch train`: CSV -> recipe fit -> solution file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import recipes
from . import solution as solution_mod
from .data import Interactions, Items, read_items
from .errors import UsageError
from .evaluation import evaluate_data, prepare
from .recipes.catalogue import DEFAULT_HISTORY, event_arrays
from .tuning import AUTO, choose, given_names, read_hpo_config
from .tuning.search import Trial


def fit_arrays(
    recipe: str,
    data: Interactions,
    hp: dict[str, Any],
    *,
    seed: int = 0,
    cache: dict | None = None,
    filter_history: int = DEFAULT_HISTORY,
) -> dict[str, np.ndarray]:
    """Every array of a solution except item metadata: the model's (solution.model_arrays)
    and, per event type, each user's `filter_history` most recent items (0: all), which
    filters read."""
    arrays = solution_mod.model_arrays(recipe, data, hp, seed=seed, cache=cache)
    arrays.update(
        event_arrays(
            data.users, data.items, data.event_types, data.n_users, data.n_items, filter_history
        )
    )
    return arrays


def _join_items(data: Interactions, item_meta: Items) -> None:
    """Items only in the items data join the catalogue (cold items, no interactions)."""
    extra = np.setdiff1d(item_meta.item_ids, data.item_ids)
    if len(extra):
        all_ids = np.concatenate([data.item_ids, extra])
        order = np.argsort(all_ids, kind="stable")
        remap = np.empty(len(all_ids), dtype=np.int32)
        remap[order] = np.arange(len(all_ids), dtype=np.int32)
        data.items = remap[data.items]
        data.item_ids = all_ids[order]


def train(
    recipe: str,
    interactions: str,
    output: str,
    *,
    items: str | None = None,
    hp_pairs: tuple[str, ...] = (),
    event_type: str | None = None,
    event_value_threshold: float | None = None,
    endpoint_url: str | None = None,
    warn: Any = None,
    filter_history: int = DEFAULT_HISTORY,
    seed: int = 0,
    evaluate: dict[str, Any] | None = None,
    tune: bool = True,
    hpo_config: str | None = None,
    say: Callable[[str], None] | None = None,
    on_trial: Callable[[Trial, int, int, float], None] | None = None,
    validation: str = AUTO,
) -> dict[str, Any]:
    """Train a solution and write it to `output`; returns its description.

    With `tune` (the default), the hyperparameters not fixed in `hp_pairs` are first
    chosen on a validation part of the data (see `tuning`); `hpo_config` is the path of
    a Personalize hpoConfig JSON file that sets the search; `say` gets one line per
    decision, `on_trial` each setting tried. Besides the model, the solution keeps what
    filters read: the items CSV's columns and, per event type, each user's
    `filter_history` most recent items (0: all).

    `validation` is the kind of validation part the settings are chosen on ("auto": the
    data decides; see tuning). `evaluate` (keyword arguments of
    `evaluation.evaluate_data`, such as `split`) first measures the recipe on a split of
    the same data (choosing its settings on the split's training part, on the same kind
    of validation part as the solution) and stores the metrics.
    """
    needs = recipes.recipe(recipe).needs_items
    if needs is not None and items is None:  # before any work
        raise UsageError(f"{recipes.canonical(recipe)} needs --items ITEMS.csv: {needs}")
    recipe, hp, data = prepare(
        recipe, interactions, hp_pairs, event_type, event_value_threshold, endpoint_url, warn
    )
    hpo = read_hpo_config(hpo_config, recipe, tune, endpoint_url)
    given = given_names(hp_pairs)
    report = None
    if evaluate is not None:
        report = evaluate_data(
            recipe,
            data,
            hp,
            seed=seed,
            tune=tune,
            given=given,
            hpo=hpo,
            validation=validation,
            **evaluate,
        )
    tuning = None
    if tune:
        tuning = choose(
            recipe,
            data,
            hp,
            given=given,
            hpo=hpo,
            seed=seed,
            say=say or _quiet,
            on_trial=on_trial,
            validation=validation,
        )
        hp = tuning.hyperparameters
    item_meta = read_items(items, endpoint_url) if items else None
    if item_meta is not None:
        _join_items(data, item_meta)
    arrays = fit_arrays(recipe, data, hp, seed=seed, filter_history=filter_history)
    if item_meta is not None:
        pos = np.searchsorted(data.item_ids, item_meta.item_ids)
        for name, col in item_meta.columns.items():
            full = np.full(data.n_items, "", dtype=col.dtype)
            full[pos] = col
            arrays[f"items_{name}"] = full
    training = {
        "interactions": interactions,
        "interactionsSha256": data.sha256,
        "rowsRead": data.rows_read,
        "interactionsUsed": int(len(data.users)),
        "users": int(data.n_users),
        "items": int(data.n_items),
        "hasTimestamps": data.has_timestamps,
        # the newest interaction's time (epoch seconds): what "new" is measured from
        "latestTimestamp": (
            int(data.timestamps.max()) if data.has_timestamps and len(data.timestamps) else None
        ),
        "eventType": event_type,
        "eventValueThreshold": event_value_threshold,
        "filterHistoryLength": filter_history,
        "seed": seed,
    }
    if item_meta is not None:
        training.update(
            itemsData=items, itemsSha256=item_meta.sha256, itemColumns=sorted(item_meta.columns)
        )
    meta = solution_mod.build_meta(recipe, hp, training)
    if tuning is not None:
        meta["tuning"] = tuning.report
    if report is not None:
        meta["metrics"] = report["metrics"]
        meta["evaluation"] = {k: v for k, v in report.items() if k != "metrics"}
    solution_mod.save(output, meta, arrays)
    return meta


def _quiet(_: str) -> None:
    pass
