"""`pbatch train` chooses its own settings (A.16): read the data, hold out a validation
part the way the data supports, search the recipe's hyperparameters within a bounded
budget, and hand the chosen values to the final fit on all the data.

The defaults (`--no-tune`) are where the search starts, apart from what the data
decides: values fixed by `--hp` are never changed, and `--hpo-config` (Personalize's
`hpoConfig`) replaces the search space, the metric and the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import recipes
from ..data import Interactions
from ..data.profile import Profile, profile
from ..data.splits import (
    Split,
    split_data,
    split_leave_last_out,
    split_random,
    split_time_cut,
    subset_users,
)
from ..errors import UsageError
from ..recipes.protocol import TIME_SPLITS, Dimension
from ..storage import open_input
from .hpo import HpoConfig, parse_hpo_config
from .objective import objective
from .search import Trial, coordinate_descent

MIN_USERS = 25  # Personalize's minimum: users with at least 2 interactions
# above this many interactions, the search fits on a sample of the users holding about
# this many, and the recipe carries the chosen values to the whole data; its
# item-item models then keep at most SEARCH_DENSE_ITEMS items exact (the rest low rank):
# a setting costs a third, and the final fit keeps max_dense_items
SEARCH_ROWS = 1_000_000
SEARCH_DENSE_ITEMS = 2_000
VALIDATION_USERS = 20_000  # at most this many users are scored per setting
# the validation parts a user may ask for (--validation-split) instead of the data's
# own choice (AUTO), each with the question it asks
AUTO = "auto"
ASKED_SPLITS = {
    "personalize": "Personalize's split: a tenth of the users, each one's newest tenth",
    "leave-last-out": "each user's last item",
    "time-cut": TIME_SPLITS[0][1],
    "random": "a random tenth of each user's items",
    "segment": "a fifth of each user's items (the newest when time carries signal)",
}


@dataclass
class Choice:
    """The chosen hyperparameters and the record kept in the solution."""

    hyperparameters: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)


def tunable(recipe: str) -> bool:
    """Whether a recipe declares a search of its settings."""
    return recipes.recipe(recipe).search is not None


def given_names(hp_pairs: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The hyperparameters a user fixed with `--hp key=value`."""
    return frozenset(pair.partition("=")[0].strip() for pair in hp_pairs)


def refuse_without_search(option: str, what: str, recipe: str, tune: bool) -> None:
    """An option that shapes the search (`what` it sets), given where there is none
    (`--no-tune`, or a recipe without a search): one line, exit 2, rather than an
    option silently ignored."""
    if not tune:
        raise UsageError(f"{option} sets {what} that --no-tune skips: give one of them")
    if not tunable(recipe):
        raise UsageError(f"{option}: {recipe} has no hyperparameters to search")


def read_hpo_config(
    path: str | None, recipe: str, tune: bool = True, endpoint_url: str | None = None
) -> HpoConfig | None:
    """Read `--hpo-config` (local, s3://, .gz) for `recipe` (None: none given)."""
    if path is None:
        return None
    refuse_without_search("--hpo-config", "the search", recipe, tune)
    with open_input(path, endpoint_url) as f:
        text = f.read()
    return parse_hpo_config(text, recipe, recipes.recipe(recipe).hyperparameters)


