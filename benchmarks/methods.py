"""The methods the quality benchmark compares, each with its tuning grid.

A Method fits on an Interactions training part and returns a Model whose `scores(users)`
is a dense users x items array (higher is better; exclusions are the caller's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp

from personalize_batch.data import Interactions
from personalize_batch.recipes import recipe_module
from personalize_batch.recipes.base import topk
from personalize_batch.solution import build_meta, in_memory
from personalize_batch.training import fit_arrays


class Model(Protocol):
    def scores(self, users: np.ndarray) -> np.ndarray: ...


class Method:
    """A name, a starting point, a grid for coordinate descent, and fit."""

    name = ""
    start: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}

    def active(self, name: str, hp: dict[str, Any], train: Interactions) -> bool:
        """Whether tuning `name` can change anything given the other values."""
        return True

    def fit(self, train: Interactions, hp: dict[str, Any], cache: dict) -> Model:
        raise NotImplementedError


class _Dense:
    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.scores = fn


def binary(train: Interactions) -> sp.csr_matrix:
    return train.matrix().astype(np.float32)


class MostPopular(Method):
    name = "most-popular"

    def fit(self, train: Interactions, hp: dict[str, Any], cache: dict) -> Model:
        counts = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
        return _Dense(lambda users: np.tile(counts, (len(users), 1)))


class ItemKNN(Method):
    """implicit's CosineRecommender: item-item cosine, K neighbours per item."""

    name = "item-kNN (implicit cosine)"
    start = {"K": 100}
    grid = {"K": [5, 10, 20, 50, 100, 200, 500, 1000, 2000]}

    def fit(self, train: Interactions, hp: dict[str, Any], cache: dict) -> Model:
        from implicit.nearest_neighbours import CosineRecommender  # noqa: PLC0415

        x = binary(train)
        model = CosineRecommender(K=hp["K"])
        model.fit(x, show_progress=False)
        sim = model.similarity.tocsr()
        return _Dense(lambda users: (x[users] @ sim).toarray())


class ALS(Method):
    """implicit's AlternatingLeastSquares (conjugate gradient), 15 iterations."""

    name = "ALS (implicit)"
    start = {"factors": 64, "regularization": 0.1, "alpha": 4.0}
    grid = {
        "factors": [32, 64, 128, 256, 512],
        "regularization": [0.01, 0.1, 1.0, 10.0, 100.0],
        "alpha": [1.0, 4.0, 16.0, 64.0],
    }

    def fit(self, train: Interactions, hp: dict[str, Any], cache: dict) -> Model:
        from implicit.als import AlternatingLeastSquares  # noqa: PLC0415
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        model = AlternatingLeastSquares(
            factors=hp["factors"],
            regularization=hp["regularization"],
            alpha=hp["alpha"],
            iterations=15,
            random_state=0,
        )
        with threadpool_limits(1, "blas"):  # implicit's advice for its own threads
            model.fit(binary(train), show_progress=False)
        uf = np.asarray(model.user_factors, dtype=np.float64)
        itf = np.asarray(model.item_factors, dtype=np.float64)
        return _Dense(lambda users: uf[users] @ itf.T)


class EASE(Method):
    """EASE (Steck 2019) in closed form over every training item: B = I - P/diag(P)."""

    name = "EASE"
    start = {"lambda": 300.0}
    grid = {"lambda": [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0]}

    def fit(self, train: Interactions, hp: dict[str, Any], cache: dict) -> Model:
        x = binary(train)
        g = (x.T @ x).toarray().astype(np.float64)
        n = len(g)
        g[np.diag_indices(n)] += hp["lambda"]
        p, info = sl.lapack.dpotrf(g, lower=1, clean=1, overwrite_a=1)
        if info == 0:
            p, info = sl.lapack.dpotri(p, lower=1, overwrite_c=1)
        if info:
            raise ArithmeticError("EASE: Gram matrix not positive definite")
        # P is in the lower triangle: fill B a block of rows at a time (no full copies)
        diag = np.diag(p).copy()
        b = np.empty_like(p)
        for s in range(0, n, 1024):
            e = min(n, s + 1024)
            upper = np.arange(n)[None, :] > np.arange(s, e)[:, None]
            b[s:e] = -np.where(upper, p[:, s:e].T, p[s:e]) / diag
        del p, g
        np.fill_diagonal(b, 0.0)
        return _Dense(lambda users: x[users] @ b)


