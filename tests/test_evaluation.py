"""Offline evaluation: metrics against hand-computed values, the splits, determinism, and
the CLI (`pbatch evaluate`, `train --evaluate` + `describe`)."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES
from hypothesis import given
from hypothesis import strategies as st

from personalize_batch import recipes
from personalize_batch.cli import main
from personalize_batch.data import Interactions
from personalize_batch.data.splits import Split
from personalize_batch.errors import UsageError
from personalize_batch.evaluation import (
    evaluate_data,
    shuffle_within_users,
    split_leave_last_out,
    split_personalize,
    split_time_cut,
)
from personalize_batch.recipes.validation import (
    _ranking_task,
    ndcg_at_k,
    precision_at_k,
    ranked_list,
    reciprocal_rank_at_k,
    summarize,
)

INTERACTIONS = str(EXAMPLES / "interactions.csv")

# ------------------------------------------------------------------ metrics


def test_personalize_worked_example():
    """B.6: recommendations relevant at positions 2 and 5, K = 5."""
    recs = ["a", "R1", "b", "c", "R2"]
    relevant = {"R1", "R2"}
    assert reciprocal_rank_at_k(recs, relevant, 25) == 0.5
    assert round(ndcg_at_k(recs, relevant, 5), 4) == 0.6241
    assert precision_at_k(recs, relevant, 5) == 0.4


def test_metrics_by_hand():
    # user 1: hit at position 1 of 1 relevant; user 2: no hit; user 3: hit at 3 of 2 relevant
    lists = [["x", "y", "z"], ["p", "q"], ["m", "n", "o"]]
    truths = [{"x"}, {"nope"}, {"o", "never"}]
    got = summarize(lists, truths, n_items=16)
    ndcg3 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert got["coverage"] == round(8 / 16, 6)
    assert got["mean_reciprocal_rank_at_25"] == round((1 + 0 + 1 / 3) / 3, 6)
    assert got["normalized_discounted_cumulative_gain_at_5"] == round((1 + 0 + ndcg3) / 3, 6)
    assert got["precision_at_5"] == round((1 / 5 + 0 + 1 / 5) / 3, 6)
    assert got["precision_at_25"] == round((2 / 25) / 3, 6)
    assert list(got) == [
        "coverage",
        "mean_reciprocal_rank_at_25",
        "normalized_discounted_cumulative_gain_at_5",
        "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_25",
        "precision_at_5",
        "precision_at_10",
        "precision_at_25",
    ]


@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 40), max_size=30, unique=True),
            st.sets(st.integers(0, 40), max_size=8),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_summarize_is_the_mean_of_the_per_list_metrics(cases):
    """summarize, which measures every list at once, against the functions of one list:
    lists longer and shorter than 25, empty truths, no hit and many."""
    lists = [[str(i) for i in recs] for recs, _ in cases]
    truths = [{str(i) for i in truth} for _, truth in cases]
    got = summarize(lists, truths, n_items=41)

    def mean(metric, k):
        per_list = [metric(r, t, k) for r, t in zip(lists, truths, strict=True)]
        return round(float(np.mean(per_list)), 6)

    for k in (5, 10, 25):
        assert got[f"normalized_discounted_cumulative_gain_at_{k}"] == mean(ndcg_at_k, k)
        assert got[f"precision_at_{k}"] == mean(precision_at_k, k)
    assert got["mean_reciprocal_rank_at_25"] == mean(reciprocal_rank_at_k, 25)
    assert got["coverage"] == round(len({i for r in lists for i in r[:25]}) / 41, 6)


# ------------------------------------------------------------------ splits


def _data(rows: list[tuple[int, int, int]], n_users: int, n_items: int, timed: bool = True):
    rows = sorted(rows, key=lambda r: (r[0], r[2]))
    u, i, t = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    return Interactions(
        user_ids=np.array([f"u{k:02d}" for k in range(n_users)]),
        item_ids=np.array([f"i{k:02d}" for k in range(n_items)]),
        users=u.astype(np.int32),
        items=i.astype(np.int32),
        timestamps=t if timed else np.arange(len(u), dtype=np.int64),
        event_types=np.array([""] * len(u)),
        has_timestamps=timed,
    )


def _sequences(n_users: int = 40, length: int = 12, n_items: int = 30):
    rng = np.random.default_rng(3)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=length, replace=False)
        rows += [(u, int(it), 1000 * u + 10 * k) for k, it in enumerate(items)]
    return _data(rows, n_users, n_items), rows


def test_personalize_split_holds_out_the_newest_tenth_of_a_tenth_of_users():
    data, rows = _sequences()
    split = split_personalize(data, seed=5)
    assert split.info["testUsers"] == 4  # 10 % of 40 eligible users
    assert split.info["trainingInteractions"] == len(rows) - 4 * 1  # 12 // 10 = 1 each
    for u, truth in zip(split.users, split.truths, strict=True):
        user = split.train.user_ids[u]
        mine = [r for r in rows if f"u{r[0]:02d}" == user]
        newest = max(mine, key=lambda r: r[2])
        assert [split.train.item_ids[t] for t in truth] == [f"i{newest[1]:02d}"]
    again = split_personalize(data, seed=5)
    assert np.array_equal(again.users, split.users)
    other = split_personalize(data, seed=6)
    assert not np.array_equal(other.users, split.users)


def _truth_ids(split, data) -> dict[str, list[str]]:
    """user id -> held-out item ids (an item absent from training has id -1 - old index)."""
    out = {}
    for u, truth in zip(split.users, split.truths, strict=True):
        ids = [split.train.item_ids[t] if t >= 0 else data.item_ids[-1 - t] for t in truth]
        out[str(split.train.user_ids[u])] = [str(i) for i in ids]
    return out


def test_leave_last_out_and_time_cut():
    rows = [(0, 0, 1), (0, 1, 5), (0, 2, 9), (1, 1, 2), (1, 3, 8), (2, 2, 3)]
    data = _data(rows, 3, 4)
    llo = split_leave_last_out(data)
    # u02 has one interaction: not tested; i03 is only held out: a miss for every method
    assert _truth_ids(llo, data) == {"u00": ["i02"], "u01": ["i03"]}
    assert llo.info["heldOutUnknownItems"] == 1
    cut = split_time_cut(data, cut_quantile=0.5)  # timestamps 1 2 3 5 8 9: cut at 4
    assert cut.info["trainingInteractions"] == 3
    # the first new item after the cut: u00 -> i01 (at 5), u01 -> i03 (i01 already seen)
    assert _truth_ids(cut, data) == {"u00": ["i01"], "u01": ["i03"]}


def test_time_cut_needs_timestamps_and_shuffle_needs_none():
    data, _ = _sequences()
    with pytest.raises(UsageError):
        shuffle_within_users(data, 0)
    untimed = _data([(0, 0, 0), (0, 1, 1), (1, 1, 2)], 2, 2, timed=False)
    with pytest.raises(UsageError):
        split_time_cut(untimed)
    shuffled = shuffle_within_users(untimed, 0)
    assert sorted(shuffled.items.tolist()) == sorted(untimed.items.tolist())


def test_ranked_list_asks_every_held_out_item():
    """personalized-ranking's question: all of a user's held-out items among 99 others
    (at most 99 of them); a ranker that puts one held-out item first and the rest last
    scores below one that puts them all first."""
    n_items = 400
    rows = [(0, i, i) for i in range(5)] + [(1, i, i) for i in range(5, 10)]
    data = _data(rows, 2, n_items)
    held = [np.array([20, 21, 22]), np.arange(100, 300)]
    split = Split("random", data, np.array([0, 1]), held, {"items": n_items})
    users, lists, positives = _ranking_task(split, seed=3)
    assert positives[0] == {20, 21, 22}
    assert len(positives[1]) == 99 and positives[1] <= set(range(100, 300))
    for lst, pos, seen in zip(lists, positives, (range(5), range(5, 10)), strict=True):
        assert len(lst) == 99 + len(pos) and len(set(lst.tolist())) == len(lst)
        assert pos <= set(lst.tolist()) and not set(seen) & set(lst.tolist())

    class Ranker:  # held-out items first, or only the lowest one first
        def __init__(self, all_first: bool) -> None:
            self.all_first = all_first

        def rank(self, users, lists):
            out = []
            for lst, pos in zip(lists, positives, strict=True):
                top = sorted(pos) if self.all_first else [min(pos)]
                rest = sorted(lst.tolist(), key=lambda i: i in pos)  # held-out ones last
                rest = [i for i in rest if i not in top]
                out.append((np.array(top + rest), np.zeros(len(lst))))
            return out

    key = "normalized_discounted_cumulative_gain_at_10"
    assert ranked_list(split, seed=3)(Ranker(True))[key] == 1.0
    assert ranked_list(split, seed=3)(Ranker(False))[key] < 0.5


# ------------------------------------------------------------------ evaluate


def test_evaluate_is_deterministic_for_a_seed():
    hp = recipes.recipe("user-personalization").hyperparameters.defaults()
    data, _ = _sequences(n_users=200, length=15, n_items=60)
    a = evaluate_data("user-personalization", data, hp, seed=1)
    b = evaluate_data("user-personalization", data, hp, seed=1)
    assert a == b
    c = evaluate_data("user-personalization", data, hp, seed=2)
    assert c["metrics"] != a["metrics"]


def test_cli_evaluate_json_and_text():
    runner = CliRunner()
    result = runner.invoke(
        main, ["evaluate", "-r", "user-personalization", "-i", INTERACTIONS, "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["split"] == "personalize" and report["seed"] == 0
    assert 0 < report["metrics"]["normalized_discounted_cumulative_gain_at_10"] < 1
    assert report["testUsers"] > 0
    text = runner.invoke(
        main,
        ["evaluate", "-r", "popularity-count", "-i", INTERACTIONS, "--split", "leave-last-out"],
    )
    assert text.exit_code == 0, text.output
    assert "popularity-count on leave-last-out split" in text.stdout
    assert "precision_at_25" in text.stdout


def test_cli_evaluate_bad_split_is_a_usage_error():
    result = CliRunner().invoke(
        main, ["evaluate", "-r", "sims", "-i", INTERACTIONS, "--split", "weekly"]
    )
    assert result.exit_code == 2


def test_train_evaluate_stores_metrics_shown_by_describe(tmp_path):
    model = tmp_path / "m.npz"
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["train", "-r", "user-personalization", "-i", INTERACTIONS, "-o", str(model), "--evaluate"],
    )
    assert result.exit_code == 0, result.output
    assert "normalized_discounted_cumulative_gain_at_10" in result.stderr
    described = orjson.loads(runner.invoke(main, ["describe", str(model)]).stdout)
    # the stored metrics are those of settings chosen as the solution's were (the data's
    # own validation part), not those evaluate alone would choose for its split
    alone = orjson.loads(
        runner.invoke(
            main,
            ["evaluate", "-r", "user-personalization", "-i", INTERACTIONS, "--json", "-q"]
            + ["--validation-split", "auto"],
        ).stdout
    )
    assert described["metrics"] == alone["metrics"]
    assert described["evaluation"]["tuning"]["validationSplit"] == "auto"
    assert described["evaluation"]["split"] == "personalize"
    assert described["evaluation"]["testUsers"] == alone["testUsers"]


def test_evaluate_offers_every_split_the_splits_module_has():
    # the CLI keeps its own list so that starting it does not import numpy
    from personalize_batch.cli.evaluate import AUTO_SPLIT, SPLIT_CHOICES
    from personalize_batch.data.splits import SPLITS
    from personalize_batch.tuning import AUTO

    assert set(SPLIT_CHOICES) == set(SPLITS) - {"segment"}  # segment: personalize's alias
    assert AUTO_SPLIT == AUTO


def test_evaluate_chooses_settings_on_the_kind_of_split_it_measures():
    runner = CliRunner()

    def report(*args: str) -> dict:
        result = runner.invoke(
            main, ["evaluate", "-r", "user-personalization", "-i", INTERACTIONS, "--json", *args]
        )
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)

    measured = report("--split", "leave-last-out")
    assert measured["tuning"]["split"]["split"] == "leave-last-out"
    assert measured["tuning"]["validationSplit"] == "leave-last-out"
    # what a plain train would choose: the examples' time carries signal, so a time cut
    shipped = report("--split", "leave-last-out", "--validation-split", "auto", "-q")
    assert shipped["tuning"]["split"]["split"] == "time-cut"
    assert shipped["tuning"]["validationSplit"] == "auto"
    # the question changes the choice, and the measured choice answers it better
    ndcg = "normalized_discounted_cumulative_gain_at_10"
    assert measured["tuning"]["chosen"] != shipped["tuning"]["chosen"]
    assert measured["metrics"][ndcg] > shipped["metrics"][ndcg]


def test_train_validation_split_is_kept_and_said(tmp_path):
    model = tmp_path / "m.npz"
    runner = CliRunner()
    args = ["train", "-r", "user-personalization", "-i", INTERACTIONS, "-o", str(model)]
    result = runner.invoke(main, [*args, "--validation-split", "leave-last-out"])
    assert result.exit_code == 0, result.output
    assert "validation (--validation-split leave-last-out): each user's last item" in (
        result.stderr
    )
    tuning = orjson.loads(runner.invoke(main, ["describe", str(model)]).stdout)["tuning"]
    assert tuning["validationSplit"] == "leave-last-out"
    assert tuning["split"]["split"] == "leave-last-out"
    bad = runner.invoke(main, [*args, "--validation-split", "weekly"])
    assert bad.exit_code == 2 and "weekly" in bad.stderr


def test_evaluate_refuses_a_validation_split_it_would_not_use():
    args = ["evaluate", "-r", "user-personalization", "-i", INTERACTIONS, "-q"]
    result = CliRunner().invoke(main, [*args, "--no-tune", "--validation-split", "auto"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "pbatch: error: --validation-split sets the part that --no-tune skips"
    )
    assert result.stdout == ""
