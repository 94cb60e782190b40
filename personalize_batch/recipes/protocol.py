"""The recipe protocol: what a recipe module declares in its `RECIPE`, and what the rest
of pbatch asks of it.

A recipe says which keys its input lines need (`Query`), what it answers them with
(`Output`: items for a user or an item, or users for an item), the arrays it keeps in a
solution (`Arrays`), its hyperparameters, `fit` (interactions -> arrays) and its scorer
(a solution -> an object whose `recommend` answers a chunk of queries, and `rank` where
lines hold a list to rank); and for `pbatch train` and `pbatch evaluate`, the question it
is measured on (`Validation`) and, when its settings are searched, its search space
(`Search`). The registry (`recipes/__init__.py`) names the module of each recipe;
nothing outside a recipe's module and the registry names a recipe.

This module imports no numpy: the CLI and the registry read it at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from ..data import Interactions
    from ..data.profile import Profile
    from ..data.splits import Split

# -- lines and answers ------------------------------------------------------------------

USER, ITEM, TEXT = "user", "item", "text"  # what a key's value names
# Personalize's recipe types
USER_PERSONALIZATION, PERSONALIZED_RANKING = "USER_PERSONALIZATION", "PERSONALIZED_RANKING"
RELATED_ITEMS = "RELATED_ITEMS"
USER_SEGMENTATION = "USER_SEGMENTATION"  # users for an item (a batch segment job)
MAX_RESULTS = 500  # numResults' largest value (A.4): the longest answer asked of a scorer
# a segment job's numResults: at most Personalize's 5 million users per line; by default
# the top SEGMENT_SHARE of the solution's users (the share its rule was chosen for), at
# least MIN_SEGMENT_RESULTS
MAX_SEGMENT_RESULTS = 5_000_000
SEGMENT_SHARE = 0.01
MIN_SEGMENT_RESULTS = 25


@dataclass(frozen=True)
class Query:
    """Which keys an input line needs (A.3): the key the recipe answers for and what else
    it reads. A key naming users or items holds an id the solution looks up; a TEXT key
    holds a string the scorer reads itself."""

    key: str  # "userId", "itemId", ...
    names: str = USER  # USER, ITEM or TEXT
    required: bool = True  # a line without the key is an error line
    spellings: tuple[str, ...] = ()  # other names read as the key ("items" for itemId)
    user: bool = False  # an optional userId besides (filters on interactions read it)
    ranks: bool = False  # a list of items to rank (itemList, itemIds or inputList)


@dataclass(frozen=True)
class Output:
    """What a line is answered with: the key of the list and whose ids it holds."""

    key: str  # "recommendedItems", "recommendedUsers"
    names: str  # ITEM or USER


ITEMS = Output("recommendedItems", ITEM)
USERS = Output("recommendedUsers", USER)


class Scorer(Protocol):
    """What a recipe's `scorer(solution)` returns. `recommend` answers a chunk of
    queries (solution indices, -1 for an id the solution does not know; strings for a
    TEXT query) with the top k as (indices, scores, lengths): row r's first lengths[r]
    entries, best first, ties in a fixed order. `mask` (filters) sets blocked entries of
    a chunk's key matrix to -inf before the top k; `explore` (item exploration, where
    the recipe `explores`) replaces the top k. A recipe whose lines rank a list has
    `rank(users, lists)` instead: each list's indices best first, with their scores.
    A scorer that cannot answer some queries (segment recipes: an unknown item, an
    attribute expression that names no field or matches no item) has
    `problems(queries)`: a message per query, None where it can answer; the job makes
    those lines error lines, and `recommend` gives them an empty answer."""

    block_rows: int  # the rows a chunk is scored in when no dense block is needed

    def recommend(
        self, queries: Any, k: int, include_seen: bool, mask: Any = None, **options: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


# -- what a solution keeps --------------------------------------------------------------

ArraySpec = tuple[str, int]  # dtype kinds ("U" unicode, "i" integer, "f" float), dimensions
# a CSR matrix's parts: (indptr, indices, data or None, rows, columns), rows and columns
# "users", "items" or "events" (event types x users)
MatrixSpec = tuple[str, str, "str | None", str, str]


@dataclass(frozen=True, eq=False)
class Arrays:
    """The arrays a recipe keeps in a solution, as loading checks them (A.2)."""

    required: dict[str, ArraySpec] = field(default_factory=dict)
    optional: dict[str, ArraySpec] = field(default_factory=dict)  # all or none
    matrices: dict[str, MatrixSpec] = field(default_factory=dict)  # what -> its CSR parts
    per_item: tuple[str, ...] = ()  # one entry per item


# -- hyperparameters and their search ---------------------------------------------------


@dataclass
class HyperParameter:
    """One documented hyperparameter with its default and range."""

    name: str
    default: Any
    kind: type
    low: float | None = None
    high: float | None = None
    help: str = ""
    # the values a string hyperparameter takes (matched ignoring case and extra spaces)
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> Any:
        if self.choices:
            value = " ".join(raw.strip().lower().split())
            if value in self.choices:
                return value
            known = ", ".join(repr(c) for c in self.choices)
            raise UsageError(f"hyperparameter {self.name} must be one of {known}, not {raw!r}")
        if self.kind is bool:
            low = raw.strip().lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise UsageError(f"hyperparameter {self.name} must be true or false, not {raw!r}")
        try:
            value = self.kind(raw)
        except ValueError:
            raise UsageError(
                f"hyperparameter {self.name} must be {self.kind.__name__}, not {raw!r}"
            ) from None
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise UsageError(
                f"hyperparameter {self.name} must be in [{self.low}, {self.high}], not {raw}"
            )
        return value


@dataclass
class HyperParameters:
    """A recipe's hyperparameter table; parses `--hp key=value` strings."""

    params: list[HyperParameter] = field(default_factory=list)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def parse(self, pairs: list[str] | tuple[str, ...], recipe: str) -> dict[str, Any]:
        values = self.defaults()
        table = {p.name: p for p in self.params}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep:
                raise UsageError(f"--hp takes key=value, not {pair!r}")
            if key not in table:
                known = ", ".join(table) or "none"
                raise UsageError(f"{recipe} has no hyperparameter {key!r} (known: {known})")
            values[key] = table[key].parse(raw)
        return values


