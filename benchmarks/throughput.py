"""Batch scoring throughput and memory, end to end, against implicit and the machine's
limit, measured in the same run. Writes the "throughput" section of BENCHMARKS.md.

    python benchmarks/throughput.py            # the full run (about half an hour)
    python benchmarks/throughput.py --quick    # small inputs, to check the script

Needs the bench extra: pip install -e '.[bench]' (implicit).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import orjson
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    DATA,
    PBATCH,
    compile_package,
    machine,
    run_sampled,
    table,
    write_section,
)

N_RESULTS = 25
FACTORS = 64
# popularity-count and sims answer a line in microseconds: their inputs are this many
# times longer, so that start-up (about 0.7 s of imports and loading) is not the measure
FAST_FACTOR = 10
# every rate is the best of this many rounds, each timing pbatch's runs and then the
# peers' work: this machine's speed varies by a third from one minute to the next (other
# virtual machines on the host), so both sides must meet the same minutes
REPEAT = 3


def _write_lines(path: Path, objs: list[dict]) -> None:
    with open(path, "wb") as f:
        for obj in objs:
            f.write(orjson.dumps(obj) + b"\n")


def _synthetic(path: Path, n_users: int, n_items: int, n_rows: int, seed: int = 0) -> None:
    """Interactions with a long-tailed item popularity, as a Personalize CSV."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(n_items) + 10.0) ** 0.9
    items = rng.choice(n_items, size=n_rows, p=weights / weights.sum())
    users = np.sort(rng.integers(0, n_users, size=n_rows))
    times = 1_600_000_000 + rng.integers(0, 30 * 86400, size=n_rows)
    with open(path, "w") as f:
        f.write("USER_ID,ITEM_ID,TIMESTAMP\n")
        step = 1_000_000
        for s in range(0, n_rows, step):
            f.write(
                "".join(
                    f"u{u},i{i},{t}\n"
                    for u, i, t in zip(
                        users[s : s + step].tolist(),
                        items[s : s + step].tolist(),
                        times[s : s + step].tolist(),
                        strict=True,
                    )
                )
            )


def _train(recipe: str, csv_path: Path, out: Path) -> float:
    start = time.perf_counter()
    from personalize_batch.training import train  # noqa: PLC0415

    train(recipe, str(csv_path), str(out))
    return time.perf_counter() - start


def _user_items(csv_path: Path):
    """The binary user x item matrix and id lists, read by pbatch's own reader."""
    from personalize_batch.data import read_interactions  # noqa: PLC0415

    data = read_interactions(str(csv_path))
    return data.matrix().tocsr(), data.user_ids.tolist(), data.item_ids.tolist()


def _implicit_models(x: sp.csr_matrix):
    """implicit 0.7's ALS (FACTORS factors) and CosineRecommender(K=100), fitted."""
    from implicit.als import AlternatingLeastSquares  # noqa: PLC0415
    from implicit.nearest_neighbours import CosineRecommender  # noqa: PLC0415

    als = AlternatingLeastSquares(factors=FACTORS, iterations=2, random_state=0)
    als.fit(x, show_progress=False)
    knn = CosineRecommender(K=100)
    knn.fit(x, show_progress=False)
    return als, knn


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _als_pass(als, x: sp.csr_matrix, users: np.ndarray) -> Callable[[], object]:
    """implicit's compute-only recommend for the users, in batches of 1,000."""

    def run() -> None:
        for s in range(0, len(users), 1000):
            batch = users[s : s + 1000]
            als.recommend(batch, x[batch], N=N_RESULTS, filter_already_liked_items=True)

    return run


def _sims_pass(knn, items: np.ndarray) -> Callable[[], object]:
    def run() -> None:
        for s in range(0, len(items), 1000):
            knn.similar_items(items[s : s + 1000], N=N_RESULTS + 1)

    return run


