"""Fault-injection helpers shared by the fault tests and `benchmarks/reliability.py`.

Each `trial_*` function runs one fault once and returns a `Trial`: what went in, what
came out, and whether anything partial or out of order became visible. The tests run
each trial once and assert on it; the benchmark runs them many times and writes the
table of RELIABILITY.md, so the numbers there come from this very code.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from personalize_batch.errors import SolutionError
from personalize_batch.solution import load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PBATCH = [sys.executable, "-m", "personalize_batch.cli"]
USER_LINE = b'{"userId": "653"}\n'


# --- solutions -------------------------------------------------------------------------


def tiny_solutions(
    folder: Path,
    recipes: Iterable[str] = (
        "popularity-count",
        "user-personalization",
        "sims",
        "personalized-ranking",
    ),
) -> dict[str, Path]:
    """Solutions trained on a 60-row CSV (8 users, 10 items): files of 4–9 KB."""
    from personalize_batch.training import train

    rng = random.Random(4)
    rows = ["USER_ID,ITEM_ID,TIMESTAMP"]
    rows += [
        f"u{rng.randrange(8)},i{rng.randrange(10)},{1_700_000_000 + 60 * k}" for k in range(60)
    ]
    csv = folder / "tiny.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = {}
    for recipe in recipes:
        out[recipe] = folder / f"{recipe}.npz"
        train(recipe, str(csv), str(out[recipe]))
    return out


def load_or_reason(path: Path, reference: dict[str, np.ndarray]) -> str:
    """Load a (damaged) solution: "refused" (a SolutionError), "loaded identical
    arrays", "loaded different arrays" (a wrong answer waiting to happen) or
    "crashed: <exception type>"."""
    try:
        solution = load(str(path))
    except SolutionError:
        return "refused"
    except Exception as exc:  # what this helper exists to find
        return f"crashed: {type(exc).__name__}: {exc}"
    got = solution.arrays
    same = set(got) == set(reference) and all(
        got[k].dtype == reference[k].dtype
        and got[k].shape == reference[k].shape
        and np.array_equal(got[k], reference[k])
        for k in reference
    )
    return "loaded identical arrays" if same else "loaded different arrays"
