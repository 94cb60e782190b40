"""Personalize filter expressions: parse once, evaluate as boolean item masks (A.6, B.3).

`parse.py` turns text into a checked syntax tree, `values.py` reads the placeholder values
of a line's `filterValues`, `catalogue.py` holds what filters can see (item fields,
per-event-type interactions), `evaluate.py` turns a parsed filter into masks over a chunk
of requests.
"""

from __future__ import annotations

from typing import Any

from ..recipes.catalogue import DEFAULT_HISTORY, Catalogue, describe_items, event_arrays
from .evaluate import ChunkMask, CompiledFilter
from .parse import Filter, FilterSyntaxError, parse_filter


def compile_filter(text: str, solution: Any, source: str = "--filter") -> CompiledFilter:
    """Parse `text` and bind it to a solution: a usage error if it does not parse or
    names an item field the solution lacks."""
    return CompiledFilter(
        parse_filter(text, source), Catalogue.from_solution(solution), solution.recipe, source
    )


__all__ = [
    "DEFAULT_HISTORY",
    "Catalogue",
    "ChunkMask",
    "CompiledFilter",
    "Filter",
    "FilterSyntaxError",
    "compile_filter",
    "describe_items",
    "event_arrays",
    "parse_filter",
]
