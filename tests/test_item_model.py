"""The closed-form item-item model against the formula computed the obvious way, and
the user model's determinism for a fixed seed."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import EXAMPLES, PBATCH

from personalize_batch.cli import main
from personalize_batch.recipes import item_model


def _random_matrix(n_users: int = 300, n_items: int = 25, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    taste = rng.random((n_users, 3)) @ rng.random((3, n_items))
    x = (rng.random((n_users, n_items)) < 0.4 * taste / taste.max()).astype(np.float32)
    return sp.csr_matrix(x)


def _reference(x: sp.csr_matrix, regularization: float, dropout: float) -> np.ndarray:
    """B = -P / diag(P) off the diagonal, P = (XᵀX + Λ)⁻¹, in float64 with numpy.inv."""
    g = (x.T @ x).toarray().astype(np.float64)
    counts = np.diag(g).copy()
    p = np.linalg.inv(g + np.diag(regularization + dropout / (1 - dropout) * counts))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def _fit(x: sp.csr_matrix, **kw) -> tuple[np.ndarray, str]:
    n = x.shape[1]
    args = {
        "min_users": 1,
        "regularization": 5.0,
        "dropout": 0.2,
        "k": n,
        "max_dense_items": 1000,
        "rank": n,
        "support": sp.csr_matrix(np.ones((n, n))),
        "seed": 0,
        **kw,
    }
    parts, path = item_model.fit(x, **args)
    m = sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=(n, n))
    return m.toarray(), path


def test_dense_path_is_the_closed_form():
    x = _random_matrix()
    got, path = _fit(x)
    assert path == "dense"
    np.testing.assert_allclose(got, _reference(x, 5.0, 0.2), rtol=2e-3, atol=1e-5)


def test_dense_path_keeps_the_largest_weights_per_row():
    x = _random_matrix()
    got, _ = _fit(x, k=4)
    want = _reference(x, 5.0, 0.2)
    assert ((got != 0).sum(axis=1) == 4).all()
    for row, full in zip(got, want, strict=True):
        kept = np.flatnonzero(row)
        assert np.abs(full[kept]).min() >= np.sort(np.abs(full))[-4] - 1e-6


def test_low_rank_path_at_full_rank_is_the_closed_form():
    """With hidden_dimension >= items the eigendecomposition is exact, so is B."""
    x = _random_matrix()
    want = _reference(x, 5.0, 0.2)
    got, path = _fit(x, max_dense_items=0)
    assert path == "low-rank"
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-4)
    core, path = _fit(x, max_dense_items=10)
    assert path == "dense core + low-rank"
    # the 10 most popular items keep the exact model among themselves
    counts = np.asarray(x.sum(axis=0)).ravel()
    top = np.lexsort((np.arange(25), -counts))[:10]
    sub = _reference(x[:, np.sort(top)], 5.0, 0.2)
    np.testing.assert_allclose(core[np.ix_(np.sort(top), np.sort(top))], sub, rtol=2e-3, atol=1e-5)


def test_low_rank_path_follows_the_support_and_the_seed():
    x = _random_matrix()
    support = sp.csr_matrix(np.eye(25, k=1) + np.eye(25, k=-1))
    got, _ = _fit(x, max_dense_items=0, rank=4, support=support)
    assert set(zip(*np.nonzero(got), strict=True)) <= set(zip(*support.nonzero(), strict=True))
    again, _ = _fit(x, max_dense_items=0, rank=4, support=support)
    np.testing.assert_array_equal(got, again)
    other, _ = _fit(x, max_dense_items=0, rank=4, support=support, seed=1)
    assert not np.array_equal(got, other)


def test_rare_items_are_left_out():
    x = _random_matrix()
    counts = np.asarray(x.sum(axis=0)).ravel()
    cut = int(np.median(counts))
    got, _ = _fit(x, min_users=cut)
    rare = counts < cut
    assert not got[rare].any() and not got[:, rare].any()


def test_same_seed_same_output(tmp_path):
    """Two trainings with the same --seed answer byte for byte alike, on both item-model
    paths (the low-rank one starts from a seeded random matrix)."""
    runner = CliRunner()
    outs = []
    for k, hp in enumerate(["max_dense_items=10000", "max_dense_items=0", "max_dense_items=0"]):
        model = tmp_path / f"m{k}.npz"
        seed = "7"
        args = ["train", "-r", "user-personalization", "-i", str(EXAMPLES / "interactions.csv")]
        args += ["-o", str(model), "--hp", hp, "--hp", "hidden_dimension=16", "--seed", seed, "-q"]
        assert runner.invoke(main, args).exit_code == 0
        result = runner.invoke(
            main, ["run", "-s", str(model), "-i", str(EXAMPLES / "users.json"), "-o", "-", "-q"]
        )
        assert result.exit_code == 0, result.output
        outs.append(result.stdout)
    assert outs[1] == outs[2]
    assert outs[0] != outs[1]


def _openblas_x86() -> bool:
    """numpy and scipy run OpenBLAS with its kernels for several x86 processors (the
    wheels do), so OPENBLAS_CORETYPE can make one machine run another's."""
    import platform

    build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return platform.machine() in ("x86_64", "AMD64") and "openblas" in build["name"]


