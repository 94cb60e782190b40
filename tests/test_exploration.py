"""Item exploration for user-personalization (A.7): only cold items are explored; weight 0
or no cold items leave the model's lists alone; the share of cold items is close to the
weight; the same seed gives the same lists, whatever the chunking."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import EXAMPLES

from personalize_batch import solution as solution_mod
from personalize_batch import training
from personalize_batch.job.exploration import Exploration, cold_items
from personalize_batch.job.lines import Request
from personalize_batch.job.scoring import Answerer
from personalize_batch.recipes.numeric import round_sig

N_COLD = 400


@pytest.fixture(scope="module")
def models(tmp_path_factory, solutions):
    """The example solution, and one trained with N_COLD extra items that nobody rated."""
    folder = tmp_path_factory.mktemp("explore")
    items = folder / "items.csv"
    with open(EXAMPLES / "items.csv", encoding="utf-8") as src, open(items, "w", newline="") as f:
        rows = list(csv.reader(src))
        w = csv.writer(f)
        w.writerows(rows)
        genres = ["Comedy", "Drama"]
        w.writerows([f"cold{k:03d}", f"Cold {k}", genres[k % 2]] for k in range(N_COLD))
    path = folder / "cold.npz"
    training.train(
        "user-personalization",
        str(EXAMPLES / "interactions.csv"),
        str(path),
        items=str(items),
        tune=False,
    )
    return {
        "plain": solution_mod.load(str(solutions["user-personalization"])),
        "cold": solution_mod.load(str(path)),
    }


def users_of(sol, extra=("nobody", "someone-new")) -> list[Request]:
    users = [*sol.user_ids.tolist()[:300], *extra]
    return [Request({"userId": u}, user=u) for u in users]


def test_weight_zero_or_no_cold_items_is_the_model(models):
    cold, plain = models["cold"], models["plain"]
    requests = users_of(cold)
    model = Answerer(cold, 25).answer(requests)
    assert Answerer(cold, 25, exploration=Exploration(0.0)).answer(requests) == model
    assert len(cold_items(plain, 30.0)) == 0
    for weight in (0.3, 1.0):
        explorer = Answerer(plain, 25, exploration=Exploration(weight))
        assert explorer.answer(users_of(plain)) == Answerer(plain, 25).answer(users_of(plain))


@pytest.mark.parametrize("weight", [0.1, 0.3, 0.7])
def test_share_of_cold_items_is_close_to_the_weight(models, weight):
    cold = models["cold"]
    requests = [Request({"userId": u}, user=u) for u in cold.user_ids.tolist()]
    answers = Answerer(cold, 25, exploration=Exploration(weight)).answer(requests)
    slots = sum(len(items) for items, _ in answers)
    explored = sum(i.startswith("cold") for items, _ in answers for i in items)
    # 801 users x 25 slots: the binomial standard deviation is below 0.004
    assert abs(explored / slots - weight) < 0.02, explored / slots
    assert slots == 25 * len(requests)


def test_same_seed_same_lists_and_chunking_does_not_matter(models):
    cold = models["cold"]
    requests = users_of(cold)
    a = Answerer(cold, 10, exploration=Exploration(0.5, seed=7)).answer(requests)
    b = Answerer(cold, 10, exploration=Exploration(0.5, seed=7)).answer(requests)
    assert a == b
    singles = Answerer(cold, 10, exploration=Exploration(0.5, seed=7))
    assert [singles.answer([r])[0] for r in reversed(requests)] == a[::-1]
    other = Answerer(cold, 10, exploration=Exploration(0.5, seed=8)).answer(requests)
    assert sum(x != y for x, y in zip(a, other, strict=True)) > len(requests) // 2


def test_explored_lists_are_ordered_model_scores_and_obey_filters(models):
    cold = models["cold"]
    answerer = Answerer(
        cold,
        20,
        filter_expression='EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")',
        exploration=Exploration(0.5, seed=3),
    )
    requests = users_of(cold)
    answers = answerer.answer(requests)
    drama = {f"cold{k:03d}" for k in range(1, N_COLD, 2)}  # the odd ones
    index = cold.item_index
    seen = {}
    for r in requests:
        u = cold.user_index.get(r.user, -1)
        row = cold.arrays["seen_indices"][
            cold.arrays["seen_indptr"][u] : cold.arrays["seen_indptr"][u + 1]
        ]
        seen[r.user] = set(cold.item_ids[row].tolist()) if u >= 0 else set()
    scorer = answerer.scorer
    for r, (items, scores) in zip(requests, answers, strict=True):
        assert len(items) == len(set(items)) == 20
        assert not drama & set(items)
        assert not seen[r.user] & set(items)
        assert scores == sorted(scores, reverse=True)
        u = np.array([cold.user_index.get(r.user, -1)])
        idx = index.lookup(items)[None, :]
        want = round_sig(scorer.probabilities(scorer.logits(u), idx))[0].tolist()
        assert scores == want  # explored items carry their own model score
    assert sum(i.startswith("cold") for items, _ in answers for i in items) > 5 * len(answers)


@pytest.mark.parametrize("recipe", ["user-personalization", "popularity-count"])
def test_creation_timestamp_cutoff(tmp_path, recipe):
    """Items created within the cutoff of the newest interaction are cold too, whatever
    the recipe keeps (the newest time is the solution's, not the user model's)."""
    inter = tmp_path / "interactions.csv"
    day = 86400
    newest = 1_700_000_000
    rows = [("u1", "a", newest - 50 * day), ("u1", "b", newest - 2 * day), ("u2", "a", newest)]
    rows += [("u2", "c", newest - day), ("u3", "b", newest - day)]
    inter.write_text("USER_ID,ITEM_ID,TIMESTAMP\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    items = tmp_path / "items.csv"
    items.write_text(
        "ITEM_ID,CREATION_TIMESTAMP\n"
        f"a,{newest - 400 * day}\nb,{newest - 10 * day}\nc,\nd,{newest - 100 * day}\n"
    )
    path = tmp_path / "m.npz"
    training.train(recipe, str(inter), str(path), items=str(items), tune=False)
    sol = solution_mod.load(str(path))
    assert sol.meta["training"]["latestTimestamp"] == newest
    ids = sol.item_ids

    def cold(days: float) -> list[str]:
        return ids[cold_items(sol, days)].tolist()

    assert cold(30) == ["b", "d"]  # b: 10 days old; d: no interactions
    assert cold(1) == ["d"]
    assert cold(500) == ["a", "b", "d"]


def test_bad_exploration_settings_are_usage_errors(models):
    from personalize_batch.errors import UsageError

    for bad in (Exploration(1.5), Exploration(-0.1), Exploration(0.3, 0.5), Exploration(seed=-1)):
        with pytest.raises(UsageError):
            Answerer(models["cold"], exploration=bad)
