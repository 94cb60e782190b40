"""`pbatch train` chooses its own settings: the data decides what relies on order, the
search respects its budget, the same seed gives the same solution, `--no-tune` gives
the defaults' solution, and `--hpo-config` is Personalize's shape with one-line errors."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import orjson
import pytest
from conftest import EXAMPLES, PBATCH, npz_arrays
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize_batch import recipes, tuning
from personalize_batch.data import read_interactions
from personalize_batch.errors import UsageError
from personalize_batch.recipes.item_model import penalties
from personalize_batch.recipes.user_personalization import penalties_to_whole
from personalize_batch.solution import load
from personalize_batch.training import fit_arrays, train
from personalize_batch.tuning.hpo import parse_hpo_config
from personalize_batch.tuning.search import Dimension, coordinate_descent

UP = "user-personalization"


def write_csv(path, rows, timestamps: bool = True) -> str:
    head = "USER_ID,ITEM_ID,TIMESTAMP" if timestamps else "USER_ID,ITEM_ID"
    lines = [head] + [",".join(map(str, r if timestamps else r[:2])) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def markov_rows(n_users=400, n_items=60, length=12, seed=0) -> list[tuple]:
    """Users walk a ring of items: the next item is the one after the last, 4 times in 5."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        item, t = int(rng.integers(n_items)), 1_600_000_000 + int(rng.integers(10**6))
        seen = set()
        for _ in range(length):
            if item not in seen:
                rows.append((f"u{u}", f"i{item}", t))
                seen.add(item)
            item = (item + 1) % n_items if rng.random() < 0.8 else int(rng.integers(n_items))
            t += int(rng.integers(10**4, 10**5))
    return rows


def cluster_rows(n_users=400, n_items=60, length=12, seed=0) -> list[tuple]:
    """Two tastes (the even and the odd items), in no particular order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        taste = np.arange(u % 2, n_items, 2)
        items = rng.choice(taste, size=length, replace=False)
        times = np.sort(rng.integers(1_600_000_000, 1_600_000_000 + 10**7, size=length))
        rows += [(f"u{u}", f"i{i}", int(t)) for i, t in zip(items, times, strict=True)]
    return rows


def trained(tmp_path, rows, timestamps=True, **kwargs):
    path = tmp_path / "m.npz"
    lines: list[str] = []
    train(
        UP, write_csv(tmp_path / "i.csv", rows, timestamps), str(path), say=lines.append, **kwargs
    )
    return load(str(path)), lines


def assert_is_the_fit(sol, recipe: str, csv: str) -> None:
    """The solution's arrays are, bit for bit, `recipe` fitted on `csv` with the
    solution's own hyperparameters."""
    expected = fit_arrays(recipe, read_interactions(csv), sol.hyperparameters)
    for name, arr in expected.items():
        assert np.array_equal(sol.arrays[name], arr), name


def test_orderless_data_turns_order_off(tmp_path):
    sol, lines = trained(tmp_path, cluster_rows())
    tuning = sol.meta["tuning"]
    assert tuning["profile"]["order"]["present"] is False
    assert tuning["profile"]["drift"]["present"] is False
    assert sol.hyperparameters["recency_mask"] is False
    assert tuning["split"]["split"] == "random"  # no time to hold out
    assert any(line.startswith("recency_mask=false: no order") for line in lines)


def test_no_timestamp_column_turns_order_off(tmp_path):
    sol, lines = trained(tmp_path, markov_rows(), timestamps=False)
    assert sol.meta["tuning"]["profile"]["order"]["reason"] == "no TIMESTAMP column"
    assert sol.hyperparameters["recency_mask"] is False
    assert sol.hyperparameters["popularity_half_life_days"] == 100000.0


def test_a_markov_chain_turns_transitions_on(tmp_path):
    sol, _ = trained(tmp_path, markov_rows())
    tuning = sol.meta["tuning"]
    assert tuning["profile"]["order"]["present"] is True
    assert tuning["split"]["split"] == "time-cut"
    hp = sol.hyperparameters
    assert hp["recency_mask"] is True and hp["transition_weight"] > 0
    # and it is worth it: the order-blind model does worse on the same validation
    blind, _ = trained(tmp_path, markov_rows(), hp_pairs=("recency_mask=false",))
    key = "normalized_discounted_cumulative_gain_at_10"
    ordered = tuning["validation"]["chosen"][key]
    assert ordered > 1.2 * blind.meta["tuning"]["validation"]["chosen"][key]


