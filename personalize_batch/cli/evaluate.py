"""`pbatch evaluate`: offline metrics on a split of the interactions (A.13)."""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from .common import (
    ENDPOINT,
    EVENT_TYPE,
    EVENT_VALUE_THRESHOLD,
    HP,
    INTERACTIONS,
    QUIET,
    RECIPE,
    emit,
    main,
    say,
    warn,
)

# = data.splits.SPLITS but "segment" (what personalize means for segment recipes); kept
# here so that starting the CLI does not import numpy (a test keeps them equal)
SPLIT_CHOICES = ["personalize", "leave-last-out", "time-cut", "random"]

SPLIT = click.option(
    "--split",
    type=click.Choice(SPLIT_CHOICES),
    default="personalize",
    show_default=True,
    help="personalize: 10% of users, their newest 10% held out (Personalize's); "
    "leave-last-out: each user's last item; time-cut: before/after a global time cut; "
    "random: a random tenth of each user's items.",
)
# what a plain `pbatch train` holds out for choosing settings (= tuning.AUTO)
AUTO_SPLIT = "auto"


def validation_split_option(default: str | None, default_text: str | bool = True) -> Any:
    """--validation-split: the kind of part settings are chosen on."""
    return click.option(
        "--validation-split",
        type=click.Choice([AUTO_SPLIT, *SPLIT_CHOICES]),
        default=default,
        show_default=default_text,
        help="Choose settings on this kind of validation part, cut from the training data "
        "like --split's parts; auto: the future after a time cut when time carries "
        "signal, else a random tenth of each user's items (docs/reference.md).",
    )


def refuse_unused_validation_split(recipe: str, no_tune: bool) -> None:
    """--validation-split typed where no settings are chosen is refused as --hpo-config
    is (its default is no mistake)."""
    source = click.get_current_context().get_parameter_source("validation_split")
    if source in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
        return
    from ..tuning import refuse_without_search  # noqa: PLC0415  (numpy on demand)

    refuse_without_search("--validation-split", "the part", recipe, not no_tune)


SEED = click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the split and the model."
)
NO_TUNE = click.option(
    "--no-tune",
    is_flag=True,
    help="Do not choose settings on a validation part: use the defaults and --hp as given.",
)
HPO_CONFIG = click.option(
    "--hpo-config",
    metavar="FILE",
    default=None,
    help="Personalize's hpoConfig JSON: the ranges searched, the objective, the budget.",
)
SHUFFLE = click.option(
    "--shuffle",
    is_flag=True,
    help="Shuffle each user's rows (with --seed) first: for files without TIMESTAMP "
    "whose row order means nothing.",
)


# fewer test users than this: the metrics move by 1/N when one user's list changes
FEW_TEST_USERS = 20


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def small_split_warning(report: dict[str, Any]) -> str | None:
    """A warning when the split tested too few users for its metrics to mean much."""
    n = report["testUsers"]
    if n >= FEW_TEST_USERS:
        return None
    other = (
        "; --split leave-last-out tests every user with 2 or more interactions"
        if report["split"] != "leave-last-out"
        else ""
    )
    return (
        f"the {report['split']} split has only {_count(n, 'test user')}: one user's list "
        f"moves each metric by up to {1 / n:.2g}, so they say little (fewer than "
        f"{FEW_TEST_USERS} test users); evaluate on more interactions{other}"
    )


def _settings_line(report: dict[str, Any]) -> str:
    """Which settings were measured: chosen on the training part, or as given."""
    tuning = report.get("tuning")
    if tuning is None:
        return "settings: the defaults and --hp (--no-tune)"
    if not tuning.get("searched"):
        return f"settings: the defaults ({tuning.get('reason', 'nothing to search')})"
    chosen = ", ".join(f"{k}={v}" for k, v in tuning["chosen"].items()) or "the defaults"
    held = tuning["split"]["split"]
    how = f"{held}, the data's choice" if tuning.get("validationSplit") == "auto" else held
    return f"settings chosen on the training part ({how} validation): {chosen}"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form: what was split, then one metric a line."""
    head = f"{report['recipe']} on {report['split']} split"
    if report["split"] in ("personalize", "random"):
        head += f" (seed {report['seed']})"
    if report["split"] == "time-cut":
        head += f" (at the {report['cutQuantile']:g} quantile, timestamp {report['cutTimestamp']})"
    lines = [
        head,
        f"{_count(report['testUsers'], 'test user')}, "
        f"{_count(report['heldOutItems'], 'held-out item')} "
        f"({report['heldOutUnknownItems']:,} not in training), "
        f"{report['trainingInteractions']:,} training interactions",
        _settings_line(report),
        "",
    ]
    width = max(len(k) for k in report["metrics"])
    lines += [f"{k:<{width}}  {v:.4f}" for k, v in report["metrics"].items()]
    return "\n".join(lines)


@main.command()
@RECIPE
@INTERACTIONS
@HP
@SPLIT
@SEED
@SHUFFLE
@NO_TUNE
@HPO_CONFIG
@EVENT_TYPE
@EVENT_VALUE_THRESHOLD
@validation_split_option(None, "the --split being measured")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@ENDPOINT
@QUIET
def evaluate(
    recipe: str,
    interactions: str,
    hp: tuple[str, ...],
    split: str,
    seed: int,
    shuffle: bool,
    no_tune: bool,
    hpo_config: str | None,
    event_type: str | None,
    event_value_threshold: float | None,
    validation_split: str | None,
    as_json: bool,
    endpoint_url: str | None,
    quiet: bool,
) -> None:
    """Measure a recipe offline: split, train on the training part (choosing its
    settings there, as `pbatch train` does), score the test users. Settings are chosen
    for the question measured (a validation part cut like --split's), as Personalize's
    HPO chooses for the metrics it reports; --validation-split auto measures what a
    plain `pbatch train` would choose.

    \b
    Examples:
      pbatch evaluate -r user-personalization -i interactions.csv
      pbatch evaluate -r sims -i interactions.csv --split time-cut --json
      pbatch evaluate -r user-personalization -i interactions.csv --hp recency_mask=false
      pbatch evaluate -r user-personalization -i interactions.csv --validation-split auto
    """
    from ..evaluation import evaluate as run_evaluation  # noqa: PLC0415

    refuse_unused_validation_split(recipe, no_tune)
    report = run_evaluation(
        recipe,
        interactions,
        hp_pairs=hp,
        event_type=event_type,
        event_value_threshold=event_value_threshold,
        endpoint_url=endpoint_url,
        warn=None if quiet else warn,
        split=split,
        seed=seed,
        shuffle=shuffle,
        tune=not no_tune,
        hpo_config=hpo_config,
        say=None if quiet else say,
        validation=validation_split,
    )
    small = small_split_warning(report)
    if small is not None and not quiet:
        warn(small)
    if as_json:
        emit(report)
    else:
        click.echo(format_report(report))