@pytest.mark.skipif(not _openblas_x86(), reason="needs OpenBLAS's x86 kernels")
@pytest.mark.parametrize("hp", ["max_dense_items=10000", "max_dense_items=300"])
def test_the_same_solution_on_any_processor(hp, tmp_path):
    """The BLAS kernels of other processors (OpenBLAS picks one per processor; an older
    x86 runs Haswell's or Sandybridge's, or numpy without AVX-512) train the same
    arrays, bit for bit, on the exact path and on the dense core + low-rank one."""
    import os
    import subprocess

    kernels = {
        "this machine": {},
        "Haswell": {"OPENBLAS_CORETYPE": "Haswell"},
        "Sandybridge": {"OPENBLAS_CORETYPE": "Sandybridge"},
        "no AVX-512": {"NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL"},
    }
    arrays = {}
    for name, env in kernels.items():
        model = tmp_path / f"{name}.npz"
        args = ["train", "-r", "user-personalization", "-i", str(EXAMPLES / "interactions.csv")]
        args += ["-o", str(model), "--hp", hp, "-q"]
        subprocess.run(
            [*PBATCH, *args],
            env={**os.environ, **env},
            check=True,
        )
        with np.load(model) as z:
            arrays[name] = {k: z[k] for k in z.files if k != "meta"}  # meta: the time
    first = arrays["this machine"]
    assert first["up_im_data"].size > 1000
    for name, got in arrays.items():
        assert got.keys() == first.keys()
        differ = [k for k in first if not np.array_equal(got[k], first[k])]
        assert not differ, f"{name}: {differ}"


def test_one_thread_cholesky_is_the_same_model(monkeypatch):
    """Above THREADED_CHOLESKY_ITEMS the factorization runs on one BLAS thread: the
    model it gives is the closed form, bit for bit the threaded one's."""
    x = _random_matrix()
    threaded, _ = _fit(x)
    monkeypatch.setattr(item_model, "THREADED_CHOLESKY_ITEMS", 10)
    single, path = _fit(x)
    assert path == "dense"
    np.testing.assert_array_equal(single, threaded)
    np.testing.assert_allclose(single, _reference(x, 5.0, 0.2), rtol=2e-3, atol=1e-5)


@pytest.mark.slow
def test_a_large_exact_item_model_is_fitted():
    """16,000 items on the exact path, in a child process: OpenBLAS's threaded Cholesky
    killed the process (SIGSEGV) above about 15,500 items on two threads."""
    import subprocess
    import sys

    code = (
        "import numpy as np, scipy.sparse as sp\n"
        "from personalize_batch.recipes import item_model\n"
        "n, users = 16_000, 40_000\n"
        "rng = np.random.default_rng(0)\n"
        "rows = np.repeat(np.arange(users), 20)\n"
        "cols = (rng.zipf(1.3, len(rows)) - 1) % n\n"
        "x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, n))\n"
        "x.data[:] = 1.0\n"
        "parts, path = item_model.fit(x, min_users=1, regularization=10.0, dropout=0.1,\n"
        "    k=50, max_dense_items=n, rank=8, support=sp.csr_matrix((n, n)), seed=0)\n"
        "print(path, int((np.diff(parts['indptr']) > 0).sum()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    path, rows = done.stdout.split()
    assert path == "dense" and int(rows) > 10_000