def test_the_budget_is_respected(tmp_path):
    config = tmp_path / "hpo.json"
    config.write_bytes(orjson.dumps({"hpoResourceConfig": {"maxNumberOfTrainingJobs": "4"}}))
    seen: list[int] = []
    path = tmp_path / "m.npz"
    train(
        UP,
        write_csv(tmp_path / "i.csv", markov_rows()),
        str(path),
        hpo_config=str(config),
        on_trial=lambda trial, done, budget, best: seen.append(done),
    )
    assert seen == [1, 2, 3, 4]
    # the defaults are measured besides, for the comparison
    assert load(str(path)).meta["tuning"]["settingsTried"] <= 5


def test_the_same_seed_gives_the_same_solution(tmp_path):
    inter = write_csv(tmp_path / "i.csv", cluster_rows())
    a, b, c = (tmp_path / f"{k}.npz" for k in "abc")
    train(UP, inter, str(a), seed=3)
    train(UP, inter, str(b), seed=3)
    train(UP, inter, str(c), seed=4)
    arrays_a, arrays_b = npz_arrays(a), npz_arrays(b)
    meta_a, meta_b = (orjson.loads(str(x.pop("meta"))) for x in (arrays_a, arrays_b))
    assert arrays_a.keys() == arrays_b.keys()
    assert all(np.array_equal(arrays_a[k], arrays_b[k]) for k in arrays_a)
    for meta in (meta_a, meta_b):
        meta["training"].pop("createdAt")
    assert meta_a == meta_b
    assert load(str(c)).meta["tuning"]["split"]["seed"] == 4  # the seed is the split's


@pytest.mark.parametrize("recipe", ["user-personalization", "sims", "personalized-ranking"])
def test_no_tune_gives_the_defaults_solution(tmp_path, recipe):
    path = tmp_path / "m.npz"
    inter = str(EXAMPLES / "interactions.csv")
    train(recipe, inter, str(path), tune=False)
    sol = load(str(path))
    defaults = recipes.recipe(recipe).hyperparameters.defaults()
    assert "tuning" not in sol.meta
    assert sol.hyperparameters == defaults
    assert_is_the_fit(sol, recipe, inter)


def test_data_too_small_trains_the_defaults_and_says_so(tmp_path):
    rows = [(f"u{u}", f"i{(u + k) % 7}", 1000 + k) for u in range(10) for k in range(3)]
    sol, lines = trained(tmp_path, rows)
    assert sol.hyperparameters == recipes.recipe(UP).hyperparameters.defaults()
    assert sol.meta["tuning"]["searched"] is False
    assert any("only 10 users have 2 or more interactions" in line for line in lines)


def test_given_values_stay_fixed(tmp_path):
    sol, _ = trained(
        tmp_path, markov_rows(), hp_pairs=("regularization=7", "transition_weight=0.05")
    )
    assert sol.hyperparameters["regularization"] == 7.0
    assert sol.hyperparameters["transition_weight"] == 0.05
    assert sol.meta["tuning"]["fixedByUser"] == ["regularization", "transition_weight"]
    assert "regularization" not in sol.meta["tuning"]["searchedHyperparameters"]


def test_hpo_config_ranges_replace_the_search(tmp_path):
    config = tmp_path / "hpo.json"
    config.write_bytes(
        orjson.dumps(
            {
                "hpoObjective": {"type": "Maximize", "metricName": "precision_at_10"},
                "algorithmHyperParameterRanges": {
                    "continuousHyperParameterRanges": [
                        {"name": "regularization", "minValue": 5, "maxValue": 50}
                    ]
                },
            }
        )
    )
    sol, lines = trained(tmp_path, markov_rows(), hpo_config=str(config))
    tuning = sol.meta["tuning"]
    assert tuning["searchedHyperparameters"] == ["regularization"]
    assert tuning["objective"] == {"metricName": "precision_at_10", "type": "Maximize"}
    assert 5 <= sol.hyperparameters["regularization"] <= 50 or tuning["chosen"] == {}


# ------------------------------------------------------------------ the CLI


