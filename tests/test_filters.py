"""Filter expressions by hand: the parser's accepted forms and errors, filterValues,
the per-event-type history kept in solutions, and evaluation cases worked out on paper."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from personalize_batch import solution as solution_mod
from personalize_batch import training
from personalize_batch.filters import FilterSyntaxError, event_arrays, parse_filter
from personalize_batch.filters.parse import MAX_LENGTH
from personalize_batch.filters.values import parse_number, parse_value_list
from personalize_batch.job.lines import BadLine, Request, check_filter_values
from personalize_batch.job.scoring import Answerer

# ------------------------------------------------------------------ parsing


def test_parses_every_clause_kind():
    f = parse_filter(
        'include itemid where items.genres in ("Action", "Comedy") AND Items.PRICE <= 10.5'
        " OR Items.PRICE > ($P) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($E)"
        ' | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click", *)'
        " | INCLUDE ItemID WHERE Items.GENRES IN CurrentItem.GENRES AND Items.PRICE != $Q"
    )
    assert [e.action for e in f.expressions] == ["INCLUDE", "EXCLUDE", "EXCLUDE", "INCLUDE"]
    first = f.expressions[0]
    assert [[c.field for c in conj] for conj in first.where] == [["GENRES", "PRICE"], ["PRICE"]]
    assert first.where[0][0].values == ("Action", "Comedy")
    assert first.where[0][1].op == "<=" and first.where[0][1].number == 10.5
    assert first.where[1][0].placeholder == "P"
    assert f.expressions[2].where[0][0].values == ("click", "*")
    assert f.expressions[2].where[0][0].op == "NOT IN"
    assert f.expressions[3].where[0][0].current == "GENRES"
    assert f.placeholders == ("P", "E", "Q")


def test_string_escapes_and_positions():
    f = parse_filter('EXCLUDE ItemID WHERE Items.T IN ("say \\"hi\\"", "back\\\\slash", "")')
    assert f.expressions[0].where[0][0].values == ('say "hi"', "back\\slash", "")


@pytest.mark.parametrize(
    "text, pos, message",
    [
        ("   ", 1, "the filter expression is empty"),
        ("INCLUDE ItemID WHERE Items.G IN ('a')", 34, 'unexpected character "\'"'),
        ('INCLUDE ItemID WHERE Items.G IN ("a)', 34, "no closing double quote"),
        ("INCLUDE ItemID WHERE Items.G IN ($)", 34, "expected a placeholder name"),
        ('KEEP ItemID WHERE Items.G IN ("a")', 1, "expected INCLUDE or EXCLUDE, found 'KEEP'"),
        ('INCLUDE UserID WHERE Items.G IN ("a")', 22, "not Items fields"),
        ('INCLUDE ActionID WHERE Items.G IN ("a")', 9, "ActionID is for action recommendations"),
        ('INCLUDE Item WHERE Items.G IN ("a")', 9, "expected ItemID or UserID, found 'Item'"),
        ('INCLUDE ItemID Items.G IN ("a")', 16, "expected WHERE, found 'Items'"),
        ('INCLUDE ItemID WHERE Users.AGE IN ("a")', 22, "need a users dataset"),
        ('INCLUDE ItemID WHERE Genre IN ("a")', 22, "expected Items.FIELD or Interactions.FIELD"),
        ('INCLUDE ItemID WHERE Items IN ("a")', 28, "expected a . and a field name"),
        ('INCLUDE ItemID WHERE Items.G LIKE ("a")', 30, "expected IN, NOT IN or one of"),
        ('INCLUDE ItemID WHERE Items.G NOT ("a")', 34, "expected IN after NOT"),
        ("INCLUDE ItemID WHERE Items.G IN a", 33, "expected ( and a list of quoted values"),
        ("INCLUDE ItemID WHERE Items.G IN (a)", 34, 'expected a quoted value like "Action"'),
        ('INCLUDE ItemID WHERE Items.G IN ("a" "b")', 38, "expected , or ) in the value list"),
        ('INCLUDE ItemID WHERE Items.G IN ("a", $G)', 39, "must be the only value"),
        ("EXCLUDE ItemID WHERE Items.G NOT IN ($G)", 38, "cannot be used with NOT IN"),
        ("INCLUDE ItemID WHERE Items.G IN (*)", 34, "works with Interactions.EVENT_TYPE only"),
        ('INCLUDE ItemID WHERE Items.P < "5"', 32, "expected a number, $PLACEHOLDER"),
        ("INCLUDE ItemID WHERE Items.P < ($P", 35, "expected a )"),
        ('INCLUDE ItemID WHERE Interactions.TIMESTAMP IN ("a")', 35, "EVENT_TYPE only"),
        ("INCLUDE ItemID WHERE Interactions.EVENT_TYPE > 3", 46, "takes IN or NOT IN only"),
        (
            'INCLUDE ItemID WHERE Items.G IN ("a") AND Interactions.EVENT_TYPE IN ("x")',
            43,
            "must all use Items",
        ),
        ('INCLUDE ItemID WHERE Items.G IN ("a") IF CurrentUser.AGE = 3', 39, "IF CurrentUser"),
        ('INCLUDE ItemID WHERE Items.G IN ("a") EXCLUDE', 39, "expected AND, OR, | or the end"),
        ('INCLUDE ItemID WHERE Items.G IN ("a") |', 40, "expected INCLUDE or EXCLUDE"),
        ("INCLUDE ItemID WHERE Items.G NOT IN CurrentItem.G", 37, "take IN, not NOT IN"),
        ("INCLUDE ItemID WHERE Items.G IN CurrentItem", 44, "expected a . and a field name"),
        ("INCLUDE ItemID WHERE Items.G IN CurrentItem.", 45, "expected a field name"),
    ],
)
def test_parse_errors_name_position_and_expectation(text, pos, message):
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.exit_code == 2
    assert info.value.pos + 1 == pos, str(info.value)
    assert message in str(info.value)
    assert str(info.value).startswith(f"--filter: at character {pos}: ")
    if "users dataset" in message:  # one line: nothing in the filter can be changed
        assert "\n" not in str(info.value)
    elif text.strip():  # the caret points at the position
        snippet, caret = str(info.value).splitlines()[1:]
        assert caret.index("^") == snippet.index(text[0]) + pos - 1


def test_length_and_field_limits():
    base = 'EXCLUDE ItemID WHERE Items.G IN ("'
    ok = base + "x" * (MAX_LENGTH - len(base) - 2) + '")'
    assert len(ok) == MAX_LENGTH
    parse_filter(ok)
    with pytest.raises(FilterSyntaxError, match="2501 characters"):
        parse_filter(base + "x" * (MAX_LENGTH - len(base) - 1) + '")')
    eleven = " | ".join(f'EXCLUDE ItemID WHERE Items.F{k} IN ("a")' for k in range(11))
    with pytest.raises(FilterSyntaxError, match="11 distinct dataset fields"):
        parse_filter(eleven)
    ten = " | ".join(f'EXCLUDE ItemID WHERE Items.F{k} IN ("a")' for k in range(10))
    assert len(parse_filter(ten).expressions) == 10
    with pytest.raises(FilterSyntaxError, match="placeholder name of 1-50"):
        parse_filter("EXCLUDE ItemID WHERE Items.G IN ($" + "x" * 51 + ")")


# ------------------------------------------------------------------ filterValues


def test_filter_values_limits():
    check_filter_values({f"K{k}": '"a"' for k in range(25)})
    for bad, message in [
        ("x", "must be an object of strings"),
        ({f"K{k}": '"a"' for k in range(26)}, "26 keys (at most 25)"),
        ({"a-b": '"a"'}, "key 'a-b' must be"),
        ({"k" * 51: '"a"'}, "must be 1-50"),
        ({"K": 5}, "filterValues.K must be a string"),
        ({"K": "x" * 1001}, "1001 characters (at most 1000)"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_filter_values(bad)


def test_value_strings():
    assert parse_value_list("G", '"Action","Comedy"') == ("Action", "Comedy")
    assert parse_value_list("G", ' "a" , "b,c" ') == ("a", "b,c")
    assert parse_value_list("G", '"say \\"hi\\""') == ('say "hi"',)
    for bad in ["Action", '"a",', '"a" "b"', '"a', ","]:
        with pytest.raises(ValueError, match="filterValues.G"):
            parse_value_list("G", bad)
    assert parse_number("P", '"10"') == 10.0
    assert parse_number("P", " -2.5 ") == -2.5
    for bad in ['"1","2"', '"x"', "nan", '"inf"']:
        with pytest.raises(ValueError, match="filterValues.P"):
            parse_number("P", bad)


# ------------------------------------------------------------------ event history


def test_event_history_keeps_the_latest_distinct_items_per_type():
    # rows in (user, time) order; user 0: click a, b, a, c; buy b; user 1: Click c
    users = np.array([0, 0, 0, 0, 0, 1])
    items = np.array([0, 1, 0, 2, 1, 2])
    types = np.array(["click", "click", "click", "click", "buy", "Click"])
    arrays = event_arrays(users, items, types, 2, 3, history=2)
    assert arrays["events_types"].tolist() == ["buy", "click"]

    def rows(a):
        indptr, indices = a["events_indptr"], a["events_indices"]
        return [sorted(indices[indptr[r] : indptr[r + 1]].tolist()) for r in range(4)]

    # (buy, u0), (buy, u1), (click, u0): a and c are the two latest, (click, u1)
    assert rows(arrays) == [[1], [], [0, 2], [2]]
    assert rows(event_arrays(users, items, types, 2, 3, history=0)) == [[1], [], [0, 1, 2], [2]]


# ------------------------------------------------------------------ evaluation by hand


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """u1 clicked a and bought b; u2 viewed c. Items: a (x, price 5), b (y, 15), c (x|y),
    d (only in the items file, price 1)."""
    folder = tmp_path_factory.mktemp("tiny")
    inter, items = folder / "interactions.csv", folder / "items.csv"
    inter.write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,a,1,click\nu1,b,2,buy\nu2,c,3,view\n"
        "u3,a,4,view\nu3,b,5,view\nu3,c,6,view\n"
    )
    with open(items, "w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["ITEM_ID", "G", "PRICE"],
                ["a", "x", "5"],
                ["b", "y", "15"],
                ["c", "x|y", ""],
                ["d", "", "1"],
            ]
        )
    out = {}
    for recipe in ("popularity-count", "sims", "personalized-ranking"):
        path = folder / f"{recipe}.npz"
        hp = ("min_cointeraction_count=0",) if recipe == "sims" else ()
        training.train(recipe, str(inter), str(path), items=str(items), hp_pairs=hp, tune=False)
        out[recipe] = solution_mod.load(str(path))
    return out


def items_of(answer):
    return answer if isinstance(answer, BadLine) else answer[0]


def test_exclude_with_a_missing_placeholder_skips_the_whole_expression(tiny):
    pop = tiny["popularity-count"]
    text = (
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($E) OR Interactions.EVENT_TYPE IN ("buy")'
    )
    answerer = Answerer(pop, 10, include_seen=True, filter_expression=text)
    got = answerer.answer(
        [Request({}, user="u1"), Request({"filterValues": {"E": '"CLICK"'}}, user="u1")]
    )
    assert items_of(got[0]) == ["a", "b", "c", "d"]  # skipped: nothing excluded
    assert items_of(got[1]) == ["c", "d"]  # a clicked, b bought


def test_not_in_and_missing_values(tiny):
    pop = tiny["popularity-count"]

    def ask(text):
        return items_of(
            Answerer(pop, 10, include_seen=True, filter_expression=text).answer(
                [Request({}, user="u1")]
            )[0]
        )

    assert ask('INCLUDE ItemID WHERE Items.G NOT IN ("x")') == ["b", "d"]  # d has no value
    assert ask('INCLUDE ItemID WHERE Items.G IN ("x")') == ["a", "c"]
    assert ask("INCLUDE ItemID WHERE Items.PRICE != 5") == ["b", "d"]  # c has no price
    assert ask(
        'INCLUDE ItemID WHERE Items.PRICE < 10 AND Items.G IN ("x") OR Items.ITEM_ID IN ("d")'
    ) == ["a", "d"]
    assert ask('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("buy")') == ["a"]
    assert ask('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")') == ["a", "b"]
    # include A | include B = A or B; minus excludes
    assert ask(
        'INCLUDE ItemID WHERE Items.G IN ("y") | INCLUDE ItemID WHERE Items.PRICE < 2'
        ' | EXCLUDE ItemID WHERE Items.ITEM_ID IN ("c")'
    ) == ["b", "d"]


def test_current_item_for_sims(tiny):
    sims = tiny["sims"]
    answerer = Answerer(
        sims,
        10,
        include_seen=False,
        filter_expression="INCLUDE ItemID WHERE Items.G IN CurrentItem.G",
    )
    got = answerer.answer([Request({}, item="a"), Request({}, item="b"), Request({}, item="zz")])
    assert set(items_of(got[0])) == {"c"}  # shares x with a
    assert set(items_of(got[1])) == {"c"}
    assert items_of(got[2]) == []  # an unknown item has no values
    cheaper = Answerer(
        sims,
        10,
        include_seen=False,
        filter_expression="INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE",
    )
    assert set(items_of(cheaper.answer([Request({}, item="b")])[0])) == {"a", "d"}
    # sims lines may carry a userId for interaction filters
    seen = Answerer(
        sims,
        10,
        include_seen=False,
        filter_expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    )
    assert "c" not in items_of(seen.answer([Request({}, user="u2", item="a")])[0])


def test_ranking_drops_filtered_items_and_keeps_scores(tiny):
    rank = tiny["personalized-ranking"]
    req = Request({}, user="u1", items=["a", "b", "c", "new"])
    full = Answerer(rank).answer([req])[0]
    got = Answerer(rank, filter_expression='EXCLUDE ItemID WHERE Items.G IN ("y")').answer([req])
    keep = [k for k, i in enumerate(full[0]) if i not in ("b", "c")]
    assert got[0] == ([full[0][k] for k in keep], [full[1][k] for k in keep])
    assert "new" in got[0][0]  # an unknown item has no G value: not excluded
    inc = Answerer(rank, filter_expression='INCLUDE ItemID WHERE Items.G IN ("y")').answer([req])
    assert sorted(inc[0][0]) == ["b", "c"]


def test_solution_field_errors(tiny):
    pop = tiny["popularity-count"]
    with pytest.raises(FilterSyntaxError, match="no item field GENRES .it has: ITEM_ID, G, PRICE"):
        Answerer(pop, filter_expression='EXCLUDE ItemID WHERE Items.GENRES IN ("x")')
    with pytest.raises(FilterSyntaxError, match="CurrentItem works with related-items"):
        Answerer(pop, filter_expression="INCLUDE ItemID WHERE Items.G IN CurrentItem.G")


def test_current_item_with_another_field():
    """Items.G IN CurrentItem.H matches the strings of H against the values of G."""
    from personalize_batch.filters import Catalogue, CompiledFilter

    cat = Catalogue(
        np.array(["a", "b", "c"]), {"G": np.array(["x|y", "z", ""]), "H": np.array(["z", "x", "q"])}
    )
    f = CompiledFilter(parse_filter("INCLUDE ItemID WHERE Items.G IN CurrentItem.H"), cat, "sims")
    blocked = f.mask([{}, {}, {}], queries=np.array([0, 1, -1])).blocked()
    assert (~blocked).tolist() == [[False, True, False], [True, False, False], [False] * 3]