class Pbatch(Method):
    """pbatch user-personalization through its own fit and Scorer.logits."""

    name = "pbatch"
    ordered = True
    grid = {
        "popularity_half_life_days": [0.5, 1.0, 3.0, 7.0, 30.0, 365.0],
        "popularity_weight": [0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
        "regularization": [30.0, 100.0, 300.0, 1000.0, 3000.0],
        "max_history_length": [10, 30, 100, 1000],
        "recency_mask": [True, False],
        "recency_half_life": [1.0, 2.0, 4.0, 8.0, 32.0],
        "dropout": [0.0, 0.1, 0.3],
        "neighbour_weight": [0.0, 0.1, 0.3, 1.0],
        "transition_weight": [0.0, 0.1, 0.3, 1.0, 3.0],
    }
    overrides: dict[str, Any] = {}

    def __init__(self) -> None:
        self.start = recipe_module("user-personalization").HYPERPARAMETERS.defaults()
        if not self.ordered:
            self.name = "pbatch order-blind"
            self.start["recency_mask"] = False
            self.grid = {k: v for k, v in self.grid.items() if k != "recency_mask"}

    def active(self, name: str, hp: dict[str, Any], train: Interactions) -> bool:
        if name == "popularity_half_life_days":
            return train.has_timestamps and hp["popularity_weight"] > 0
        if name in ("recency_half_life", "transition_weight", "max_history_length"):
            return hp["recency_mask"]
        return True

    def fit(self, train: Interactions, hp: dict[str, Any], cache: dict) -> Model:
        hp = {**hp, **self.overrides}
        arrays = fit_arrays("user-personalization", train, hp, cache=cache)
        solution = in_memory(build_meta("user-personalization", hp, {}), arrays)
        scorer = recipe_module("user-personalization").Scorer(solution)
        return _Dense(scorer.logits)


class PbatchOrderBlind(Pbatch):
    ordered = False


class PbatchScalable(Pbatch):
    """pbatch with pbatch's tuned values but the large-catalogue path forced: only the
    `max_dense_items` most popular items fitted exactly (0: low rank only)."""

    def __init__(self, max_dense_items: int) -> None:
        super().__init__()
        self.overrides = {"max_dense_items": max_dense_items}
        self.name = f"pbatch, max_dense_items={max_dense_items}"


def ALL_METHODS() -> list[Method]:  # noqa: N802  (a constant, built on demand)
    return [MostPopular(), ItemKNN(), ALS(), EASE(), Pbatch(), PbatchOrderBlind()]


def VARIANTS() -> list[Method]:  # noqa: N802
    """Run with pbatch's tuned values (no tuning of their own)."""
    return [PbatchScalable(1000), PbatchScalable(0)]


# ------------------------------------------------------------------ sims


def pbatch_sims(train: Interactions, factor: float = 0.5) -> sp.csr_matrix:
    """pbatch sims' neighbour lists as an items x items similarity matrix."""
    module = recipe_module("sims")
    hp = module.HYPERPARAMETERS.defaults()
    hp["popularity_discount_factor"] = factor
    a = module.fit(train, hp)
    n = train.n_items
    return sp.csr_matrix((a["sims_data"], a["sims_indices"], a["sims_indptr"]), shape=(n, n))


def _implicit_similarity(kind: str, k: int = 100) -> Callable[[Interactions], sp.csr_matrix]:
    def make(train: Interactions) -> sp.csr_matrix:
        from implicit import nearest_neighbours as nn  # noqa: PLC0415

        model = {
            "cosine": nn.CosineRecommender,
            "bm25": nn.BM25Recommender,
            "counts": nn.ItemItemRecommender,
        }[kind](K=k)
        model.fit(binary(train).astype(np.float64), show_progress=False)
        return model.similarity.tocsr()

    return make


def sims_methods() -> list[tuple[str, Callable[[Interactions], sp.csr_matrix]]]:
    return [
        ("pbatch sims (Personalize's defaults)", pbatch_sims),
        ("pbatch sims, popularity_discount_factor=0", lambda train: pbatch_sims(train, 0.0)),
        ("implicit cosine (K=100)", _implicit_similarity("cosine")),
        ("implicit BM25 (K=100)", _implicit_similarity("bm25")),
        ("implicit item-kNN, co-counts (K=100)", _implicit_similarity("counts")),
    ]


def sims_top10(sim: sp.csr_matrix, queries: np.ndarray, counts: np.ndarray) -> list[list[int]]:
    """Top 10 of each query's similarity row (never the query), filled by popularity."""
    n = sim.shape[0]
    fill = -1.0 - np.argsort(np.lexsort((np.arange(n), -counts))).astype(np.float64)
    out: list[list[int]] = []
    for s in range(0, len(queries), 1024):
        q = queries[s : s + 1024]
        keys = np.tile(fill, (len(q), 1))
        rows = sim[q].tocoo()
        positive = rows.data > 0
        keys[rows.row[positive], rows.col[positive]] = rows.data[positive]
        keys[np.arange(len(q)), q] = -np.inf
        idx, lengths = topk(keys, 10)
        out += [r[:m].tolist() for r, m in zip(idx, lengths, strict=True)]
    return out
