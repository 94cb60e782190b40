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
from threadpoolctl import threadpool_limits

from personalize_batch import recipes
from personalize_batch.data import Interactions
from personalize_batch.recipes.numeric import topk
from personalize_batch.solution import build_meta, in_memory, model_arrays
from personalize_batch.tuning import choose


class Model(Protocol):
    def scores(self, users: np.ndarray) -> np.ndarray: ...


class Method:
    """A name, a starting point, a grid for coordinate descent, and fit."""

    name = ""
    start: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    needs_time = False  # only for data with timestamps

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
        # one thread above 12,000 items: OpenBLAS's threaded Cholesky crashes on large ones
        with threadpool_limits(1 if n > 12_000 else None, "blas"):
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


class RecentPopularity(Method):
    """The items most interacted with in the training part's last `days` days (ties and
    the rest: all-time counts); `days` 0 is all-time popularity."""

    name = "recent popularity"
    needs_time = True
    start = {"days": 0.0}
    grid = {"days": [0.0, 1.0, 2.0, 4.0, 7.0, 14.0, 30.0, 60.0, 120.0, 365.0]}

    def fit(self, train: Interactions, hp: dict[str, Any], cache: dict) -> Model:
        counts = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
        if hp["days"] > 0:
            recent = train.timestamps >= train.timestamps.max() - hp["days"] * 86400
            window = np.bincount(train.items[recent], minlength=train.n_items)
            counts = window + counts / (counts.max() + 1.0)  # all-time counts break ties
        return _Dense(lambda users: np.tile(counts, (len(users), 1)))


class PbatchPlain(Method):
    """pbatch as a user runs it: `pbatch train` chooses its own settings on the
    training part it is given (tuning.choose), then fits them; nothing is tuned by the
    benchmark. `fixed` are --hp values (the order-blind ablation fixes recency_mask);
    `validation` is --validation-split."""

    name = "pbatch (plain train)"
    tuned_by_pbatch = True

    def __init__(
        self,
        recipe: str = "user-personalization",
        fixed: dict[str, Any] | None = None,
        name: str | None = None,
        overrides: dict[str, Any] | None = None,
        validation: str = "auto",
    ) -> None:
        self.recipe = recipe
        self.fixed = fixed or {}
        self.overrides = overrides or {}
        self.validation = validation
        self.name = name or self.name
        self.start = recipes.recipe(recipe).hyperparameters.defaults()

    def choose(self, train: Interactions) -> tuple[dict[str, Any], dict[str, Any]]:
        """What `pbatch train` chooses on `train`: (hyperparameters, its report)."""
        hp = {**self.start, **self.fixed}
        chosen = choose(
            self.recipe, train, hp, given=frozenset(self.fixed), seed=0, validation=self.validation
        )
        return chosen.hyperparameters, chosen.report

    def scorer(self, train: Interactions, hp: dict[str, Any]) -> Any:
        hp = {**hp, **self.overrides}
        arrays = model_arrays(self.recipe, train, hp)
        solution = in_memory(build_meta(self.recipe, hp, {}), arrays)
        return recipes.recipe(self.recipe).scorer(solution)

    def fit(self, train: Interactions, hp: dict[str, Any], cache: dict) -> Model:
        return _Dense(self.scorer(train, hp).logits)


def PEERS() -> list[Method]:  # noqa: N802  (a constant, built on demand)
    """The peers, each tuned on the validation split by the benchmark."""
    return [MostPopular(), RecentPopularity(), ItemKNN(), ALS(), EASE()]


def PBATCH() -> list[PbatchPlain]:  # noqa: N802
    """pbatch's rows: plain train, its order-blind ablation (--hp recency_mask=false),
    and the large-catalogue path forced with plain train's choice."""
    return [
        PbatchPlain(),
        PbatchPlain(fixed={"recency_mask": False}, name="pbatch order-blind (plain train)"),
    ]


def VARIANTS() -> list[PbatchPlain]:  # noqa: N802
    """Run with plain train's chosen values (no choice of their own)."""
    return [
        PbatchPlain(name=f"pbatch, max_dense_items={k}", overrides={"max_dense_items": k})
        for k in (1000, 0)
    ]


# ------------------------------------------------------------------ sims


def pbatch_sims(train: Interactions, hp: dict[str, Any] | None = None) -> sp.csr_matrix:
    """pbatch sims' neighbour lists as an items x items similarity matrix (`hp`: the
    values that differ from the defaults)."""
    sims = recipes.recipe("sims")
    a = sims.fit(train, {**sims.hyperparameters.defaults(), **(hp or {})})
    n = train.n_items
    return sp.csr_matrix((a["sims_data"], a["sims_indices"], a["sims_indptr"]), shape=(n, n))


def sims_plain(train: Interactions) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """sims as a plain `pbatch train` fits it on `train`: (similarities, chosen values)."""
    hp = recipes.recipe("sims").hyperparameters.defaults()
    chosen = choose("sims", train, hp, seed=0)
    return pbatch_sims(train, chosen.hyperparameters), chosen.report.get("chosen", {})


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


def sims_peers() -> list[tuple[str, Callable[[Interactions], sp.csr_matrix]]]:
    return [
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
