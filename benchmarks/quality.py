"""Recommendation quality of pbatch against its peers, on held-out data. One command:

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/quality.py

writes the "Quality" section of BENCHMARKS.md. Cases: MovieTweetings with a global time
cut and with leave-last-out, anime-5k (rows shuffled per user, no time) with a random
tenth of each user's items held out. pbatch's rows are a plain `pbatch train` (no --hp):
it chooses its own settings on the case's training part, as it would on a user's data;
the order-blind ablation is the same with `--hp recency_mask=false`; where plain train
validates on another kind of part than the case measures (leave-last-out), a row with
`--validation-split` set to the case's split. The peers (most
popular, recent popularity, implicit's item-kNN cosine and ALS, EASE) are tuned by this
script: coordinate descent over their grids on a validation split carved out of the
training part (the same kind of split, applied again). Every method is refitted on the
whole training part in a child process that measures fit time and peak memory, and
scored once on the test part. Also: personalized-ranking (the held-out item among 100
sampled items, pbatch's personalized-ranking recipe by plain train) and sims (is the
next item among the top 10 similar items of the previous one?), with
popularity_discount_factor's effect. Last, the fresh-events case of benchmarks/foldin.py
(`pbatch run --events` against no events and against retraining), written to its own
section.
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
from common import DATA, ROOT, in_child, machine, write_section  # noqa: E402
from methods import PBATCH, PEERS, VARIANTS, Method, Model, PbatchPlain  # noqa: E402
from quality_report import KEY, SEED, report  # noqa: E402

from personalize_batch.data import read_interactions  # noqa: E402
from personalize_batch.data.splits import Split, shuffle_within_users, split_data  # noqa: E402
from personalize_batch.recipes.numeric import chunk_rows, mask_rows, topk  # noqa: E402
from personalize_batch.recipes.validation import ndcg_at_k, summarize  # noqa: E402

CASES = {
    "mt-time-cut": ("movietweetings-100k", "time-cut", "MovieTweetings-100k, global time cut"),
    "mt-leave-last-out": (
        "movietweetings-100k",
        "leave-last-out",
        "MovieTweetings-100k, leave-last-out",
    ),
    "anime": (
        "anime-5k",
        "random",
        "anime-5k, rows shuffled per user, a random tenth of each user's items held out",
    ),
}


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


def plain_run(method: PbatchPlain, split: Split, hp: dict[str, Any] | None) -> dict[str, Any]:
    """In a child process: what `pbatch train` does on the training part (choose, then
    fit; or fit `hp`, already chosen), the top-N metrics, and the ranking metrics of
    pbatch's personalized-ranking recipe, trained the same way."""
    t0 = time.perf_counter()
    report: dict[str, Any] = {}
    if hp is None:
        hp, report = method.choose(split.train)
    model = method.fit(split.train, hp, {})
    fit_seconds = time.perf_counter() - t0
    metrics = measure(model, split, per_user=True)
    per_user = metrics.pop("per_user_ndcg10")
    ranker = PbatchPlain(
        "personalized-ranking",
        method.fixed,
        overrides=method.overrides,
        validation=method.validation,
    )
    rank_hp = ranker.choose(split.train)[0] if not method.overrides else hp
    ranking = ranking_quality(ranker.fit(split.train, rank_hp, {}), split)
    key = f"validation NDCG@10 ({report['split']['split']})" if report.get("split") else None
    return {
        "hyperparameters": hp,
        "chosen": report.get("chosen", {}),
        "validation_ndcg10": (
            report["validation"]["chosen"][KEY] if report.get("validation") else float("nan")
        ),
        "validation_kind": key,
        "validation_split": report["split"]["split"] if report.get("split") else None,
        "metrics": metrics,
        "per_user_ndcg10": per_user,
        "ranking": ranking,
        "fit_seconds": fit_seconds,
    }


