"""Recommendation quality of pbatch against its peers, on held-out data. One command:

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/quality.py

writes the "Quality" section of BENCHMARKS.md. Cases: MovieTweetings with a global time
cut and with leave-last-out, anime-5k (rows shuffled per user) with Personalize's split.
Methods: most-popular, implicit's item-kNN cosine and ALS, EASE (numpy closed form),
pbatch user-personalization and its order-blind ablation. Every method's
hyperparameters are chosen by coordinate descent on a validation split carved out of the
training part (the same kind of split, applied again), then the method is refitted on the
whole training part, in a child process that measures fit time and peak memory, and
scored once on the test part. Also: personalized-ranking (the held-out item among 100
sampled items) and sims (is the next item among the top 10 similar items of the
previous one?), with popularity_discount_factor's effect. Last, the fresh-events case of
benchmarks/foldin.py (`pbatch run --events` against no events and against retraining),
written to its own section.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import foldin  # noqa: E402
from common import DATA, ROOT, in_child, machine, table, write_section  # noqa: E402
from methods import ALL_METHODS, VARIANTS, Method, Model  # noqa: E402

from personalize_batch.data import read_interactions  # noqa: E402
from personalize_batch.evaluation import Split, shuffle_within_users, split_data  # noqa: E402
from personalize_batch.metrics import ndcg_at_k, summarize  # noqa: E402
from personalize_batch.recipes.base import chunk_rows, mask_rows, topk  # noqa: E402

CASES = {
    "mt-time-cut": ("movietweetings-100k", "time-cut", "MovieTweetings-100k, global time cut"),
    "mt-leave-last-out": (
        "movietweetings-100k",
        "leave-last-out",
        "MovieTweetings-100k, leave-last-out",
    ),
    "anime": ("anime-5k", "personalize", "anime-5k, rows shuffled per user, Personalize's split"),
}
KEY = "normalized_discounted_cumulative_gain_at_10"
SEED = 0
VALIDATION_FRACTION = 0.2  # the Personalize-style validation split holds out more users


# ------------------------------------------------------------------ scoring


def top_lists(model: Model, split: Split, k: int = 25) -> list[list[int]]:
    """Each test user's top-k items by the model, training items excluded."""
    seen = split.train.matrix()
    out: list[list[int]] = []
    step = chunk_rows(split.train.n_items)
    for s in range(0, len(split.users), step):
        users = split.users[s : s + step]
        keys = np.array(model.scores(users), dtype=np.float64)
        mask_rows(keys, seen[users])
        idx, lengths = topk(keys, k)
        out += [row[:n].tolist() for row, n in zip(idx, lengths, strict=True)]
    return out


def measure(model: Model, split: Split, per_user: bool = False) -> dict[str, Any]:
    """Personalize's metrics of the model's top-25 lists (and each user's NDCG@10)."""
    truths = [set(t.tolist()) for t in split.truths]
    lists = top_lists(model, split)
    out: dict[str, Any] = summarize(lists, truths, split.info["items"])
    if per_user:
        out["per_user_ndcg10"] = [ndcg_at_k(r, t, 10) for r, t in zip(lists, truths, strict=True)]
    return out


