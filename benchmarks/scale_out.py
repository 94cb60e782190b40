"""`pbatch run --engine dask` against the local engine on the same input: throughput with
1 and 2 Dask workers, the per-job overhead (cluster start, solution load) apart, and the
cluster size that 1 billion lines in one hour would need. Writes the "dask" section of
BENCHMARKS.md.

    python benchmarks/scale_out.py                      # 2,000,000 lines (about 30 minutes)
    python benchmarks/scale_out.py --lines 200000       # a quick check of the script
    python benchmarks/scale_out.py --recipe user-personalization

Needs the dask extra: pip install -e '.[dask]'. Everything runs on this machine (a
LocalCluster on 127.0.0.1); inputs and outputs are local files.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, PBATCH, machine, run_measured, table, write_section  # noqa: E402

TARGET_LINES, TARGET_SECONDS = 1_000_000_000, 3600
DATASET = "movietweetings-100k"


def _input(path: Path, solution: Path, n_lines: int) -> None:
    """n_lines requests for the solution's recipe: known ids, and 1 in 20 unknown."""
    import orjson  # noqa: PLC0415

    from personalize_batch.solution import load  # noqa: PLC0415

    sol = load(str(solution))
    users, items = sol.user_ids.tolist(), sol.item_ids.tolist()
    rng = random.Random(0)
    with open(path, "wb") as f:
        for k in range(n_lines):
            unknown = k % 20 == 0
            if sol.recipe == "sims":
                obj = {"itemId": "nope" if unknown else rng.choice(items)}
            else:
                obj = {"userId": f"new-{k}" if unknown else rng.choice(users)}
            if sol.recipe == "personalized-ranking":
                obj["itemList"] = rng.sample(items, 25)
            f.write(orjson.dumps(obj) + b"\n")


def _run(args: list[str]) -> float:
    seconds, _ = run_measured([*PBATCH, "run", "-q", *map(str, args)])
    return seconds


def _cluster(workers: int):
    """A LocalCluster as `pbatch run --engine dask` starts one, and its start time."""
    from personalize_batch.job.engines.dask import start_local_cluster  # noqa: PLC0415

    started = time.perf_counter()
    cluster, client = start_local_cluster(workers)
    client.wait_for_workers(workers)
    return cluster, client, time.perf_counter() - started


def _prepare(work: Path, recipe: str, n_lines: int) -> tuple[Path, Path, Path]:
    """A trained solution, an input of n_lines and a one-line input, for a recipe."""
    from personalize_batch.training import train  # noqa: PLC0415

    solution = work / f"{recipe}.npz"
    train(recipe, str(DATA / DATASET / "interactions.csv.gz"), str(solution))
    src = work / f"{recipe}-{n_lines}.json"
    _input(src, solution, n_lines)
    tiny = work / f"{recipe}-one.json"
    tiny.write_bytes(src.read_bytes().split(b"\n", 1)[0] + b"\n")
    return solution, src, tiny


