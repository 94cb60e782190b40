"""User segments (item-affinity): quality against two baselines, and the throughput of a
segment job. One command:

    .venv/bin/python benchmarks/segments.py [--quality-only | --throughput-only]

writes the "Segments" section of BENCHMARKS.md.

Quality: on each data set, 20 % of each user's interactions are held out (a seeded
random part, as the issue measured the baselines; MovieTweetings also with its newest
20 %, the split `pbatch evaluate` uses for it since its time carries signal). Up to 500
held-out items (seeded) are asked; for each, the top 1 % of the training users (those
who have the item in training left out) against the users who hold it out: hit (at
least one of them in the top) and recall (their share in the top, out of at most the
top's size). item-affinity is trained on the training part alone with the defaults
(`--no-tune`), its rule chosen inside that part; the baselines are computed here
independently: the most active users, and users ranked by the item-kNN similarity of
their history to the item (X @ C, C the cosine item-item matrix, no self-similarity);
ties by user index.

Throughput: one line per anime-5k item (every user ranked: numResults = all users), and
1,000 lines (a seeded sample of items) with numResults 10,000 on the synthetic 1,000,000
users x 100,000 items of `fit_scaling.py`: until `pbatch run` serves segment jobs, the
scorer is driven in a process of its own in chunks of its `block_rows` lines (the job's
scoring step, without reading and writing JSON); lines/s of the scoring, and the peak
RSS of that process (loading the solution included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, Timer, machine, run_measured, table, write_section  # noqa: E402

from personalize_batch import recipes  # noqa: E402
from personalize_batch.data import read_interactions  # noqa: E402
from personalize_batch.data.splits import (  # noqa: E402
    shuffle_within_users,
    split_random,
    split_segment,
)
from personalize_batch.recipes.segments import Rule  # noqa: E402
from personalize_batch.recipes.validation import user_segments  # noqa: E402
from personalize_batch.solution import build_meta, in_memory, model_arrays  # noqa: E402

DATASETS = ("movietweetings-100k", "anime-5k")


class Dense:
    """A baseline as a scorer: a users x items score function, ties by user index."""

    def __init__(self, x: sp.csr_matrix, score) -> None:
        self.x, self.score = x, score

    def recommend(self, items: np.ndarray, k: int, include_seen: bool):
        s = self.score(items)  # users x len(items)
        if not include_seen:
            s[(self.x[:, items].toarray() > 0)] = -np.inf
        order = np.lexsort((np.arange(s.shape[0])[:, None].repeat(s.shape[1], 1), -s), axis=0)
        idx = order[:k].T
        lengths = np.isfinite(np.take_along_axis(s.T, idx, axis=1)).sum(axis=1)
        return idx, None, lengths


def baselines(train) -> dict[str, Dense]:
    x = train.matrix().astype(np.float64).tocsr()
    activity = np.asarray(x.sum(axis=1)).ravel()
    counts = np.asarray(x.sum(axis=0)).ravel()
    xn = (x @ sp.diags(1.0 / np.sqrt(np.maximum(counts, 1.0)))).tocsc()

    def active(items):
        return np.tile(activity[:, None], (1, len(items)))

    def knn(items):
        c = (xn.T @ xn[:, items]).toarray()
        c[items, np.arange(len(items))] = 0.0
        return np.asarray(x @ c)

    return {"most active users": Dense(x, active), "item-kNN (cosine)": Dense(x, knn)}


def quality_case(name: str, how: str) -> list[list[object]]:
    data = read_interactions(str(DATA / name / "interactions.csv.gz"))
    if not data.has_timestamps:
        data = shuffle_within_users(data, 0)
    split = split_random(data, 0, 0.2) if how == "random" else split_segment(data, 0)
    measure = user_segments(split, 0)
    rows = []
    for label, scorer in baselines(split.train).items():
        m = measure(scorer)
        rows.append([name, how, label, m["hit_at_1_percent"], m["recall_at_1_percent"], ""])
    hp = recipes.recipe("item-affinity").hyperparameters.defaults()
    with Timer() as t:
        arrays = model_arrays("item-affinity", split.train, hp)
    sol = in_memory(build_meta("item-affinity", hp, {}), arrays)
    m = measure(recipes.recipe("item-affinity").scorer(sol))
    rule = Rule.from_arrays(arrays)
    chosen = f"{rule.source}, activity^{rule.activity_exponent:g}"
    if rule.source == "cooccurrence":
        chosen += f", n_h^-{rule.cooccurrence_exponent:g}"
    rows.append(
        [
            name,
            how,
            f"**item-affinity** (fit {t.seconds:.0f} s)",
            m["hit_at_1_percent"],
            m["recall_at_1_percent"],
            chosen,
        ]
    )
    print(*rows, sep="\n", flush=True)
    return rows


def quality() -> str:
    rows = []
    for name in DATASETS:
        for how in ("random", "segment") if name == "movietweetings-100k" else ("random",):
            rows += quality_case(name, how)
    return table(
        ["data", "held out", "method", "hit@1%", "recall@1%", "rule chosen on validation"], rows
    )


def score_child(solution_path: str, lines: int, k: int, seed: int, out: str) -> None:
    """In a process of its own: load the solution, answer `lines` items (every item when
    there are no more; else a seeded sample) in chunks of the scorer's `block_rows`, and
    write the seconds to `out`."""
    from personalize_batch import solution as solution_mod  # noqa: PLC0415

    with Timer() as load:
        sol = solution_mod.load(solution_path)
        scorer = sol.scorer()
    n_items = len(sol.item_ids)
    items = np.arange(n_items, dtype=np.int64)
    if lines < n_items:
        rng = np.random.default_rng(seed)
        items = np.sort(rng.choice(n_items, lines, replace=False)).astype(np.int64)
    step = scorer.block_rows
    with Timer() as t:
        for s in range(0, len(items), step):
            scorer.recommend(items[s : s + step], k, False)
    Path(out).write_text(json.dumps({"load": load.seconds, "seconds": t.seconds}))


def measure_scoring(path: Path, lines: int, k: int) -> tuple[dict[str, float], float]:
    """score_child's timings and its peak RSS (MiB), in a fresh process."""
    out = path.with_suffix(".timing.json")
    args = [sys.executable, __file__, "--score", str(path), "--lines", str(lines), "--k", str(k)]
    _, peak = run_measured([*args, "--out", str(out)])
    return json.loads(out.read_text()), peak


