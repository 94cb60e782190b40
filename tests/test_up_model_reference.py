"""user-personalization's scorer against a slow pure-Python reading of its formula.

The reference takes a solution's stored parts (histories, item model, neighbours,
transitions, prior) and computes every logit of a user with dicts and floats, as the
module's docstring states the model: recency weights, the three normalised terms, the
prior, and a softmax over all items. The scorer's lists must be a top k of those logits
(ties within rounding either way) and its scores must equal the reference's softmax.
This checks the sparse products, the normalisation, the candidate selection and the
softmax sums, whichever path (sparse or dense) a row takes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_up_sparse import make_solution, random_rows

from personalize_batch.recipes import user_model
from personalize_batch.recipes import user_personalization as up

EPS = 1e-9  # logits of this model are O(1..100); sums in another order differ far less


def stored_row(arrays: dict, prefix: str, item: int) -> dict[int, float]:
    lo, hi = int(arrays[f"{prefix}_indptr"][item]), int(arrays[f"{prefix}_indptr"][item + 1])
    cols = arrays[f"{prefix}_indices"][lo:hi].tolist()
    vals = arrays[f"{prefix}_data"][lo:hi].tolist()
    return dict(zip(cols, vals, strict=True))


def normalised(term: dict[int, float], weight: float) -> dict[int, float]:
    top = max((abs(v) for v in term.values()), default=0.0)
    return {c: weight * v / top for c, v in term.items()} if top > 0 else {}


def reference_logits(arrays: dict, hp: dict, user: int, n_items: int) -> list[float]:
    logits = [hp["popularity_weight"] * float(p) for p in arrays["up_prior"].tolist()]
    assert len(logits) == n_items
    if user < 0:
        return logits
    lo, hi = int(arrays["up_history_indptr"][user]), int(arrays["up_history_indptr"][user + 1])
    history = arrays["up_history_items"][lo:hi].tolist()  # oldest first
    ordered = hp["recency_mask"]
    if ordered:
        history = history[-math.ceil(user_model.WEIGHT_HALVINGS * hp["recency_half_life"]) :]
    weighted = []
    for pos, item in enumerate(history):
        age = len(history) - 1 - pos
        weighted.append((item, 0.5 ** (age / hp["recency_half_life"]) if ordered else 1.0))
    terms = []
    if hp["item_model_weight"]:
        im: dict[int, float] = defaultdict(float)
        for item, w in weighted:
            for c, v in stored_row(arrays, "up_im", item).items():
                im[c] += w * v
        terms.append(normalised({c: max(0.0, v) for c, v in im.items()}, hp["item_model_weight"]))
    if hp["neighbour_weight"]:
        nb: dict[int, float] = defaultdict(float)
        for item, w in weighted:
            for c, v in stored_row(arrays, "up_nb", item).items():
                nb[c] += w * v
        terms.append(normalised(nb, hp["neighbour_weight"]))
    if ordered and hp["transition_weight"] and history:
        latest = stored_row(arrays, "up_trans", history[-1])
        terms.append(normalised(latest, hp["transition_weight"]))
    for term in terms:
        for c, v in term.items():
            logits[c] += v
    return logits


def reference_softmax(logits: list[float], temperature: float) -> list[float]:
    top = max(logits)
    e = [math.exp((x - top) / temperature) for x in logits]
    total = math.fsum(e)
    return [x / total for x in e]


def check_user(got: list[int], scores: list[float], logits, probs, excluded, k) -> None:
    allowed = [i for i in range(len(logits)) if i not in excluded]
    assert len(got) == min(k, len(allowed))
    assert len(set(got)) == len(got) and not set(got) & excluded
    for a, b in zip(got, got[1:], strict=False):  # descending (within EPS: either order)
        assert logits[a] >= logits[b] - EPS
    if got:
        left = [logits[i] for i in allowed if i not in set(got)]
        assert max(left, default=-math.inf) <= logits[got[-1]] + EPS
    np.testing.assert_allclose(scores, [probs[i] for i in got], rtol=1e-9, atol=1e-300)


@settings(
    max_examples=16,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example trains: no shrinking
)
@given(
    seed=st.integers(0, 2**16),
    items=st.sampled_from([20, 95, 300]),  # 20: every row dense; else sparse, some dense
    k=st.sampled_from([1, 5, 25]),
    include_seen=st.booleans(),
    hp=st.sampled_from(
        [
            (),
            ("neighbour_weight=0.7", "transition_weight=0.5"),
            ("recency_mask=false", "neighbour_weight=0.3"),
            ("item_model_weight=0", "recency_half_life=0.5"),
            ("temperature=0.001", "item_model_weight=100"),
        ]
    ),
)
def test_scorer_matches_the_formula(tmp_path: Path, seed, items, k, include_seen, hp) -> None:
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, 40, items, 1500)
    rows += [(999, i, 1_700_000_000 + i) for i in range(min(80, items))]  # a heavy user
    sol = make_solution(tmp_path / f"s{seed}-{items}-{k}.npz", rows, hp)
    scorer = up.Scorer(sol)
    arrays, hparams = sol.arrays, sol.hyperparameters
    n_items = len(sol.item_ids)
    column = {item: c for c, item in enumerate(sol.item_ids.tolist())}
    seen: dict[str, set[int]] = defaultdict(set)
    for u, i, _t in rows:
        if f"i{i:04d}" in column:
            seen[f"u{u}"].add(column[f"i{i:04d}"])
    names = sorted(sol.user_ids.tolist())
    users = np.append(sol.user_index.lookup(names), -1)  # every user, and an unknown one
    idx, scores, lengths = scorer.recommend(users, k, include_seen)
    for r, (name, user) in enumerate(zip([*names, None], users.tolist(), strict=True)):
        logits = reference_logits(arrays, hparams, user, n_items)
        probs = reference_softmax(logits, hparams["temperature"])
        excluded = set() if include_seen or name is None else seen[name]
        n = int(lengths[r])
        check_user(idx[r, :n].tolist(), scores[r, :n].tolist(), logits, probs, excluded, k)