def run_train(tmp_path, *args: str) -> subprocess.CompletedProcess:
    inter = write_csv(tmp_path / "i.csv", markov_rows(n_users=60))
    return subprocess.run(
        [*PBATCH, "train", "-r", UP, "-i", inter, "-o", str(tmp_path / "m.npz"), *args],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    "config, message",
    [
        (b"{not json", "--hpo-config: not valid JSON"),
        (
            b'{"algorithmHyperParameterRanges": {"integerHyperParameterRanges": '
            b'[{"name": "bptt", "minValue": 2, "maxValue": 32}]}}',
            "--hpo-config: algorithmHyperParameterRanges.integerHyperParameterRanges[0].name: "
            "user-personalization has no hyperparameter 'bptt'",
        ),
        (
            b'{"algorithmHyperParameterRanges": {"continuousHyperParameterRanges": '
            b'[{"name": "dropout", "minValue": 0.1, "maxValue": 2}]}}',
            "--hpo-config: algorithmHyperParameterRanges.continuousHyperParameterRanges[0]"
            ".maxValue: 2 is outside dropout's range [0.0, 0.95]",
        ),
        (
            b'{"hpoObjective": {"type": "Maximize", "metricName": "auc"}}',
            "--hpo-config: hpoObjective.metricName: 'auc' is not a metric of user-personalization",
        ),
        (
            b'{"hpoResourceConfig": {"maxNumberOfTrainingJobs": "0"}}',
            "--hpo-config: hpoResourceConfig.maxNumberOfTrainingJobs: must be a whole number",
        ),
        (b'{"hpoConfig": {}}', "--hpo-config: hpoConfig: unknown field"),
    ],
)
def test_bad_hpo_config_is_one_line_and_exit_2(tmp_path, config, message):
    path = tmp_path / "hpo.json"
    path.write_bytes(config)
    proc = run_train(tmp_path, "--hpo-config", str(path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pbatch: error: " + message), proc.stderr
    assert not (tmp_path / "m.npz").exists()


def test_hpo_config_with_no_tune_is_a_usage_error(tmp_path):
    path = tmp_path / "hpo.json"
    path.write_bytes(b"{}")
    proc = run_train(tmp_path, "--hpo-config", str(path), "--no-tune")
    assert proc.returncode == 2
    assert "--no-tune" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("--validation-split", "leave-last-out", "--no-tune"),
            "--validation-split sets the part that --no-tune skips",
        ),
        (
            ("--validation-split", "auto", "-r", "popularity-count"),
            "--validation-split: popularity-count has no hyperparameters to search",
        ),
    ],
)
def test_validation_split_where_nothing_is_chosen_is_a_usage_error(tmp_path, args, message):
    proc = run_train(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pbatch: error: " + message), proc.stderr
    assert not (tmp_path / "m.npz").exists()


def test_train_prints_its_decisions_and_describe_shows_them(tmp_path):
    proc = run_train(tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("pbatch: data: ")
    assert any(line.startswith("pbatch: validation: ") for line in lines)
    assert any(line.startswith("pbatch: chosen: ") for line in lines)
    assert any("with these settings" in line and "with the defaults" in line for line in lines)
    described = subprocess.run(
        [*PBATCH, "describe", str(tmp_path / "m.npz")], capture_output=True, check=True
    )
    tuning = orjson.loads(described.stdout)["tuning"]
    assert tuning["searched"] is True and "validation" in tuning and "split" in tuning


# ------------------------------------------------------------------ the parts


def test_coordinate_descent_finds_a_known_optimum_within_its_budget():
    def f(hp):
        return -((math.log10(hp["a"]) - 1.0) ** 2) - (hp["b"] - 0.3) ** 2 - (hp["c"] != "x")

    dims = [
        Dimension("a", "log", 0.01, 1000.0),
        Dimension("b", "linear", 0.0, 1.0),
        Dimension("c", "choice", choices=("x", "y")),
    ]
    calls: list[dict] = []
    out = coordinate_descent(
        lambda hp: calls.append(hp) or f(hp), {"a": 1.0, "b": 0.9, "c": "y"}, dims, 30
    )
    assert len(calls) <= 30
    assert out.best["c"] == "x"
    assert 5.0 <= out.best["a"] <= 20.0 and abs(out.best["b"] - 0.3) <= 0.07
    again = coordinate_descent(f, {"a": 1.0, "b": 0.9, "c": "y"}, dims, 30)
    assert again.best == out.best  # nothing random


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 2000)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=12,
)
names = st.sampled_from(
    ["regularization", "dropout", "recency_mask", "max_history_length", "bptt", ""]
)
ranges = st.fixed_dictionaries(
    {"name": names, "minValue": json_values, "maxValue": json_values, "values": json_values}
)
configs = (
    st.fixed_dictionaries(
        {},
        optional={
            "hpoObjective": st.fixed_dictionaries(
                {}, optional={"type": json_values, "metricName": json_values}
            ),
            "hpoResourceConfig": st.fixed_dictionaries(
                {}, optional={"maxNumberOfTrainingJobs": json_values}
            ),
            "algorithmHyperParameterRanges": st.fixed_dictionaries(
                {},
                optional={
                    "integerHyperParameterRanges": st.lists(ranges, max_size=2),
                    "continuousHyperParameterRanges": st.lists(ranges, max_size=2),
                    "categoricalHyperParameterRanges": st.lists(ranges, max_size=2),
                },
            ),
        },
    )
    | json_values
)


