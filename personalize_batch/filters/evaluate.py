"""Filters as boolean item masks over a chunk of requests (A.6, B.3).

A condition becomes one of three mask shapes: a vector over items (the same for every
row: literal values, or one set of placeholder values), a dense rows x items array
(placeholder values that differ between rows, CurrentItem) or a sparse rows x items
matrix (a user's interactions). Items expressions are computed once per distinct set of
placeholder values and cached; the result is applied to a chunk's key matrix before
top-k by setting blocked entries to -inf.

Semantics: `IN` is true when an item has at least one of the values; `NOT IN` is its
negation (so an item with no value is NOT IN any list). A comparison is false when the
item has no numeric value. INCLUDE expressions are OR-ed together, so are EXCLUDE ones:
allowed = (include_1 | include_2 ...) & ~(exclude_1 | exclude_2 ...).
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import recipes
from ..recipes.catalogue import Catalogue
from ..recipes.numeric import mask_rows
from ..recipes.protocol import RELATED_ITEMS, USER_SEGMENTATION
from ..recipes.user_filter import UserFilter
from .parse import USER_ID, Condition, Expression, Filter, FilterSyntaxError, check_target
from .values import parse_number, parse_value_list

if TYPE_CHECKING:
    import scipy.sparse as sp

COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
CACHE_BYTES = 64 << 20

Binding = dict[str, str]  # placeholder -> the raw filterValues string of one line


@dataclass
class Mask:
    """A boolean item mask for the rows of a chunk: exactly one of the three is set."""

    vec: np.ndarray | None = None  # (items,) the same for every row
    dense: np.ndarray | None = None  # (rows, items)
    sparse: sp.csr_matrix | None = None  # (rows, items), stored entries are True

    def array(self) -> np.ndarray:
        """As a numpy bool array broadcastable to (rows, items)."""
        if self.sparse is not None:
            return self.sparse.toarray() > 0
        return self.vec if self.vec is not None else self.dense


def _and(a: Mask, b: Mask) -> Mask:
    if a.sparse is not None and b.sparse is not None:
        return Mask(sparse=a.sparse.multiply(b.sparse).tocsr())
    if a.vec is not None and b.vec is not None:
        return Mask(vec=a.vec & b.vec)
    return Mask(dense=a.array() & b.array())


def _or(a: Mask, b: Mask) -> Mask:
    if a.sparse is not None and b.sparse is not None:
        return Mask(sparse=(a.sparse + b.sparse).tocsr())
    if a.vec is not None and b.vec is not None:
        return Mask(vec=a.vec | b.vec)
    return Mask(dense=a.array() | b.array())


def _without_rows(m: Mask, skip: np.ndarray, n_items: int) -> Mask:
    """The mask with the rows in `skip` (bool per row) all False."""
    import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

    if not skip.any():
        return m
    if m.sparse is not None:
        return Mask(sparse=(sp.diags((~skip).astype(np.float32)) @ m.sparse).tocsr())
    dense = np.broadcast_to(m.array(), (len(skip), n_items)).copy()
    dense[skip] = False
    return Mask(dense=dense)


class ChunkMask:
    """The items each row of a chunk may not recommend."""

    def __init__(self, n_rows: int, n_items: int) -> None:
        self.shape = (n_rows, n_items)
        self.vec: np.ndarray | None = None
        self.dense: np.ndarray | None = None
        self.sparse: list[sp.csr_matrix] = []

    def block(self, m: Mask) -> None:
        if m.sparse is not None:
            self.sparse.append(m.sparse)
        elif m.vec is not None:
            self.vec = m.vec if self.vec is None else self.vec | m.vec
        else:
            self.dense = m.dense if self.dense is None else self.dense | m.dense

    def apply(self, keys: np.ndarray) -> None:
        """Set the blocked entries of a (rows, items) key matrix to -inf."""
        if self.vec is not None and self.vec.any():
            keys[:, self.vec] = -np.inf
        if self.dense is not None:
            np.putmask(keys, self.dense, -np.inf)
        for s in self.sparse:
            s.eliminate_zeros()
            mask_rows(keys, s)

    def blocked(self) -> np.ndarray:
        """As one dense (rows, items) bool array."""
        out = np.zeros(self.shape, dtype=bool)
        if self.vec is not None:
            out |= self.vec
        if self.dense is not None:
            out |= self.dense
        for s in self.sparse:
            out |= s.toarray() > 0
        return out


class _LRU:
    """A bounded least-recently-used cache, safe to share between threads."""

    def __init__(self, max_entries: int) -> None:
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.max_entries = max_entries
        self.lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The cached value of `key`, made (outside the lock) when missing."""
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        value = make()
        with self.lock:
            self.data[key] = value
            if len(self.data) > self.max_entries:
                self.data.popitem(last=False)
        return value