def choose(
    recipe: str,
    data: Interactions,
    hp: dict[str, Any],
    *,
    given: frozenset[str] = frozenset(),
    hpo: HpoConfig | None = None,
    seed: int = 0,
    say: Callable[[str], None] = lambda _: None,
    on_trial: Callable[[Trial, int, int, float], None] | None = None,
    validation: str = AUTO,
) -> Choice:
    """Choose `recipe`'s hyperparameters for `data`, starting from `hp` (the defaults
    with `--hp` applied; the names in `given` stay as they are). `validation` is the
    kind of validation part (one of ASKED_SPLITS), or AUTO: the data decides."""
    declared = recipes.recipe(recipe)
    if declared.search is None:
        reason = (
            f"{recipe} has no hyperparameters"
            if not declared.hyperparameters.defaults()
            else f"{recipe} is not searched; a value `auto` is decided when it is fitted"
        )
        return Choice(hp, {"searched": False, "reason": reason})
    prof = profile(data, seed)
    say(_data_line(prof))
    say(f"order: {'yes' if prof.order.present else 'no'}: {prof.order.reason}")
    say(f"popularity drift: {'yes' if prof.drift.present else 'no'}: {prof.drift.reason}")
    report: dict[str, Any] = {"searched": False, "profile": prof.as_dict()}
    if prof.users_with_two < MIN_USERS:
        reason = (
            f"only {prof.users_with_two} users have 2 or more interactions (at least "
            f"{MIN_USERS} are needed to hold some out): training with the defaults"
        )
        say(reason)
        return Choice(hp, {**report, "reason": reason})

    search_data, scale = data, 1.0
    if len(data.users) > SEARCH_ROWS:
        search_data = subset_users(data, SEARCH_ROWS, seed)
        scale = len(data.users) / len(search_data.users)
    time_splits = declared.validation.time_splits
    split = validation_split(search_data, prof, seed, time_splits, validation)
    if split is None:
        reason = f"fewer than {MIN_USERS} users to validate on: training with the defaults"
        say(reason)
        return Choice(hp, {**report, "reason": reason})
    say(_split_line(split, search_data, data, time_splits, validation))

    space = declared.search.space(split.train, prof, hp)
    dims: list[Dimension] = space.dimensions
    fixed = dict(space.fixed)
    metric, maximize = declared.validation.metrics[0], True
    budget = declared.search.budget
    if hpo is not None:
        dims, metric, maximize, budget = hpo.apply(dims, metric, maximize, budget)
    dims = [d for d in dims if d.name not in given]
    searched = {d.name for d in dims}
    start = {**space.start, **{k: hp[k] for k in given}}
    proxy: dict[str, Any] = {}
    if "max_dense_items" in hp and "max_dense_items" not in searched:
        proxy = {"max_dense_items": search_dense_items(hp["max_dense_items"], scale != 1.0)}
    for name, (value, reason) in fixed.items():
        if name in given:
            continue
        say(f"{name}={_fmt(value)}: {reason}")
    start.update({k: v for k, (v, _) in fixed.items() if k not in given})

    measure = objective(recipe, split, seed)
    cache: dict = {}
    results: dict[tuple, dict[str, float]] = {}

    def evaluate(values: dict[str, Any]) -> float:
        key = tuple(sorted(values.items()))
        if key not in results:
            results[key] = measure({**values, **proxy}, cache)
        return results[key][metric]

    say(
        f"searching {len(dims)} hyperparameters of {recipe} for the best {metric}: "
        f"at most {budget} settings"
    )
    default_score = evaluate(hp)
    outcome = coordinate_descent(evaluate, start, dims, budget, maximize, on_trial)
    best, best_score = outcome.best, outcome.score
    sign = 1.0 if maximize else -1.0
    if sign * (default_score - best_score) >= 0:  # the defaults were as good: keep them
        best, best_score = dict(hp), default_score
    chosen = dict(best)
    if scale != 1.0 and declared.search.to_whole is not None:
        # only the searched values were chosen on the sample
        chosen.update(declared.search.to_whole({n: chosen[n] for n in searched}, scale))
    carried = {k: v for k, v in best.items() if chosen[k] != v}  # as the sample chose them
    if "temperature" in chosen and "temperature" not in given | searched:
        chosen["temperature"] = _temperature(chosen, hp)
    changed = {k: v for k, v in chosen.items() if v != hp.get(k)}
    say("chosen: " + (", ".join(f"{k}={_fmt(v)}" for k, v in changed.items()) or "the defaults"))
    if scale != 1.0:
        say(
            f"searched on a sample of the users, carried to {scale:.3g}x its interactions: "
            + (", ".join(f"{k}={_fmt(v)} on the sample" for k, v in carried.items()) or "unchanged")
        )
    ratio = best_score / default_score if default_score else float("inf")
    say(
        f"validation {metric}: {best_score:.4f} with these settings, "
        f"{default_score:.4f} with the defaults ({ratio:.2f}x)"
    )
    report.update(
        searched=True,
        validationSplit=validation,
        split=split.info,
        searchSample=(
            None
            if scale == 1.0
            else {
                "interactions": len(search_data.users),
                "scale": scale,
                "chosenOnSample": carried,
            }
        ),
        searchDenseItems=proxy.get("max_dense_items"),
        objective={"metricName": metric, "type": "Maximize" if maximize else "Minimize"},
        fixedByData={k: v for k, (v, _) in fixed.items() if k not in given},
        fixedByUser=sorted(given),
        searchedHyperparameters=[d.name for d in dims],
        settingsTried=len(outcome.trials) + 1,
        budget=budget,
        chosen=changed,
        validation={
            "chosen": results[tuple(sorted(best.items()))],
            "defaults": results[tuple(sorted(hp.items()))],
        },
    )
    return Choice(chosen, report)