@settings(max_examples=300, deadline=None)
@given(config=configs)
def test_hpo_config_parser_accepts_or_names_the_problem(config):
    table = recipes.recipe(UP).hyperparameters
    try:
        parsed = parse_hpo_config(orjson.dumps(config), UP, table)
    except UsageError as exc:
        assert str(exc).startswith("--hpo-config: ") and "\n" not in str(exc)
        return
    for dim in parsed.dimensions or ():
        param = next(p for p in table.params if p.name == dim.name)
        if dim.scale != "choice":
            assert param.low <= dim.low <= dim.high <= param.high


def test_the_job_record_and_the_console_show_the_choice(tmp_path, pbatch_home):
    proc = run_train(tmp_path)
    assert proc.returncode == 0, proc.stderr
    src = tmp_path / "in.json"
    src.write_text('{"userId": "u1"}\n')
    subprocess.run(
        [*PBATCH, "run", "-s", str(tmp_path / "m.npz"), "-i", str(src), "--job-name", "j1", "-q"],
        check=True,
    )
    described = subprocess.run([*PBATCH, "jobs", "describe", "j1"], capture_output=True, check=True)
    record = orjson.loads(described.stdout)["batchInferenceJob"]
    tuning = record["solutionTuning"]
    chosen = load(str(tmp_path / "m.npz")).meta["tuning"]["chosen"]
    assert tuning["searched"] is True and tuning["chosen"] == chosen
    assert tuning["metricName"] == "normalized_discounted_cumulative_gain_at_10"
    import datetime as dt

    from personalize_batch.console.pages import job_page, settings_text

    html = job_page(record, [], dt.datetime.now(dt.timezone.utc))
    assert "Solution settings" in html and "chosen by pbatch train" in settings_text(tuning)


def test_a_weight_that_pays_only_after_another_moved_is_switched_on_later():
    # w helps only once b is low, and more at a small value than at its range's middle:
    # the coarse round tries w while b is still high, so only a later round can find it
    def f(hp):
        w, b = hp["w"], hp["b"]
        gain = 0.0 if w == 0 else (0.5 - b) - 0.1 * abs(math.log10(w / 0.05))
        return -((b - 0.2) ** 2) + gain

    dims = [
        Dimension("w", "log", 0.01, 10.0, can_be_off=True),
        Dimension("b", "linear", 0.0, 1.0),
    ]
    out = coordinate_descent(f, {"w": 0.0, "b": 0.9}, dims, 40)
    assert out.best["w"] > 0
    assert 0.02 <= out.best["w"] <= 0.15
    assert out.score > f({"w": 0.0, "b": 0.2})


def test_a_value_whose_range_starts_at_zero_walks_on_from_and_to_zero():
    # dropout-like: 0 is a value, not a switch, so the coarse round keeps stepping up
    # while it pays instead of leaving the rest of the way to the finer rounds
    dims = [Dimension("p", "linear", 0.0, 1.0)]
    out = coordinate_descent(lambda hp: -((hp["p"] - 0.8) ** 2), {"p": 0.0}, dims, 6)
    assert out.best["p"] == 0.75
    assert [t.hp["p"] for t in out.trials[:4]] == [0.0, 0.25, 0.5, 0.75]
    # and walks down onto it
    down = coordinate_descent(lambda hp: -hp["p"], {"p": 0.9}, dims, 5)
    assert [t.hp["p"] for t in down.trials] == [0.9, 0.65, 0.4, 0.15, 0.0]


# ------------------------------------------------------------------ large data