def tidy(v: float) -> float:
    """Four significant digits: values a person can read and type back."""
    return float(f"{v:.4g}")


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter the search may change, with its range."""

    name: str
    scale: str  # "log", "linear" or "choice"
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()
    integer: bool = False
    can_be_off: bool = False  # 0 switches the term off (log scale only)
    # the other hyperparameters' values for which this one changes anything
    when: Callable[[dict[str, Any]], bool] | None = field(default=None, compare=False)

    def clip(self, value: Any) -> Any:
        if self.scale == "choice":
            return value
        if self.can_be_off and value == 0:
            return 0.0 if not self.integer else 0
        v = min(max(float(value), self.low), self.high)
        return int(round(v)) if self.integer else tidy(v)

    def steps(self, value: Any, level: int) -> list[Any]:
        """The values one step away (down first), at a step `level` (0 = coarsest)."""
        if self.scale == "choice":
            return [c for c in self.choices if c != value]
        if self.can_be_off and value == 0:  # switched on at the coarse step only
            return [self.clip(math.sqrt(self.low * self.high))] if level == 0 else []
        if self.scale == "log":
            factor = 4.0 ** (0.5**level)
            out = [self.clip(value / factor), self.clip(value * factor)]
        else:
            width = (self.high - self.low) / 4.0 * 0.5**level
            if self.integer:
                width = max(1.0, round(width))
            out = [self.clip(value - width), self.clip(value + width)]
        if self.can_be_off and level == 0:
            out.append(0 if self.integer else 0.0)
        return [v for v in dict.fromkeys(out) if v != value]

    def on_values(self) -> list[Any]:
        """What a weight that is off tries once the search has settled: the middle of its
        range and the middle of the lower half."""
        middle = math.sqrt(self.low * self.high)
        return list(dict.fromkeys([self.clip(middle), self.clip(math.sqrt(self.low * middle))]))

    def active(self, hp: dict[str, Any]) -> bool:
        return self.when is None or self.when(hp)


@dataclass
class Space:
    """The start of a search, its dimensions, and the values the data fixed (with why)."""

    start: dict[str, Any]
    dimensions: list[Dimension]
    fixed: dict[str, tuple[Any, str]]  # name -> (value, reason)


@dataclass(frozen=True)
class Search:
    """How `pbatch train` searches a recipe's settings: the space for some data (what
    the data fixes first, the ranges it sets) and the most settings tried."""

    space: Callable[[Interactions, Profile, dict[str, Any]], Space]
    budget: int
    # the searched values chosen on a seeded sample of the users, carried to data
    # `ratio` times as large; None: unchanged
    to_whole: Callable[[dict[str, Any], float], dict[str, Any]] | None = None


# the validation parts tried in turn when time carries signal, each with how the
# decision line describes it: the first that holds enough users is used
TIME_SPLITS = (
    ("time-cut", "the future after a time cut at the 90th percentile (each user's next new item)"),
    ("leave-last-out", "each user's last item (too few users span a time cut)"),
)

# a validation question: (split, seed) -> a function of a scorer fitted on split.train
# that returns the metrics of its answers
Question = Callable[["Split", int], Callable[[Any], dict[str, float]]]


@dataclass(frozen=True)
class Validation:
    """What `pbatch train` (choosing settings) and `pbatch evaluate` ask a recipe on a
    held-out part of the data, and the metrics they read (Personalize's names; the first
    is the one a search maximizes unless --hpo-config names another)."""

    question: Question
    metrics: tuple[str, ...]
    time_splits: tuple[tuple[str, str], ...] = TIME_SPLITS


# -- fresh events -----------------------------------------------------------------------


@dataclass(frozen=True)
class FreshEvents:
    """Events folded into a solution before a job (`run --events`), as solution indices:
    what a recipe's `fold_in` reads. Users new to the solution are numbered after the
    known ones."""

    users: np.ndarray  # per event, in time order within each user
    items: np.ndarray
    times: np.ndarray
    affected: np.ndarray  # the users with events, ascending
    known: np.ndarray  # `affected`, with -1 for a new user (no row of the old arrays)
    n_users: int  # the known and the new users
    n_items: int


# -- the declaration --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Recipe:
    """Everything pbatch knows of one recipe (a module's `RECIPE`)."""

    name: str
    recipe_type: str  # Personalize's: USER_PERSONALIZATION, RELATED_ITEMS, ...
    query: Query
    output: Output
    example: str  # a line it answers, as `pbatch describe --recipe` shows it
    hyperparameters: HyperParameters
    arrays: Arrays
    # (interactions, hyperparameters, seed=, cache=) -> its arrays (cache: reuse between
    # fits of the same data while searching)
    fit: Callable[..., dict[str, np.ndarray]]
    scorer: Callable[[Any], Scorer]  # a loaded solution -> its scorer
    validation: Validation
    search: Search | None = None  # None: its settings are not searched
    explores: bool = False  # item exploration (itemExplorationConfig) applies
    # fresh events (`run --events`) change its answers: a user's seen items always, and
    # its own arrays through fold_in(arrays, events, meta) -> (new arrays, whether
    # recent popularity was brought up to date)
    fresh_events: bool = False
    fold_in: Callable[..., tuple[dict[str, np.ndarray], bool]] | None = None
    # what it answers needs the items CSV (`train --items`), and why
    needs_items: str | None = None
    # what `pbatch describe` shows of its own arrays (a solution's arrays -> JSON)
    describe: Callable[[dict[str, np.ndarray]], dict[str, Any]] | None = None