def search_dense_items(max_dense_items: int, sampled: bool) -> int:
    """How many items the search's item-item models keep exact (the rest low rank):
    half of the final fit's `max_dense_items`, an eighth of its cubic cost, and at most
    SEARCH_DENSE_ITEMS on a sample of the users. The search only ranks settings; the
    final fit keeps `max_dense_items`."""
    core = max_dense_items // 2
    return min(core, SEARCH_DENSE_ITEMS) if sampled else core


def _temperature(chosen: dict[str, Any], defaults: dict[str, Any]) -> float:
    """The softmax temperature for the chosen weights: in proportion to the most the
    terms can add to a logit, so that scores are as spread as the defaults' are (the
    temperature changes no list; without it, larger weights made every score but the
    first vanish)."""

    def most(hp: dict[str, Any]) -> float:
        total = hp["item_model_weight"] + hp["neighbour_weight"] + hp["popularity_weight"]
        return total + (hp["transition_weight"] if hp["recency_mask"] else 0.0)

    ratio = most(chosen) / max(most(defaults), 1e-12)
    return float(f"{defaults['temperature'] * max(ratio, 1e-3):.4g}")


TIME_SPLIT_MAKERS = {"time-cut": split_time_cut, "leave-last-out": split_leave_last_out}


def validation_split(
    data: Interactions,
    prof: Profile,
    seed: int,
    time_splits: tuple[tuple[str, str], ...] = TIME_SPLITS,
    validation: str = AUTO,
) -> Split | None:
    """The part settings are chosen on. `validation` other than AUTO: that kind (one of
    ASKED_SPLITS). AUTO: when time carries signal, the first of the recipe's
    `time_splits` that holds enough users (by default the future after a time cut, else
    each user's last item); else a random tenth of each user's items. None when fewer
    than MIN_USERS users would be validated."""
    if validation != AUTO:
        return _enough(split_data(data, validation, seed=seed), seed)
    if prof.time_matters:
        for name, _ in time_splits:
            split = _enough(TIME_SPLIT_MAKERS[name](data), seed)
            if split is not None:
                return split
        return None
    return _enough(split_random(data, seed, 0.1, max_users=VALIDATION_USERS), seed)


def _enough(split: Split, seed: int) -> Split | None:
    """The split, capped at VALIDATION_USERS users; None when it has fewer than MIN_USERS."""
    return _cap(split, seed) if len(split.users) >= MIN_USERS else None


def _cap(split: Split, seed: int) -> Split:
    """At most VALIDATION_USERS of the split's users (a seeded sample)."""
    if len(split.users) <= VALIDATION_USERS:
        return split
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(split.users), VALIDATION_USERS, replace=False))
    split.users = split.users[keep]
    split.truths = [split.truths[k] for k in keep.tolist()]
    split.info = {**split.info, "testUsers": VALIDATION_USERS}
    return split


def _data_line(prof: Profile) -> str:
    span = f", {prof.span_days:,.0f} days" if prof.has_timestamps else ", no timestamps"
    return (
        f"data: {prof.interactions:,} interactions, {prof.users:,} users, {prof.items:,} "
        f"items (density {prof.density:.3%}){span}"
    )


def _split_line(
    split: Split,
    searched: Interactions,
    data: Interactions,
    time_splits: tuple[tuple[str, str], ...],
    validation: str = AUTO,
) -> str:
    info = split.info
    label, how = "validation", dict(time_splits).get(info["split"], ASKED_SPLITS["random"])
    if validation != AUTO:
        label, how = f"validation (--validation-split {validation})", ASKED_SPLITS[validation]
    sample = ""
    if len(searched.users) < len(data.users):
        sample = f", searching on {len(searched.users):,} interactions of a sample of users"
    return f"{label}: {how}: {info['testUsers']:,} users{sample}"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return f"{v:g}" if isinstance(v, float) else str(v)
