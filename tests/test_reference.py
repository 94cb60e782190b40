"""The fast vectorized scorers against slow, obviously correct references (A.1, A.4, A.5).

Hypothesis builds small random interaction files (users u0..u9, items i0..i14, so that the
string order i0 < i1 < i10 < ... < i14 < i2 differs from the numeric one); each example
trains a solution through the library API and answers a batch of requests. popularity-count
and sims are compared with pure-Python references written from the contract (dicts and
loops, no numpy); personalized-ranking and user-personalization have no reference model, so
their contract properties are checked instead.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from collections import defaultdict
from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize_batch import solution as solution_mod
from personalize_batch import training
from personalize_batch.job.lines import Request
from personalize_batch.job.scoring import Answerer

USERS = [f"u{k}" for k in range(10)]
ITEMS = [f"i{k}" for k in range(15)]
UNKNOWN_USERS = ["nobody", "u10"]
UNKNOWN_ITEMS = ["zz", "i99", "x"]
NO_PERCENTILES = (
    "min_user_history_length_percentile=0",
    "max_user_history_length_percentile=1",
    "min_item_interaction_count_percentile=0",
    "max_item_interaction_count_percentile=1",
)

Row = tuple[str, str, int]


# ------------------------------------------------------------------ helpers


@st.composite
def interactions(draw) -> list[Row]:
    """Random (user, item, timestamp) rows, drawn user by user so that users share items
    (co-interactions); duplicate rows and equal timestamps included (all equal when
    max_hours is 0, which makes many items score alike: ties)."""
    n_users = draw(st.integers(1, len(USERS)))
    n_items = draw(st.integers(1, len(ITEMS)))
    max_hours = draw(st.sampled_from([0, 3, 40]))
    rows = []
    for u in range(n_users):
        history = draw(
            st.lists(
                st.tuples(st.integers(0, n_items - 1), st.integers(0, max_hours)),
                min_size=0 if rows or u < n_users - 1 else 1,
                max_size=12,
            )
        )
        rows += [(USERS[u], ITEMS[i], 1_600_000_000 + 3600 * t) for i, t in history]
    order = draw(st.permutations(range(len(rows))))  # file order is not user order
    return [rows[k] for k in order]


def train_and_load(recipe: str, rows: list[Row], hp_pairs: tuple[str, ...] = ()):
    """Write a Personalize CSV, train `recipe` on it, load the solution."""
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "interactions.csv")
        with open(csv_path, "w", encoding="utf-8") as f:
            f.write("USER_ID,ITEM_ID,TIMESTAMP\n")
            for user, item, ts in rows:
                f.write(f"{user},{item},{ts}\n")
        out = os.path.join(tmp, "model.npz")
        training.train(recipe, csv_path, out, hp_pairs=hp_pairs, tune=False)
        return solution_mod.load(out)


def close(got: float, want: float, rel: float = 1e-5) -> bool:
    return abs(got - want) <= rel * max(abs(got), abs(want)) + 1e-12


def descending(scores: list[float]) -> bool:
    return all(a >= b for a, b in pairwise(scores))


def seen_by_user(rows: list[Row]) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for user, item, _ in rows:
        seen[user].add(item)
    return seen


def popularity_order(rows: list[Row]) -> tuple[list[str], dict[str, int]]:
    """Distinct items by row count descending, then by index in the sorted id list."""
    count: dict[str, int] = defaultdict(int)
    for _, item, _ in rows:
        count[item] += 1
    index = {item: k for k, item in enumerate(sorted(count))}
    return sorted(count, key=lambda i: (-count[i], index[i])), count


# ------------------------------------------------------------------ popularity-count


def reference_popularity(
    rows: list[Row], user: str | None, n: int, include_seen: bool
) -> list[tuple[str, float]]:
    order, count = popularity_order(rows)
    skip = set() if include_seen or user is None else seen_by_user(rows).get(user, set())
    picked = [item for item in order if item not in skip][:n]
    return [(item, count[item] / len(rows)) for item in picked]


def check_exact(got: tuple[list[str], list[float]], want: list[tuple[str, float]]) -> None:
    items, scores = got
    assert items == [item for item, _ in want]
    assert len(scores) == len(items)
    for s, (_, w) in zip(scores, want, strict=True):
        assert close(s, w), (scores, want)


@settings(deadline=None, max_examples=200, derandomize=True)
@given(interactions(), st.integers(1, 20), st.booleans())
def test_popularity_count_matches_reference(rows, n, include_seen):
    sol = train_and_load("popularity-count", rows)
    answerer = Answerer(sol, n, include_seen=include_seen)
    users: list[str | None] = [*USERS, *UNKNOWN_USERS, None]
    answers = answerer.answer([Request(obj={}, user=u) for u in users])
    assert len(answers) == len(users)
    for user, got in zip(users, answers, strict=True):
        check_exact(got, reference_popularity(rows, user, n, include_seen))


def test_popularity_count_by_hand():
    # i2 three rows (one user twice), i10 and i1 one each: i1 < i10 in string order
    rows = [("u0", "i2", 1), ("u0", "i2", 2), ("u1", "i2", 3), ("u1", "i10", 4), ("u2", "i1", 5)]
    sol = train_and_load("popularity-count", rows)
    answers = Answerer(sol, 25, include_seen=False).answer(
        [Request(obj={}), Request(obj={}, user="u1"), Request(obj={}, user="u2")]
    )
    assert answers[0] == (["i2", "i1", "i10"], [0.6, 0.2, 0.2])
    assert answers[1] == (["i1"], [0.2])
    assert answers[2] == (["i2", "i10"], [0.6, 0.2])


# ------------------------------------------------------------------ sims


def reference_sims(
    rows: list[Row], query: str, discount: float, min_co: int
) -> tuple[list[tuple[str, float]], list[str]]:
    """(neighbours sorted by (-sim, index), the popularity fill after them)."""
    order, _ = popularity_order(rows)
    index = {item: k for k, item in enumerate(sorted(order))}
    if query not in index:
        return [], order
    users_of: dict[str, set[str]] = defaultdict(set)
    for user, item, _ in rows:
        users_of[item].add(user)
    n_q = len(users_of[query])
    neighbours = []
    for j in index:
        if j == query:
            continue
        co = len(users_of[query] & users_of[j])
        if co >= max(1, min_co):
            sim = co / (math.sqrt(n_q) * len(users_of[j]) ** discount)
            neighbours.append((j, sim))
    neighbours.sort(key=lambda t: (-t[1], index[t[0]]))
    listed = {j for j, _ in neighbours}
    fill = [j for j in order if j != query and j not in listed]
    return neighbours, fill


def tie_groups(neighbours: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    """Runs of neighbours whose sims are equal up to float noise (1e-6 relative)."""
    groups: list[list[tuple[str, float]]] = []
    for entry in neighbours:
        if groups and close(entry[1], groups[-1][-1][1], rel=1e-6):
            groups[-1].append(entry)
        else:
            groups.append([entry])
    return groups


def check_sims(got: tuple[list[str], list[float]], neighbours, fill, n: int) -> None:
    """Exact order where sims differ; the same set within a run of tied sims (at the cut,
    a subset); then exactly the popularity fill with score 0.0."""
    items, scores = got
    want_len = min(n, len(neighbours) + len(fill))
    assert len(items) == want_len and len(scores) == want_len
    assert len(set(items)) == len(items)
    pos = 0
    for group in tie_groups(neighbours):
        if pos >= want_len:
            break
        part = items[pos : pos + len(group)]
        assert set(part) <= {j for j, _ in group}, (items, neighbours)
        for k in range(len(part)):
            assert close(scores[pos + k], group[k][1]), (scores, neighbours)
            assert scores[pos + k] > 0
        pos += len(part)
    assert items[pos:] == fill[: want_len - pos]
    assert scores[pos:] == [0.0] * (want_len - pos)


@settings(deadline=None, max_examples=300, derandomize=True)
@given(
    interactions(),
    st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0)),
    st.integers(0, 3),
    st.integers(1, 20),
    st.booleans(),
)
def test_sims_matches_reference(rows, discount, min_co, n, include_seen):
    hp = (
        *NO_PERCENTILES,
        f"popularity_discount_factor={discount!r}",
        f"min_cointeraction_count={min_co}",
    )
    sol = train_and_load("sims", rows, hp)
    queries = [*ITEMS, *UNKNOWN_ITEMS]
    answers = Answerer(sol, n, include_seen=include_seen).answer(
        [Request(obj={}, item=q) for q in queries]
    )
    assert len(answers) == len(queries)
    for query, got in zip(queries, answers, strict=True):
        neighbours, fill = reference_sims(rows, query, discount, min_co)
        assert query not in got[0]
        check_sims(got, neighbours, fill, n)


def test_sims_by_hand():
    # n_a = 3, n_b = 3, n_c = 1; C_ab = 2, C_ac = 1, C_bc = 0
    rows = [
        ("u0", "a", 1),
        ("u0", "b", 2),
        ("u1", "a", 3),
        ("u1", "b", 4),
        ("u2", "a", 5),
        ("u2", "c", 6),
        ("u3", "b", 7),
    ]
    plain = train_and_load(
        "sims",
        rows,
        (*NO_PERCENTILES, "popularity_discount_factor=0.5", "min_cointeraction_count=1"),
    )
    got = Answerer(plain, 5).answer([Request(obj={}, item="a"), Request(obj={}, item="c")])
    assert got[0] == (["b", "c"], [0.666667, 0.57735])  # cosine: 2/(√3·√3), 1/(√3·1)
    assert got[1] == (["a", "b"], [0.57735, 0.0])  # 1/(1·√3); b only as the fill
    counts = train_and_load(
        "sims", rows, (*NO_PERCENTILES, "popularity_discount_factor=0", "min_cointeraction_count=1")
    )
    got = Answerer(counts, 5).answer([Request(obj={}, item="a")])
    assert got[0] == (["b", "c"], [1.1547, 0.57735])  # co-counts over √3: 2/√3, 1/√3
    discounted = train_and_load(
        "sims",
        rows,
        (*NO_PERCENTILES, "popularity_discount_factor=1", "min_cointeraction_count=1"),
    )
    got = Answerer(discounted, 5).answer([Request(obj={}, item="a")])
    assert got[0] == (["c", "b"], [0.57735, 0.3849])  # 2/(√3·3) now below c


# ------------------------------------------------------------------ personalized-ranking


@st.composite
def ranking_requests(draw) -> list[Request]:
    ids = st.sampled_from([*ITEMS, *UNKNOWN_ITEMS])
    out = []
    for _ in range(draw(st.integers(1, 6))):
        user = draw(st.sampled_from([*USERS, *UNKNOWN_USERS]))
        items = draw(st.lists(ids, min_size=1, max_size=25))
        out.append(Request(obj={"userId": user, "itemList": items}, user=user, items=items))
    return out


@settings(deadline=None, max_examples=150, derandomize=True)
@given(interactions(), ranking_requests(), st.booleans())
def test_personalized_ranking_properties(rows, requests, recency_mask):
    sol = train_and_load("personalized-ranking", rows, (f"recency_mask={recency_mask}",))
    answerer = Answerer(sol, 25, include_seen=False)
    known = {item for _, item, _ in rows}
    index = {item: k for k, item in enumerate(sorted(known))}
    answers = answerer.answer(requests)
    assert len(answers) == len(requests)
    temperature = sol.hyperparameters["temperature"]
    for request, (items, scores) in zip(requests, answers, strict=True):
        distinct = list(dict.fromkeys(request.items))
        known_part = [i for i in distinct if i in known]
        unknown_part = [i for i in distinct if i not in known]
        n_known = len(known_part)
        assert len(items) == len(scores) == len(distinct)
        assert sorted(items[:n_known]) == sorted(known_part)
        assert items[n_known:] == unknown_part
        assert scores[n_known:] == [0.0] * len(unknown_part)
        assert all(s > 0 for s in scores[:n_known])
        assert descending(scores), scores
        if n_known:
            assert abs(sum(scores[:n_known]) - 1.0) <= 1e-5
        # order: the softmax input descending, then item index (A.4)
        user = sol.user_index.get(request.user, -1)
        z = answerer.scorer.logits(np.array([user]))[0] / temperature
        assert items[:n_known] == sorted(known_part, key=lambda i: (-z[index[i]], index[i]))
    # batch equals one-by-one
    assert [answerer.answer([r])[0] for r in requests] == answers


# ------------------------------------------------------------------ user-personalization


@settings(deadline=None, max_examples=150, derandomize=True)
@given(
    interactions(),
    st.integers(1, 20),
    st.booleans(),
    st.booleans(),
    st.sampled_from([1, 3, 100]),
    st.randoms(use_true_random=False),
)
def test_user_personalization_properties(
    rows, n, include_seen, recency_mask, max_history, rnd: random.Random
):
    hp = (f"recency_mask={recency_mask}", f"max_history_length={max_history}")
    sol = train_and_load("user-personalization", rows, hp)
    answerer = Answerer(sol, n, include_seen=include_seen)
    all_items = {item for _, item, _ in rows}
    index = {item: k for k, item in enumerate(sorted(all_items))}
    seen = seen_by_user(rows)
    users = [*USERS, *UNKNOWN_USERS]
    rnd.shuffle(users)
    answers = answerer.answer([Request(obj={"userId": u}, user=u) for u in users])
    assert len(answers) == len(users)
    for user, (items, scores) in zip(users, answers, strict=True):
        excluded = set() if include_seen else seen.get(user, set())
        assert len(items) == len(scores) == min(n, len(all_items - excluded))
        assert len(set(items)) == len(items)
        assert set(items) <= all_items - excluded
        assert all(0 < s <= 1 for s in scores), scores
        assert descending(scores), scores
        # order: the model's logit descending, then item index (A.4)
        logits = answerer.scorer.logits(np.array([sol.user_index.get(user, -1)]))[0]
        ranked = sorted(all_items - excluded, key=lambda i: (-logits[index[i]], index[i]))
        assert items == ranked[:n]
    # batch equals one-by-one, whatever the batch order
    singles = [answerer.answer([Request(obj={"userId": u}, user=u)])[0] for u in users]
    assert singles == answers


# ------------------------------------------------------------------ regressions


def test_tiny_probability_is_a_number():
    """Was a bug: round_sig gave nan below ~1e-303, written as `null`. An unknown user
    ranking ['a', 'b'] (a: 10 rows, b: 9 rows) with temperature=0.0001 and
    popularity_weight=0.7 has logits 0.7 and 0.63: p(b) = exp(-700), about 1e-304."""
    rows = [(f"v{k}", "a", 0) for k in range(10)] + [(f"w{k}", "b", 0) for k in range(9)]
    sol = train_and_load(
        "personalized-ranking", rows, ("temperature=0.0001", "popularity_weight=0.7")
    )
    items, scores = Answerer(sol).answer([Request(obj={}, user="nobody", items=["a", "b"])])[0]
    assert items == ["a", "b"]
    assert scores[0] == 1.0
    assert math.isfinite(scores[1]) and 0 <= scores[1] < 1e-300, scores
