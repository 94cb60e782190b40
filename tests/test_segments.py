"""User segments (item-affinity, item-attribute-affinity): the blockwise scorer against a
slow reference that ranks users one by one, chunking, unknown items, attribute
expressions (a property test of the parser), the offline metrics and the rule choice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize_batch import recipes
from personalize_batch.data import Interactions
from personalize_batch.data.splits import split_segment
from personalize_batch.recipes import attributes, item_affinity, segments
from personalize_batch.recipes.attributes import ExpressionError, parse, unparse
from personalize_batch.recipes.segments import Affinity, Rule, one_hot
from personalize_batch.recipes.validation import segment_metrics
from personalize_batch.solution import build_meta, in_memory, model_arrays

# -- data -------------------------------------------------------------------------------


def interactions(seed: int = 0, n_users: int = 60, n_items: int = 25, timed: bool = False):
    """Users in two tastes (even / odd items) with random history lengths."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        taste = np.arange(u % 2, n_items, 2)
        length = int(rng.integers(1, 9))
        mine = rng.choice(taste, size=min(length, len(taste)), replace=False)
        rows += [(u, int(i), 100 * u + k) for k, i in enumerate(mine)]
    u, i, t = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    return Interactions(
        user_ids=np.array([f"u{k:03d}" for k in range(n_users)]),
        item_ids=np.array([f"i{k:03d}" for k in range(n_items)]),
        users=u.astype(np.int32),
        items=i.astype(np.int32),
        timestamps=t if timed else np.arange(len(u), dtype=np.int64),
        event_types=np.array([""] * len(u)),
        has_timestamps=timed,
    )


def solution(recipe: str = "item-affinity", data=None, rule: Rule | None = None, items=None):
    data = interactions() if data is None else data
    hp = recipes.recipe(recipe).hyperparameters.defaults()
    arrays = model_arrays(recipe, data, hp)
    if rule is not None:
        arrays.update(rule.arrays())
    for name, column in (items or {}).items():
        arrays[f"items_{name}"] = np.array(column)
    return in_memory(build_meta(recipe, hp, {}), arrays)


RULES = [
    Rule("cooccurrence", 0.0, 0.5),
    Rule("cooccurrence", 1.0, 1.0),
    Rule("cooccurrence", -0.5, 0.5),
    Rule("neighbours", 0.5),
    Rule("neighbours+item-model", 0.0),
]

# -- the reference: one user at a time ----------------------------------------------------


def reference(
    affinity: Affinity, item: int, k: int, exclude: bool, allowed=None
) -> tuple[list, list]:
    """Each user's affinity for `item` summed item by item, in Python; the scored users
    by affinity (then index), then the others most active first. `allowed(u)`: whether
    a filter lets the line name user u (None: every user)."""
    x = affinity.x
    histories = [x.indices[x.indptr[u] : x.indptr[u + 1]].tolist() for u in range(x.shape[0])]
    rule = affinity.rule
    holders = [sum(item_ in h for h in histories) for item_ in range(affinity.n_items)]

    def weight(h: int) -> float:
        if affinity.m is not None:
            return float(affinity.m[h, item])
        if h == item:
            return 0.0
        both = sum(1 for hist in histories if h in hist and item in hist)
        return both * float(np.power(max(holders[h], 1.0), -rule.cooccurrence_exponent))

    column = {h: weight(h) for h in range(affinity.n_items)}
    if affinity.m is None:  # co-occurrence keeps the strongest items only
        strongest = sorted((h for h in column if column[h] != 0), key=lambda h: (-column[h], h))
        cut = set(strongest[segments.COOCCURRENCE_KEPT :])
        column = {h: 0.0 if h in cut else v for h, v in column.items()}

    def m(h: int) -> float:
        return column[h]

    scored, others = [], []
    for u, hist in enumerate(histories):
        if exclude and item in hist:
            continue
        if allowed is not None and not allowed(u):
            continue
        total = 0.0
        for h in sorted(hist):
            total += m(h)
        value = total * affinity.user_weight[u]
        (scored if value > 0 else others).append((u, value))
    grand = 0.0
    for _, v in scored:
        grand += v
    scored.sort(key=lambda p: (-p[1], p[0]))
    others.sort(key=lambda p: (-len(histories[p[0]]), p[0]))
    ranked = scored + others
    users = [u for u, _ in ranked[:k]]
    shares = [v / grand if v > 0 else 0.0 for _, v in ranked[:k]]
    return users, shares


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.source}-{r.activity_exponent}")
def test_blockwise_scorer_matches_one_user_at_a_time(rule):
    sol = solution(rule=rule)
    affinity = Affinity(sol.arrays, rule)
    items = np.arange(affinity.n_items)
    for k, exclude in ((7, True), (60, True), (500, False)):
        users, scores, lengths = affinity.rank_users(one_hot(items, affinity.n_items), k, exclude)
        for i in items.tolist():
            want_users, want_scores = reference(affinity, i, k, exclude)
            n = lengths[i]
            assert users[i, :n].tolist() == want_users
            np.testing.assert_allclose(scores[i, :n], want_scores, rtol=1e-12, atol=0)


