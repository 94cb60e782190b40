"""The search: coordinate descent over a few dimensions, with steps that shrink.

Each round visits the dimensions in order. A choice dimension tries its other values; a
numeric one tries a step down and a step up from the current value and, while a step
improves the objective, keeps walking that way. There is one round per step size:
log-scaled dimensions step by a factor of 4, then 2, then √2; linear ones by a quarter
of their range, then an eighth, then a sixteenth; the finest round is repeated while it
changes anything. A weight that can be switched off also tries off (0), and from off its
middle value, in the coarse round. Once the rounds have settled, a weight that is off
tries two values on (the middle of its range and of its lower half) while budget is left,
since a term that did not pay at the start may pay once the others have moved; when one
pays, the finest round runs again. Every setting is
evaluated once (memoized); the search stops early when the budget of evaluations is
spent. Nothing is random and nothing depends on the clock: the same data and seed give
the same choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..recipes.protocol import Dimension

LEVELS = 3  # coarse, middle, fine steps


@dataclass
class Trial:
    hp: dict[str, Any]
    score: float


@dataclass
class Outcome:
    best: dict[str, Any]
    score: float
    trials: list[Trial]
    start_score: float


def coordinate_descent(
    evaluate: Callable[[dict[str, Any]], float],
    start: dict[str, Any],
    dimensions: Iterable[Dimension],
    budget: int,
    maximize: bool = True,
    on_trial: Callable[[Trial, int, int, float], None] | None = None,
) -> Outcome:
    """Search from `start` (always evaluated) with at most `budget` evaluations.
    `on_trial(trial, evaluations so far, budget, best score so far)` follows it."""
    dims = list(dimensions)
    seen: dict[tuple, float] = {}
    trials: list[Trial] = []
    sign = 1.0 if maximize else -1.0
    top = -math.inf

    def score(hp: dict[str, Any]) -> float | None:
        key = tuple(sorted(hp.items()))
        if key in seen:
            return seen[key]
        if len(trials) >= budget:
            return None
        nonlocal top
        value = float(evaluate(hp))
        seen[key] = value
        trials.append(Trial(dict(hp), value))
        top = max(top, sign * value)
        if on_trial is not None:
            on_trial(trials[-1], len(trials), budget, sign * top)
        return value

    current = {**start, **{d.name: d.clip(start[d.name]) for d in dims}}
    best = score(current)
    assert best is not None
    start_score = best

    def better(a: float, b: float) -> bool:
        return sign * (a - b) > 1e-12 * max(1.0, abs(b))

    def descend(level: int) -> None:
        nonlocal best, current
        while level < LEVELS and len(trials) < budget:
            changed = False
            for dim in dims:
                if not dim.active(current):
                    continue
                old = current[dim.name]
                for value in dim.steps(old, level):
                    candidate = {**current, dim.name: value}
                    s = score(candidate)
                    if s is None:
                        break
                    if not better(s, best):
                        continue
                    best, current, changed = s, candidate, True
                    # keep walking the same way while it pays
                    while (onward := _onward(dim, old, current[dim.name], level)) is not None:
                        candidate = {**current, dim.name: onward}
                        s = score(candidate)
                        if s is None or not better(s, best):
                            break
                        old, best, current = current[dim.name], s, candidate
                    break
            # one round at each step size; the finest is repeated while it changes anything
            if not changed or level < LEVELS - 1:
                level += 1

    def switch_on() -> bool:
        """Once settled, each weight that is off tries two values on; the first that
        pays is kept (True)."""
        nonlocal best, current
        for dim in dims:
            if not (dim.can_be_off and current[dim.name] == 0 and dim.active(current)):
                continue
            for value in dim.on_values():
                s = score({**current, dim.name: value})
                if s is None:
                    return False
                if better(s, best):
                    best, current = s, {**current, dim.name: value}
                    return True
        return False

    descend(0)
    while len(trials) < budget and switch_on():
        descend(LEVELS - 1)
    return Outcome(current, best, trials, start_score)


def _onward(dim: Dimension, before: Any, now: Any, level: int) -> Any | None:
    """One more step from `now` in the direction `before` -> `now` went (None for a
    choice, a switch between off and on, or at a bound; off below the lower bound of a
    weight that can be switched off). Zero is a switch only for such a weight: a linear
    value whose range starts at 0 walks on from it like any other."""
    if dim.scale == "choice" or (dim.can_be_off and (before == 0 or now == 0)):
        return None
    ahead = [
        v
        for v in dim.steps(now, level)
        if not (dim.can_be_off and v == 0) and (v > now) == (now > before)
    ]
    if not ahead and dim.can_be_off and now < before:  # walked down to the bound: off
        return 0 if dim.integer else 0.0
    return ahead[0] if ahead else None