def _limit_passes(als, users: np.ndarray, ex: cf.ThreadPoolExecutor) -> dict[str, tuple]:
    """The limit's parts for the users, as (work, count): the matrix product alone
    (BLAS, every core) and top-k alone on a sample of its blocks (both cores)."""
    uf = np.ascontiguousarray(als.user_factors[users], dtype=np.float32)
    itf = np.ascontiguousarray(als.item_factors, dtype=np.float32)
    n = itf.shape[0]
    block = max(16, (4 << 20) // (4 * n))
    starts = range(0, len(uf), block)

    def product() -> None:
        for s in starts:  # each block's scores are dropped
            uf[s : s + block] @ itf.T

    # at most 256 MiB of scores
    sample = [uf[s : s + block] @ itf.T for s in starts[: max(1, (256 << 20) // (4 << 20))]]

    def top(m: np.ndarray) -> None:
        np.argpartition(m, n - N_RESULTS - 1, axis=1)

    return {
        "product": (product, len(uf)),
        "top-k": (lambda: list(ex.map(top, sample)), sum(len(m) for m in sample)),
    }


_OWN_SCORER = None  # in the forked processes of _own_product_pass


def _own_excess(rows: np.ndarray) -> None:
    assert _OWN_SCORER is not None
    _OWN_SCORER.excess(rows)


def _own_product_pass(
    solution: Path, ids: list[str], processes: int
) -> tuple[Callable[[], object], int, cf.ProcessPoolExecutor]:
    """pbatch's own model's product alone, for the same users: user-personalization's
    sparse products (history weights x item model, neighbours, transitions, summed), in
    its blocks, on forked processes (every core); no top-k, no JSON."""
    global _OWN_SCORER
    from personalize_batch.solution import load  # noqa: PLC0415

    solution_obj = load(str(solution))
    _OWN_SCORER = solution_obj.scorer()
    rows = solution_obj.user_index.lookup(ids)
    step = _OWN_SCORER.block_rows
    blocks = [rows[s : s + step] for s in range(0, len(rows), step)]
    pool = cf.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))
    list(pool.map(int, range(processes)))  # forked now, not inside the timing

    def run() -> None:
        list(pool.map(_own_excess, blocks))

    return run, len(rows), pool


def _json_pass(ins: list[bytes], outs: list[bytes]) -> None:
    """orjson alone: parse every input line, parse and dump every output line."""
    for line in ins:
        orjson.loads(line)
    for line in outs:
        orjson.dumps(orjson.loads(line))


def _run_once(solution: Path, src: Path, out: Path, workers: int | None = None):
    """One `pbatch run`: (seconds, peak RSS of the largest process, peak summed PSS)."""
    args = [*PBATCH, "run", "-s", str(solution), "-i", str(src), "-o", str(out), "-q"]
    args += ["-n", str(N_RESULTS)] + (["--workers", str(workers)] if workers else [])
    return run_sampled([*args, "--job-name", f"bench-{time.time_ns()}"])


# pure-Python work of about a second, run alone and two at once in the same rounds
# as pbatch: what a second core gives this virtual machine at that moment
_SPIN = "s = 0\nfor i in range(10_000_000):\n    s += i\n"
# and its memory-bound counterpart: random gathers from 256 MiB, which miss every cache
# (as scoring's reads of histories and item weights over a large solution mostly do);
# the array is made before the clock starts (first-touched memory is slow here)
_GATHER_SETUP = (
    "import numpy as np\n"
    "a = np.ones(1 << 25)\n"
    "idx = np.random.default_rng(0).integers(0, len(a), 1 << 21)\n"
)
_GATHER = "for _ in range(30):\n    a[idx].sum()\n"


def _spin(copies: int, work: str = _SPIN, setup: str = "") -> tuple[float, float, float]:
    """Seconds for `copies` independent processes to run `work` at once; each is
    started and runs `setup` before the clock starts (no memory figures)."""
    code = f"import sys\n{setup}print('ready', flush=True)\nsys.stdin.readline()\n{work}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for _ in range(copies)
    ]
    for proc in procs:
        proc.stdout.readline()
    t0 = time.perf_counter()
    for proc in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    for proc in procs:
        proc.wait()
    return time.perf_counter() - t0, 0.0, 0.0


def _worker_runs(
    solution: Path, src: Path, one_line: Path, out: Path, start_out: Path
) -> dict[str, Callable[[], tuple]]:
    """The runs that compare two workers with one: the job on all cores and on one
    worker, the same job on its first line alone both ways (start-up: imports, loading,
    forking workers), and the machine's own figure (two pure-Python processes, one)."""
    return {
        "all": partial(_run_once, solution, src, out),
        "one": partial(_run_once, solution, src, out, workers=1),
        "start all": partial(_run_once, solution, one_line, start_out),
        "start one": partial(_run_once, solution, one_line, start_out, workers=1),
        "spin one": partial(_spin, 1),
        "spin two": partial(_spin, 2),
    }


def _speed_ups(best: dict[str, tuple], rounds: dict[str, list[tuple]]) -> dict[str, float]:
    """All cores against one worker from _worker_runs' results, end to end and after
    start-up, and the machine's own speed-up: each from the best rates and paired."""
    seconds, seconds1 = best["all"][0], best["one"][0]
    start, start1 = best["start all"][0], best["start one"][0]
    return {
        "best": seconds1 / seconds,
        "paired": _paired(rounds, lambda a, o: o / a, "all", "one"),
        "after start": (seconds1 - start1) / (seconds - start),
        "after start paired": _paired(
            rounds, lambda a, o, sa, so: (o - so) / (a - sa), "all", "one", "start all", "start one"
        ),
        "machine": 2 * best["spin one"][0] / best["spin two"][0],
        "machine paired": _paired(rounds, lambda o, t: 2 * o / t, "spin one", "spin two"),
    }


def _paired(rounds: dict[str, list[tuple]], ratio: Callable[..., float], *keys: str) -> float:
    """The median over rounds of a ratio of runs of the same round (seconds apart),
    which the machine's drift from one round to the next does not enter."""
    return statistics.median(
        ratio(*(rounds[k][r][0] for k in keys)) for r in range(len(rounds[keys[0]]))
    )


def _interleaved(
    runs: dict[str, Callable[[], tuple]], peers: dict[str, tuple[Callable[[], object], int]]
) -> tuple[dict[str, tuple], dict[str, float], dict[str, list[tuple]]]:
    """REPEAT rounds, each timing every pbatch run and then every peer's work, so that
    both sides meet the machine's fast and slow minutes alike. Returns, per run, the
    best seconds with the largest memory, per peer the best rate, and per run every
    round's result."""
    results: dict[str, list[tuple]] = {k: [] for k in runs}
    seconds: dict[str, list[float]] = {k: [] for k in peers}
    for _ in range(REPEAT):
        for k, run in runs.items():
            results[k].append(run())
        for k, (work, _count) in peers.items():
            seconds[k].append(_timed(work))
    best = {
        k: (min(r[0] for r in rs), max(r[1] for r in rs), max(r[2] for r in rs))
        for k, rs in results.items()
    }
    return best, {k: peers[k][1] / min(seconds[k]) for k in peers}, results


def bench_dataset(name: str, csv_path: Path, work: Path, n_lines: int) -> list[list[str]]:
    """All recipes on one dataset; rows for the table."""
    rng = random.Random(0)
    x, user_ids, item_ids = _user_items(csv_path)
    many = n_lines * FAST_FACTOR
    users = np.array([rng.randrange(len(user_ids)) for _ in range(many)])
    items = np.array([rng.randrange(len(item_ids)) for _ in range(many)])
    inputs = {
        "user-personalization": [{"userId": user_ids[u]} for u in users[:n_lines]],
        "popularity-count": [{"userId": user_ids[u]} for u in users],
        "sims": [{"itemId": item_ids[i]} for i in items],
        "personalized-ranking": [
            {
                "userId": user_ids[u],
                "itemList": [item_ids[rng.randrange(len(item_ids))] for _ in range(N_RESULTS)],
            }
            for u in users[:n_lines]
        ],
    }
    als, knn = _implicit_models(x)
    rows = []
    threads = len(os.sched_getaffinity(0))
    for recipe, objs in inputs.items():
        solution = work / f"{name}-{recipe}.npz"
        fit = _train(recipe, csv_path, solution)
        src = work / f"{name}-{recipe}.json"
        _write_lines(src, objs)
        out = work / f"out-{name}-{recipe}"
        out_file = out / (src.name + ".out")
        _run_once(solution, src, out)  # the output the JSON pass reads, and a warm cache
        ins, outs = src.read_bytes().splitlines(), out_file.read_bytes().splitlines()
        own_pool = None
        with cf.ThreadPoolExecutor(threads) as ex:
            peers: dict[str, tuple[Callable[[], object], int]] = {}
            if recipe == "user-personalization":
                peers["implicit"] = (_als_pass(als, x, users[:n_lines]), n_lines)
                peers.update(_limit_passes(als, users[:n_lines], ex))
                peers["JSON"] = (partial(_json_pass, ins, outs), len(ins))
                ids = [user_ids[u] for u in users[:n_lines]]
                own, count, own_pool = _own_product_pass(solution, ids, threads)
                peers["own product"] = (own, count)
            elif recipe == "sims":
                peers["implicit"] = (_sims_pass(knn, items[:n_lines]), n_lines)
            elif recipe == "popularity-count":
                peers["orjson"] = (partial(_json_pass, ins, outs), len(ins))
            one_line = work / f"{name}-{recipe}-one.json"
            one_line.write_bytes(ins[0] + b"\n")
            start_out = work / f"start-{name}-{recipe}"
            runs = {
                **_worker_runs(solution, src, one_line, out, start_out),
                "gather one": partial(_spin, 1, _GATHER, _GATHER_SETUP),
                "gather two": partial(_spin, 2, _GATHER, _GATHER_SETUP),
            }
            try:
                best, rates, rounds = _interleaved(runs, peers)
            finally:
                if own_pool is not None:
                    own_pool.shutdown()
        (seconds, rss, pss), (seconds1, rss1, pss1) = best["all"], best["one"]
        start, start1 = best["start all"][0], best["start one"][0]
        rate, rate1 = len(objs) / seconds, len(objs) / seconds1
        up = _speed_ups(best, rounds)
        memory_speed_up = 2 * best["gather one"][0] / best["gather two"][0]
        if recipe == "user-personalization":
            limit = 1.0 / sum(1.0 / rates[k] for k in ("product", "top-k", "JSON"))
            own_limit = 1.0 / sum(1.0 / rates[k] for k in ("own product", "JSON"))
            peer = (
                f"implicit ALS recommend {rates['implicit']:,.0f}/s; limit {limit:,.0f}/s "
                f"(product {rates['product']:,.0f}, top-k {rates['top-k']:,.0f}, "
                f"JSON {rates['JSON']:,.0f}); own-model limit {own_limit:,.0f}/s "
                f"(own product {rates['own product']:,.0f}, JSON)"
            )
            ratio = (
                f"{rate / rates['implicit']:.2f}× implicit, {rate / limit:.2f}× limit, "
                f"{rate / own_limit:.2f}× own-model limit"
            )
        elif recipe == "sims":
            peer = f"implicit CosineRecommender.similar_items {rates['implicit']:,.0f}/s"
            ratio = f"{rate / rates['implicit']:.2f}× implicit"
        elif recipe == "popularity-count":
            peer = f"orjson read + write {rates['orjson']:,.0f}/s"
            ratio = f"{rate / rates['orjson']:.2f}× orjson"
        else:
            peer, ratio = "–", "–"
        rows.append(
            [
                name,
                recipe,
                f"{len(objs):,}",
                f"{rate:,.0f}",
                f"{rate1:,.0f}",
                f"{up['best']:.2f} / {up['paired']:.2f}",
                f"{start:.2f} / {start1:.2f}",
                f"{up['after start']:.2f} / {up['after start paired']:.2f}",
                f"{up['machine']:.2f} / {memory_speed_up:.2f} / {up['machine paired']:.2f}",
                f"{rss:,.0f} / {rss1:,.0f}",
                f"{pss:,.0f} / {pss1:,.0f}",
                f"{solution.stat().st_size / 2**20:,.0f}",
                f"{fit:.1f}",
                peer,
                ratio,
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    return rows


def bench_long_job(work: Path, solution: Path, n_lines: int) -> list[list[str]]:
    """Two workers against one on a job as long as the solution has users (synthetic
    user-personalization): the same REPEAT rounds as the table, with the machine's own
    two-process figure and start-up (the first line alone) in each round."""
    from personalize_batch.solution import load  # noqa: PLC0415

    user_ids = load(str(solution)).user_ids
    rng = np.random.default_rng(1)
    src = work / "long.json"
    _write_lines(
        src, [{"userId": u} for u in user_ids[rng.integers(0, len(user_ids), n_lines)].tolist()]
    )
    one_line = work / "long-one.json"
    one_line.write_bytes(src.read_bytes().split(b"\n", 1)[0] + b"\n")
    out = work / "out-long"
    best, _, rounds = _interleaved(_worker_runs(solution, src, one_line, out, out), {})
    src.unlink()
    up = _speed_ups(best, rounds)
    row = [
        f"{n_lines:,}",
        f"{n_lines / best['all'][0]:,.0f}",
        f"{n_lines / best['one'][0]:,.0f}",
        f"{up['best']:.2f} / {up['paired']:.2f}",
        f"{up['after start']:.2f}",
        f"{up['machine']:.2f} / {up['machine paired']:.2f}",
        " ".join(
            f"{o / a:.2f}"
            for (a, *_), (o, *_) in zip(*(rounds[k] for k in ("all", "one")), strict=True)
        ),
    ]
    print(" | ".join(row), flush=True)
    return [row]


def bench_memory(work: Path, solution: Path, counts: list[int]) -> list[list[str]]:
    """Peak RSS of the same job at growing input lengths (one worker)."""
    rows = []
    line = b'{"userId": "653"}\n{"userId": "1984"}\n{"userId": "nobody"}\n'
    for n in counts:
        src = work / f"mem-{n}.json"
        with open(src, "wb") as f:
            for _ in range(n // 3):
                f.write(line)
        seconds, rss, _ = _run_once(solution, src, work / "mem-out", workers=1)
        rows.append([f"{n:,}", f"{rss:,.0f}", f"{n / seconds:,.0f}"])
        print(rows[-1], flush=True)
        src.unlink()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small inputs, to check the script")
    args = ap.parse_args()
    compile_package()
    n_lines = 20_000 if args.quick else 100_000
    mem_counts = [30_000, 300_000] if args.quick else [1_000_000, 10_000_000]
    synth = (50_000, 10_000, 500_000) if args.quick else (1_000_000, 100_000, 8_000_000)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="pbatch-bench-") as tmp:
        work = Path(tmp)
        os.environ["PBATCH_HOME"] = str(work / "home")
        rows = []
        rows += bench_dataset("anime-5k", DATA / "anime-5k" / "interactions.csv.gz", work, n_lines)
        rows += bench_dataset(
            "movietweetings-100k",
            DATA / "movietweetings-100k" / "interactions.csv.gz",
            work,
            n_lines,
        )
        synth_csv = work / "synthetic.csv"
        _synthetic(synth_csv, *synth)
        synth_name = f"synthetic {synth[0]:,}×{synth[1]:,}"
        rows += bench_dataset(synth_name, synth_csv, work, n_lines)
        long_rows = bench_long_job(work, work / f"{synth_name}-user-personalization.npz", synth[0])
        mem_solution = work / "movietweetings-100k-popularity-count.npz"
        mem_rows = bench_memory(work, mem_solution, mem_counts)
    body = [
        "## Throughput and memory (`python benchmarks/throughput.py`)",
        "",
        f"Measured {started} on {machine()}. End to end: `pbatch run` reading a JSON Lines "
        f"file and writing `NAME.out`, numResults={N_RESULTS}, all cores unless noted. "
        "Every rate is the best of "
        f"{REPEAT} rounds; a round runs pbatch (all cores, then one worker) and then each "
        "peer, so both sides meet this virtual machine's fast and slow minutes alike (its "
        "speed varies by a third from minute to minute). Memory figures are the largest. "
        "Peers are compute-only (no JSON at all), measured in the same run: implicit "
        f"{_implicit_version()}'s `AlternatingLeastSquares` ({FACTORS} factors) "
        "`.recommend(..., filter_already_liked_items=True)` in batches of 1,000 users, and "
        "`CosineRecommender(K=100).similar_items`. The limit is the machine's rate for the "
        "same work from its parts: the matrix product alone, `argpartition` top-k alone "
        "(both cores) and orjson parse + dump alone, combined as 1/(1/a + 1/b + 1/c). "
        "pbatch's user-personalization is not a factor model: the own-model limit is "
        "its own sparse products alone (history weights times the item model, item "
        "neighbours and transitions, summed; forked processes on every core) and orjson "
        "parse + dump, combined as 1/(1/a + 1/b), with no top-k at all: what the model "
        "itself costs, against the 64-factor product of the issue's limit. "
        "Start-up is the same job on the input's first line alone (imports, loading the "
        "solution, forking the workers), timed in the same rounds, with pbatch's modules "
        "compiled to bytecode beforehand, as installing it does; the speed-up after "
        "start-up is (one worker's seconds - its start-up) / (all cores' seconds - theirs): "
        "what more workers give a job long enough for start-up not to count. The machine's "
        "speed-up is that of two independent pure-Python processes against one, timed in "
        "the same rounds: what a second core gave this virtual machine at the time (other "
        "virtual machines share its host), about the most a two-worker job could show; "
        "the second figure is the same for two processes that gather at random from 256 "
        "MiB each (memory-bound, as scoring over a large solution is in part). Both time "
        "the work alone, from processes started and set up beforehand. "
        "Each speed-up is given twice: from the best rates (best of the rounds on each "
        "side, which may come from different minutes) and paired: the median over rounds "
        "of the ratio within a round, whose runs are seconds apart. "
        "The ratios against peers and the limit are end to end, start-up included. "
        "Memory: the peak RSS of the largest process, and the peak of the summed "
        "proportional set size (PSS) of `pbatch run` and its workers, sampled once a "
        "second: pages the workers share (the mapped solution file, and the scorer's "
        "arrays after fork) count once. "
        "(Sampled every 50 ms, the sampling slowed a two-worker job by a fifth: reading a "
        "process's memory map holds its lock.)",
        "",
        table(
            [
                "data",
                "recipe",
                "lines",
                "lines/s",
                "lines/s (1 worker)",
                "speed-up (best rates / paired)",
                "start-up s (all / 1 worker)",
                "speed-up after start-up (best / paired)",
                "machine's speed-up, 2 processes (CPU / memory-bound / CPU paired)",
                "peak RSS MiB, largest process (all / 1 worker)",
                "peak memory MiB, all processes (all / 1 worker)",
                "solution MiB",
                "fit s",
                "peer / limit",
                "ratio",
            ],
            rows,
        ),
        "",
        "Two workers against one on a job with as many lines as the synthetic solution has "
        "users (user-personalization, users drawn at random), in "
        f"{REPEAT} interleaved rounds as above, start-up timed in the same rounds. The "
        f"table's synthetic user-personalization job ({n_lines:,} lines) is short enough "
        "for start-up and the first blocks to weigh on its speed-up. Worker scaling on "
        "the synthetic solution (the target: two workers at least 1.7 times one) is "
        "therefore read on jobs of as many lines as it has users: this one for "
        "user-personalization, the table's 1,000,000-line jobs for popularity-count and "
        "sims. Start-up (imports, loading and checking the solution, forking), which no "
        "number of workers shortens, is in the table's start-up column:",
        "",
        table(
            [
                "lines",
                "lines/s",
                "lines/s (1 worker)",
                "speed-up (best rates / paired)",
                "speed-up after start-up (best)",
                "machine's speed-up, 2 processes (CPU / paired)",
                "speed-up in each round",
            ],
            long_rows,
        ),
        "",
        "Peak RSS of one worker as the input grows (popularity-count, MovieTweetings; one run "
        "each):",
        "",
        table(["input lines", "peak RSS MiB", "lines/s"], mem_rows),
    ]
    write_section("throughput", "\n".join(body))


def _implicit_version() -> str:
    import implicit  # noqa: PLC0415

    return implicit.__version__


if __name__ == "__main__":
    main()