def run_case(key: str, peers: list[Method], ours: list[PbatchPlain], log: Any) -> dict[str, Any]:
    dataset, split_name, title = CASES[key]
    data = read_interactions(str(DATA / dataset / "interactions.csv.gz"))
    if not data.has_timestamps:
        data = shuffle_within_users(data, SEED)
    test = split_data(data, split_name, seed=SEED)
    val = split_data(test.train, split_name, seed=SEED + 1)
    log(f"{title}: {test.info['testUsers']} test users, {val.info['testUsers']} validation users")
    results = []
    for method in peers:
        if method.needs_time and not data.has_timestamps:
            continue
        t0 = time.perf_counter()
        (hp, val_score, evals), _, _ = in_child(tune, method, val, 3)
        tune_seconds = time.perf_counter() - t0
        out, start_rss, peak = in_child(final_run, method, test, hp)
        results.append(
            {
                "method": method.name,
                "hyperparameters": hp,
                "shown": {k: v for k, v in hp.items() if k in method.grid},
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
    plain_hp, plain_split = None, split_name
    # where plain train validates on another kind of part than the case measures, also
    # pbatch told to validate like the case (as the peers are tuned): --validation-split
    asked = PbatchPlain(name=f"pbatch, --validation-split {split_name}", validation=split_name)
    for method in [*ours, asked]:
        if method is asked and plain_split == split_name:
            continue
        given = None if not method.overrides else plain_hp
        out, start_rss, peak = in_child(plain_run, method, test, given)
        if method.name == PbatchPlain.name:
            plain_hp, plain_split = out["hyperparameters"], out["validation_split"]
        results.append(
            {
                "method": method.name,
                "shown": out["chosen"] if not method.overrides else method.overrides,
                "baseline_rss_mb": start_rss,
                "peak_rss_mb": peak,
                **out,
            }
        )
        log(
            f"  {method.name}: NDCG@10 {out['metrics'][KEY]:.4f} (validation "
            f"{out['validation_ndcg10']:.4f}), train {out['fit_seconds']:.1f}s, peak "
            f"{peak:.0f} MB; {out['chosen']}"
        )
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
    one), for a plain `pbatch train -r sims` and implicit's item neighbours; and
    popularity_discount_factor's effect."""
    from methods import pbatch_sims, sims_peers, sims_plain, sims_top10  # noqa: PLC0415

    data = read_interactions(str(DATA / "movietweetings-100k" / "interactions.csv.gz"))
    out: dict[str, Any] = {"splits": {}, "discount": []}
    for split_name in ("time-cut", "leave-last-out"):
        split = split_data(data, split_name)
        train = split.train
        ends = np.cumsum(np.bincount(train.users, minlength=train.n_users)) - 1
        prev = train.items[ends[split.users]].astype(np.int64)
        nxt = np.array([t[0] for t in split.truths])
        counts = np.bincount(train.items, minlength=train.n_items)

        def hit_rate(sim: Any, prev=prev, nxt=nxt, counts=counts) -> float:
            top = sims_top10(sim, prev, counts)
            return float(np.mean([n in r for n, r in zip(nxt, top, strict=True)]))

        t0 = time.perf_counter()
        sim, chosen = sims_plain(train)
        rows = [("pbatch sims (plain train)", hit_rate(sim))]
        seconds = time.perf_counter() - t0
        rows.append(
            ("pbatch sims (Personalize's defaults, --no-tune)", hit_rate(pbatch_sims(train)))
        )
        rows += [(name, hit_rate(make(train))) for name, make in sims_peers()]
        out["splits"][split_name] = {
            "pairs": len(prev),
            "rows": rows,
            "chosen": chosen,
            "train_seconds": seconds,
        }
        log(f"  sims {split_name}: {rows}; chosen {chosen}")
        if split_name == "time-cut":
            for factor in (0.0, 0.25, 0.5, 0.75, 1.0):
                top = sims_top10(
                    pbatch_sims(train, {"popularity_discount_factor": factor}), prev, counts
                )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--no-peers", action="store_true", help="pbatch's rows only")
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

    peers = [] if args.no_peers else PEERS()
    cases = [run_case(key, peers, PBATCH() + VARIANTS(), log) for key in args.cases]
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
