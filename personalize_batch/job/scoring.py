"""Answer a chunk of valid requests with the recipe's scorer: ids -> indices, one
vectorized scoring call, indices -> ids. `run`, `recommend` and `rank` all use this.

With a filter, each line's `filterValues` are bound first (a line whose values are
missing for an INCLUDE expression or malformed gets an error line), then the filter's
masks for the chunk are handed to the scorer, which applies them before top-k (A.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import recipes
from ..data.ids import IdIndex
from ..errors import UsageError
from ..recipes.numeric import chunk_rows, round_sig
from ..recipes.protocol import ITEM, USER
from ..solution import ITEM_FIELD_PREFIX, Solution
from .diagnostics import EXAMPLES_KEPT
from .exploration import Exploration, Explorer
from .lines import BadLine, Request, line_parser
from .params import AnswerOptions

Answer = tuple[list[str], list[float]]


def item_field_names(solution: Solution) -> list[str]:
    """The item fields the solution holds (from `train --items`), sorted."""
    n = len(ITEM_FIELD_PREFIX)
    return sorted(k[n:] for k in solution.arrays if k.startswith(ITEM_FIELD_PREFIX))


def metadata_columns(
    solution: Solution, fields: tuple[str, ...], option: str = "--item-metadata"
) -> list[np.ndarray]:
    """Each field's values (one string per item), or a UsageError naming the fields the
    solution does have."""
    have = item_field_names(solution)
    if fields and not have:
        how = " (train it with --items ITEMS.csv)" if option.startswith("--") else ""
        raise UsageError(
            f"{option}: the solution has no items data: it was trained without an items CSV{how}"
        )
    missing = [f for f in fields if f not in have]
    if missing:
        raise UsageError(
            f"{option}: the solution has no item field {', '.join(missing)}; "
            f"its fields: {', '.join(have)}"
        )
    return [solution.arrays[ITEM_FIELD_PREFIX + f].astype(object) for f in fields]


@dataclass(frozen=True)
class IdCounts:
    """Ids looked up in the solution and those it does not know, with examples."""

    users: int = 0
    unknown_users: int = 0
    user_examples: tuple[str, ...] = ()
    items: int = 0
    unknown_items: int = 0
    item_examples: tuple[str, ...] = ()


class Answerer:
    """Turns requests into (recommendedItems, scores) pairs – or error lines – for one
    solution, with an optional filter expression and item exploration."""

    @classmethod
    def for_options(cls, solution: Solution, options: AnswerOptions) -> Answerer:
        """The Answerer of a job's, a partition's or a request's options."""
        return cls(
            solution,
            options.num_results,
            include_seen=options.include_seen,
            filter_expression=options.filter_expression,
            exploration=options.exploration,
            filter_source=options.filter_source,
            item_metadata=options.item_metadata,
        )

    def __init__(
        self,
        solution: Solution,
        num_results: int = 25,
        *,
        include_seen: bool = False,
        filter_expression: str | None = None,
        exploration: Exploration | None = None,
        filter_source: str = "--filter",
        item_metadata: tuple[str, ...] = (),
    ) -> None:
        self.solution = solution
        self.item_metadata = item_metadata
        self._metadata_columns = metadata_columns(solution, item_metadata)
        self.recipe = recipes.recipe(solution.recipe)
        self.parse = line_parser(self.recipe)  # the recipe's lines: bytes -> Request
        self.query, self.output = self.recipe.query, self.recipe.output
        self.num_results = num_results
        self.include_seen = include_seen
        self.scorer = solution.scorer()
        # a recipe that cannot answer some valid lines says which (protocol: problems)
        self.may_refuse = hasattr(self.scorer, "problems")
        # the ids an answer's indices name
        answer_ids = solution.item_ids if self.output.names == ITEM else solution.user_ids
        self.answer_ids = answer_ids.astype(object)
        self.unknown_users = 0
        self.unknown_items = 0
        self.users_looked_up = 0
        self.items_looked_up = 0
        self.user_examples: list[str] = []  # the first unknown ids met, for diagnostics
        self.item_examples: list[str] = []
        self.filter = None
        if filter_expression is not None:
            from ..filters import compile_filter  # noqa: PLC0415

            self.filter = compile_filter(filter_expression, solution, filter_source)
        filtered = self.filter is not None
        q = self.query
        solution.build_indexes(
            users=q.names == USER or bool(filtered and self.filter.needs_users),
            items=q.names == ITEM or q.ranks or bool(item_metadata) or filtered,
        )
        self.explorer = None
        if exploration is not None and self.recipe.explores:
            explorer = Explorer(solution, exploration.check())
            self.explorer = explorer if explorer.active else None
        # scorers that never build a block x items matrix say how many rows suit them;
        # item filters and exploration work on dense blocks, sized for the cache (a
        # segment's user filter works block of users by block of users)
        item_filter = self.filter is not None and not self.filter.selects_users
        dense = item_filter or self.explorer is not None
        rows = None if dense else getattr(self.scorer, "block_rows", None)
        self.block = rows or chunk_rows(len(solution.item_ids))

    def metadata(self, items: list[str]) -> list[dict[str, str]]:
        """One map of the --item-metadata fields per item, in order; "" where an item has
        no value (or is not in the solution: a ranking list's unknown items)."""
        rows = self.solution.item_index.lookup(items).tolist()
        fields, cols = self.item_metadata, self._metadata_columns
        return [
            dict(zip(fields, [c[r] for c in cols], strict=True))
            if r >= 0
            else dict.fromkeys(fields, "")
            for r in rows
        ]

    def unknown_snapshot(self) -> tuple[int, ...]:
        """Where the id counters stand (see unknown_since)."""
        return (
            self.users_looked_up,
            self.unknown_users,
            len(self.user_examples),
            self.items_looked_up,
            self.unknown_items,
            len(self.item_examples),
        )

    def unknown_since(self, snapshot: tuple[int, ...]) -> IdCounts:
        """Ids looked up and unknown since `snapshot`, with the new unknown examples."""
        users, unknown_users, user_ex, items, unknown_items, item_ex = snapshot
        return IdCounts(
            self.users_looked_up - users,
            self.unknown_users - unknown_users,
            tuple(self.user_examples[user_ex:]),
            self.items_looked_up - items,
            self.unknown_items - unknown_items,
            tuple(self.item_examples[item_ex:]),
        )

    def _note(self, examples: list[str], ids: list[str]) -> None:
        for i in ids:
            if len(examples) >= EXAMPLES_KEPT:
                return
            if i not in examples:
                examples.append(i)

    def _users(self, requests: list[Request]) -> np.ndarray:
        users = _lookup(self.solution.user_index, [r.user for r in requests])
        unknown = [r.user for r, u in zip(requests, users, strict=True) if r.user and u < 0]
        self.users_looked_up += sum(1 for r in requests if r.user is not None)
        self.unknown_users += len(unknown)
        self._note(self.user_examples, unknown)
        return users

    def answer(self, requests: list[Request]) -> list[Answer | BadLine]:
        """The answers to a chunk of requests, in order; a BadLine where a line's
        filterValues do not fit the filter."""
        if self.filter is None:
            return list(self._blocks(requests, None))
        bindings = [self.filter.bind(r.obj) for r in requests]
        good = [k for k, b in enumerate(bindings) if not isinstance(b, str)]
        answers = iter(self._blocks([requests[k] for k in good], [bindings[k] for k in good]))
        return [
            BadLine(r.obj, b) if isinstance(b, str) else next(answers)
            for r, b in zip(requests, bindings, strict=True)
        ]

    def _blocks(self, requests: list[Request], bindings: list | None) -> list[Answer | BadLine]:
        """Score in blocks whose dense block x items matrices stay cache-sized."""
        out: list[Answer | BadLine] = []
        for start in range(0, len(requests), self.block):
            stop = start + self.block
            out += self._answer(requests[start:stop], bindings[start:stop] if bindings else None)
        return out

    def _items(self, requests: list[Request]) -> np.ndarray:
        queries = _lookup(self.solution.item_index, [r.item for r in requests])
        unknown = [r.item for r, q in zip(requests, queries, strict=True) if q < 0]
        self.items_looked_up += len(requests)
        self.unknown_items += len(unknown)
        self._note(self.item_examples, unknown)
        return queries

    def _answer(self, requests: list[Request], bindings: list | None) -> list[Answer | BadLine]:
        if not requests:
            return []
        names = self.query.names
        if self.query.ranks:
            return self._rank(requests, bindings)
        users = None
        if names == USER:
            queries = users = self._users(requests)
        else:  # an item's id, or a text the scorer reads itself
            queries = self._items(requests) if names == ITEM else [r.text for r in requests]
            if self.filter is not None and self.filter.needs_users:
                users = self._users(requests)
        kwargs = {}
        if self.filter is not None and self.filter.selects_users:
            kwargs["mask"] = self.filter.user_filter(bindings)
        elif self.filter is not None:
            item_queries = queries if names == ITEM else None
            kwargs["mask"] = self.filter.mask(bindings, users, item_queries)
        if self.explorer is not None:
            kwargs["explore"] = partial(self.explorer.choose, row_keys=[r.user for r in requests])
        idx, scores, lengths = self.scorer.recommend(
            queries, self.num_results, self.include_seen, **kwargs
        )
        # lines the recipe cannot answer (segments: an unknown item, an expression that
        # names no field or matches no item) become error lines; the job goes on
        problems = self.scorer.problems(queries) if self.may_refuse else None
        shared = shared_rows(idx, scores, lengths)
        if shared is not None:  # lines with the same answer: each answer is made once
            first, which = shared
            idx, scores, lengths = idx[first], scores[first], lengths[first]
        # whole blocks to lists at once; only short rows are cut
        items, scores = self.answer_ids[idx].tolist(), round_sig(scores).tolist()
        width = idx.shape[1] if idx.ndim == 2 else 0
        for r in np.flatnonzero(lengths < width).tolist():
            n = int(lengths[r])
            items[r], scores[r] = items[r][:n], scores[r][:n]
        answers = list(zip(items, scores, strict=True))
        if shared is not None:
            answers = [answers[k] for k in which.tolist()]  # the same Answer object, shared
        if problems is not None and any(m is not None for m in problems):
            return [
                a if m is None else BadLine(r.obj, m)
                for a, m, r in zip(answers, problems, requests, strict=True)
            ]
        return answers

    def _rank(self, requests: list[Request], bindings: list | None) -> list[Answer]:
        """Known items by the model, then unknown ones in input order; with a filter,
        blocked items are dropped (scores stay those of the whole list, as a user
        model's scores are taken before filters)."""
        users = self._users(requests)
        lists = [list(dict.fromkeys(r.items or ())) for r in requests]
        rows = self.solution.item_index.lookup([i for d in lists for i in d])
        known_lists, unknown_lists = [], []
        for distinct, found in zip(
            lists, np.split(rows, np.cumsum([len(d) for d in lists])[:-1]), strict=True
        ):
            known_lists.append(found[found >= 0])
            unknown = [i for i, k in zip(distinct, found.tolist(), strict=True) if k < 0]
            self.items_looked_up += len(distinct)
            self.unknown_items += len(unknown)
            self._note(self.item_examples, unknown)
            unknown_lists.append(unknown)
        ranked = self.scorer.rank(users, known_lists)
        if self.filter is not None:
            blocked = self.filter.mask(bindings, users).blocked()
            ranked = [
                (idx[~blocked[r, idx]], p[~blocked[r, idx]]) for r, (idx, p) in enumerate(ranked)
            ]
            unknown_lists = self._filter_unknown(unknown_lists, bindings)
        out = []
        for (idx, probs), unknown in zip(ranked, unknown_lists, strict=True):
            items = self.answer_ids[idx].tolist() + unknown
            scores = round_sig(probs).tolist() + [0.0] * len(unknown)
            out.append((items, scores))
        return out

    def _filter_unknown(self, unknown_lists: list[list[str]], bindings: list) -> list[list[str]]:
        """Items unknown to the solution have no field values and no interactions: the
        filter is evaluated on them as such."""
        ids = sorted({i for u in unknown_lists for i in u})
        if not ids:
            return unknown_lists
        from ..filters import Catalogue, CompiledFilter  # noqa: PLC0415

        f = self.filter
        virtual = CompiledFilter(f.filter, Catalogue.unknown_items(ids, f.cat), f.recipe)
        blocked = virtual.mask(bindings).blocked()
        col = {i: k for k, i in enumerate(ids)}
        return [[i for i in u if not blocked[r, col[i]]] for r, u in enumerate(unknown_lists)]