@settings(max_examples=15, deadline=None)
@given(
    st.integers(0, 10_000),
    st.sampled_from(RULES),
    st.integers(1, 70),
    st.booleans(),
)
def test_blockwise_scorer_matches_the_reference_on_random_data(seed, rule, k, exclude):
    data = interactions(seed, n_users=int(seed % 40) + 5, n_items=12)
    affinity = Affinity(solution(data=data, rule=rule).arrays, rule)
    items = np.random.default_rng(seed).choice(12, size=4, replace=False)
    users, scores, lengths = affinity.rank_users(one_hot(items, 12), k, exclude)
    for line, i in enumerate(items.tolist()):
        want_users, want_scores = reference(affinity, i, k, exclude)
        n = lengths[line]
        assert users[line, :n].tolist() == want_users
        np.testing.assert_allclose(scores[line, :n], want_scores, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kept", [1, 3, 6])
def test_cooccurrence_keeps_the_strongest_items_of_a_line(monkeypatch, kept):
    monkeypatch.setattr(segments, "COOCCURRENCE_KEPT", kept)
    rule = Rule("cooccurrence", 0.5, 1.0)
    affinity = Affinity(solution(rule=rule).arrays, rule)
    g = affinity.columns(one_hot(np.arange(25), 25)).tocsc()
    assert np.diff(g.indptr).max() <= kept
    users, scores, lengths = affinity.rank_users(one_hot(np.arange(25), 25), 40, True)
    for i in range(25):
        want_users, want_scores = reference(affinity, i, 40, True)
        assert users[i, : lengths[i]].tolist() == want_users
        np.testing.assert_allclose(scores[i, : lengths[i]], want_scores, rtol=1e-12, atol=0)


def test_chunking_and_pool_cuts_change_no_byte(monkeypatch):
    sol = solution(rule=Rule("cooccurrence", 0.5, 0.5))
    scorer = recipes.recipe("item-affinity").scorer(sol)
    items = np.array([3, -1, 0, 7, 7, 24, 1, 12], dtype=np.int64)
    whole = scorer.recommend(items, 20, False)
    monkeypatch.setattr(segments, "POOL_FACTOR", 0)  # cut the pool after every block
    monkeypatch.setattr(segments, "LIST_BUDGET", 40)  # two lines per pass
    scorer = recipes.recipe("item-affinity").scorer(sol)
    parts = [scorer.recommend(items[s : s + 3], 20, False) for s in range(0, len(items), 3)]
    for got, part in zip(whole, zip(*parts, strict=True), strict=True):
        assert np.concatenate(part).tobytes() == got.tobytes()


@pytest.mark.parametrize("rule", RULES[:2] + RULES[3:4], ids=lambda r: r.source)
def test_ties_across_blocks_and_cuts_go_to_the_lower_user(monkeypatch, rule):
    monkeypatch.setattr(segments, "USER_BLOCK", 5)  # ties meet across many blocks
    monkeypatch.setattr(segments, "POOL_FACTOR", 0)  # and the pool is cut after each
    data = interactions(seed=7, n_users=80, n_items=10)  # few items: many equal histories
    affinity = Affinity(solution(data=data, rule=rule).arrays, rule)
    users, scores, lengths = affinity.rank_users(one_hot(np.arange(10), 10), 30, True)
    for i in range(10):
        want_users, want_scores = reference(affinity, i, 30, True)
        assert users[i, : lengths[i]].tolist() == want_users
        np.testing.assert_allclose(scores[i, : lengths[i]], want_scores, rtol=1e-12)


def test_user_blocks_change_no_list(monkeypatch):
    sol = solution(rule=Rule("neighbours", 1.0))
    items = np.arange(25, dtype=np.int64)
    whole = recipes.recipe("item-affinity").scorer(sol).recommend(items, 30, False)
    monkeypatch.setattr(segments, "USER_BLOCK", 7)
    blocks = recipes.recipe("item-affinity").scorer(sol).recommend(items, 30, False)
    assert blocks[0].tobytes() == whole[0].tobytes()
    assert blocks[2].tobytes() == whole[2].tobytes()
    np.testing.assert_allclose(blocks[1], whole[1], rtol=1e-12)


def test_holders_are_left_out_unless_seen_items_are_kept():
    sol = solution(rule=Rule("cooccurrence", 0.0, 0.5))
    scorer = recipes.recipe("item-affinity").scorer(sol)
    x = scorer.affinity.x
    holders = set(x[:, 4].nonzero()[0].tolist())
    users, _, lengths = scorer.recommend(np.array([4]), 60, False)
    assert not holders & set(users[0, : lengths[0]].tolist())
    assert lengths[0] == 60 - len(holders)
    users, _, lengths = scorer.recommend(np.array([4]), 60, True)
    assert holders <= set(users[0, : lengths[0]].tolist())


def test_same_taste_users_come_first():
    sol = solution(rule=Rule("cooccurrence", 0.0, 0.5))
    users, scores, lengths = (
        recipes.recipe("item-affinity").scorer(sol).recommend(np.array([2, 3]), 10, False)
    )
    assert all(u % 2 == 0 for u in users[0].tolist())  # item 2: even users' taste
    assert all(u % 2 == 1 for u in users[1].tolist())
    assert (np.diff(scores, axis=1) <= 0).all()
    assert 0 < scores.sum(axis=1).max() <= 1.0


def test_unknown_item_is_a_problem_and_an_empty_answer():
    scorer = recipes.recipe("item-affinity").scorer(solution())
    items = np.array([-1, 5], dtype=np.int64)
    assert scorer.problems(items) == [item_affinity.UNKNOWN_ITEM, None]
    users, _, lengths = scorer.recommend(items, 5, False)
    assert lengths.tolist() == [0, 5]


def test_the_rule_is_chosen_and_kept_in_the_solution():
    data = interactions(n_users=400, n_items=60)
    rule, report = item_affinity.choose_rule(
        data, recipes.recipe("item-affinity").hyperparameters.defaults()
    )
    assert rule in item_affinity.candidates()
    assert len(report["rules"]) == len(item_affinity.candidates())
    arrays = model_arrays(
        "item-affinity", data, recipes.recipe("item-affinity").hyperparameters.defaults()
    )
    assert Rule.from_arrays(arrays) == rule


def test_too_little_data_takes_the_default_rule():
    rule, report = item_affinity.choose_rule(
        interactions(n_users=6, n_items=4),
        recipes.recipe("item-affinity").hyperparameters.defaults(),
    )
    assert rule == item_affinity.DEFAULT_RULE and "fewer" in report["reason"]


# -- offline metrics -------------------------------------------------------------------


def test_segment_metrics_by_hand():
    lists = [np.array([1, 2, 3]), np.array([4, 5, 6]), np.array([7, 8, 9])]
    relevant = [np.array([2, 10]), np.array([11]), np.array([7, 8, 9, 12])]
    # top 2: item 0 finds 2 of min(2, 2); item 1 none; item 2 finds 7 and 8 of min(4, 2)
    m = segment_metrics(lists, relevant, 2)
    assert m == {"recall_at_1_percent": round((0.5 + 0 + 1) / 3, 6), "hit_at_1_percent": 0.666667}


def test_segment_split_holds_out_the_newest_fifth_only_when_time_matters():
    random_split = split_segment(interactions(n_users=200), seed=1)
    assert random_split.info["held"] == "random"
    assert random_split.info["split"] == "segment"
    held = sum(len(t) for t in random_split.truths)
    assert 0 < held < random_split.info["trainingInteractions"]


def test_validation_measures_the_recipe_on_a_split():
    data = interactions(n_users=300, n_items=40)
    split = split_segment(data, 0)
    from personalize_batch.evaluation import score_split

    metrics = score_split(
        "item-affinity", split, recipes.recipe("item-affinity").hyperparameters.defaults()
    )
    assert set(metrics) == {"recall_at_1_percent", "hit_at_1_percent"}
    assert 0 < metrics["recall_at_1_percent"] <= metrics["hit_at_1_percent"] <= 1


# -- attribute expressions ----------------------------------------------------------------

values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
field_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True).filter(
    lambda f: f not in ("AND", "OR", "ITEMS")
)
leaves = st.tuples(st.just("="), field_names, values)
trees = st.recursive(
    leaves,
    lambda inner: st.tuples(
        st.sampled_from(["AND", "OR"]), st.lists(inner, min_size=2, max_size=3).map(tuple)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(trees)
def test_an_expression_round_trips(tree):
    assert parse(unparse(tree)) == tree


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='ITEMSgenres.=" \\()ANDORx\n', max_size=60) | st.text(max_size=40))
def test_any_text_parses_or_says_why(text):
    try:
        tree = parse(text)
    except ExpressionError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert parse(unparse(tree)) == tree


