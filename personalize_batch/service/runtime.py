"""One-off answers shaped like Personalize's runtime API (A.11, B.7): GetRecommendations
and GetPersonalizedRanking. `pbatch recommend` / `pbatch rank` and the SDK's
`client("personalize-runtime")` both call these; the scorer is the one `run` uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import uuid
from typing import Any

import orjson

from .. import recipes
from ..arns import check_solution_hash, parse_solution_ref
from ..errors import NotFound, UsageError
from ..job.lines import BadLine, parse_line
from ..job.params import AnswerOptions
from ..job.scoring import Answerer, metadata_columns
from ..recipes.protocol import MAX_RESULTS, USER_SEGMENTATION
from ..solution import Solution, load

MAX_RESULTS_WITH_METADATA = 50  # GetRecommendations' numResults and inputList (B.7)


class SolutionCache:
    """Loaded solutions by path, reloaded when the file changes (size or mtime), so a
    client asking many questions loads a solution once."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._items: dict[str, tuple[tuple[int, int], Solution]] = {}

    def get(self, path: str) -> Solution:
        """The solution at `path` (a missing file is NotFound)."""
        full = os.path.abspath(path)
        try:
            st = os.stat(full)
        except OSError:
            raise NotFound(f"solution not found: {path}") from None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._items.get(full)
            if hit is not None and hit[0] == key:
                return hit[1]
        solution = load(full)
        with self._lock:
            self._items.pop(full, None)
            while len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[full] = (key, solution)
        return solution


def recommendation_id(model: dict[str, Any], request: dict[str, Any]) -> str:
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


def _solution(ref: str, cache: SolutionCache | None) -> Solution:
    path, sha = parse_solution_ref(ref)
    if cache is not None:
        sol = cache.get(path)
    elif not os.path.exists(path):
        raise NotFound(f"solution not found: {path}")
    else:
        sol = load(path)
    check_solution_hash(path, sol.sha256, sha)
    return sol


def _answer(
    sol: Solution,
    request: dict[str, Any],
    num_results: int,
    include_seen: bool,
    options: AnswerOptions,
) -> tuple[list[dict[str, Any]], str]:
    """The predicted items and the recommendationId (what else changes the answer is part
    of the question: the filter and the exploration settings)."""
    if not 1 <= num_results <= MAX_RESULTS:
        raise UsageError(f"numResults must be 1-{MAX_RESULTS}, not {num_results}")
    if options.item_metadata and num_results > MAX_RESULTS_WITH_METADATA:
        raise UsageError(
            f"numResults must be 1-{MAX_RESULTS_WITH_METADATA} with item metadata "
            f"(Personalize's limit), not {num_results}"
        )
    metadata_columns(sol, options.item_metadata, options.metadata_source)
    parsed = parse_line(orjson.dumps(request), recipes.recipe(sol.recipe))
    if isinstance(parsed, BadLine):
        raise UsageError(f"{sol.recipe}: {parsed.error}")
    options = dataclasses.replace(options, num_results=num_results, include_seen=include_seen)
    answerer = Answerer.for_options(sol, options)
    [answer] = answerer.answer([parsed])
    if isinstance(answer, BadLine):
        raise UsageError(f"{sol.recipe}: {answer.error}")
    key = dict(request)
    if options.filter_expression is not None:
        key["filterExpression"] = options.filter_expression
    if answerer.explorer is not None:
        e = options.exploration
        key["itemExplorationConfig"] = [e.weight, e.item_age_cutoff_days, e.seed]
    if options.item_metadata:
        key["metadataColumns"] = list(options.item_metadata)
    items, scores = answer
    predicted = [{"itemId": i, "score": s} for i, s in zip(items, scores, strict=True)]
    if options.item_metadata:
        for p, meta in zip(predicted, answerer.metadata(items), strict=True):
            p["metadata"] = meta
    return predicted, recommendation_id(sol.meta, key)


def get_recommendations(
    solution: str,
    *,
    user_id: str | None = None,
    item_id: str | None = None,
    num_results: int = 25,
    filter_values: dict[str, str] | None = None,
    include_seen: bool = False,
    cache: SolutionCache | None = None,
    options: AnswerOptions = AnswerOptions(),  # noqa: B008  (frozen, shared default)
) -> dict[str, Any]:
    """GetRecommendations: `{"itemList": [{"itemId", "score"}], "recommendationId"}`."""
    sol = _solution(solution, cache)
    declared = recipes.recipe(sol.recipe)
    if declared.query.ranks:
        raise UsageError(
            f"a {sol.recipe} solution re-ranks a list: use GetPersonalizedRanking (`pbatch rank`)"
        )
    if declared.recipe_type == USER_SEGMENTATION:  # Personalize has no real-time segments
        raise UsageError(
            f"{sol.recipe} solutions answer users for items, in batch segment jobs only "
            "(Personalize has no real-time segments): run one with `pbatch run` or "
            "`pbatch create-batch-segment-job`"
        )
    request: dict[str, Any] = {
        k: v for k, v in (("userId", user_id), ("itemId", item_id)) if v is not None
    }
    if filter_values is not None:
        request["filterValues"] = filter_values
    predicted, rid = _answer(sol, request, num_results, include_seen, options)
    return {"itemList": predicted, "recommendationId": rid}


def get_personalized_ranking(
    solution: str,
    *,
    user_id: str,
    input_list: list[str],
    filter_values: dict[str, str] | None = None,
    cache: SolutionCache | None = None,
    options: AnswerOptions = AnswerOptions(),  # noqa: B008  (frozen, shared default)
) -> dict[str, Any]:
    """GetPersonalizedRanking: `{"personalizedRanking": [...], "recommendationId"}`."""
    sol = _solution(solution, cache)
    if not recipes.recipe(sol.recipe).query.ranks:
        rankers = " or ".join(r.name for r in recipes.recipes() if r.query.ranks)
        raise UsageError(
            f"GetPersonalizedRanking needs a {rankers} solution; "
            f"this one is {sol.recipe} (use GetRecommendations, `pbatch recommend`)"
        )
    request: dict[str, Any] = {"userId": user_id, "itemList": input_list}
    if filter_values is not None:
        request["filterValues"] = filter_values
    if options.item_metadata and len(input_list) > MAX_RESULTS_WITH_METADATA:
        raise UsageError(
            f"inputList has {len(input_list)} items (at most {MAX_RESULTS_WITH_METADATA} "
            "with item metadata, Personalize's limit)"
        )
    predicted, rid = _answer(sol, request, 25, False, options)
    return {"personalizedRanking": predicted, "recommendationId": rid}
