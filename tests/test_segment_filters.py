"""Filters on segment jobs (INCLUDE / EXCLUDE UserID over the users' interactions with
the line's items): the blockwise scorer against a slow reference that scores every user
one by one, drops the users the filter leaves out (written from the contract with sets
and loops; the expression text never goes through it) and sorts; the parser's UserID
expressions (a property test), attribute lines, and the misuses refused up front."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_segments import RULES, reference

from personalize_batch import recipes
from personalize_batch.cli import main
from personalize_batch.data import Interactions
from personalize_batch.errors import UsageError
from personalize_batch.filters import FilterSyntaxError, event_arrays, parse_filter
from personalize_batch.job.lines import BadLine
from personalize_batch.job.scoring import Answerer
from personalize_batch.recipes import segments
from personalize_batch.recipes.segments import Affinity
from personalize_batch.solution import build_meta, in_memory, model_arrays

TYPES = ["click", "Buy", "buy", "view"]  # Buy and buy are one type (case-insensitive)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Data:
    """Interactions as rows (user, item, event type) and the solution trained on them."""

    rows: list[tuple[int, int, str]]
    n_users: int
    n_items: int

    def interactions(self) -> Interactions:
        u, i, t = zip(*self.rows, strict=True)
        return Interactions(
            user_ids=np.array([f"u{k:03d}" for k in range(self.n_users)]),
            item_ids=np.array([f"i{k:03d}" for k in range(self.n_items)]),
            users=np.array(u, dtype=np.int32),
            items=np.array(i, dtype=np.int32),
            timestamps=np.arange(len(u), dtype=np.int64),
            event_types=np.array(t),
            has_timestamps=False,
        )

    def solution(self, rule, recipe: str = "item-affinity", items=None):
        data = self.interactions()
        hp = recipes.recipe(recipe).hyperparameters.defaults()
        arrays = model_arrays(recipe, data, hp)
        arrays.update(rule.arrays())
        arrays.update(
            event_arrays(data.users, data.items, data.event_types, self.n_users, self.n_items)
        )
        for name, column in (items or {}).items():
            arrays[f"items_{name}"] = np.array(column)
        return in_memory(build_meta(recipe, hp, {}), arrays)

    def interacted(self, user: int, items: set[int], types: set[str] | None, negate: bool):
        """Whether the user interacted with one of `items` under a type of `types`
        (None: any type; negate: a type not among them), ignoring case."""
        for u, i, t in self.rows:
            if u != user or i not in items:
                continue
            if types is None or (t.lower() in types) != negate:
                return True
        return False


@st.composite
def datasets(draw) -> Data:
    n_users, n_items = draw(st.integers(4, 30)), draw(st.integers(3, 9))
    rows = []
    for u in range(n_users):
        for _ in range(draw(st.integers(1, 6))):
            rows.append((u, draw(st.integers(0, n_items - 1)), draw(st.sampled_from(TYPES))))
    return Data(rows, n_users, n_items)


@dataclass
class Cond:
    values: tuple[str, ...] | None  # None: a placeholder
    negate: bool
    placeholder: str | None = None

    @property
    def text(self) -> str:
        op = "NOT IN" if self.negate else "IN"
        if self.placeholder is not None:
            return f"Interactions.EVENT_TYPE IN (${self.placeholder})"
        return f"Interactions.EVENT_TYPE {op} ({', '.join(self.values)})"


@dataclass
class Expr:
    action: str
    where: list[list[Cond]]

    @property
    def text(self) -> str:
        ors = " OR ".join(" AND ".join(c.text for c in conj) for conj in self.where)
        return f"{self.action} UserID WHERE {ors}"

    @property
    def placeholders(self) -> set[str]:
        return {c.placeholder for conj in self.where for c in conj if c.placeholder}


def conditions() -> st.SearchStrategy[Cond]:
    listed = st.lists(st.sampled_from([*TYPES, "never"]), min_size=1, max_size=3)
    literal = st.builds(
        lambda vals, neg, star: Cond(("*",) if star else tuple(map(quote, vals)), neg),
        listed,
        st.booleans(),
        st.integers(0, 5).map(lambda k: k == 0),
    )
    held = st.sampled_from(["T", "U"]).map(lambda name: Cond(None, False, name))
    return st.one_of(literal, held)


def expressions() -> st.SearchStrategy[list[Expr]]:
    conj = st.lists(conditions(), min_size=1, max_size=2)
    expr = st.builds(
        Expr, st.sampled_from(["INCLUDE", "EXCLUDE"]), st.lists(conj, min_size=1, max_size=2)
    )
    return st.lists(expr, min_size=1, max_size=3)


def cond_holds(data: Data, cond: Cond, user: int, items: set[int], values: dict) -> bool:
    if cond.placeholder is not None:
        types = {v.lower() for v in values[cond.placeholder]}
        return data.interacted(user, items, types, False)
    if "*" in cond.values:
        return data.interacted(user, items, None, False) if not cond.negate else False
    types = {json.loads(v).lower() for v in cond.values}
    return data.interacted(user, items, types, cond.negate)


def allowed(data: Data, exprs: list[Expr], items: set[int], values: dict):
    """The contract: allowed = (include_1 | include_2 ...) - (exclude_1 | exclude_2 ...),
    an EXCLUDE expression with a placeholder the line has no value for skipped."""

    def matches(expr: Expr, user: int) -> bool:
        return any(
            all(cond_holds(data, c, user, items, values) for c in conj) for conj in expr.where
        )

    includes = [e for e in exprs if e.action == "INCLUDE"]
    excludes = [e for e in exprs if e.action == "EXCLUDE" and e.placeholders <= set(values)]

    def ok(user: int) -> bool:
        if includes and not any(matches(e, user) for e in includes):
            return False
        return not any(matches(e, user) for e in excludes)

    return ok


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    dataset=datasets(),
    rule=st.sampled_from(RULES),
    k=st.integers(1, 35),
    include_seen=st.booleans(),
)
def test_filtered_segments_match_the_reference(data, dataset, rule, k, include_seen):
    exprs = data.draw(expressions())
    text = " | ".join(e.text for e in exprs)
    sol = dataset.solution(rule)
    affinity = Affinity(sol.arrays, rule)
    answerer = Answerer(sol, k, include_seen=include_seen, filter_expression=text)
    lines = []
    for _ in range(data.draw(st.integers(1, 5))):
        item = data.draw(st.integers(0, dataset.n_items - 1))
        given_values = data.draw(
            st.dictionaries(
                st.sampled_from(["T", "U"]),
                st.lists(st.sampled_from(TYPES + ["never"]), min_size=1, max_size=2),
            )
        )
        obj = {"itemId": f"i{item:03d}"}
        if given_values:
            raw = {n: ",".join(quote(v) for v in vs) for n, vs in given_values.items()}
            obj["filterValues"] = raw
        lines.append((item, given_values, answerer.parse(json.dumps(obj).encode())))
    got = answerer.answer([r for _, _, r in lines])
    for (item, values, _), answer in zip(lines, got, strict=True):
        needed = {p for e in exprs if e.action == "INCLUDE" for p in e.placeholders}
        if not needed <= set(values):
            assert isinstance(answer, BadLine) and "filterValues has no value" in answer.error
            continue
        ok = allowed(dataset, exprs, {item}, values)
        want_users, want_scores = reference(affinity, item, k, not include_seen, ok)
        users, scores = answer
        assert users == [f"u{u:03d}" for u in want_users], (text, values)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-12)


def test_user_blocks_and_groups_of_lines_change_no_byte(monkeypatch):
    """The filter is evaluated a block of users at a time and for groups of lines: any
    block size and group size give the same answers."""
    rng = np.random.default_rng(3)
    rows = [(int(u), int(rng.integers(0, 8)), str(rng.choice(TYPES))) for u in range(50)]
    rows += [(int(rng.integers(0, 50)), int(rng.integers(0, 8)), "view") for _ in range(150)]
    dataset = Data(rows, 50, 8)
    text = 'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("buy") | INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("view", "click")'  # noqa: E501
    sol = dataset.solution(RULES[0])
    requests = [
        Answerer(sol, 12, include_seen=True).parse(json.dumps({"itemId": f"i{i:03d}"}).encode())
        for i in range(8)
    ]
    first = Answerer(sol, 12, include_seen=True, filter_expression=text).answer(requests)
    monkeypatch.setattr(segments, "USER_BLOCK", 7)
    monkeypatch.setattr(segments, "LIST_BUDGET", 24)
    assert Answerer(sol, 12, include_seen=True, filter_expression=text).answer(requests) == first
    assert any(len(users) for users, _ in first)


def test_attribute_lines_filter_the_users_of_any_matching_item():
    rows = [(0, 0, "buy"), (1, 1, "buy"), (2, 2, "view"), (3, 0, "view"), (3, 2, "view")]
    rows += [(u, 3, "view") for u in range(4)] + [(4, 1, "view"), (5, 2, "view")]
    dataset = Data(rows, 6, 4)
    items = {"GENRES": ["a", "a", "b", "c"]}
    sol = dataset.solution(RULES[0], "item-attribute-affinity", items)
    answerer = Answerer(
        sol,
        6,
        include_seen=True,
        filter_expression='EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("buy", "click")',
    )
    line = answerer.parse(json.dumps({"itemAttributes": 'ITEMS.GENRES = "a"'}).encode())
    users, _ = answerer.answer([line])[0]
    assert "u000" not in users and "u001" not in users  # bought item 0 or item 1
    assert set(users) == {"u002", "u003", "u004", "u005"}


# -- the parser -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(expressions())
def test_user_id_expressions_parse_as_written(exprs):
    text = " | ".join(e.text for e in exprs)
    filt = parse_filter(text)
    assert filt.target == "UserID"
    assert [e.action for e in filt.expressions] == [e.action for e in exprs]
    for parsed, drawn in zip(filt.expressions, exprs, strict=True):
        assert len(parsed.where) == len(drawn.where)
        for pconj, dconj in zip(parsed.where, drawn.where, strict=True):
            for pc, dc in zip(pconj, dconj, strict=True):
                assert pc.dataset == "Interactions" and pc.field == "EVENT_TYPE"
                assert pc.placeholder == dc.placeholder
                if dc.values is not None:
                    want = ["*" if v == "*" else json.loads(v) for v in dc.values]
                    assert list(pc.values) == want
                    assert pc.op == ("NOT IN" if dc.negate else "IN")


@pytest.mark.parametrize(
    ("text", "message", "one_line"),
    [
        ('EXCLUDE UserID WHERE Users.AGE IN ("30")', "needs a users dataset", True),
        ('INCLUDE UserID WHERE Items.GENRES IN ("a")', "not Items fields", False),
        (
            'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("a") | '
            'EXCLUDE ItemID WHERE Items.G IN ("a")',
            "the first filters UserID, this one ItemID",
            False,
        ),
        ('INCLUDE ActionID WHERE Items.G IN ("a")', "action recommendations", False),
    ],
)
def test_user_id_misuse_is_named(text, message, one_line):
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert message.replace("needs", "need") in str(info.value) or message in str(info.value)
    assert ("\n" not in str(info.value)) == one_line


def test_a_filter_of_the_other_kind_is_refused_by_the_scorer_side():
    dataset = Data([(0, 0, "buy"), (1, 1, "view"), (2, 0, "view")], 3, 2)
    sol = dataset.solution(RULES[0])
    with pytest.raises(UsageError, match="an ItemID filter takes items out of recommendations"):
        Answerer(
            sol,
            3,
            include_seen=False,
            filter_expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("buy")',
        )


# -- through pbatch run ---------------------------------------------------------------------


def pbatch(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="pbatch")


EXCLUDE_RATED = 'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("rating")'


def test_a_filtered_segment_job_is_the_same_bytes_for_any_workers(segment_solutions, tmp_path):
    data = [{"itemId": i} for i in segment_solutions["items"][:30]]
    data[3]["filterValues"] = {"T": '"rating"'}
    (tmp_path / "in.json").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    (tmp_path / "f.txt").write_text(
        EXCLUDE_RATED.replace('("rating")', "($T)") + " | " + EXCLUDE_RATED.replace("rating", "x")
    )
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        result = pbatch(
            "run",
            "-s",
            segment_solutions["item-affinity"],
            "-i",
            tmp_path / "in.json",
            "-o",
            out,
            "-n",
            "10",
            "--include-seen",
            "--filter-file",
            tmp_path / "f.txt",
            "--workers",
            workers,
        )
        assert result.exit_code == 0, result.output
        outs.append((out / "in.json.out").read_bytes())
    assert outs[0] == outs[1]
    lines = [json.loads(x) for x in outs[0].decode().splitlines()]
    assert all(len(x["output"]["recommendedUsers"]) == 10 for x in lines)


def test_filters_of_the_wrong_kind_are_refused_up_front(segment_solutions, solutions, tmp_path):
    (tmp_path / "items.json").write_text('{"itemId": "1300854"}\n')
    (tmp_path / "users.json").write_text('{"userId": "653"}\n')
    refused = [
        (
            segment_solutions["item-affinity"],
            "items.json",
            'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating")',
            "an ItemID filter takes items out of recommendations, but an item-affinity "
            "solution answers users",
        ),
        (
            solutions["user-personalization"],
            "users.json",
            EXCLUDE_RATED,
            "a UserID filter selects the users of a batch segment job, but a "
            "user-personalization solution answers items",
        ),
        (
            segment_solutions["item-affinity"],
            "items.json",
            'EXCLUDE UserID WHERE Users.AGE IN ("30")',
            "Users conditions need a users dataset, which pbatch does not have",
        ),
    ]
    for solution, src, text, message in refused:
        out = tmp_path / "out"
        result = pbatch("run", "-s", solution, "-i", tmp_path / src, "-o", out, "--filter", text)
        assert result.exit_code == 2, result.output
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert not out.exists()


def test_a_filtered_segment_holds_lists_and_a_block_never_users_by_items():
    import tracemalloc

    from personalize_batch.filters import Catalogue, CompiledFilter
    from personalize_batch.recipes.catalogue import Events
    from personalize_batch.recipes.numeric import seen_arrays
    from personalize_batch.recipes.segments import Rule, one_hot

    rng = np.random.default_rng(0)
    n_users, n_items, rows = 60_000, 3_000, 240_000  # users x items in float64: 1.4 GB
    users = np.sort(rng.integers(0, n_users, rows))
    items = np.minimum(rng.zipf(1.3, rows) - 1, n_items - 1)
    types = rng.choice(["buy", "view"], rows)
    arrays = {
        "user_ids": np.arange(n_users).astype(str),
        "item_ids": np.arange(n_items).astype(str),
        **seen_arrays(users, items, n_users, n_items),
    }
    ev = event_arrays(users, items, types, n_users, n_items)
    events = Events(ev["events_types"], ev["events_indptr"], ev["events_indices"], n_users, n_items)
    catalogue = Catalogue(arrays["item_ids"], {}, events)
    text = (
        'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("buy") | '
        'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("view") OR '
        'Interactions.EVENT_TYPE NOT IN ("view")'
    )
    compiled = CompiledFilter(parse_filter(text), catalogue, "item-affinity")
    affinity = Affinity(arrays, Rule("cooccurrence", 0.5, 0.5))
    q = one_hot(np.arange(16), n_items)  # the most popular items: dense columns
    tracemalloc.start()
    try:
        got, _, lengths = affinity.rank_users(q, 1_000, False, compiled.user_filter([{}] * 16))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20
    bought = events.span(events.types.index("buy"), 0, n_users).tocsc()
    viewed = events.span(events.types.index("view"), 0, n_users).tocsc()
    for line in range(16):  # the item's users who did not buy it, as many as there are
        allowed = set(viewed[:, line].indices) - set(bought[:, line].indices)
        assert lengths[line] == min(1_000, len(allowed))
        assert set(got[line, : lengths[line]].tolist()) <= allowed