def test_and_binds_tighter_than_or_and_names_are_case_insensitive():
    tree = parse('items.Genre = "a" or ITEMS.genre = "b" AND ITEMS.GENRE = "c\\"d"')
    assert tree == (
        "OR",
        (("=", "GENRE", "a"), ("AND", (("=", "GENRE", "b"), ("=", "GENRE", 'c"d')))),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ITEMS.genres = "Comedy" AND', "at character 28, found the end"),
        ("ITEMS.genres = Comedy", 'expected a quoted value, like "Comedy" at character 16'),
        ('ITEMS.genres = "Comedy', "unterminated string starting at character 16"),
        ('(ITEMS.genres = "x"', "expected ')' at character 20"),
        ('genres = "x"', "expected ITEMS.<field>"),
        ("", "expression is empty"),
        ('ITEMS.genres != "x"', "unexpected '!' at character 14"),
    ],
)
def test_syntax_errors_say_where(text, message):
    with pytest.raises(ExpressionError, match=None) as info:
        parse(text)
    assert message in str(info.value)


GENRES = {"GENRES": ["A|B", "A", "B", "C", ""] * 5, "TITLE": [f"t{k}" for k in range(25)]}


def attribute_scorer(items=GENRES):
    sol = solution("item-attribute-affinity", rule=Rule("cooccurrence", 0.0, 0.5), items=items)
    return recipes.recipe("item-attribute-affinity").scorer(sol)