@settings(max_examples=200, deadline=None)
@given(
    regularization=st.floats(0.01, 1e5),
    dropout=st.floats(0.0, 0.95),
    ratio=st.floats(1.0, 1000.0),
    count=st.integers(1, 10**6),
)
def test_values_found_on_a_sample_keep_each_items_penalty_on_the_whole_data(
    regularization, dropout, ratio, count
):
    # an item with `count` users in the sample has about ratio times as many in all the
    # data: the carried values give it the penalty the search chose for it
    sample = {"regularization": regularization, "dropout": dropout}
    whole = penalties_to_whole(sample, ratio)
    assert whole["regularization"] == regularization
    on_sample = penalties(np.array([count]), regularization, dropout)[0]
    on_whole = penalties(np.array([count * ratio]), regularization, whole["dropout"])[0]
    assert on_whole == pytest.approx(on_sample, rel=2e-3)


@pytest.mark.parametrize("recipe", [UP, "item-affinity"])
def test_a_search_on_a_sample_of_users_carries_its_choice_to_all_the_data(
    tmp_path, monkeypatch, recipe
):
    monkeypatch.setattr(tuning, "SEARCH_ROWS", 2000)  # the 4,800 rows are "large"
    lines: list[str] = []
    path = tmp_path / "m.npz"
    train(recipe, write_csv(tmp_path / "i.csv", cluster_rows()), str(path), say=lines.append)
    sol = load(str(path))
    sample = sol.meta["tuning"]["searchSample"]
    assert sample["interactions"] <= 2000 and sample["scale"] > 2
    searched = sample["chosenOnSample"]
    assert "regularization" not in searched  # the ridge is not scaled with the counts
    odds = sol.hyperparameters["dropout"] / (1 - sol.hyperparameters["dropout"])
    odds_searched = searched["dropout"] / (1 - searched["dropout"])
    assert odds * sample["scale"] == pytest.approx(odds_searched, rel=2e-3)
    assert any(line.startswith("searched on a sample of the users, carried to") for line in lines)


def test_a_search_on_a_sample_leaves_what_it_did_not_search_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "SEARCH_ROWS", 2000)
    config = tmp_path / "hpo.json"
    ranges = {
        "integerHyperParameterRanges": [
            {"name": "item_model_neighbours", "minValue": 4, "maxValue": 64}
        ]
    }
    config.write_bytes(orjson.dumps({"algorithmHyperParameterRanges": ranges}))
    sol, _ = trained(tmp_path, cluster_rows(), hpo_config=str(config))
    assert sol.meta["tuning"]["searchSample"]["chosenOnSample"] == {}
    assert (
        sol.hyperparameters["dropout"] == recipes.recipe(UP).hyperparameters.defaults()["dropout"]
    )


def max_dense_items_fitted(monkeypatch) -> list[int]:
    """The max_dense_items of every setting the search fits, as it fits them."""
    fitted_with: list[int] = []
    measure_with = tuning.objective

    def spying(recipe, split, seed=0):
        measure = measure_with(recipe, split, seed)

        def measured(hp, cache):
            fitted_with.append(hp["max_dense_items"])
            return measure(hp, cache)

        return measured

    monkeypatch.setattr(tuning, "objective", spying)
    return fitted_with


def test_the_search_ranks_settings_on_half_the_exact_core_and_the_solution_keeps_it_all(
    tmp_path, monkeypatch
):
    # a setting's exact item-item model costs the cube of its items: the search fits
    # half of max_dense_items exactly (the rest low rank), the final fit all of them
    fitted_with = max_dense_items_fitted(monkeypatch)
    sol, _ = trained(tmp_path, cluster_rows(), hp_pairs=("max_dense_items=40",))
    assert set(fitted_with) == {20} and len(fitted_with) > 1
    assert sol.meta["tuning"]["searchDenseItems"] == 20
    assert sol.hyperparameters["max_dense_items"] == 40
    assert_is_the_fit(sol, UP, str(tmp_path / "i.csv"))


def test_a_searched_max_dense_items_is_fitted_as_searched(tmp_path, monkeypatch):
    fitted_with = max_dense_items_fitted(monkeypatch)
    config = tmp_path / "hpo.json"
    ranges = {
        "integerHyperParameterRanges": [{"name": "max_dense_items", "minValue": 8, "maxValue": 64}]
    }
    config.write_bytes(orjson.dumps({"algorithmHyperParameterRanges": ranges}))
    sol, _ = trained(tmp_path, cluster_rows(), hpo_config=str(config))
    assert len(set(fitted_with)) > 1  # the values the search tried, not one proxy
    assert sol.meta["tuning"]["searchDenseItems"] is None
