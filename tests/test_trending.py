"""trending-now: growth in the latest window against the one before it."""

from __future__ import annotations

import numpy as np
import pytest

from personalize_batch import recipes
from personalize_batch.data import Interactions
from personalize_batch.errors import DataError, UsageError
from personalize_batch.recipes import trending
from personalize_batch.solution import build_meta, in_memory, model_arrays
from personalize_batch.tuning import choose

HOUR = 3600
END = 1_700_000_000


def data(rows: list[tuple[int, int, int]], n_users: int = 8, timed: bool = True):
    """(user, item, seconds before END) rows."""
    rows = sorted(rows, key=lambda r: (r[0], -r[2]))
    u, i, ago = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    return Interactions(
        user_ids=np.array([f"u{k}" for k in range(n_users)]),
        item_ids=np.array([f"i{k}" for k in range(6)]),
        users=u.astype(np.int32),
        items=i.astype(np.int32),
        timestamps=END - ago if timed else np.arange(len(u), dtype=np.int64),
        event_types=np.array([""] * len(u)),
        has_timestamps=timed,
    )


def story():
    """Item 0 was popular two days ago and is quiet now; item 1 rises in the latest hour;
    item 2 is steady; item 3 falls; item 4 appears once in the latest hour; item 5 never
    in the last two hours."""
    rows = [(u, 0, 48 * HOUR + 60 * u) for u in range(8)]  # long ago
    rows += [(u, 1, 600 + 60 * u) for u in range(6)]  # 6 in the latest hour
    rows += [(0, 1, HOUR + 600)]  # 1 the hour before
    rows += [(u, 2, 900) for u in (1, 2)] + [(u, 2, HOUR + 900) for u in (3, 4)]
    rows += [(6, 3, 300)] + [(u, 3, HOUR + 300) for u in (1, 2, 3, 4)]
    rows += [(7, 4, 100)]
    rows += [(5, 5, 5 * HOUR)]
    return data(rows)


def scorer(d, frequency: str = "1 hour"):
    hp = {"trend_discovery_frequency": frequency}
    sol = in_memory(build_meta("trending-now", hp, {}), model_arrays("trending-now", d, hp))
    return recipes.recipe("trending-now").scorer(sol)


def test_a_rising_item_leads_and_a_quiet_one_never_appears():
    idx, scores, lengths = scorer(story()).recommend(np.array([-1]), 25, False)
    listed = idx[0, : lengths[0]].tolist()
    assert listed[0] == 1  # (6 - 1) / sqrt(8)
    assert 0 not in listed and 5 not in listed  # nothing in the latest window
    assert listed == [1, 4, 2, 3]  # z: 1.67, 0.71, 0, -1.13
    np.testing.assert_allclose(scores[0, :4], [5 / np.sqrt(8), 1 / np.sqrt(2), 0, -3 / np.sqrt(6)])
    assert lengths[0] == 4  # shorter than numResults: only items with recent interactions


def test_a_users_own_items_are_left_out():
    s = scorer(story())
    idx, _, lengths = s.recommend(np.array([1, 7, 5]), 25, False)
    assert idx[0, : lengths[0]].tolist() == [4]  # u1 has items 1, 2 and 3
    assert idx[1, : lengths[1]].tolist() == [1, 2, 3]  # u7 has item 4
    assert idx[2, : lengths[2]].tolist() == [4, 2, 3]  # u5 has items 1 and 5
    kept, _, n = s.recommend(np.array([1]), 25, True)
    assert kept[0, : n[0]].tolist() == [1, 4, 2, 3]


def test_the_window_is_the_frequency():
    # a day: item 0's interactions two days ago are still outside both windows
    idx, _, lengths = scorer(story(), "1 day").recommend(np.array([-1]), 25, False)
    assert 0 not in idx[0, : lengths[0]].tolist()
    assert set(idx[0, : lengths[0]].tolist()) == {1, 2, 3, 4, 5}


def test_filters_block_items_before_the_cut():
    class Block:
        def apply(self, keys):
            keys[:, 1] = -np.inf

    idx, _, lengths = scorer(story()).recommend(np.array([-1]), 25, False, mask=Block())
    assert idx[0, : lengths[0]].tolist() == [4, 2, 3]


def test_data_without_timestamps_is_refused():
    with pytest.raises(DataError, match="trending-now needs a TIMESTAMP column"):
        model_arrays(
            "trending-now",
            data([(0, 1, 5), (1, 1, 3)], timed=False),
            {"trend_discovery_frequency": "auto"},
        )


