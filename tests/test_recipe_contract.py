"""The contract every recipe of the registry keeps, run on each one (a new recipe is
tested by being registered): a chunk answers as its lines one by one, unknown ids and
lines without history are answered (not failed), k above the catalogue gives each
eligible item once, filters and exploration never let a blocked item through, ties
come in item order, and seen items stay out unless asked for.

Lines are made from each recipe's declared query, so no recipe is named here."""

from __future__ import annotations

import csv

import orjson
import pytest
from conftest import EXAMPLES

from personalize_batch import recipes
from personalize_batch.job.exploration import Exploration
from personalize_batch.job.lines import BadLine, Request, parse_line
from personalize_batch.job.scoring import Answerer
from personalize_batch.recipes.protocol import ITEM, TEXT, USER
from personalize_batch.solution import Solution, load
from personalize_batch.training import train

# recipes that answer with items; segment recipes (users for an item) keep their own
# contract in test_segments and test_segment_jobs: an unknown item is an error line there
NAMES = [r.name for r in recipes.recipes() if r.query.names != TEXT and r.output.names == ITEM]
N_COLD = 60  # items of the items file that nobody interacted with
BLOCKED_GENRE = "Drama"
FILTER = f'EXCLUDE ItemID WHERE Items.GENRES IN ("{BLOCKED_GENRE}")'
TIE_ITEMS = 12


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Solution]:
    """Each recipe on the example data, with item metadata and N_COLD cold items."""
    folder = tmp_path_factory.mktemp("contract")
    items = folder / "items.csv"
    with open(EXAMPLES / "items.csv", encoding="utf-8") as src, open(items, "w", newline="") as f:
        w = csv.writer(f)
        w.writerows(csv.reader(src))
        w.writerows(
            [f"cold{k:03d}", f"Cold {k}", ("Comedy", "Drama")[k % 2]] for k in range(N_COLD)
        )
    out = {}
    for name in NAMES:
        path = folder / f"{name}.npz"
        train(name, str(EXAMPLES / "interactions.csv"), str(path), items=str(items), tune=False)
        out[name] = load(str(path))
    return out


@pytest.fixture(scope="module")
def tied(tmp_path_factory) -> dict[str, Solution]:
    """Each recipe on data where every item ties: as many users each, one item a user,
    all at one time."""
    folder = tmp_path_factory.mktemp("ties")
    data = folder / "interactions.csv"
    rows = [f"u{u:02d},i{u % TIE_ITEMS:02d},1000000" for u in range(5 * TIE_ITEMS)]
    data.write_text("USER_ID,ITEM_ID,TIMESTAMP\n" + "\n".join(rows) + "\n")
    out = {}
    for name in NAMES:
        path = folder / f"{name}.npz"
        train(name, str(data), str(path), tune=False)
        out[name] = load(str(path))
    return out


def request(name: str, value: str | None, ranked: list[str] | None = None) -> Request:
    """A line of the recipe's query asking about `value` (None: the key left out)."""
    recipe = recipes.recipe(name)
    obj: dict = {} if value is None else {recipe.query.key: value}
    if recipe.query.ranks:
        obj["itemList"] = ranked or []
    parsed = parse_line(orjson.dumps(obj), recipe)
    assert isinstance(parsed, Request), parsed
    return parsed


def known_ids(name: str, sol: Solution, n: int) -> list[str]:
    """The first n ids the recipe's lines ask about."""
    names = recipes.recipe(name).query.names
    ids = sol.user_ids if names == USER else sol.item_ids
    return ids[:n].tolist()


def lines(name: str, sol: Solution) -> list[Request]:
    """Known ids, unknown ones, and a line without the key where that is allowed."""
    recipe = recipes.recipe(name)
    ranked = [*sol.item_ids[:8].tolist(), "no-such-item"]
    values: list[str | None] = [*known_ids(name, sol, 40), "nobody", "no-one-either"]
    if not recipe.query.required:
        values.append(None)
    return [request(name, v, ranked) for v in values]


def check_list(name: str, sol: Solution, answer, k: int) -> None:
    """An answer: at most k ids, each once, scores best first; known items only (a
    ranked list also holds its unknown items, last)."""
    assert not isinstance(answer, BadLine), answer
    items, scores = answer
    assert len(items) == len(scores) and len(items) <= max(k, 9)
    assert len(set(items)) == len(items)
    known = set(sol.item_ids.tolist())
    if recipes.recipe(name).query.ranks:
        unknown = [i for i in items if i not in known]
        assert items[len(items) - len(unknown) :] == unknown
        scores = scores[: len(items) - len(unknown)]
    else:
        assert set(items) <= known
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("name", NAMES)
def test_a_chunk_answers_as_its_lines_one_by_one(trained, name):
    sol = trained[name]
    requests = lines(name, sol)
    for options in ({}, {"filter_expression": FILTER}, {"exploration": Exploration(0.3)}):
        together = Answerer(sol, 10, **options).answer(requests)
        alone = Answerer(sol, 10, **options)
        assert together == [alone.answer([r])[0] for r in requests]
        reordered = Answerer(sol, 10, **options).answer(requests[::-1])
        assert reordered == together[::-1]
        for answer in together:
            check_list(name, sol, answer, 10)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_ids_are_answered_and_counted(trained, name):
    sol = trained[name]
    answerer = Answerer(sol, 10)
    ranked = sol.item_ids[:5].tolist()
    answers = answerer.answer([request(name, "nobody", ranked), request(name, "no-one", ranked)])
    for answer in answers:
        check_list(name, sol, answer, 10)
    assert answers[0] == answers[1]  # nothing is known of either
    names = recipes.recipe(name).query.names
    assert (answerer.unknown_users, answerer.unknown_items) == ((2, 0) if names == USER else (0, 2))


