"""`--hpo-config FILE`: Personalize's `hpoConfig` (botocore's `HPOConfig` shape).

    {"hpoObjective": {"type": "Maximize", "metricName": "precision_at_10"},
     "hpoResourceConfig": {"maxNumberOfTrainingJobs": "20"},
     "algorithmHyperParameterRanges": {
       "integerHyperParameterRanges":
         [{"name": "max_history_length", "minValue": 10, "maxValue": 200}],
       "continuousHyperParameterRanges":
         [{"name": "regularization", "minValue": 10, "maxValue": 1000}],
       "categoricalHyperParameterRanges":
         [{"name": "recency_mask", "values": ["true", "false"]}]}}

Every part is optional. The ranges given replace the search space (only they are
searched); the objective replaces the metric; `maxNumberOfTrainingJobs` is the number of
settings evaluated. `maxParallelTrainingJobs` and `metricRegex` are accepted and have no
effect (settings are evaluated one after the other; metrics are named). Anything else is
refused with exit 2 and one line naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from .. import recipes
from ..errors import UsageError
from ..recipes.protocol import Dimension, HyperParameters

MAX_JOBS = 1000
KNOWN = {
    "": {"hpoObjective", "hpoResourceConfig", "algorithmHyperParameterRanges"},
    "hpoObjective": {"type", "metricName", "metricRegex"},
    "hpoResourceConfig": {"maxNumberOfTrainingJobs", "maxParallelTrainingJobs"},
    "algorithmHyperParameterRanges": {
        "integerHyperParameterRanges",
        "continuousHyperParameterRanges",
        "categoricalHyperParameterRanges",
    },
}
RANGE_KEYS = {
    "integerHyperParameterRanges": {"name", "minValue", "maxValue"},
    "continuousHyperParameterRanges": {"name", "minValue", "maxValue"},
    "categoricalHyperParameterRanges": {"name", "values"},
}


@dataclass(frozen=True)
class HpoConfig:
    """What an hpoConfig changes in the search (None: keep pbatch's choice)."""

    metric: str | None = None
    maximize: bool = True
    budget: int | None = None
    dimensions: tuple[Dimension, ...] | None = None

    def apply(
        self, dims: list[Dimension], metric: str, maximize: bool, budget: int
    ) -> tuple[list[Dimension], str, bool, int]:
        return (
            list(self.dimensions) if self.dimensions is not None else dims,
            self.metric or metric,
            self.maximize if self.metric else maximize,
            self.budget or budget,
        )


def _fail(field: str, problem: str) -> UsageError:
    if not field.isprintable():  # a key of the file holding a line break: one line still
        field = orjson.dumps(field).decode()
    where = f"--hpo-config: {field}: " if field else "--hpo-config: "
    return UsageError(where + problem)


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(field, "must be a JSON object")
    allowed = KNOWN.get(field.rsplit(".", 1)[-1] if field else "", set())
    for key in value:
        if key not in allowed:
            raise _fail(
                f"{field}.{key}" if field else key,
                f"unknown field (known: {', '.join(sorted(allowed))})",
            )
    return value


def parse_hpo_config(text: bytes, recipe: str, table: HyperParameters) -> HpoConfig:
    """An HpoConfig from the file's bytes, for `recipe` with hyperparameters `table`."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _fail("", f"not valid JSON ({exc})") from None
    doc = _object(doc, "")
    metric, maximize, budget, dims = None, True, None, None
    if "hpoObjective" in doc:
        obj = _object(doc["hpoObjective"], "hpoObjective")
        kind = obj.get("type", "Maximize")
        if kind not in ("Maximize", "Minimize"):
            raise _fail("hpoObjective.type", f"must be Maximize or Minimize, not {kind!r}")
        maximize = kind == "Maximize"
        if "metricName" in obj:
            metric = obj["metricName"]
            metrics = recipes.recipe(recipe).validation.metrics
            if metric not in metrics:
                known = ", ".join(metrics) or "none"
                raise _fail(
                    "hpoObjective.metricName",
                    f"{metric!r} is not a metric of {recipe} (known: {known})",
                )
    if "hpoResourceConfig" in doc:
        res = _object(doc["hpoResourceConfig"], "hpoResourceConfig")
        for key in ("maxNumberOfTrainingJobs", "maxParallelTrainingJobs"):
            if key in res:
                n = _count(res[key], f"hpoResourceConfig.{key}")
                if key == "maxNumberOfTrainingJobs":
                    budget = n
    if "algorithmHyperParameterRanges" in doc:
        ranges = _object(doc["algorithmHyperParameterRanges"], "algorithmHyperParameterRanges")
        dims = tuple(_dimensions(ranges, recipe, table))
    return HpoConfig(metric, maximize, budget, dims)


def _count(value: Any, field: str) -> int:
    """A positive whole number, given as a JSON number or a string (as botocore's is)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        n = int(value) if isinstance(value, (int, str)) else math.nan
    except ValueError:
        n = math.nan
    if not isinstance(n, int) or not 1 <= n <= MAX_JOBS:
        raise _fail(field, f"must be a whole number from 1 to {MAX_JOBS}, not {value!r}")
    return n


def _dimensions(ranges: dict[str, Any], recipe: str, table: HyperParameters) -> list[Dimension]:
    params = {p.name: p for p in table.params}
    out: dict[str, Dimension] = {}
    for group in (
        "integerHyperParameterRanges",
        "continuousHyperParameterRanges",
        "categoricalHyperParameterRanges",
    ):
        items = ranges.get(group, [])
        base = f"algorithmHyperParameterRanges.{group}"
        if not isinstance(items, list):
            raise _fail(base, "must be a list")
        for k, item in enumerate(items):
            field = f"{base}[{k}]"
            if not isinstance(item, dict):
                raise _fail(field, "must be a JSON object")
            for key in item:
                if key not in RANGE_KEYS[group]:
                    raise _fail(f"{field}.{key}", "unknown field")
            name = item.get("name")
            if name not in params:
                known = ", ".join(params) or "none"
                raise _fail(
                    f"{field}.name", f"{recipe} has no hyperparameter {name!r} (known: {known})"
                )
            if name in out:
                raise _fail(f"{field}.name", f"{name} has a range already")
            out[name] = _dimension(group, item, params[name], field)
    return list(out.values())


def _dimension(group: str, item: dict[str, Any], param: Any, field: str) -> Dimension:
    if group == "categoricalHyperParameterRanges":
        values = item.get("values")
        if not isinstance(values, list) or not values:
            raise _fail(f"{field}.values", "must be a non-empty list of strings")
        parsed = []
        for j, raw in enumerate(values):
            if not isinstance(raw, str):
                raise _fail(f"{field}.values[{j}]", f"must be a string, not {raw!r}")
            try:
                parsed.append(param.parse(raw))
            except UsageError as exc:
                raise _fail(f"{field}.values[{j}]", str(exc)) from None
        return Dimension(param.name, "choice", choices=tuple(dict.fromkeys(parsed)))
    integer = group == "integerHyperParameterRanges"
    if param.kind is bool or (integer and param.kind is not int):
        kind = "categorical" if param.kind is bool else "continuous"
        raise _fail(f"{field}.name", f"{param.name} is {param.kind.__name__}: give a {kind} range")
    if not integer and param.kind is int:
        raise _fail(f"{field}.name", f"{param.name} is int: give an integer range")
    bounds = []
    for key in ("minValue", "maxValue"):
        value = item.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(f"{field}.{key}", f"must be a number, not {value!r}")
        if integer and not float(value).is_integer():
            raise _fail(f"{field}.{key}", f"must be a whole number, not {value!r}")
        if (param.low is not None and value < param.low) or (
            param.high is not None and value > param.high
        ):
            raise _fail(
                f"{field}.{key}",
                f"{value} is outside {param.name}'s range [{param.low}, {param.high}]",
            )
        bounds.append(value)
    low, high = bounds
    if low > high:
        raise _fail(field, f"minValue {low} is above maxValue {high}")
    # wide positive ranges are searched in ratios, narrow ones in steps
    scale = "log" if low > 0 and high / low >= 8 else "linear"
    return Dimension(param.name, scale, float(low), float(high), integer=integer)
