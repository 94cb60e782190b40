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
1,000 lines (`--lines`; a seeded sample of items) with numResults 10,000 on the
synthetic 1,000,000 users x 100,000 items of `fit_scaling.py`, each a real `pbatch run`
in a process of its own: lines/s end to end and its peak RSS and PSS, against the job's
own limit measured in the same run (the scoring step alone, combined with orjson alone
on the same lines, as `throughput.py` measures the own-model limit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DATA,
    PBATCH,
    Timer,
    compile_package,
    machine,
    run_sampled,
    table,
    write_section,
)

from personalize_batch import recipes  # noqa: E402
from personalize_batch.data import read_interactions  # noqa: E402
from personalize_batch.data.splits import (  # noqa: E402
    shuffle_within_users,
    split_random,
    split_segment,
)
from personalize_batch.job.workers import default_workers  # noqa: E402
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


def score_child(solution_path: str, src: str, k: int, part: int, parts: int, out: str) -> None:
    """In a process of its own: load the solution, look up the input's item ids, and
    answer part `part` of `parts` of them (a contiguous share) in chunks of the scorer's
    `block_rows`; write the scoring seconds to `out`. The job's scoring step alone: no
    JSON read or written, no job."""
    import orjson  # noqa: PLC0415

    from personalize_batch import solution as solution_mod  # noqa: PLC0415

    sol = solution_mod.load(solution_path)
    scorer = sol.scorer()
    sol.build_indexes(users=False, items=True)
    ids = [orjson.loads(line)["itemId"] for line in Path(src).read_bytes().splitlines()]
    items = sol.item_index.lookup(ids)
    share = -(-len(items) // parts)
    items = items[part * share : (part + 1) * share]
    step = scorer.block_rows
    with Timer() as t:
        for s in range(0, len(items), step):
            scorer.recommend(items[s : s + step], k, False)
    Path(out).write_text(json.dumps({"seconds": t.seconds, "lines": len(items)}))


def scoring_alone(path: Path, src: Path, k: int, processes: int) -> float:
    """Lines/s of the scoring step alone, in `processes` fresh processes at once (as
    many as the job's workers), each on its share of the lines: lines over the slowest
    share's scoring seconds (loading excluded)."""
    outs = [path.with_suffix(f".scoring-{p}.json") for p in range(processes)]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--score", str(path), "--src", str(src), "--k", str(k)]
            + ["--part", str(p), "--parts", str(processes), "--out", str(outs[p])]
        )
        for p in range(processes)
    ]
    for child in children:
        if child.wait() != 0:
            raise RuntimeError(f"the scoring child failed ({child.args})")
    timings = [json.loads(o.read_text()) for o in outs]
    return sum(t["lines"] for t in timings) / max(t["seconds"] for t in timings)


def json_alone(src: Path, out: Path) -> float:
    """Lines/s of orjson alone on the job's lines (benchmarks/throughput.py's JSON pass):
    parse every input line, parse and dump every output line."""
    import orjson  # noqa: PLC0415

    ins, outs = src.read_bytes().splitlines(), out.read_bytes().splitlines()
    with Timer() as t:
        for line in ins:
            orjson.loads(line)
        for line in outs:
            orjson.dumps(orjson.loads(line))
    return len(ins) / t.seconds


def run_job(tmp: Path, path: Path, ids: list[str], k: int) -> list[str]:
    """`pbatch run` of one line per id with numResults k, in a process of its own (its
    own job store under `tmp`), against the job's own limit measured right after it;
    the table's cells from lines on."""
    src = path.with_suffix(".lines.json")
    src.write_bytes(b"".join(b'{"itemId": "' + i.encode() + b'"}\n' for i in ids))
    out = path.with_suffix(".out")
    env = {**os.environ, "PBATCH_HOME": str(tmp / "home")}
    name = f"bench-{time.time_ns()}"
    args = [*PBATCH, "run", "-s", str(path), "-i", str(src), "-o", str(out), "-q"]
    seconds, rss, pss = run_sampled([*args, "-n", str(k), "--job-name", name], env)
    rate = len(ids) / seconds
    scoring = scoring_alone(path, src, k, default_workers())
    encoding = json_alone(src, out / (src.name + ".out"))
    limit = 1.0 / (1.0 / scoring + 1.0 / encoding)
    return [
        f"{len(ids):,}",
        f"{k:,}",
        f"{rate:,.1f}",
        f"{rss:,.0f} / {pss:,.0f}",
        f"{limit:,.1f} (scoring {scoring:,.1f}, JSON {encoding:,.1f})",
        f"{rate / limit:.2f}",
    ]


