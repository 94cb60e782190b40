"""What fresh events are worth: `pbatch run --events` against no events and retraining.

    .venv/bin/pip install -e . && .venv/bin/python benchmarks/foldin.py

On MovieTweetings-100k, with T and T2 the 80th and 90th percentiles of the timestamps:
a solution trained on the interactions before T; the events between T and T2 passed with
`--events`; and, for comparison, a solution retrained on everything before T2. Each test
user's truth is their next new item after T2 (the first interaction at or after T2 with
an item they had not met before T2 and the catalogue knows). Test users are those with
interactions before T2, so the retrained solution knows all of them; the table also shows
the users who appear only between T and T2 (unknown to the solution trained before T).
Everything goes through the CLI, as a cron job would run it. Writes the "fold-in"
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PBATCH,
    compile_package,
    machine,
    read_rows,
    table,
    write_section,
)

from personalize_batch.recipes.validation import summarize  # noqa: E402

DATASET = "movietweetings-100k"
KEYS = (
    ("precision_at_10", "precision@10"),
    ("normalized_discounted_cumulative_gain_at_10", "NDCG@10"),
    ("mean_reciprocal_rank_at_25", "MRR@25"),
)


def pbatch(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([*PBATCH, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def lists_of(path: Path) -> dict[str, list[str]]:
    out = {}
    with open(path, "rb") as f:
        for line in f:
            rec = orjson.loads(line)
            out[rec["input"]["userId"]] = rec["output"]["recommendedItems"]
    return out


def section(recipe: str = "user-personalization") -> str:
    """Run the three solutions and return the BENCHMARKS.md section."""
    started = machine()

    header, rows = read_rows(DATASET)
    cu, ci, ct = (header.index(c) for c in ("USER_ID", "ITEM_ID", "TIMESTAMP"))
    times = np.array([int(r[ct]) for r in rows])
    t1, t2 = (int(np.quantile(times, q)) for q in (0.8, 0.9))
    before = [r for r in rows if int(r[ct]) < t1]
    events = [r for r in rows if t1 <= int(r[ct]) < t2]
    upto = before + events
    after = sorted((r for r in rows if int(r[ct]) >= t2), key=lambda r: int(r[ct]))

    met: dict[str, set[str]] = {}
    for r in upto:
        met.setdefault(r[cu], set()).add(r[ci])
    users_before = {r[cu] for r in before}
    catalogue = {r[ci] for r in upto}
    truth: dict[str, str] = {}
    for r in after:
        u, i = r[cu], r[ci]
        if u in met and u not in truth and i not in met[u] and i in catalogue:
            truth[u] = i
    test = sorted(truth)
    newcomers = [u for u in test if u not in users_before]

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_csv(d / "before.csv", header, before)
        write_csv(d / "events.csv", header, events)
        write_csv(d / "upto.csv", header, upto)
        (d / "users.json").write_bytes(b"".join(orjson.dumps({"userId": u}) + b"\n" for u in test))
        fit_old = pbatch(
            "train", "-r", recipe, "-i", str(d / "before.csv"), "-o", str(d / "old.npz"), "-q"
        )
        fit_new = pbatch(
            "train", "-r", recipe, "-i", str(d / "upto.csv"), "-o", str(d / "new.npz"), "-q"
        )
        fresh = ["--events", str(d / "events.csv")]
        runs = [
            ("trained before T, no events", "old.npz", [], fit_old),
            ("trained before T, events T..T2 with --events", "old.npz", fresh, fit_old),
            ("retrained on everything before T2", "new.npz", [], fit_new),
        ]
        for label, model, extra, fit in runs:
            out = d / label.split(",")[0].replace(" ", "-")
            seconds = pbatch(
                "run", "-s", str(d / model), "-i", str(d / "users.json"), "-o", str(out),
                "-n", "25", "-q", *extra,
            )  # fmt: skip
            got = lists_of(out / "users.json.out")
            n_items = len(catalogue)
            every = summarize([got[u] for u in test], [{truth[u]} for u in test], n_items)
            new = summarize([got[u] for u in newcomers], [{truth[u]} for u in newcomers], n_items)
            results.append((label, every, new, fit, seconds))

    base = results[0][1]["normalized_discounted_cumulative_gain_at_10"]
    body_rows = []
    for label, every, new, fit, seconds in results:
        body_rows.append(
            [label]
            + [f"{every[k]:.4f}" for k, _ in KEYS]
            + [f"{every['normalized_discounted_cumulative_gain_at_10'] / base:.2f}×"]
            + [f"{new['normalized_discounted_cumulative_gain_at_10']:.4f}"]
            + [f"{fit:.1f}", f"{seconds:.1f}"]
        )
    body = "\n".join(
        [
            "## Fresh events: `run --events` against retraining (`python benchmarks/foldin.py`)",
            "",
            f"{started}. MovieTweetings-100k, {recipe} trained by a plain `pbatch train` "
            "(settings chosen on the data before T). "
            f"T and T2 are the 80th and 90th percentiles of the timestamps: {len(before):,} "
            f"interactions before T, {len(events):,} events between T and T2. Truth: each "
            f"user's next new item after T2; {len(test):,} test users (all known by T2), "
            f'{len(newcomers):,} of them first seen between T and T2 ("newcomers": unknown '
            "to the solution trained before T). Times are whole CLI commands (train, run).",
            "",
            table(
                [
                    "solution",
                    *(n for _, n in KEYS),
                    "NDCG@10 vs no events",
                    "newcomers' NDCG@10",
                    "train s",
                    "run s",
                ],
                body_rows,
            ),  # fmt: skip
            "",
            "Fold-in changes users' histories, their seen items and the recent-popularity "
            "term (brought up to the latest event); the item-item terms stay as trained. "
            "Retraining refreshes those too, so `--events` between daily trainings "
            "complements retraining, not replaces it.",
        ]
    )
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="user-personalization")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    compile_package()
    body = section(args.recipe)
    if args.no_write:
        print(body)
    else:
        write_section("foldin", body)


if __name__ == "__main__":
    main()