def test_attribute_lines_sum_the_matching_items():
    scorer = attribute_scorer()
    texts = [
        'ITEMS.genres = "A" AND ITEMS.genres = "B"',
        'ITEMS.GENRES = "C" OR ITEMS.title = "t1"',
    ]
    assert scorer.problems(texts) == [None, None]
    users, scores, lengths = scorer.recommend(texts, 60, False)
    assert lengths.tolist() == [60, 60]  # nobody holds every matching item
    # the same as summing item-affinity's affinities for the matching items
    affinity = scorer.affinity
    matching = [np.arange(0, 25, 5), np.array([1, 3, 8, 13, 18, 23])]
    for line, items in enumerate(matching):
        total = sum(_raw(affinity, i) for i in items.tolist())
        scored = int((total > 0).sum())
        got = users[line, :scored]
        assert set(got.tolist()) == set(np.flatnonzero(total > 0).tolist())
        assert (np.diff(total[got]) <= 1e-12 * total.max()).all()  # best first
        np.testing.assert_allclose(scores[line, :scored], total[got] / total.sum(), rtol=1e-9)


def _raw(affinity: Affinity, item: int) -> np.ndarray:
    """Every user's affinity for one item."""
    g = affinity.columns(one_hot(np.array([item]), affinity.n_items))
    return (affinity.x @ g).toarray().ravel() * affinity.user_weight


def test_attribute_errors_are_lines_naming_the_problem():
    scorer = attribute_scorer()
    got = scorer.problems(['ITEMS.mood = "dark"', 'ITEMS.genres = "Z"', 'ITEMS.genres = "A" OR'])
    assert (
        got[0] == "itemAttributes: the item metadata has no field MOOD (its fields: GENRES, TITLE)"
    )
    assert got[1] == 'the expression matches no item: ITEMS.GENRES = "Z"'
    assert got[2].startswith("itemAttributes: expected ITEMS.<field>")
    users, _, lengths = scorer.recommend(['ITEMS.mood = "dark"', 'ITEMS.genres = "C"'], 5, False)
    assert lengths.tolist() == [0, 5]


