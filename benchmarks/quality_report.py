"""The "Quality" section of BENCHMARKS.md from the results `benchmarks/quality.py`
measures: each case's table, the targets with bootstrap intervals, the sims tables."""

from __future__ import annotations

from typing import Any

import numpy as np
from common import table
from methods import PbatchPlain

# what the targets of the quality issue ask, per case: pbatch / the best peer
TARGETS = {"mt-time-cut": 1.8, "anime": 1.05}
KEY = "normalized_discounted_cumulative_gain_at_10"
SEED = 0


def ratio_interval(a: list[float], b: list[float], seed: int = SEED) -> tuple[float, float]:
    """95 % bootstrap interval of mean(a) / mean(b), resampling the same test users."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a), np.asarray(b)
    idx = rng.integers(0, len(x), size=(1000, len(x)))
    ratios = x[idx].mean(axis=1) / np.maximum(y[idx].mean(axis=1), 1e-12)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return float(lo), float(hi)


def _fmt_hp(shown: dict[str, Any]) -> str:
    """The values that differ from the defaults (pbatch) or were tuned (peers)."""
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "the defaults"


def _validation(score: float | None) -> str:
    """A validation score, or a dash for rows with none (NaN, or null in saved JSON)."""
    return "–" if score is None or np.isnan(score) else f"{score:.4f}"


def _interval(a: dict[str, Any], b: dict[str, Any]) -> str:
    ratio = a["metrics"][KEY] / max(b["metrics"][KEY], 1e-12)
    lo, hi = ratio_interval(a["per_user_ndcg10"], b["per_user_ndcg10"])
    return f"{ratio:.2f}× {b['method']} ({lo:.2f}–{hi:.2f})"


def case_section(case: dict[str, Any]) -> list[str]:
    res = case["results"]
    rows = []
    for r in res:
        m = r["metrics"]
        ours = r["method"].startswith("pbatch")
        rows.append(
            [
                f"**{r['method']}**" if r["method"] == PbatchPlain.name else r["method"],
                f"{m['precision_at_10']:.4f}",
                f"**{m[KEY]:.4f}**" if r["method"] == PbatchPlain.name else f"{m[KEY]:.4f}",
                f"{m['mean_reciprocal_rank_at_25']:.4f}",
                f"{m['coverage']:.3f}",
                f"{r['ranking']['ndcg10']:.4f}",
                f"{r['ranking']['auc']:.4f}",
                f"{r['fit_seconds']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
                _validation(r["validation_ndcg10"]),
                ("chosen by pbatch: " if ours and r.get("chosen") else "") + _fmt_hp(r["shown"]),
            ]
        )
    info = case["split"]
    base = min(r["baseline_rss_mb"] for r in res)
    return [
        "",
        f"### {case['title']}",
        "",
        f"{info['testUsers']:,} test users, {info['heldOutItems']:,} held-out items "
        f"({info['heldOutUnknownItems']} absent from training: misses for every method), "
        f"{info['trainingInteractions']:,} training interactions; the peers' validation: "
        f"{case['validation']['testUsers']:,} users. Baseline RSS before a fit: {base:.0f} MB. "
        "Ranking columns: the held-out item among 100 (99 sampled unseen items), the "
        "personalized-ranking task (pbatch: its personalized-ranking recipe, plain train).",
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
                "train s",
                "peak RSS MB",
                "validation NDCG@10",
                "settings",
            ],
            rows,
        ),
    ]


def targets_section(cases: list[dict[str, Any]], sims: dict[str, Any] | None) -> list[str]:
    rows = []
    for case in cases:
        by = {r["method"]: r for r in case["results"]}
        up = by.get(PbatchPlain.name)
        if up is None:
            continue
        peers = [r for r in case["results"] if not r["method"].startswith("pbatch")]
        classic = [r for r in peers if r["method"] != "recent popularity"]
        if not classic:
            continue
        best = max(peers, key=lambda r: r["metrics"][KEY])
        best_classic = max(classic, key=lambda r: r["metrics"][KEY])
        want = TARGETS.get(case["case"])
        ratio = up["metrics"][KEY] / best["metrics"][KEY]
        verdict = "–" if want is None else ("met" if ratio >= want else "**missed**")
        blind = by.get("pbatch order-blind (plain train)")
        ablation = "–"
        if blind is not None:
            lo, hi = ratio_interval(up["per_user_ndcg10"], blind["per_user_ndcg10"])
            ablation = (
                f"{up['metrics'][KEY]:.4f} vs {blind['metrics'][KEY]:.4f}: "
                f"{up['metrics'][KEY] / blind['metrics'][KEY]:.3f}× ({lo:.3f}–{hi:.3f})"
            )
        rows.append(
            [
                case["title"],
                _interval(up, best),
                _interval(up, best_classic) if best is not best_classic else "(the same)",
                f"≥ {want}× the best peer" if want else "(for comparison)",
                verdict,
                ablation,
            ]
        )
    out = [
        "",
        "### Targets",
        "",
        "NDCG@10 of a plain `pbatch train` on the test part over the best peer's, with a "
        "95 % bootstrap interval over the test users (the same users resampled for both); "
        "the best of the peers other than recent popularity beside it. The ablation column "
        "is the same plain train with `--hp recency_mask=false`.",
        "",
        table(
            [
                "case",
                "pbatch / best peer",
                "pbatch / best peer but recent popularity",
                "target",
                "",
                "pbatch vs its order-blind ablation",
            ],
            rows,
        ),
    ]
    if sims:
        rows = []
        for name, split in sims["splits"].items():
            got = dict(split["rows"])
            ours = got["pbatch sims (plain train)"]
            peer = max(
                ("implicit cosine (K=100)", "implicit item-kNN, co-counts (K=100)"), key=got.get
            )
            rows.append(
                [
                    f"sims, MovieTweetings {name}",
                    f"{ours:.4f} vs {got[peer]:.4f} ({peer}): {ours / got[peer]:.2f}×",
                    "≥ 1.0×",
                    "met" if ours >= got[peer] else "**missed**",
                ]
            )
        out += [
            "",
            table(
                [
                    "case",
                    "hit rate@10, plain train vs the better of cosine and co-counts",
                    "target",
                    "",
                ],
                rows,
            ),
        ]
    return out


def sims_section(sims: dict[str, Any]) -> list[str]:
    names = [n for n, _ in next(iter(sims["splits"].values()))["rows"]]
    rows = [[n] + [f"{dict(s['rows'])[n]:.4f}" for s in sims["splits"].values()] for n in names]
    chosen = "; ".join(
        f"{k}: {_fmt_hp(v['chosen'])} ({v['train_seconds']:.0f} s)"
        for k, v in sims["splits"].items()
    )
    return [
        "",
        "### sims: is the next item among the top 10 similar items of the previous one?",
        "",
        "MovieTweetings; previous item: the user's latest training item; next item: the "
        "held-out one (the same users and items as above). Lists shorter than 10 are "
        "filled with the most popular items for every method, as pbatch does. Plain train "
        f"chose: {chosen}.",
        "",
        table(
            ["method"]
            + [f"hit rate@10, {k} ({v['pairs']:,} pairs)" for k, v in sims["splits"].items()],
            rows,
        ),
        "",
        "`popularity_discount_factor` (time cut, the other values at their defaults): 0 ranks "
        "an item's neighbours by how many users they share with it, 0.5 is cosine, 1 favours "
        "less popular neighbours. The training interaction count of the recommended "
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


def report(cases: list[dict[str, Any]], sims: dict[str, Any] | None, started: str) -> str:
    parts = [
        "Written by `benchmarks/quality.py` (one command; "
        f"{started}). The machine is shared with other work, so times are noisy: read them "
        "as orders of magnitude. Peak RSS is that of the child process that fits and scores "
        "one method; it includes the baseline the parent brought along (the data and splits, "
        "given in each case's note).",
        "",
        "**pbatch is trained as a user trains it.** Its rows are a plain `pbatch train` on the "
        "case's training part, no `--hp`: it reads the data, holds out its own validation "
        "part (the future after a time cut when time carries signal, a random tenth of each "
        "user's items when not), searches its hyperparameters and refits on the whole "
        "training part. *train s* is all of that; *validation NDCG@10* is its own; "
        "*settings* are the values it chose that differ from the defaults. Where the "
        "case measures another question than plain train validates on (leave-last-out), "
        "the row *pbatch, --validation-split …* has pbatch choose on the case's kind of "
        "part, as the peers are tuned. "
        "**The peers are tuned by this script**: the same kind of split as the case's, "
        "applied again to the training part, and coordinate descent over each peer's grid "
        "(`benchmarks/methods.py`) for the best validation NDCG@10; their chosen values are "
        "refitted on the whole training part (*train s* is that fit). Recent popularity "
        "counts the interactions of the last N days (N chosen on validation). The test part "
        "is never used for choosing.",
    ]
    for case in cases:
        parts += case_section(case)
    parts += targets_section(cases, sims)
    if sims:
        parts += sims_section(sims)
    return "\n".join(parts)
