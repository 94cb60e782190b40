"""`pbatch evaluate`: offline metrics on a split of the interactions (A.13)."""

from __future__ import annotations

from typing import Any

import click

from . import (
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

SPLIT_CHOICES = ["personalize", "leave-last-out", "time-cut"]

SPLIT = click.option(
    "--split",
    type=click.Choice(SPLIT_CHOICES),
    default="personalize",
    show_default=True,
    help="personalize: 10% of users, their newest 10% held out (Personalize's); "
    "leave-last-out: each user's last item; time-cut: before/after a global time cut.",
)
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


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form: what was split, then one metric a line."""
    head = f"{report['recipe']} on {report['split']} split"
    if report["split"] == "personalize":
        head += f" (seed {report['seed']})"
    if report["split"] == "time-cut":
        head += f" (at the {report['cutQuantile']:g} quantile, timestamp {report['cutTimestamp']})"
    lines = [
        head,
        f"{report['testUsers']:,} test users, {report['heldOutItems']:,} held-out items "
        f"({report['heldOutUnknownItems']:,} not in training), "
        f"{report['trainingInteractions']:,} training interactions",
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
    as_json: bool,
    endpoint_url: str | None,
    quiet: bool,
) -> None:
    """Measure a recipe offline: split, train on the training part (choosing its
    settings there, as `pbatch train` does), score the test users."""
    from ..evaluation import evaluate as run_evaluation  # noqa: PLC0415

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
    )
    if as_json:
        emit(report)
    else:
        click.echo(format_report(report))