def test_attributes_without_item_metadata_say_how_to_train():
    scorer = attribute_scorer(items={})
    (message,) = scorer.problems(['ITEMS.genres = "A"'])
    assert "no item metadata" in message and "--items" in message
    assert scorer.problems(['ITEMS.item_id = "i003"']) == [None]


def test_attribute_validation_asks_item_id_expressions():
    data = interactions(n_users=300, n_items=40)
    split = split_segment(data, 0)
    from personalize_batch.evaluation import score_split

    hp = recipes.recipe("item-affinity").hyperparameters.defaults()
    by_attribute = score_split("item-attribute-affinity", split, hp)
    by_item = score_split("item-affinity", split, hp)
    assert by_attribute.keys() == by_item.keys()
    assert by_attribute == by_item  # ITEMS.ITEM_ID = "…" is the item itself


def test_expression_fields_and_matching():
    from personalize_batch.recipes.catalogue import Catalogue

    cat = Catalogue(np.array(["a", "b", "c"]), {"G": np.array(["x|y", "y", ""])})
    tree = parse('ITEMS.g = "y" AND (ITEMS.g = "x" OR ITEMS.item_id = "b")')
    assert attributes.fields(tree) == {"G", "ITEM_ID"}
    assert attributes.matching_items(tree, cat).tolist() == [True, True, False]


def test_evaluate_uses_personalizes_segment_split_for_segment_recipes():
    from personalize_batch.evaluation import evaluate_data

    hp = recipes.recipe("item-affinity").hyperparameters.defaults()
    report = evaluate_data("aws-item-affinity", interactions(n_users=300, n_items=40), hp)
    assert report["split"] == "segment" and report["held"] == "random"  # no timestamps
    assert set(report["metrics"]) == {"recall_at_1_percent", "hit_at_1_percent"}


def test_memory_holds_lists_and_a_block_never_users_by_items():
    import tracemalloc

    from personalize_batch.recipes.numeric import seen_arrays

    rng = np.random.default_rng(0)
    n_users, n_items, rows = 60_000, 3_000, 240_000  # users x items in float64: 1.4 GB
    users = rng.integers(0, n_users, rows)
    items = np.minimum(rng.zipf(1.3, rows) - 1, n_items - 1)
    arrays = {
        "user_ids": np.arange(n_users).astype(str),
        "item_ids": np.arange(n_items).astype(str),
        **seen_arrays(users, items, n_users, n_items),
    }
    affinity = Affinity(arrays, Rule("cooccurrence", 0.5, 0.5))
    q = one_hot(np.arange(16), n_items)  # the most popular items: dense columns
    tracemalloc.start()
    try:
        got, _, lengths = affinity.rank_users(q, 1_000, True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lengths.tolist() == [1_000] * 16
    assert peak < 64 * 2**20  # a block's products and the columns (17 MiB), not 1.4 GB


def test_train_searches_only_what_the_chosen_rule_reads():
    from personalize_batch.tuning import choose

    hp = recipes.recipe("item-affinity").hyperparameters.defaults()
    lines = []
    chosen = choose("item-affinity", interactions(n_users=300, n_items=40), hp, say=lines.append)
    report = chosen.report
    assert report["searched"] and report["objective"]["metricName"] == "recall_at_1_percent"
    searched = set(report["searchedHyperparameters"])
    assert searched <= set(item_affinity.SEGMENT_DIMENSIONS)
    if not searched:  # the rule reads no item-item model: the search is skipped, and why
        assert any("reads no item-item model" in line for line in lines)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.source}-{r.activity_exponent}")
def test_a_loaded_solution_answers_as_the_one_in_memory(tmp_path, rule):
    """A loaded solution's arrays are read-only: no rule may sort them in place (the
    item-model source did, and every job with it failed)."""
    from personalize_batch import solution as solution_mod

    sol = solution(rule=rule)
    path = tmp_path / "affinity.npz"
    solution_mod.save(str(path), sol.meta, sol.arrays)
    items = np.arange(5)
    got = solution_mod.load(str(path)).scorer().recommend(items, 7, False)
    want = sol.scorer().recommend(items, 7, False)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
