"""`pbatch recommend` and `pbatch rank`: one-off answers (A.11)."""

from __future__ import annotations

from typing import Any

import click
import orjson

from .common import (
    ITEM_METADATA,
    NUM_RESULTS,
    SOLUTION,
    emit,
    exploration_options,
    filter_options,
    main,
    read_filter,
)


def _filter_values(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None


FILTER_VALUES = click.option(
    "--filter-values",
    metavar="JSON",
    default=None,
    callback=_filter_values,
    help='Values for the filter\'s placeholders, as in a line: \'{"GENRE": "\\"Comedy\\""}\'.',
)


@main.command()
@SOLUTION
@click.option("--user-id", default=None, help="The user, for recipes whose lines ask a userId.")
@click.option("--item-id", default=None, help="The item, for recipes whose lines ask an itemId.")
@NUM_RESULTS
@click.option("--include-seen", is_flag=True, help="Keep the user's training items.")
@filter_options
@FILTER_VALUES
@exploration_options
@ITEM_METADATA
def recommend(
    solution: str,
    user_id: str | None,
    item_id: str | None,
    num_results: int,
    include_seen: bool,
    filter_expression: str | None,
    filter_file: str | None,
    filter_values: Any,
    exploration_weight: float,
    exploration_item_age_cutoff: float,
    seed: int,
    item_metadata: tuple[str, ...],
) -> None:
    """Answer one user or item, shaped like GetRecommendations.

    \b
    Examples:
      pbatch recommend -s model.npz --user-id 653 -n 5
      pbatch recommend -s sims.npz --item-id 1300854
    """
    from ..job.exploration import Exploration  # noqa: PLC0415
    from ..job.params import AnswerOptions  # noqa: PLC0415
    from ..service.runtime import get_recommendations  # noqa: PLC0415

    text, source = read_filter(filter_expression, filter_file)
    emit(
        get_recommendations(
            solution,
            user_id=user_id,
            item_id=item_id,
            num_results=num_results,
            filter_values=filter_values,
            include_seen=include_seen,
            options=AnswerOptions(
                text,
                source,
                Exploration(exploration_weight, exploration_item_age_cutoff, seed),
                item_metadata,
            ),
        )
    )


@main.command()
@SOLUTION
@click.option("--user-id", required=True, help="The user whose ranking is wanted.")
@click.option("--items", required=True, metavar="A,B,C", help="Comma-separated item ids.")
@filter_options
@FILTER_VALUES
@ITEM_METADATA
def rank(
    solution: str,
    user_id: str,
    items: str,
    filter_expression: str | None,
    filter_file: str | None,
    filter_values: Any,
    item_metadata: tuple[str, ...],
) -> None:
    """Re-rank items for one user, shaped like GetPersonalizedRanking.

    \b
    Examples:
      pbatch rank -s rank.npz --user-id 8 --items 1300854,0770828,0816711
    """
    from ..job.params import AnswerOptions  # noqa: PLC0415
    from ..service.runtime import get_personalized_ranking  # noqa: PLC0415

    text, source = read_filter(filter_expression, filter_file)
    emit(
        get_personalized_ranking(
            solution,
            user_id=user_id,
            input_list=[i for i in items.split(",") if i],
            filter_values=filter_values,
            options=AnswerOptions(text, source, item_metadata=item_metadata),
        )
    )
