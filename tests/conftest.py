import os
import subprocess
import sys
from pathlib import Path
from typing import Any

_TESTS_DIR = str(Path(__file__).parent)
if _TESTS_DIR not in sys.path:  # tests/ is not a package
    sys.path.insert(0, _TESTS_DIR)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from s3server import s3_bucket, s3_client, s3_env, s3_server  # noqa: E402, F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RECIPES = ("user-personalization", "popularity-count", "personalized-ranking", "sims")
EXAMPLE_INPUTS = {
    "user-personalization": "users.json",
    "popularity-count": "popularity.json",
    "personalized-ranking": "ranking.json",
    "sims": "items.json",
}
# the CLI in a new process: through the interpreter the tests run on
PBATCH = [sys.executable, "-m", "personalize_batch.cli"]
# and through the installed `pbatch` command where there is one (the entry point itself)
_SCRIPT = Path(sys.executable).parent / "pbatch"
PBATCH_SCRIPT = [str(_SCRIPT)] if _SCRIPT.exists() else PBATCH


def npz_arrays(path: Any) -> dict[str, np.ndarray]:
    """Every array of a solution file, as np.load reads it."""
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_npz(path: Any, arrays: dict[str, np.ndarray]) -> str:
    """The arrays as np.savez writes them (its members are not aligned), as a solution
    edited by hand would be; the path, for load()."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


def run_on_fifo(
    solution: Path, tmp_path: Path, *args: str, **popen: Any
) -> tuple[subprocess.Popen, Path]:
    """`pbatch run -s SOLUTION -i FIFO ARGS...` started on a new FIFO, which the job reads
    as the test writes it: the process and the FIFO's path."""
    fifo = tmp_path / "in.json"
    os.mkfifo(fifo)
    command = [*PBATCH, "run", "-s", str(solution), "-i", str(fifo), *args]
    return subprocess.Popen(command, **popen), fifo


@pytest.fixture(autouse=True)
def pbatch_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own job store, never the user's."""
    home = tmp_path_factory.mktemp("pbatch-home")
    monkeypatch.setenv("PBATCH_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_stray_workers(pbatch_home: Path):
    """A failed test must not leave a background job (e.g. one blocked on a FIFO) behind."""
    yield
    import os
    import signal

    from personalize_batch.job.store import JobStore

    store = JobStore(pbatch_home)
    for record in store.records():
        pid = store.owner(record["jobName"])
        if record["status"] not in ("PENDING", "IN PROGRESS") or not pid:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"personalize_batch.service.worker" in f.read():  # only our own workers
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
    store.close()


@pytest.fixture(scope="session")
def solutions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One solution per recipe, trained on the bundled example data."""
    from personalize_batch.training import train

    folder = tmp_path_factory.mktemp("solutions")
    out = {}
    for recipe in RECIPES:
        path = folder / f"{recipe}.npz"
        train(recipe, str(EXAMPLES / "interactions.csv"), str(path), tune=False)
        out[recipe] = path
    return out


@pytest.fixture(scope="session")
def segment_solutions(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """item-affinity and item-attribute-affinity on the bundled example data, with an
    items CSV of genres; "items" holds the item ids."""
    from personalize_batch.training import train

    folder = tmp_path_factory.mktemp("segments")
    items = folder / "items.csv"
    ids = [
        line.split(",")[1] for line in (EXAMPLES / "interactions.csv").read_text().splitlines()[1:]
    ]
    distinct = sorted(set(ids))
    rows = [f"{i},{'Comedy|Action' if k % 3 == 0 else 'Drama'}" for k, i in enumerate(distinct)]
    items.write_text("ITEM_ID,GENRES\n" + "\n".join(rows) + "\n")
    out: dict = {}
    for recipe in ("item-affinity", "item-attribute-affinity"):
        out[recipe] = folder / f"{recipe}.npz"
        train(
            recipe,
            str(EXAMPLES / "interactions.csv"),
            str(out[recipe]),
            items=str(items),
            tune=False,
        )
    out["items"] = distinct
    return out