class CompiledFilter:
    """A parsed filter bound to one solution's catalogue."""

    def __init__(
        self, filt: Filter, catalogue: Catalogue, recipe: str, source: str = "--filter"
    ) -> None:
        self.filter, self.cat, self.recipe = filt, catalogue, recipe
        segment = recipes.recipe(recipe).recipe_type == USER_SEGMENTATION
        check_target(filt, segment, recipe, source)
        for expr in filt.expressions:
            for cond in expr.conditions:
                self._check(cond, source)
        self.includes = [e for e in filt.expressions if e.action == "INCLUDE"]
        self.excludes = [e for e in filt.expressions if e.action == "EXCLUDE"]
        # UserID: the lines name items and the filter selects the users answered
        self.selects_users = filt.target == USER_ID
        self.needs_users = not self.selects_users and any(
            e.dataset == "Interactions" for e in filt.expressions
        )
        # placeholder -> how its value is read ("list", "number")
        self.kinds: dict[str, set[str]] = {}
        for cond in (c for e in filt.expressions for c in e.conditions):
            if cond.placeholder:
                kind = "list" if cond.op in ("IN", "NOT IN") else "number"
                self.kinds.setdefault(cond.placeholder, set()).add(kind)
        entries = max(16, CACHE_BYTES // max(1, catalogue.n_items))
        self._vecs = _LRU(entries)  # (condition or expression, values) -> item vector
        self._values = _LRU(100_000)  # (kind, raw) -> parsed value or error message

    def _check(self, cond: Condition, source: str) -> None:
        def fail(message: str) -> FilterSyntaxError:
            return FilterSyntaxError(source, self.filter.text, cond.pos, message)

        if cond.dataset == "Interactions":
            if self.cat.events is None and not self.cat.no_interactions:
                raise fail("this solution has no interaction data for filters; retrain it")
            return
        for name in (cond.field, cond.current):
            if name is not None and not self.cat.has_field(name):
                known = ", ".join(["ITEM_ID", *sorted(self.cat.columns)])
                where = "`pbatch train --items`" if source.startswith("--") else "training"
                raise fail(
                    f"the solution has no item field {name} (it has: {known}); "
                    f"item fields come from the items CSV given to {where}"
                )
        if cond.current and recipes.recipe(self.recipe).recipe_type != RELATED_ITEMS:
            related = ", ".join(r.name for r in recipes.recipes() if r.recipe_type == RELATED_ITEMS)
            raise fail(f"CurrentItem works with related-items recipes ({related}) only")

    # ------------------------------------------------------------------ per line

    def _parsed(self, kind: str, key: str, raw: str) -> Any:
        """A placeholder value parsed for its use (cached); a str is an error message."""

        def make() -> Any:
            try:
                return parse_number(key, raw) if kind == "number" else parse_value_list(key, raw)
            except ValueError as exc:
                return str(exc)

        return self._values.get((kind, key, raw), make)

    def bind(self, obj: dict[str, Any]) -> Binding | str:
        """The placeholder values of one line, or the line's error message."""
        given = obj.get("filterValues") or {}
        binding: Binding = {}
        for name, kinds in self.kinds.items():
            raw = given.get(name)
            if raw is None or raw == "":
                continue  # missing: EXCLUDE skipped, INCLUDE an error (below)
            for kind in sorted(kinds):
                parsed = self._parsed(kind, name, raw)
                if isinstance(parsed, str):
                    return parsed
            binding[name] = raw
        for expr in self.includes:
            for name in expr.placeholders:
                if name not in binding:
                    return (
                        f"filterValues has no value for {name}, which the filter's INCLUDE "
                        f"expression needs (${name})"
                    )
        return binding

    # ------------------------------------------------------------------ masks

    def _item_vec(self, cond: Condition, value: Any) -> np.ndarray:
        """Items satisfying an Items condition for one right-hand value."""
        if cond.op in ("IN", "NOT IN"):
            hit = self.cat.categorical(cond.field).any_of(value)
            return ~hit if cond.op == "NOT IN" else hit
        nums = self.cat.numeric(cond.field)
        with np.errstate(invalid="ignore"):
            return COMPARE[cond.op](nums, value) & ~np.isnan(nums)

    def _const_value(self, cond: Condition, binding: Binding) -> Any:
        if cond.placeholder is None:
            return cond.values if cond.values is not None else cond.number
        kind = "list" if cond.op in ("IN", "NOT IN") else "number"
        return self._parsed(kind, cond.placeholder, binding[cond.placeholder])

    def _expr_vec(self, expr: Expression, binding: Binding) -> np.ndarray:
        """An Items expression (no CurrentItem) for one set of placeholder values, cached."""
        values = tuple(binding.get(p) for p in expr.placeholders)
        if None in values:  # a skipped EXCLUDE expression (a placeholder without a value)
            return np.zeros(self.cat.n_items, dtype=bool)

        def make() -> np.ndarray:
            out = np.zeros(self.cat.n_items, dtype=bool)
            for conj in expr.where:
                part = np.ones(self.cat.n_items, dtype=bool)
                for cond in conj:
                    part &= self._item_vec(cond, self._const_value(cond, binding))
                out |= part
            return out

        return self._vecs.get((expr, values), make)

    def _per_row(self, keys: list[Any], vec_of: Callable[[int], np.ndarray]) -> Mask:
        """Rows grouped by their key: one vector per distinct key (row `r` computes it)."""
        group: dict[Any, int] = {}
        reps: list[int] = []  # the first row of each group
        inverse = np.empty(len(keys), dtype=np.int64)
        for r, k in enumerate(keys):
            if k not in group:
                group[k] = len(reps)
                reps.append(r)
            inverse[r] = group[k]
        vecs = [vec_of(r) for r in reps]
        if len(vecs) == 1:
            return Mask(vec=vecs[0])
        return Mask(dense=np.stack(vecs)[inverse])

    def _current(self, cond: Condition, queries: np.ndarray) -> Mask:
        """Items compared with each row's query item (sims); unknown queries match nothing."""
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        known = queries >= 0
        safe = np.where(known, queries, 0)
        if cond.op == "IN":
            items = self.cat.categorical(cond.field)
            cur = self.cat.categorical(cond.current)
            q = sp.diags(known.astype(np.float32)) @ cur.by_item()[safe]  # row r: its values
            if cond.current != cond.field:
                q = q @ cur.translate(items)
            hit = q @ items.by_item().T
            return Mask(dense=hit.toarray() > 0)
        nums = self.cat.numeric(cond.field)
        ref = np.where(known, self.cat.numeric(cond.current)[safe], np.nan)
        with np.errstate(invalid="ignore"):
            out = COMPARE[cond.op](nums[None, :], ref[:, None])
            return Mask(dense=out & ~np.isnan(nums)[None, :] & ~np.isnan(ref)[:, None])

    def _condition(
        self, cond: Condition, bindings: list[Binding], users: np.ndarray, queries: np.ndarray
    ) -> Mask:
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        n_rows = len(bindings)
        if cond.dataset == "Interactions":
            if self.cat.events is None:  # items unknown to the solution: no interactions
                return Mask(sparse=sp.csr_matrix((n_rows, self.cat.n_items), dtype=np.float32))
            if cond.placeholder is None:
                types = self.cat.events.type_indices(cond.values or (), cond.op == "NOT IN")
                sets = [types] * n_rows
            else:  # IN only: the parser refuses placeholders with NOT IN
                sets = []
                for b in bindings:
                    raw = b.get(cond.placeholder)
                    values = () if raw is None else self._parsed("list", cond.placeholder, raw)
                    sets.append(self.cat.events.type_indices(values))
            return Mask(sparse=self.cat.events.rows(users, sets))
        if cond.current:
            return self._current(cond, queries)
        if cond.placeholder is None:
            vec = self._vecs.get(
                (cond, None), lambda: self._item_vec(cond, self._const_value(cond, {}))
            )
            return Mask(vec=vec)
        raws = [b.get(cond.placeholder) for b in bindings]

        def vec_of(r: int) -> np.ndarray:
            if raws[r] is None:
                return np.zeros(self.cat.n_items, dtype=bool)
            return self._vecs.get(
                (cond, raws[r]), lambda: self._item_vec(cond, self._const_value(cond, bindings[r]))
            )

        return self._per_row(raws, vec_of)

    def _expression(
        self, expr: Expression, bindings: list[Binding], users: np.ndarray, queries: np.ndarray
    ) -> Mask:
        if expr.dataset == "Items" and not expr.uses_current_item:
            keys = [tuple(b.get(p) for p in expr.placeholders) for b in bindings]
            return self._per_row(keys, lambda r: self._expr_vec(expr, bindings[r]))
        out: Mask | None = None
        for conj in expr.where:
            part: Mask | None = None
            for cond in conj:
                m = self._condition(cond, bindings, users, queries)
                part = m if part is None else _and(part, m)
            out = part if out is None else _or(out, part)
        assert out is not None
        return out

    def user_filter(self, bindings: list[Binding]) -> UserFilter:
        """A UserID filter for a chunk of segment lines: per condition and line, the
        event types it matches; an EXCLUDE expression with a placeholder a line has no
        value for matches no type on that line (it is skipped, as in Personalize)."""
        events = self.cat.events
        assert events is not None  # _check: a UserID filter reads interactions
        n_types = len(events.types)

        def types_of(cond: Condition, skip: np.ndarray) -> np.ndarray:
            out = np.zeros((len(bindings), n_types), dtype=bool)
            if cond.placeholder is None:
                out[:, events.type_indices(cond.values or (), cond.op == "NOT IN")] = True
            else:  # IN only: the parser refuses placeholders with NOT IN
                for r, b in enumerate(bindings):
                    raw = b.get(cond.placeholder)
                    if raw is not None:
                        values = self._parsed("list", cond.placeholder, raw)
                        out[r, events.type_indices(values)] = True
            out[skip] = False
            return out

        def compiled(exprs: list[Expression]) -> tuple:
            out = []
            for expr in exprs:
                skip = np.array(
                    [any(p not in b for p in expr.placeholders) for b in bindings], dtype=bool
                )
                out.append(tuple(tuple(types_of(c, skip) for c in conj) for conj in expr.where))
            return tuple(out)

        return UserFilter(events, compiled(self.includes), compiled(self.excludes))

    def mask(
        self,
        bindings: list[Binding],
        users: np.ndarray | None = None,
        queries: np.ndarray | None = None,
    ) -> ChunkMask:
        """The blocked items of each row; `users`/`queries` are solution indices (-1 unknown)."""
        n_rows, n_items = len(bindings), self.cat.n_items
        users = np.full(n_rows, -1, np.int64) if users is None else users
        queries = np.full(n_rows, -1, np.int64) if queries is None else queries
        out = ChunkMask(n_rows, n_items)
        allowed: Mask | None = None
        for expr in self.includes:  # every placeholder of an INCLUDE is bound (bind())
            m = self._expression(expr, bindings, users, queries)
            allowed = m if allowed is None else _or(allowed, m)
        if allowed is not None:
            out.block(
                Mask(vec=~allowed.vec)
                if allowed.vec is not None
                else Mask(dense=~np.broadcast_to(allowed.array(), (n_rows, n_items)))
            )
        for expr in self.excludes:
            m = self._expression(expr, bindings, users, queries)
            skip = np.array([any(p not in b for p in expr.placeholders) for b in bindings], bool)
            out.block(_without_rows(m, skip, n_items))
        return out