@pytest.mark.parametrize("name", NAMES)
def test_a_line_without_history_is_answered_like_an_unknown_id(trained, name):
    sol = trained[name]
    recipe = recipes.recipe(name)
    ranked = sol.item_ids[:5].tolist()
    answerer = Answerer(sol, 10)
    unknown = answerer.answer([request(name, "nobody", ranked)])[0]
    check_list(name, sol, unknown, 10)
    assert len(unknown[0]) == (len(ranked) if recipe.query.ranks else 10)
    if not recipe.query.required:  # the key may be left out: no history either
        assert answerer.answer([request(name, None, ranked)])[0] == unknown


@pytest.mark.parametrize("name", NAMES)
def test_k_above_the_catalogue_gives_each_eligible_item_once(tied, name):
    sol = tied[name]
    recipe = recipes.recipe(name)
    everything = sol.item_ids.tolist()
    for include_seen in (False, True):
        answerer = Answerer(sol, 500, include_seen=include_seen)
        for value in [*known_ids(name, sol, 3), "nobody"]:
            answer = answerer.answer([request(name, value, everything[::-1])])[0]
            check_list(name, sol, answer, 500)
            items = answer[0]
            if recipe.query.ranks or value == "nobody":  # nothing of it is left out
                assert sorted(items) == everything
            elif recipe.query.names == ITEM:  # an item is not related to itself
                assert sorted(items) == [i for i in everything if i != value]
            else:  # one item seen
                assert len(items) == len(everything) - (not include_seen)


@pytest.mark.parametrize("name", NAMES)
def test_ties_come_in_item_order(tied, name):
    sol = tied[name]
    answerer = Answerer(sol, 500)
    shuffled = ["i07", "i03", "i11", "i00", "i05"]
    for value in [*known_ids(name, sol, 3), "nobody"]:
        items, scores = answerer.answer([request(name, value, shuffled)])[0]
        assert len(set(scores)) == 1, scores  # the data ties every item
        assert items == sorted(items)


@pytest.mark.parametrize("name", NAMES)
def test_seen_items_stay_out_unless_asked_for(trained, name):
    sol = trained[name]
    recipe = recipes.recipe(name)
    if recipe.query.names != USER or recipe.query.ranks:
        pytest.skip("only a user's own list leaves the user's items out")
    users = known_ids(name, sol, 20)
    seen = sol.seen_rows(sol.user_index.lookup(users))
    without = Answerer(sol, 25).answer([request(name, u) for u in users])
    with_seen = Answerer(sol, 25, include_seen=True).answer([request(name, u) for u in users])
    own = [
        set(sol.item_ids[seen.indices[seen.indptr[r] : seen.indptr[r + 1]]].tolist())
        for r in range(len(users))
    ]
    assert not any(mine & set(items) for mine, (items, _) in zip(own, without, strict=True))
    assert any(mine & set(items) for mine, (items, _) in zip(own, with_seen, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_filters_and_exploration_never_let_a_blocked_item_through(trained, name):
    sol = trained[name]
    recipe = recipes.recipe(name)
    genres = dict(zip(sol.item_ids.tolist(), sol.arrays["items_GENRES"].tolist(), strict=True))
    blocked = {i for i, g in genres.items() if BLOCKED_GENRE in g.split("|")}
    requests = lines(name, sol)
    plain = Answerer(sol, 25).answer(requests)
    for exploration in (None, Exploration(0.0), Exploration(1.0)):
        answerer = Answerer(sol, 25, filter_expression=FILTER, exploration=exploration)
        for answer, before in zip(answerer.answer(requests), plain, strict=True):
            check_list(name, sol, answer, 25)
            assert not blocked & set(answer[0])
            if recipe.query.ranks:  # the same list, less its blocked items
                assert answer[0] == [i for i in before[0] if i not in blocked]
    cold = {f"cold{k:03d}" for k in range(N_COLD)}
    explored = Answerer(sol, 25, exploration=Exploration(1.0)).answer(requests)
    if recipe.explores:  # cold items get some of the slots
        assert any(cold & set(items) for items, _ in explored)
    else:  # exploration does not apply: the model's lists
        assert explored == plain
    assert Answerer(sol, 25, exploration=Exploration(0.0)).answer(requests) == plain