def test_frequencies_are_personalizes_and_auto():
    table = recipes.recipe("aws-trending-now").hyperparameters
    assert table.parse(["trend_discovery_frequency=3  Hours"], "trending-now") == {
        "trend_discovery_frequency": "3 hours"
    }
    with pytest.raises(UsageError, match="must be one of 'auto', '30 minutes'"):
        table.parse(["trend_discovery_frequency=2 hours"], "trending-now")


def timeline(steady: int, bursts: list[tuple[int, int, int, int]], days: int = 3):
    """Steady items (one interaction every 10 minutes each, so every window holds as many
    as the one before) and bursts (item, start and length in seconds before END, count
    spread evenly), over the last `days` days; users round-robin."""
    rows = []
    for item in range(steady):
        rows += [(item, t) for t in range(0, days * 24 * HOUR, 600)]
    for item, start, length, count in bursts:
        rows += [(item, start - length * k // count) for k in range(count)]
    n_items = steady + len(bursts)
    users = np.arange(len(rows)) % 50
    u, i, ago = users, np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    order = np.lexsort((-ago, u))
    return Interactions(
        user_ids=np.array([f"u{k}" for k in range(50)]),
        item_ids=np.array([f"i{k}" for k in range(n_items)]),
        users=u[order].astype(np.int32),
        items=i[order].astype(np.int32),
        timestamps=END - ago[order],
        event_types=np.array([""] * len(rows)),
    )


def test_auto_keeps_the_day_when_only_the_last_day_rises():
    # nothing before the last day foretells anything: every window's lift is about 1,
    # and the longest within one standard error of the best is kept, where the rise shows
    d = timeline(60, [(60, 24 * HOUR - 1, 24 * HOUR - 1, 60)])
    frequency, lifts = trending.choose_frequency(d)
    assert set(lifts) == set(trending.FREQUENCIES)
    assert frequency == "1 day", lifts
    sol = in_memory(
        build_meta("trending-now", {}, {}),
        model_arrays("trending-now", d, {"trend_discovery_frequency": "auto"}),
    )
    idx, _, _ = recipes.recipe("trending-now").scorer(sol).recommend(np.array([-1]), 25, True)
    assert idx[0, 0] == 60
    assert int(sol.arrays["trend_window"]) == trending.FREQUENCIES["1 day"]


def test_auto_takes_a_short_window_where_short_rises_go_on():
    # a new item every half hour, busy for an hour: one rising in the last half hour goes
    # on in the next, while yesterday's risers are quiet today
    bursts = [(60 + k, 30 * 60 * (k + 2), HOUR, 40) for k in range(100)]
    frequency, lifts = trending.choose_frequency(timeline(60, bursts))
    assert frequency in ("30 minutes", "1 hour"), lifts
    assert lifts[frequency] > 1 > lifts["1 day"]


def test_describe_shows_the_window_and_what_auto_measured():
    d = timeline(60, [(60, 24 * HOUR - 1, 24 * HOUR - 1, 60)])
    auto = in_memory(
        build_meta("trending-now", {"trend_discovery_frequency": "auto"}, {}),
        model_arrays("trending-now", d, {"trend_discovery_frequency": "auto"}),
    )
    window = auto.describe()["trendWindow"]
    assert window["frequency"] == "1 day"
    assert window["latestWindowEnds"] == "2023-11-14T22:13:20Z"  # END, the latest timestamp
    assert list(window["lifts"]) == list(trending.FREQUENCIES)
    _, lifts = trending.choose_frequency(d)
    assert window["lifts"] == {name: round(lift, 4) for name, lift in lifts.items()}
    hp = {"trend_discovery_frequency": "3 hours"}
    given = in_memory(build_meta("trending-now", hp, {}), model_arrays("trending-now", d, hp))
    assert given.describe()["trendWindow"] == {
        "frequency": "3 hours",
        "latestWindowEnds": "2023-11-14T22:13:20Z",
    }


def test_train_and_evaluate_say_the_window_is_decided_at_fit():
    d = timeline(60, [])
    report = choose("trending-now", d, {"trend_discovery_frequency": "auto"}).report
    assert report["searched"] is False
    assert (
        report["reason"]
        == "trending-now is not searched; a value `auto` is decided when it is fitted"
    )
    assert (
        choose("popularity-count", d, {}).report["reason"]
        == "popularity-count has no hyperparameters"
    )
