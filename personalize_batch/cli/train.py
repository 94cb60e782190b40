"""`pbatch train`."""

from __future__ import annotations

import click

from . import (
    ENDPOINT,
    EVENT_TYPE,
    EVENT_VALUE_THRESHOLD,
    HP,
    INTERACTIONS,
    QUIET,
    RECIPE,
    main,
    warn,
)
from .evaluate import SEED, SHUFFLE, SPLIT


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
    split: str,
    seed: int,
    shuffle: bool,
    endpoint_url: str | None,
    quiet: bool,
) -> None:
    """Train a solution (a versioned .npz file) from an interactions CSV.

    \b
    Examples:
      pbatch train -r user-personalization -i interactions.csv -o model.npz
      pbatch train -r sims -i interactions.csv.gz --items items.csv -o sims.npz
      pbatch train -r popularity-count -i s3://bkt/interactions.csv -o pop.npz
    """
    from ..paths import check_train  # noqa: PLC0415
    from ..training import train as train_solution  # noqa: PLC0415  (numpy/scipy on demand)

    check_train(output, interactions, items)  # before the fit: a wrong -o costs no time
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