def throughput_anime(tmp: Path) -> list[object]:
    from personalize_batch import solution as solution_mod  # noqa: PLC0415

    data = read_interactions(str(DATA / "anime-5k" / "interactions.csv.gz"))
    data = shuffle_within_users(data, 0)
    hp = recipes.recipe("item-affinity").hyperparameters.defaults()
    with Timer() as fit:
        arrays = model_arrays("item-affinity", data, hp)
    path = tmp / "anime-affinity.npz"
    solution_mod.save(str(path), build_meta("item-affinity", hp, {}), arrays)
    lines, users = len(arrays["item_ids"]), len(arrays["user_ids"])
    result, peak = measure_scoring(path, lines, users)
    rule = Rule.from_arrays(arrays)
    return [
        "anime-5k",
        f"{lines:,} (every item)",
        f"{users:,} (all users)",
        f"{lines / result['seconds']:,.1f}",
        f"{peak:,.0f}",
        f"{fit.seconds:.0f}",
        rule.source,
    ]


def throughput_synthetic(tmp: Path) -> list[object]:
    from fit_scaling import synthetic  # noqa: PLC0415

    from personalize_batch import solution as solution_mod  # noqa: PLC0415

    data = synthetic(1_000_000, 100_000, 20_000_000)
    hp = recipes.recipe("item-affinity").hyperparameters.defaults()
    with Timer() as fit:
        arrays = model_arrays("item-affinity", data, hp)
    path = tmp / "synthetic-affinity.npz"
    solution_mod.save(str(path), build_meta("item-affinity", hp, {}), arrays)
    del data
    rule = Rule.from_arrays(arrays)
    del arrays
    result, peak = measure_scoring(path, 1000, 10_000)
    return [
        "synthetic 1,000,000 x 100,000",
        "1,000",
        "10,000",
        f"{1000 / result['seconds']:,.1f}",
        f"{peak:,.0f}",
        f"{fit.seconds:.0f}",
        rule.source,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--tmp", default="/tmp/pbatch-segments-bench")
    parser.add_argument("--score", help=argparse.SUPPRESS)  # score_child's arguments
    parser.add_argument("--lines", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score:
        score_child(args.score, args.lines, args.k, 0, args.out)
        return
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = f"Written by `benchmarks/segments.py` ({machine()}; started {started})."
    if not args.throughput_only:
        body = quality()
        write_section(
            "segments-quality",
            "\n".join(
                [
                    "## Segments: quality (`python benchmarks/segments.py --quality-only`)",
                    "",
                    header,
                    "",
                    QUALITY_NOTE,
                    "",
                    body,
                ]
            ),
        )
    if not args.quality_only:
        rows = [throughput_anime(tmp)]
        print(rows[-1], flush=True)
        rows.append(throughput_synthetic(tmp))
        print(rows[-1], flush=True)
        header_row = ["data", "lines", "users per line", "lines/s", "peak RSS MiB", "fit s"]
        write_section(
            "segments-throughput",
            "\n".join(
                [
                    "## Segments: throughput (`python benchmarks/segments.py --throughput-only`)",
                    "",
                    header,
                    "",
                    THROUGHPUT_NOTE,
                    "",
                    table([*header_row, "source chosen"], rows),
                ]
            ),
        )


QUALITY_NOTE = (
    "Hit and recall at the top 1 % of users (see the script's docstring for the protocol). "
    "`random`: a seeded random 20 % of each user's interactions held out, as the issue "
    "measured the baselines; `segment`: the split `pbatch evaluate` uses for segment "
    "recipes (the newest 20 % when time carries signal, as on MovieTweetings). item-affinity "
    "is trained on the training part with the defaults (`--no-tune`); its rule is chosen "
    "inside that part."
)
THROUGHPUT_NOTE = (
    "The scorer driven in a process of its own (the job's scoring step without JSON, "
    "until `pbatch run` serves segment jobs): lines/s of the scoring alone, peak RSS of "
    "that process, loading the solution included."
)


if __name__ == "__main__":
    main()