def ratio_interval(a: list[float], b: list[float], seed: int = SEED) -> tuple[float, float]:
    """95 % bootstrap interval of mean(a) / mean(b), resampling the same test users."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a), np.asarray(b)
    idx = rng.integers(0, len(x), size=(1000, len(x)))
    ratios = x[idx].mean(axis=1) / np.maximum(y[idx].mean(axis=1), 1e-12)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return float(lo), float(hi)


def ranking_quality(model: Model, split: Split, seed: int = SEED) -> dict[str, float]:
    """Rank each test user's (first, known) held-out item among 99 sampled items the user
    has not seen: NDCG@10 and AUC (ties: lower item index first, as pbatch orders them)."""
    rng = np.random.default_rng(seed)
    seen = split.train.matrix().tolil().rows
    n = split.train.n_items
    users, cols = [], []
    for u, truth in zip(split.users.tolist(), split.truths, strict=True):
        pos = int(truth[0])
        if pos < 0:
            continue
        banned = set(seen[u]) | {pos}
        if n - len(banned) < 99:
            continue
        negs: list[int] = []
        while len(negs) < 99:
            for c in rng.integers(0, n, size=128).tolist():
                if c not in banned and len(negs) < 99:
                    banned.add(c)
                    negs.append(c)
        users.append(u)
        cols.append([pos, *negs])
    users_a, cols_a = np.array(users), np.array(cols)
    ndcg, auc = [], []
    step = chunk_rows(n)
    for s in range(0, len(users_a), step):
        sc = np.take_along_axis(
            np.asarray(model.scores(users_a[s : s + step]), dtype=np.float64),
            cols_a[s : s + step],
            axis=1,
        )
        c = cols_a[s : s + step]
        above = (sc[:, 1:] > sc[:, :1]) | ((sc[:, 1:] == sc[:, :1]) & (c[:, 1:] < c[:, :1]))
        rank = 1 + above.sum(axis=1)
        ndcg += np.where(rank <= 10, 1.0 / np.log2(rank + 1), 0.0).tolist()
        auc += (1.0 - above.mean(axis=1)).tolist()
    return {"ndcg10": float(np.mean(ndcg)), "auc": float(np.mean(auc)), "users": len(users)}


# ------------------------------------------------------------------ tuning


def tune(method: Method, val: Split, rounds: int) -> tuple[dict[str, Any], float, int]:
    """Coordinate descent over method.grid on the validation split: for each parameter
    in turn, keep the value with the best NDCG@10; repeat until a round changes nothing."""
    cache: dict = {}
    tried: dict[tuple, float] = {}

    def score(hp: dict[str, Any]) -> float:
        key = tuple(sorted(hp.items()))
        if key not in tried:
            model = method.fit(val.train, hp, cache)
            tried[key] = measure(model, val)[KEY]
        return tried[key]

    current = dict(method.start)
    best = score(current)
    for _ in range(rounds):
        changed = False
        for name, values in method.grid.items():
            if not method.active(name, current, val.train):
                continue
            for value in values:
                candidate = {**current, name: value}
                s = score(candidate)
                if s > best + 1e-9:
                    best, current, changed = s, candidate, True
        if not changed:
            break
    return current, best, len(tried)


def final_run(method: Method, split: Split, hp: dict[str, Any]) -> dict[str, Any]:
    """In a child process: fit on the training part, then top-N and ranking metrics."""
    t0 = time.perf_counter()
    model = method.fit(split.train, hp, {})
    fit_seconds = time.perf_counter() - t0
    metrics = measure(model, split, per_user=True)
    per_user = metrics.pop("per_user_ndcg10")
    return {
        "metrics": metrics,
        "per_user_ndcg10": per_user,
        "ranking": ranking_quality(model, split),
        "fit_seconds": fit_seconds,
    }


def run_case(
    key: str, methods: list[Method], variants: list[Method], rounds: int, log: Any
) -> dict[str, Any]:
    dataset, split_name, title = CASES[key]
    data = read_interactions(str(DATA / dataset / "interactions.csv.gz"))
    if not data.has_timestamps:
        data = shuffle_within_users(data, SEED)
    test = split_data(data, split_name, seed=SEED)
    val = split_data(test.train, split_name, seed=SEED + 1, test_fraction=VALIDATION_FRACTION)
    log(f"{title}: {test.info['testUsers']} test users, {val.info['testUsers']} validation users")
    results = []
    for method in methods:
        t0 = time.perf_counter()
        (hp, val_score, evals), _, _ = in_child(tune, method, val, rounds)
        tune_seconds = time.perf_counter() - t0
        out, start_rss, peak = in_child(final_run, method, test, hp)
        results.append(
            {
                "method": method.name,
                "hyperparameters": hp,
                "grid": {k: v for k, v in method.grid.items() if method.active(k, hp, test.train)},
                "validation_ndcg10": val_score,
                "evaluations": evals,
                "tune_seconds": tune_seconds,
                "baseline_rss_mb": start_rss,
                "peak_rss_mb": peak,
                **out,
            }
        )
        log(
            f"  {method.name}: NDCG@10 {out['metrics'][KEY]:.4f} (validation {val_score:.4f}, "
            f"{evals} evaluations, {tune_seconds:.0f}s), fit {out['fit_seconds']:.1f}s, "
            f"peak {peak:.0f} MB; {hp}"
        )
    tuned = next((r for r in results if r["method"] == "pbatch"), None)
    for variant in variants if tuned else []:
        hp = tuned["hyperparameters"]
        out, start_rss, peak = in_child(final_run, variant, test, hp)
        results.append(
            {
                "method": variant.name,
                "hyperparameters": {**hp, **variant.overrides},
                "grid": variant.overrides,
                "validation_ndcg10": float("nan"),
                "evaluations": 0,
                "tune_seconds": 0.0,
                "baseline_rss_mb": start_rss,
                "peak_rss_mb": peak,
                **out,
            }
        )
        log(f"  {variant.name}: NDCG@10 {out['metrics'][KEY]:.4f}, fit {out['fit_seconds']:.1f}s")
    return {
        "case": key,
        "title": title,
        "split": test.info,
        "validation": val.info,
        "results": results,
    }


# ------------------------------------------------------------------ sims


def sims_quality(log: Any) -> dict[str, Any]:
    """Hit rate@10 of 'the next item is among the top 10 similar items of the previous
    one' on MovieTweetings (previous: the user's latest training item; next: the held-out
    one), for pbatch sims and implicit's item neighbours; and popularity_discount_factor."""
    from methods import sims_methods, sims_top10  # noqa: PLC0415

    data = read_interactions(str(DATA / "movietweetings-100k" / "interactions.csv.gz"))
    out: dict[str, Any] = {"splits": {}, "discount": []}
    for split_name in ("time-cut", "leave-last-out"):
        split = split_data(data, split_name)
        train = split.train
        ends = np.cumsum(np.bincount(train.users, minlength=train.n_users)) - 1
        prev = train.items[ends[split.users]].astype(np.int64)
        nxt = np.array([t[0] for t in split.truths])
        counts = np.bincount(train.items, minlength=train.n_items)
        rows = []
        for name, make in sims_methods():
            top = sims_top10(make(train), prev, counts)
            rows.append((name, float(np.mean([n in r for n, r in zip(nxt, top, strict=True)]))))
        out["splits"][split_name] = {"pairs": len(prev), "rows": rows}
        log(f"  sims {split_name}: {rows}")
        if split_name == "time-cut":
            from methods import pbatch_sims  # noqa: PLC0415

            for factor in (0.0, 0.25, 0.5, 0.75, 1.0):
                top = sims_top10(pbatch_sims(train, factor), prev, counts)
                hit = float(np.mean([n in r for n, r in zip(nxt, top, strict=True)]))
                recs = np.concatenate([np.array(r, dtype=np.int64) for r in top])
                out["discount"].append(
                    {
                        "factor": factor,
                        "hit_rate": hit,
                        "median_count": float(np.median(counts[recs])),
                        "mean_count": float(np.mean(counts[recs])),
                    }
                )
            log(f"  discount: {out['discount']}")
    return out


