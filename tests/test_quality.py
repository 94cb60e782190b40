"""user-personalization is a real model: it beats popularity-count on held-out data, and
the order of a user's history changes its answer."""

from __future__ import annotations

import csv
import gzip
import random
from pathlib import Path

import numpy as np

from personalize_batch.job.lines import Request
from personalize_batch.job.scoring import Answerer
from personalize_batch.recipes.validation import summarize
from personalize_batch.solution import load
from personalize_batch.training import train

DATA = Path(__file__).resolve().parents[1] / "datasets"


def _ndcg10(
    recipe: str, train_csv: str, truths: dict[str, set[str]], tmp_path, hp: tuple[str, ...] = ()
) -> float:
    model = tmp_path / f"{recipe}.npz"
    train(recipe, train_csv, str(model), hp_pairs=hp)
    answerer = Answerer(load(str(model)), 25)
    users = sorted(truths)
    lists = [items for items, _ in answerer.answer([Request({}, user=u) for u in users])]
    metrics = summarize(
        lists,
        [truths[u] for u in users],
        answerer.scorer.n_items if hasattr(answerer.scorer, "n_items") else 1,
    )
    return metrics["normalized_discounted_cumulative_gain_at_10"]


def test_beats_popularity_on_movietweetings_after_a_time_cut(tmp_path):
    """A slice of MovieTweetings, trained on what happened before the 90th percentile of
    its timestamps: each user's next new item after it is held out (what a nightly batch
    job is asked: what will they want next)."""
    with gzip.open(DATA / "movietweetings-100k" / "interactions.csv.gz", "rt") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [r for r in reader if int(r[0]) <= 6000]
    cut = np.quantile([int(r[2]) for r in rows], 0.9)
    train_rows = [r for r in rows if int(r[2]) < cut]
    met: dict[str, set[str]] = {}
    for r in train_rows:
        met.setdefault(r[0], set()).add(r[1])
    truths: dict[str, set[str]] = {}
    for r in sorted((r for r in rows if int(r[2]) >= cut), key=lambda r: int(r[2])):
        if r[0] in met and r[0] not in truths and r[1] not in met[r[0]]:
            truths[r[0]] = {r[1]}
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(train_rows)
    up = _ndcg10("user-personalization", str(path), truths, tmp_path)
    pop = _ndcg10("popularity-count", str(path), truths, tmp_path)
    assert up > 1.5 * pop, (up, pop)


def test_beats_popularity_on_anime_random_holdout(tmp_path):
    """A slice of anime-5k, rows shuffled per user (no time), 10% of each user held out."""
    rng = random.Random(7)
    with gzip.open(DATA / "anime-5k" / "interactions.csv.gz", "rt") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [r for r in reader if int(r[0]) <= 800]
    by_user: dict[str, list[list[str]]] = {}
    for r in rows:
        by_user.setdefault(r[0], []).append(r)
    train_rows, truths = [], {}
    for user, events in by_user.items():
        rng.shuffle(events)
        if len(events) >= 10:
            n = len(events) // 10
            truths[user] = {r[1] for r in events[-n:]}
            events = events[:-n]
        train_rows += events
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(train_rows)
    up = _ndcg10("user-personalization", str(path), truths, tmp_path)
    pop = _ndcg10("popularity-count", str(path), truths, tmp_path)
    assert up > 1.1 * pop, (up, pop)


def test_order_of_history_changes_the_answer(tmp_path):
    """Same items, other order: another list (the model is sequence-aware)."""
    rng = np.random.default_rng(0)
    lines = ["USER_ID,ITEM_ID,TIMESTAMP"]
    for u in range(300):
        items = rng.choice(60, size=8, replace=False)
        lines += [f"u{u},i{it},{1000 + k}" for k, it in enumerate(items)]
    lines += ["a,i1,1", "a,i2,2", "a,i3,3", "a,i4,4", "b,i4,1", "b,i3,2", "b,i2,3", "b,i1,4"]
    path = tmp_path / "i.csv"
    path.write_text("\n".join(lines) + "\n")
    model = tmp_path / "m.npz"
    # the defaults, as given: on this order-less data, `pbatch train` turns order off
    train("user-personalization", str(path), str(model), tune=False)
    answerer = Answerer(load(str(model)), 10)
    (a_items, a_scores), (b_items, b_scores) = answerer.answer(
        [Request({}, user="a"), Request({}, user="b")]
    )
    assert set(a_items).isdisjoint({"i1", "i2", "i3", "i4"})
    assert a_items != b_items or a_scores != b_scores
    train(
        "user-personalization", str(path), str(model), hp_pairs=("recency_mask=false",), tune=False
    )
    blind = Answerer(load(str(model)), 10)
    (a2, s2), (b2, t2) = blind.answer([Request({}, user="a"), Request({}, user="b")])
    assert (a2, s2) == (b2, t2)  # the order-blind ablation cannot tell them apart