def _dask(
    work: Path, solution: Path, src: Path, tiny: Path, workers: int, partition_size: int
) -> tuple[float, float, float, float]:
    """(wall s of the job, of a one-line job, cluster start s, slowest solution load s) on
    a fresh LocalCluster, its solution loaded by a first one-line job."""
    from personalize_batch.job.engines import dask as engine  # noqa: PLC0415

    cluster, client, start_s = _cluster(workers)
    base = ["-s", solution, "-o", work / "out", "--engine", "dask"]
    base += ["--scheduler", cluster.scheduler_address, "--partition-size", partition_size]
    try:
        _run([*base, "-i", tiny])  # the first job: loads the solution on a worker
        wall = _run([*base, "-i", src])
        one = _run([*base, "-i", tiny])
        loads = [v for w in client.run(engine.solution_loads).values() for v in w.values()]
    finally:
        client.close()
        cluster.close()
    return wall, one, start_s, max(s for _, s in loads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2_000_000, help="input lines (default 2M)")
    ap.add_argument("--recipe", default="popularity-count", help="recipe to train and run")
    ap.add_argument("--partition-size", type=int, default=4 << 20, help="bytes per Dask partition")
    ap.add_argument(
        "--estimate-recipe",
        action="append",
        default=None,
        help="also measure one Dask worker's rate for this recipe, for the cluster-size "
        "estimate (repeatable; default user-personalization)",
    )
    ap.add_argument(
        "--estimate-lines", type=int, default=100_000, help="lines for --estimate-recipe"
    )
    args = ap.parse_args()
    estimate_recipes = args.estimate_recipe or ["user-personalization"]
    from personalize_batch.job.engines import dask as engine  # noqa: PLC0415

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    rows, overhead, per_worker = [], [], {}
    with tempfile.TemporaryDirectory(prefix="pbatch-bench-dask-") as tmp:
        work = Path(tmp)
        os.environ["PBATCH_HOME"] = str(work / "home")
        solution, src, tiny = _prepare(work, args.recipe, args.lines)
        size = src.stat().st_size
        partitions = len(engine.plan_ranges(size, args.partition_size, compressed=False))
        out_file = work / "out" / (src.name + ".out")
        runs = {}  # (engine, workers) -> (wall s of the job, of a one-line job)
        for workers in (1, 2):
            base = ["-s", solution, "-o", work / "out", "--workers", workers]
            runs["local", workers] = (_run([*base, "-i", src]), _run([*base, "-i", tiny]))
            print("local", workers, runs["local", workers], flush=True)
        reference = out_file.read_bytes()
        out_bytes = len(reference) / args.lines
        for workers in (1, 2):
            wall, one, start_s, load_s = _dask(
                work, solution, src, tiny, workers, args.partition_size
            )
            assert out_file.read_bytes() == reference, "not byte-identical"
            runs["dask", workers] = (wall, one)
            overhead.append([workers, f"{start_s:.1f}", f"{one:.1f}", f"{load_s:.2f}"])
            print("dask", workers, runs["dask", workers], overhead[-1], flush=True)
        rate = {}
        for (name, workers), (wall, one) in runs.items():
            rate[name, workers] = args.lines / (wall - one)
            rows.append(
                [
                    name,
                    workers,
                    f"{wall:.1f}",
                    f"{args.lines / wall:,.0f}",
                    f"{one:.1f}",
                    f"{rate[name, workers]:,.0f}",
                    f"{rate[name, workers] / workers:,.0f}",
                ]
            )
        per_worker[args.recipe] = (rate["dask", 1], args.lines, out_bytes)
        for recipe in estimate_recipes:
            if recipe in per_worker:
                continue
            e_solution, e_src, e_tiny = _prepare(work, recipe, args.estimate_lines)
            wall, one, _, _ = _dask(work, e_solution, e_src, e_tiny, 1, args.partition_size)
            e_out = (work / "out" / (e_src.name + ".out")).stat().st_size / args.estimate_lines
            per_worker[recipe] = (args.estimate_lines / (wall - one), args.estimate_lines, e_out)
            print(recipe, per_worker[recipe], flush=True)
    load_after = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    scaling = rate["dask", 2] / (2 * rate["dask", 1])
    needed = TARGET_LINES / TARGET_SECONDS
    estimate = []
    for recipe, (r, n, b) in per_worker.items():
        workers = math.ceil(needed / r)
        estimate.append(
            [
                recipe,
                f"{r:,.0f} ({n:,} lines)",
                f"{workers:,}",
                f"{math.ceil(workers * 1.2):,}",
                f"{math.ceil(workers * 1.2 / 32):,}",
                f"{TARGET_LINES * b / 1e12:,.2f}",
            ]
        )
    body = [
        "## Dask engine (`python benchmarks/scale_out.py "
        f"--lines {args.lines} --recipe {args.recipe}`)",
        "",
        f"Measured {started} on {machine()}. Load average (one minute) "
        f"{load_before[0]:.1f} before the runs and {load_after[0]:.1f} after them (their "
        f"own processes included), on {cores} cores: the 2-worker rows share them with "
        "the driver and with whatever else runs, so their rates are lower bounds.",
        "",
        f"Input: {args.lines:,} `{args.recipe}` lines ({size / 2**20:,.0f} MiB, 1 in 20 "
        f"ids unknown) against a solution trained on {DATASET}; numResults 25; output "
        f"{out_bytes:,.0f} bytes a line. Local files in and out. The Dask runs use a "
        f"LocalCluster on 127.0.0.1 started beforehand (`--scheduler`), "
        f"{partitions} partitions of {args.partition_size / 2**20:g} MiB; every Dask "
        "output was checked byte-identical to the local engine's.",
        "",
        table(
            [
                "engine",
                "workers",
                "wall s",
                "lines/s",
                "one-line job s",
                "lines/s net of it",
                "per worker",
            ],
            rows,
        ),
        "",
        "*wall s* is the whole `pbatch run` process; the *one-line job* is the same command "
        "on a one-line input (process start, imports, solution load for the local engine; "
        "imports, connecting, scheduling and joining for Dask), and *net of it* is the "
        "rate once that fixed cost is taken off. Dask's per-job overhead apart:",
        "",
        table(
            [
                "workers",
                "LocalCluster start s (without --scheduler)",
                "one-line job on it s",
                "solution load s (once per worker, in parallel)",
            ],
            overhead,
        ),
        "",
        "### Cluster size for 1 billion lines in one hour",
        "",
        f"1,000,000,000 lines in 3,600 s is {needed:,.0f} lines/s. The estimate divides "
        "that by one Dask worker's measured rate (one process, one thread, net of the "
        "per-job overhead) and assumes linear scaling, which holds as far as workers "
        "share nothing but the input and output stores (S3's request rates aside). This "
        f"machine cannot show it: two workers gave {scaling:.2f}× linear, competing "
        f"for its {cores} cores with the driver and any other work. +20 % allows for stragglers, "
        "retries and the join. Per-job overhead (seconds) is negligible against an hour. "
        "On S3 the parts are joined by server-side copies, so the output does not pass "
        "through the driver; a local output would be bound by one disk.",
        "",
        table(
            [
                "recipe",
                "lines/s per worker (measured on)",
                "workers for 1B lines/hour",
                "+20 %",
                "32-core machines",
                "output TB",
            ],
            estimate,
        ),
    ]
    write_section("dask", "\n".join(body))


if __name__ == "__main__":
    main()
