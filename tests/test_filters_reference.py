"""Filters: the fast masks against a slow, obviously correct reference (A.5, A.6, B.3).

Hypothesis draws small interaction and item files and random filter expressions, built
together with a Python predicate written from the contract (sets and loops, per item
and per user; the expression text never goes through the reference). Each example
trains a solution, answers lines with random filterValues, and checks that every list is
the recipe's unfiltered ranking with the items the reference rejects taken out, cut to N,
with the same scores – and that lines whose values are missing for an INCLUDE
expression, or malformed, are error lines.
"""

from __future__ import annotations

import csv
import operator
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_batch import solution as solution_mod
from personalize_batch import training
from personalize_batch.job.lines import BadLine, Request
from personalize_batch.job.scoring import Answerer

USERS = [f"u{k}" for k in range(6)]
ITEMS = [f"i{k}" for k in range(12)]
COLD = ["c0", "c1"]  # only in the items file
EVENT_TYPES = ["click", "Buy", "buy", "view"]  # Buy and buy are one type
GENRES = ["a", "b", "A", 'q"t', "a,b"]
PRICES = ["", "1", "2.5", "10", "-3", "x"]
OPS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Data:
    rows: list[tuple[str, str, int, str]]
    genres: dict[str, set[str]]  # item -> its GENRES values (items in the items file)
    prices: dict[str, float | None]

    def events(self, user: str | None) -> dict[str, set[str]]:
        """The user's items per lower-cased event type."""
        out: dict[str, set[str]] = defaultdict(set)
        for u, i, _, t in self.rows:
            if u == user:
                out[t.lower()].add(i)
        return out


@st.composite
def datasets(draw) -> Data:
    rows = []
    for u in USERS[: draw(st.integers(1, len(USERS)))]:
        for _ in range(draw(st.integers(0, 8))):
            item = draw(st.sampled_from(ITEMS))
            rows.append((u, item, draw(st.integers(0, 50)), draw(st.sampled_from(EVENT_TYPES))))
    if not rows:
        rows.append(("u0", "i0", 0, "click"))
    genres, prices = {}, {}
    for item in ITEMS + COLD:
        if draw(st.integers(0, 4)) == 0:
            continue  # not in the items file: no field values
        genres[item] = set(draw(st.lists(st.sampled_from(GENRES), max_size=3)))
        raw = draw(st.sampled_from(PRICES))
        try:
            prices[item] = float(raw)
        except ValueError:
            prices[item] = None
    return Data(rows, genres, prices)


@dataclass
class Cond:
    """One condition: its text and what the reference needs to evaluate it."""

    text: str
    kind: str  # genres, item_id, price, events, cur_genres, cur_price
    negate: bool = False
    values: tuple[str, ...] = ()
    placeholder: str | None = None
    op: str = ""
    number: float = 0.0


@dataclass
class Expr:
    action: str
    where: list[list[Cond]]
    placeholders: set[str] = field(default_factory=set)

    @property
    def text(self) -> str:
        ors = " OR ".join(" AND ".join(c.text for c in conj) for conj in self.where)
        return f"{self.action} ItemID WHERE {ors}"


def items_condition(sims: bool) -> st.SearchStrategy[Cond]:
    genre_lists = st.lists(st.sampled_from(GENRES), min_size=1, max_size=3).map(tuple)
    numbers = st.sampled_from([-3.0, 0.0, 1.0, 2.5, 10.0])
    kinds = [
        st.builds(
            lambda neg, vals: Cond(
                f"Items.GENRES {'NOT IN' if neg else 'IN'} ({', '.join(map(quote, vals))})",
                "genres",
                neg,
                vals,
            ),
            st.booleans(),
            genre_lists,
        ),
        st.just(Cond("Items.GENRES IN ($G)", "genres", placeholder="G")),
        st.builds(
            lambda vals: Cond(
                f"items.item_id IN ({', '.join(map(quote, vals))})", "item_id", values=vals
            ),
            st.lists(st.sampled_from(ITEMS + COLD), min_size=1, max_size=3).map(tuple),
        ),
        st.builds(
            lambda op, x: Cond(f"Items.PRICE {op} {x:g}", "price", op=op, number=x),
            st.sampled_from(list(OPS)),
            numbers,
        ),
        st.builds(
            lambda op, paren: Cond(
                f"Items.PRICE {op} {'($P)' if paren else '$P'}", "price", op=op, placeholder="P"
            ),
            st.sampled_from(list(OPS)),
            st.booleans(),
        ),
    ]
    if sims:
        kinds += [
            st.just(Cond("Items.GENRES IN CurrentItem.GENRES", "cur_genres")),
            st.builds(
                lambda op: Cond(f"Items.PRICE {op} CurrentItem.PRICE", "cur_price", op=op),
                st.sampled_from(list(OPS)),
            ),
        ]
    return st.one_of(kinds)


