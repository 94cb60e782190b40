"""`pbatch recommend` and `pbatch rank`: one-off answers (A.11)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import click
import orjson

from ..errors import UsageError
from . import NUM_RESULTS, SOLUTION, emit, main


def _recommendation_id(model: dict[str, Any], request: dict[str, Any]) -> str:
    """A recommendationId that is the same for the same model and request (a retrained
    solution on the same data with the same hyperparameters keeps its ids)."""
    key = {
        "recipe": model["recipe"],
        "hp": model["hyperparameters"],
        "data": model["training"].get("interactionsSha256"),
        "request": request,
    }
    digest = hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS))
    return "RID-" + str(uuid.UUID(bytes=digest.digest()[:16]))


def _one(
    solution_path: str, request: dict[str, Any], num_results: int, include_seen: bool
) -> tuple[list[str], list[float], str]:
    from ..lines import QUERY, BadLine, parse_line  # noqa: PLC0415
    from ..scoring import Answerer  # noqa: PLC0415
    from ..solution import load  # noqa: PLC0415

    sol = load(solution_path)
    parsed = parse_line(orjson.dumps(request), QUERY[sol.recipe])
    if isinstance(parsed, BadLine):
        raise UsageError(f"{sol.recipe}: {parsed.error}")
    [(items, scores)] = Answerer(sol, num_results, include_seen).answer([parsed])
    return items, scores, _recommendation_id(sol.meta, request)


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
    request = {k: v for k, v in (("userId", user_id), ("itemId", item_id)) if v is not None}
    items, scores, rid = _one(solution, request, num_results, include_seen)
    emit(
        {
            "itemList": [{"itemId": i, "score": s} for i, s in zip(items, scores, strict=True)],
            "recommendationId": rid,
        }
    )


@main.command()
@SOLUTION
@click.option("--user-id", required=True, help="The user whose ranking is wanted.")
@click.option("--items", required=True, metavar="A,B,C", help="Comma-separated item ids.")
def rank(solution: str, user_id: str, items: str) -> None:
    """Re-rank items for one user, shaped like GetPersonalizedRanking."""
    request = {"userId": user_id, "itemList": [i for i in items.split(",") if i]}
    ranked, scores, rid = _one(solution, request, 25, False)
    emit(
        {
            "personalizedRanking": [
                {"itemId": i, "score": s} for i, s in zip(ranked, scores, strict=True)
            ],
            "recommendationId": rid,
        }
    )