def trained(tmp: Path, name: str, data) -> tuple[Path, float, Rule]:
    """item-affinity with the default settings (`--no-tune`), its rule chosen on the
    data, saved under `tmp`: (path, fit seconds, rule)."""
    from personalize_batch import solution as solution_mod  # noqa: PLC0415

    hp = recipes.recipe("item-affinity").hyperparameters.defaults()
    with Timer() as fit:
        arrays = model_arrays("item-affinity", data, hp)
    path = tmp / f"{name}-affinity.npz"
    solution_mod.save(str(path), build_meta("item-affinity", hp, {}), arrays)
    return path, fit.seconds, Rule.from_arrays(arrays)


def throughput_anime(tmp: Path) -> list[object]:
    data = read_interactions(str(DATA / "anime-5k" / "interactions.csv.gz"))
    data = shuffle_within_users(data, 0)
    ids, users = [str(i) for i in data.item_ids.tolist()], len(data.user_ids)
    path, fit, rule = trained(tmp, "anime", data)
    del data
    return ["anime-5k", *run_job(tmp, path, ids, users), f"{fit:.0f}", rule.source]


def throughput_synthetic(tmp: Path, lines: int) -> list[object]:
    from fit_scaling import synthetic  # noqa: PLC0415

    data = synthetic(1_000_000, 100_000, 20_000_000)
    rng = np.random.default_rng(0)
    picked = np.sort(rng.choice(len(data.item_ids), lines, replace=False))
    ids = [str(data.item_ids[i]) for i in picked.tolist()]
    path, fit, rule = trained(tmp, "synthetic", data)
    del data
    cells = run_job(tmp, path, ids, 10_000)
    return ["synthetic 1,000,000 x 100,000", *cells, f"{fit:.0f}", rule.source]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--tmp", default="/tmp/pbatch-segments-bench")
    parser.add_argument(
        "--note",
        default="",
        help="a sentence for the throughput section (how busy the machine was)",
    )
    parser.add_argument(
        "--lines", type=int, default=1000, help="lines of the synthetic job (default 1000)"
    )
    parser.add_argument("--score", help=argparse.SUPPRESS)  # score_child's arguments
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--parts", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score:
        score_child(args.score, args.src, args.k, args.part, args.parts, args.out)
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
        compile_package()
        rows = [throughput_anime(tmp)]
        print(rows[-1], flush=True)
        rows.append(throughput_synthetic(tmp, args.lines))
        print(rows[-1], flush=True)
        header_row = [
            "data",
            "lines",
            "users per line",
            "pbatch run lines/s",
            "peak RSS / PSS MiB",
            "the job's own limit, lines/s",
            "run / limit",
            "fit s",
        ]
        write_section(
            "segments-throughput",
            "\n".join(
                [
                    "## Segments: throughput (`python benchmarks/segments.py --throughput-only`)",
                    "",
                    header + (f" {args.note}" if args.note else ""),
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
    "Each job is a real `pbatch run` in a process of its own (default workers, one per "
    'core; `{"itemId": …}` lines in, `recommendedUsers` out, start-up and loading the '
    "solution included): lines/s end to end, the peak RSS of its largest process and the "
    "peak PSS of all its processes (sampled once a second). The job's own limit is measured "
    "right after it, as `benchmarks/throughput.py` measures the own-model limit: the "
    "scoring step alone (the solution's scorer answering the same lines in its chunks, as "
    "many processes as workers, each on its share; no JSON, loading excluded) combined with "
    "orjson alone on the same lines (parse every input line, parse and dump every output "
    "line): 1 / (1/scoring + 1/JSON). The solutions are item-affinity with the default "
    "settings (`--no-tune`), trained in this run (the fit seconds; the rule is chosen on "
    "the data)."
)


if __name__ == "__main__":
    main()