event_condition = st.one_of(
    st.builds(
        lambda neg, vals: Cond(
            f"Interactions.EVENT_TYPE {'NOT IN' if neg else 'IN'} ({', '.join(vals)})",
            "events",
            neg,
            tuple(v.strip('"') for v in vals),
        ),
        st.booleans(),
        st.lists(
            st.sampled_from(['"click"', '"BUY"', '"view"', '"nope"', '"*"', "*"]),
            min_size=1,
            max_size=2,
        ),
    ),
    st.just(Cond("Interactions.EVENT_TYPE IN ($E)", "events", placeholder="E")),
)


@st.composite
def filters(draw, sims: bool) -> list[Expr]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        cond = event_condition if draw(st.booleans()) else items_condition(sims)
        where = draw(st.lists(st.lists(cond, min_size=1, max_size=2), min_size=1, max_size=2))
        expr = Expr(draw(st.sampled_from(["INCLUDE", "EXCLUDE"])), where)
        expr.placeholders = {c.placeholder for conj in where for c in conj if c.placeholder}
        out.append(expr)
    return out


# placeholder -> (raw filterValues string, parsed value or None when malformed)
VALUE_CHOICES: dict[str, list[tuple[str, Any]]] = {
    "G": [
        ('"a"', ("a",)),
        ('"b","A"', ("b", "A")),
        (quote('q"t') + ', "a,b"', ('q"t', "a,b")),
        ("a", None),
        ('"a', None),
    ],
    "P": [('"2.5"', 2.5), ("1", 1.0), ('"-3"', -3.0), ('"x"', None), ('"1","2"', None)],
    "E": [
        ('"CLICK"', ("click",)),
        ('"buy", "view"', ("buy", "view")),
        ('"*"', ("*",)),
        ("click", None),
    ],
}


@st.composite
def line_values(draw) -> dict[str, tuple[str, Any]]:
    """Per placeholder: missing, empty (= missing), or one of VALUE_CHOICES."""
    out = {}
    for name, choices in VALUE_CHOICES.items():
        pick = draw(st.integers(-2, len(choices) - 1))
        if pick == -1:
            out[name] = ("", None)
        elif pick >= 0:
            out[name] = choices[pick]
    return out


# ------------------------------------------------------------------ the reference


def ref_holds(
    c: Cond, item: str, user: str | None, query: str | None, values: dict, data: Data
) -> bool:
    if c.kind == "events":
        lists = values[c.placeholder] if c.placeholder else c.values
        wanted = {v.lower() for v in lists}
        by_type = data.events(user)
        if c.negate:
            return any(
                item in its for t, its in by_type.items() if t not in wanted and "*" not in wanted
            )
        return any(item in its for t, its in by_type.items() if t in wanted or "*" in wanted)
    if c.kind in ("genres", "item_id"):
        lists = values[c.placeholder] if c.placeholder else c.values
        mine = data.genres.get(item, set()) if c.kind == "genres" else {item}
        hit = bool(mine & set(lists))
        return not hit if c.negate else hit
    if c.kind == "price":
        x = values[c.placeholder] if c.placeholder else c.number
        mine = data.prices.get(item)
        return mine is not None and OPS[c.op](mine, x)
    if c.kind == "cur_genres":
        return bool(data.genres.get(item, set()) & data.genres.get(query or "", set()))
    mine, ref = data.prices.get(item), data.prices.get(query or "")
    return mine is not None and ref is not None and OPS[c.op](mine, ref)