# above this share of distinct rows a block is not shared: checking and splicing cost
# more than they save (popularity-count on anime-5k, three distinct lists in four, ran
# 8% slower on one worker with every block shared)
MAX_DISTINCT_SHARE = 0.5
# odd 64-bit multipliers: one for a row's length, one per column of its items
_ROW_WEIGHTS = np.random.default_rng(0x5EED).integers(0, 1 << 63, 501, dtype=np.uint64) | 1


def shared_rows(
    idx: np.ndarray, scores: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(the first of each distinct row, which distinct row each row is) when at most
    MAX_DISTINCT_SHARE of a block's rows are distinct answers (items, scores and
    length), else None.

    popularity-count gives most users the same list, and sims the same item's lines the
    same one. Rows are grouped by a hash of their items and length, and compared in
    full: should two different rows share a hash (rows with the same items and other
    scores do), the block is not shared at all."""
    if idx.ndim != 2 or len(idx) < 2 or not 0 < idx.shape[1] < len(_ROW_WEIGHTS):
        return None
    weights = _ROW_WEIGHTS[: idx.shape[1] + 1]
    hashes = (idx.astype(np.uint64) * weights[1:]).sum(axis=1)  # wraps around: a hash
    hashes += lengths.astype(np.uint64) * weights[0]
    _, first, which = np.unique(hashes, return_index=True, return_inverse=True)
    if len(first) > len(idx) * MAX_DISTINCT_SHARE:
        return None
    same = (
        np.array_equal(lengths[first][which], lengths)
        and np.array_equal(idx[first][which], idx)
        # bytes, so that -0.0 and 0.0 stay apart and NaN matches NaN
        and scores[first][which].tobytes() == scores.tobytes()
    )
    return (first, which) if same else None


def _lookup(index: IdIndex, ids: list[str | None]) -> np.ndarray:
    """The position of each id in `index` (int64), -1 for an unknown or absent (None) id."""
    if all(i is not None for i in ids):
        return index.lookup(ids)
    out = np.full(len(ids), -1, dtype=np.int64)
    given = [k for k, i in enumerate(ids) if i is not None]
    out[given] = index.lookup([ids[k] for k in given])
    return out