# ------------------------------------------------------------------ report


def _fmt_hp(hp: dict[str, Any], grid: dict[str, list[Any]]) -> str:
    """The tuned hyperparameters (the others keep their defaults)."""
    return ", ".join(f"{k}={v}" for k, v in hp.items() if k in grid) or "–"


def report(cases: list[dict[str, Any]], sims: dict[str, Any] | None, started: str) -> str:
    parts = [
        "Written by `benchmarks/quality.py` (one command; "
        f"{started}). The machine is shared with other work, so times are noisy: read them "
        "as orders of magnitude. Peak RSS is that of the child process that fits and scores "
        "one method; it includes the baseline the parent brought along (the data and splits, "
        "given in each case's note).",
        "",
        "**How hyperparameters are chosen.** For each case the same kind of split is applied "
        "again to the training part (time cut at the 90th percentile of the training "
        "timestamps; leave-last-out of the training part; Personalize's split of the training "
        f"part with {VALIDATION_FRACTION:.0%} of the users and another seed). Each method "
        "starts from its defaults and does coordinate descent over the grid shown in "
        "`benchmarks/methods.py`, keeping for each hyperparameter in turn the value with the "
        "best validation NDCG@10, until a round changes nothing. The chosen values are "
        "refitted on the whole training part and measured once on the test part. The test "
        "part is never used for choosing.",
    ]
    targets = []
    for case in cases:
        res = case["results"]
        best_peer = max(
            (r for r in res if not r["method"].startswith("pbatch")),
            key=lambda r: r["metrics"][KEY],
        )
        rows = []
        for r in res:
            m = r["metrics"]
            rows.append(
                [
                    r["method"],
                    f"{m['precision_at_10']:.4f}",
                    f"**{m[KEY]:.4f}**" if r["method"] == "pbatch" else f"{m[KEY]:.4f}",
                    f"{m['mean_reciprocal_rank_at_25']:.4f}",
                    f"{m['coverage']:.3f}",
                    f"{r['ranking']['ndcg10']:.4f}",
                    f"{r['ranking']['auc']:.4f}",
                    f"{r['fit_seconds']:.1f}",
                    f"{r['peak_rss_mb']:.0f}",
                    "–" if np.isnan(r["validation_ndcg10"]) else f"{r['validation_ndcg10']:.4f}",
                    _fmt_hp(r["hyperparameters"], r["grid"]),
                ]
            )
        info = case["split"]
        base = min(r["baseline_rss_mb"] for r in res)
        parts += [
            "",
            f"### {case['title']}",
            "",
            f"{info['testUsers']:,} test users, {info['heldOutItems']:,} held-out items "
            f"({info['heldOutUnknownItems']} absent from training: misses for every method), "
            f"{info['trainingInteractions']:,} training interactions; validation: "
            f"{case['validation']['testUsers']:,} users. Baseline RSS before a fit: "
            f"{base:.0f} MB. Ranking columns: the held-out item among 100 (99 sampled unseen "
            "items), the personalized-ranking task.",
            "",
            table(
                [
                    "method",
                    "precision@10",
                    "NDCG@10",
                    "MRR@25",
                    "coverage",
                    "rank NDCG@10",
                    "rank AUC",
                    "fit s",
                    "peak RSS MB",
                    "validation NDCG@10",
                    "chosen hyperparameters",
                ],
                rows,
            ),
        ]
        by = {r["method"]: r for r in res}
        if "pbatch" in by:
            up = by["pbatch"]
            ratio = up["metrics"][KEY] / best_peer["metrics"][KEY]
            interval = ratio_interval(up["per_user_ndcg10"], best_peer["per_user_ndcg10"])
            blind = by.get("pbatch order-blind")
            targets.append((case, ratio, interval, best_peer["method"], blind, up))
    if targets:
        rows = []
        for case, ratio, (lo, hi), peer, blind, up in targets:
            want = 1.5 if case["case"] == "mt-time-cut" else 1.0
            comparison = case["case"] == "mt-leave-last-out"
            line = [
                case["title"],
                f"{ratio:.2f}× {peer} ({lo:.2f}–{hi:.2f})",
                "(for comparison)" if comparison else f"≥ {want}×",
                "" if comparison else ("met" if ratio >= want else "**missed**"),
                "–",
            ]
            if blind is not None:
                b_ratio = up["metrics"][KEY] / blind["metrics"][KEY]
                b_lo, b_hi = ratio_interval(up["per_user_ndcg10"], blind["per_user_ndcg10"])
                line[-1] = (
                    f"{up['metrics'][KEY]:.4f} vs {blind['metrics'][KEY]:.4f}: "
                    f"{b_ratio:.3f}× ({b_lo:.3f}–{b_hi:.3f})"
                )
            rows.append(line)
        parts += [
            "",
            "### Targets",
            "",
            "Ratios of NDCG@10 on the test part, with a 95 % bootstrap interval over the test "
            "users (the same users resampled for both methods).",
            "",
            table(
                [
                    "case",
                    "pbatch / best peer",
                    "target",
                    "",
                    "pbatch vs its order-blind ablation",
                ],
                rows,
            ),
        ]
    if sims:
        parts += [
            "",
            "### sims: is the next item among the top 10 similar items of the previous one?",
            "",
            "MovieTweetings; previous item: the user's latest training item; next item: the "
            "held-out one (the same users and items as above). Lists shorter than 10 are "
            "filled with the most popular items for every method, as pbatch does.",
            "",
        ]
        names = [n for n, _ in next(iter(sims["splits"].values()))["rows"]]
        rows = []
        for name in names:
            rows.append([name] + [f"{dict(s['rows'])[name]:.4f}" for s in sims["splits"].values()])
        parts.append(
            table(
                ["method"]
                + [f"hit rate@10, {k} ({v['pairs']:,} pairs)" for k, v in sims["splits"].items()],
                rows,
            )
        )
        parts += [
            "",
            "`popularity_discount_factor` (time cut): Personalize documents that higher values "
            "favour less popular items. The training interaction count of the recommended "
            "neighbours falls as the factor grows:",
            "",
            table(
                [
                    "popularity_discount_factor",
                    "hit rate@10",
                    "median count of neighbours",
                    "mean count",
                ],
                [
                    [
                        d["factor"],
                        f"{d['hit_rate']:.4f}",
                        f"{d['median_count']:.0f}",
                        f"{d['mean_count']:.1f}",
                    ]
                    for d in sims["discount"]
                ],
            ),
        ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--methods", nargs="*", default=None, help="method names (default all)")
    parser.add_argument("--rounds", type=int, default=2, help="coordinate-descent rounds")
    parser.add_argument("--no-sims", action="store_true", help="skip the sims section")
    parser.add_argument(
        "--no-foldin", action="store_true", help="skip the fresh-events section (foldin.py)"
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    args = parser.parse_args()
    started = machine()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    methods = [m for m in ALL_METHODS() if args.methods is None or m.name in args.methods]
    variants = [] if args.methods is not None else VARIANTS()
    cases = [run_case(key, methods, variants, args.rounds, log) for key in args.cases]
    sims = None if args.no_sims else sims_quality(log)
    body = report(cases, sims, started)
    if args.json:
        Path(args.json).write_bytes(
            orjson.dumps({"cases": cases, "sims": sims}, option=orjson.OPT_SERIALIZE_NUMPY)
        )
    if args.no_write:
        print(body)
    else:
        write_section("quality", "## Quality (`python benchmarks/quality.py`)\n\n" + body)
        log(f"wrote the Quality section of {ROOT / 'BENCHMARKS.md'}")
    if not args.no_foldin:  # what `pbatch run --events` is worth, against retraining
        fresh = foldin.section()
        if args.no_write:
            print(fresh)
        else:
            write_section("foldin", fresh)


if __name__ == "__main__":
    main()
