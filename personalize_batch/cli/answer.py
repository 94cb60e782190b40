"""`pbatch recommend` and `pbatch rank`: one-off answers (A.11)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import click
import orjson

from ..errors import UsageError
from . import NUM_RESULTS, SOLUTION, emit, exploration_options, filter_options, main, read_filter


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


def _one(
    solution_path: str,
    request: dict[str, Any],
    num_results: int,
    include_seen: bool,
    filter_text: tuple[str | None, str] = (None, "--filter"),
    exploration: Any = None,
) -> tuple[list[str], list[float], str]:
    from ..lines import QUERY, BadLine, parse_line  # noqa: PLC0415
    from ..scoring import Answerer  # noqa: PLC0415
    from ..solution import load  # noqa: PLC0415

    sol = load(solution_path)
    answerer = Answerer(
        sol, num_results, include_seen, *filter_text[:1], exploration, filter_source=filter_text[1]
    )
    parsed = parse_line(orjson.dumps(request), QUERY[sol.recipe])
    if isinstance(parsed, BadLine):
        raise UsageError(f"{sol.recipe}: {parsed.error}")
    [answer] = answerer.answer([parsed])
    if isinstance(answer, BadLine):
        raise UsageError(f"{sol.recipe}: {answer.error}")
    items, scores = answer
    key = dict(request)  # what else changes the answer is part of the question
    if filter_text[0] is not None:
        key["filterExpression"] = filter_text[0]
    if answerer.explorer is not None:
        key["itemExplorationConfig"] = [
            exploration.weight,
            exploration.item_age_cutoff_days,
            exploration.seed,
        ]
    return items, scores, _recommendation_id(sol.meta, key)


@main.command()
@SOLUTION
@click.option("--user-id", default=None, help="The user (user-personalization, popularity-count).")
@click.option("--item-id", default=None, help="The item to find similar items for (sims).")
@NUM_RESULTS
@click.option("--include-seen", is_flag=True, help="Keep the user's training items.")
@filter_options
@FILTER_VALUES
@exploration_options
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
) -> None:
    """Answer one user or item, shaped like GetRecommendations."""
    from ..recipes.exploration import Exploration  # noqa: PLC0415

    request: dict[str, Any] = {
        k: v for k, v in (("userId", user_id), ("itemId", item_id)) if v is not None
    }
    if filter_values is not None:
        request["filterValues"] = filter_values
    items, scores, rid = _one(
        solution,
        request,
        num_results,
        include_seen,
        read_filter(filter_expression, filter_file),
        Exploration(exploration_weight, exploration_item_age_cutoff, seed),
    )
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
@filter_options
@FILTER_VALUES
def rank(
    solution: str,
    user_id: str,
    items: str,
    filter_expression: str | None,
    filter_file: str | None,
    filter_values: Any,
) -> None:
    """Re-rank items for one user, shaped like GetPersonalizedRanking."""
    request: dict[str, Any] = {"userId": user_id, "itemList": [i for i in items.split(",") if i]}
    if filter_values is not None:
        request["filterValues"] = filter_values
    ranked, scores, rid = _one(
        solution, request, 25, False, read_filter(filter_expression, filter_file)
    )
    emit(
        {
            "personalizedRanking": [
                {"itemId": i, "score": s} for i, s in zip(ranked, scores, strict=True)
            ],
            "recommendationId": rid,
        }
    )