def ref_line(exprs: list[Expr], given: dict[str, tuple[str, Any]]) -> tuple[dict, list[str] | None]:
    """(placeholder values, or the texts one of which the line's error must contain)."""
    used = {p for e in exprs for p in e.placeholders}
    values = {}
    malformed = []
    for name in sorted(used):
        raw, parsed = given.get(name, ("", None))
        if raw == "":
            continue
        if parsed is None:
            malformed.append(f"filterValues.{name}")
        values[name] = parsed
    if malformed:  # any one of them may be named
        return {}, malformed
    for e in exprs:
        if e.action == "INCLUDE" and any(p not in values for p in e.placeholders):
            return {}, ["filterValues has no value for"]
    return values, None


def ref_allowed(
    exprs: list[Expr], item: str, user: str | None, query: str | None, values: dict, data: Data
) -> bool:
    def matches(e: Expr) -> bool:
        return any(
            all(ref_holds(c, item, user, query, values, data) for c in conj) for conj in e.where
        )

    includes = [e for e in exprs if e.action == "INCLUDE"]
    excludes = [e for e in exprs if e.action == "EXCLUDE" and e.placeholders <= set(values)]
    if includes and not any(matches(e) for e in includes):
        return False
    return not any(matches(e) for e in excludes)


# ------------------------------------------------------------------ the test


def train(recipe: str, data: Data, folder: str):
    inter = os.path.join(folder, "interactions.csv")
    with open(inter, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
        w.writerows([u, i, 1_600_000_000 + t, e] for u, i, t, e in data.rows)
    items = os.path.join(folder, "items.csv")
    with open(items, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ITEM_ID", "GENRES", "PRICE"])
        for item, genres in sorted(data.genres.items()):
            price = data.prices[item]
            w.writerow([item, "|".join(sorted(genres)), "" if price is None else f"{price:g}"])
        if not data.genres:
            w.writerow(["c9", "", ""])
    out = os.path.join(folder, "model.npz")
    hp = ("min_cointeraction_count=0",) if recipe == "sims" else ()
    training.train(recipe, inter, out, items=items, hp_pairs=hp, tune=False)
    return solution_mod.load(out)


RECIPE = st.sampled_from(
    ["user-personalization", "popularity-count", "personalized-ranking", "sims"]
)


@settings(
    deadline=None,
    max_examples=200,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    dataset=datasets(),
    recipe=RECIPE,
    n=st.integers(1, 8),
    include_seen=st.booleans(),
)
def test_filtered_lists_match_the_reference(data, dataset, recipe, n, include_seen):
    exprs = data.draw(filters(recipe == "sims"))
    text = " | ".join(e.text for e in exprs)
    ids = ITEMS + COLD + ["zz"]
    lines = []
    for _ in range(data.draw(st.integers(1, 6))):
        user = data.draw(st.sampled_from([*USERS, "nobody", None]))
        if recipe in ("user-personalization", "personalized-ranking") and user is None:
            user = "nobody"
        values = data.draw(line_values())
        item = data.draw(st.sampled_from(ids)) if recipe == "sims" else None
        lst = (
            data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=8))
            if recipe == "personalized-ranking"
            else None
        )
        lines.append((user, item, lst, values))
    with tempfile.TemporaryDirectory() as folder:
        sol = train(recipe, dataset, folder)
    everything = len(sol.item_ids)

    def requests(with_values: bool) -> list[Request]:
        out = []
        for user, item, lst, values in lines:
            obj = (
                {"filterValues": {k: raw for k, (raw, _) in values.items()}} if with_values else {}
            )
            out.append(Request(obj, user=user, item=item, items=lst))
        return out

    plain = Answerer(sol, everything, include_seen=include_seen).answer(requests(False))
    filtered = Answerer(sol, n, include_seen=include_seen, filter_expression=text).answer(
        requests(True)
    )
    assert len(filtered) == len(lines)
    for (user, item, _, given_values), full, got in zip(lines, plain, filtered, strict=True):
        values, error = ref_line(exprs, given_values)
        if error is not None:
            assert isinstance(got, BadLine), (text, given_values, got)
            assert any(e in got.error for e in error), (got.error, error)
            continue
        assert not isinstance(got, BadLine), (text, given_values, got)
        keep = [
            k for k, i in enumerate(full[0]) if ref_allowed(exprs, i, user, item, values, dataset)
        ]
        if recipe != "personalized-ranking":
            keep = keep[:n]
        want = ([full[0][k] for k in keep], [full[1][k] for k in keep])
        assert got == want, (text, user, item, given_values)
