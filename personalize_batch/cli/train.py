"""`pbatch train`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from .common import (
    ENDPOINT,
    EVENT_TYPE,
    EVENT_VALUE_THRESHOLD,
    HP,
    INTERACTIONS,
    QUIET,
    RECIPE,
    main,
    say,
    warn,
)
from .evaluate import (
    AUTO_SPLIT,
    HPO_CONFIG,
    NO_TUNE,
    SEED,
    SHUFFLE,
    SPLIT,
    refuse_unused_validation_split,
    validation_split_option,
)

if TYPE_CHECKING:
    from ..tuning.search import Trial


@main.command()
@RECIPE
@INTERACTIONS
@click.option(
    "--items",
    metavar="PATH",
    default=None,
    help="Items CSV (ITEM_ID plus metadata columns), kept in the solution.",
)
@HP
@EVENT_TYPE
@EVENT_VALUE_THRESHOLD
@click.option(
    "--filter-history-length",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    metavar="N",
    help="Interactions filters see each user's N most recent items per event type "
    "(Personalize's quota); 0 keeps all.",
)
@click.option(
    "--output", "-o", required=True, metavar="PATH", help="Where to write the solution (.npz)."
)
@click.option(
    "--evaluate",
    "evaluate_",
    is_flag=True,
    help="First measure the recipe on a split (see pbatch evaluate); store the metrics.",
)
@NO_TUNE
@HPO_CONFIG
@validation_split_option(AUTO_SPLIT)
@SPLIT
@SEED
@SHUFFLE
@ENDPOINT
@QUIET
def train(
    recipe: str,
    interactions: str,
    items: str | None,
    hp: tuple[str, ...],
    event_type: str | None,
    event_value_threshold: float | None,
    filter_history_length: int,
    output: str,
    evaluate_: bool,
    no_tune: bool,
    hpo_config: str | None,
    validation_split: str,
    split: str,
    seed: int,
    shuffle: bool,
    endpoint_url: str | None,
    quiet: bool,
) -> None:
    """Train a solution (a versioned .npz file) from an interactions CSV.

    By default the settings are chosen for the data first: a validation part is held
    out, the recipe's hyperparameters are searched within a budget, and the best are
    refitted on everything (one line per decision on stderr). --no-tune uses the
    defaults; --hp fixes a value; --hpo-config takes Personalize's hpoConfig JSON.

    \b
    Examples:
      pbatch train -r user-personalization -i interactions.csv -o model.npz
      pbatch train -r sims -i interactions.csv.gz --items items.csv -o sims.npz
      pbatch train -r popularity-count -i s3://bkt/interactions.csv -o pop.npz
      pbatch train -r user-personalization -i interactions.csv -o model.npz --no-tune
    """
    from ..storage.paths import check_train  # noqa: PLC0415
    from ..training import train as train_solution  # noqa: PLC0415  (numpy/scipy on demand)

    # before the fit: a wrong -o costs no time
    refuse_unused_validation_split(recipe, no_tune)
    check_train(output, interactions, items, hpo_config)
    with SearchProgress(quiet) as progress:
        meta = train_solution(
            recipe,
            interactions,
            output,
            items=items,
            hp_pairs=hp,
            event_type=event_type,
            event_value_threshold=event_value_threshold,
            endpoint_url=endpoint_url,
            warn=None if quiet else warn,
            filter_history=filter_history_length,
            seed=seed,
            evaluate={"split": split, "shuffle": shuffle} if evaluate_ else None,
            tune=not no_tune,
            hpo_config=hpo_config,
            say=progress.say,
            on_trial=progress.trial,
            validation=validation_split,
        )
    if not quiet:
        t = meta["training"]
        click.echo(
            f"pbatch: trained {meta['recipe']} on {t['interactionsUsed']:,} interactions "
            f"({t['users']:,} users, {t['items']:,} items) -> {output}",
            err=True,
        )
        if evaluate_:
            ndcg = meta["metrics"]["normalized_discounted_cumulative_gain_at_10"]
            click.echo(
                f"pbatch: {split} split, {meta['evaluation']['testUsers']:,} test users: "
                f"normalized_discounted_cumulative_gain_at_10 {ndcg:.4f} (pbatch describe for all)",
                err=True,
            )


class SearchProgress:
    """Decision lines on stderr; while settings are tried, a bar on a terminal, else a
    line for each setting that beats the best so far."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.shown: float | None = None  # the best score printed so far

    def __enter__(self) -> SearchProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None

    def say(self, line: str) -> None:
        if not self.quiet:
            self._close()
            say(line)

    def trial(self, trial: Trial, done: int, budget: int, best: float) -> None:
        if self.quiet:
            return
        if not sys.stderr.isatty():
            if trial.score == best and best != self.shown:
                self.shown = best
                say(f"setting {done} of at most {budget}: {best:.4f}, the best so far")
            return
        if self.bar is None:
            self.bar = click.progressbar(length=budget, label="pbatch: searching", file=sys.stderr)
        self.bar.label = f"pbatch: searching, best {best:.4f}"
        self.bar.update(1)
