"""`pbatch recommend` and `pbatch rank`: one-off answers (A.11)."""

from __future__ import annotations

import click

from . import NUM_RESULTS, SOLUTION, emit, main


@main.command()
@SOLUTION
@click.option("--user-id", default=None, help="The user (user-personalization, popularity-count).")
@click.option("--item-id", default=None, help="The item to find similar items for (sims).")
@NUM_RESULTS
@click.option("--include-seen", is_flag=True, help="Keep the user's training items.")
def recommend(
    solution: str, user_id: str | None, item_id: str | None, num_results: int, include_seen: bool
) -> None:
    """Answer one user or item, shaped like GetRecommendations."""
    from ..runtime import get_recommendations  # noqa: PLC0415  (numpy on demand)

    emit(
        get_recommendations(
            solution,
            user_id=user_id,
            item_id=item_id,
            num_results=num_results,
            include_seen=include_seen,
        )
    )


@main.command()
@SOLUTION
@click.option("--user-id", required=True, help="The user whose ranking is wanted.")
@click.option("--items", required=True, metavar="A,B,C", help="Comma-separated item ids.")
def rank(solution: str, user_id: str, items: str) -> None:
    """Re-rank items for one user, shaped like GetPersonalizedRanking."""
    from ..runtime import get_personalized_ranking  # noqa: PLC0415

    emit(
        get_personalized_ranking(
            solution, user_id=user_id, input_list=[i for i in items.split(",") if i]
        )
    )
