"""How user-personalization's training scales: synthetic data with 1M users and 20M
interactions and a catalogue of 100k items (other sizes with `--items 10000 30000 …`).
One command:

    .venv/bin/python benchmarks/fit_scaling.py

writes the "Fit scaling" section of BENCHMARKS.md. Each size runs twice, each in its own
child process that builds the data in memory: a plain `pbatch train` (the search for
settings, then the fit of the chosen ones: `tuning.choose` + `training.fit_arrays`) and
the fit of the defaults alone (`--no-tune`). Peak RSS is the child's, data included.
Last, the whole `pbatch train` command on the largest size's CSV, as a user runs it
(reading the CSV and writing the solution included), and on the two bundled data sets,
whose time targets the quality issue sets (MovieTweetings-100k in a minute, anime-5k in
three). Run it on a quiet machine: these rows are wall-clock times.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, PBATCH, in_child, machine, run_measured, table, write_section  # noqa: E402

from personalize_batch import recipes  # noqa: E402
from personalize_batch.data import Interactions  # noqa: E402
from personalize_batch.training import fit_arrays  # noqa: E402
from personalize_batch.tuning import choose  # noqa: E402


def synthetic(n_users: int, n_items: int, n_rows: int, seed: int = 0) -> Interactions:
    """Users with log-normal history lengths; each row picks, with probability 0.7, an
    item of the user's taste cluster (of 200), else any item, both by a Zipf-like
    popularity; times increase within a user over 180 days."""
    rng = np.random.default_rng(seed)
    lengths = rng.lognormal(mean=0.0, sigma=1.0, size=n_users)
    lengths = np.maximum(1, np.round(lengths * n_rows / lengths.sum())).astype(np.int64)
    lengths[: n_rows - lengths.sum()] += 1 if lengths.sum() < n_rows else 0
    users = np.repeat(np.arange(n_users, dtype=np.int32), lengths)[:n_rows]
    rows = len(users)
    clusters = 200
    rank = np.arange(n_items)
    weight = 1.0 / (rank + 10.0) ** 0.9
    popular = rng.permutation(n_items)  # popularity rank -> item id
    glob = np.cumsum(weight / weight.sum())
    per = n_items // clusters
    cw = np.cumsum(weight[:per] / weight[:per].sum())
    taste = rng.integers(0, clusters, size=n_users)[users]
    in_cluster = rng.random(rows) < 0.7
    pick_c = np.minimum(np.searchsorted(cw, rng.random(rows)), per - 1)
    pick_g = np.minimum(np.searchsorted(glob, rng.random(rows)), n_items - 1)
    ranks = np.where(in_cluster, taste * per + pick_c, pick_g)
    items = popular[ranks].astype(np.int32)
    start = rng.integers(0, 180 * 86400, size=n_users)[users]
    times = (1_600_000_000 + start + rng.integers(0, 30 * 86400, size=rows)).astype(np.int64)
    order = np.lexsort((times, users))
    return Interactions(
        user_ids=np.char.add("u", np.arange(n_users).astype("U7")),
        item_ids=np.char.add("i", np.arange(n_items).astype("U6")),
        users=users[order],
        items=items[order],
        timestamps=times[order],
        event_types=np.zeros(rows, dtype="U1"),
        has_timestamps=True,
    )


def one_size(n_users: int, n_items: int, n_rows: int, tune: bool) -> dict:
    t0 = time.perf_counter()
    data = synthetic(n_users, n_items, n_rows)
    made = time.perf_counter() - t0
    hp = recipes.recipe("user-personalization").hyperparameters.defaults()
    t0 = time.perf_counter()
    search, chosen = 0.0, {}
    if tune:
        choice = choose("user-personalization", data, hp, seed=0)
        hp, chosen = choice.hyperparameters, choice.report.get("chosen", {})
        search = time.perf_counter() - t0
    arrays = fit_arrays("user-personalization", data, hp)
    total = time.perf_counter() - t0
    counts = np.bincount(data.items, minlength=n_items)
    return {
        "items": n_items,
        "rows": len(data.users),
        "data_seconds": made,
        "search_seconds": search,
        "seconds": total,
        "chosen": chosen,
        "path": str(arrays["up_im_path"]),
        "modelled_items": int((counts >= hp["min_item_interactions"]).sum()),
        "array_mb": sum(a.nbytes for a in arrays.values()) / 2**20,
    }


def write_csv(n_users: int, n_items: int, n_rows: int, path: Path) -> None:
    data = synthetic(n_users, n_items, n_rows)
    with open(path, "w", encoding="utf-8") as f:
        f.write("USER_ID,ITEM_ID,TIMESTAMP\n")
        step = 1 << 20
        for s in range(0, len(data.users), step):
            u = data.user_ids[data.users[s : s + step]]
            i = data.item_ids[data.items[s : s + step]]
            t = data.timestamps[s : s + step].astype(str)
            f.write("\n".join(",".join(r) for r in zip(u, i, t, strict=True)) + "\n")


BUNDLED = (("movietweetings-100k", 60), ("anime-5k", 180))  # data set, target seconds


def bundled_rows() -> list[str]:
    """A plain `pbatch train` on each bundled data set, timed as a user runs it."""
    import tempfile  # noqa: PLC0415

    rows = []
    for name, target in BUNDLED:
        with tempfile.TemporaryDirectory() as tmp:
            seconds, peak = run_measured(
                [*PBATCH, "train", "-r", "user-personalization"]
                + ["-i", str(DATA / name / "interactions.csv.gz")]
                + ["-o", str(Path(tmp) / "model.npz"), "-q"]
            )
        print(f"{name} {seconds:.0f}s peak {peak:.0f} MB", file=sys.stderr, flush=True)
        met = "met" if seconds <= target else "**missed**"
        rows.append([name, f"{seconds:.0f}", f"{peak:,.0f}", f"≤ {target}", met])
    return [
        "",
        "A plain `pbatch train -r user-personalization -i interactions.csv.gz -o model.npz` "
        "on the bundled data sets (the search included), against the time targets:",
        "",
        table(["data set", "seconds", "peak RSS MB", "target s", ""], rows),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--items", type=int, nargs="*", default=[100_000])
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-command run")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = machine()
    rows = []
    for n_items in args.items:
        for tune in (True, False):
            out, _, peak = in_child(one_size, args.users, n_items, args.rows, tune)
            print(f"{out} peak {peak:.0f} MB", file=sys.stderr, flush=True)
            rows.append(
                [
                    f"{n_items:,}",
                    f"{out['modelled_items']:,}",
                    "plain train" if tune else "--no-tune",
                    out["path"],
                    f"{out['search_seconds']:.0f}" if tune else "–",
                    f"{out['seconds']:.0f}",
                    f"{peak:,.0f}",
                    f"{out['array_mb']:,.0f}",
                    ", ".join(f"{k}={v}" for k, v in out["chosen"].items()) if tune else "–",
                ]
            )
    cli = []
    if not args.no_cli:
        import tempfile  # noqa: PLC0415

        n_items = max(args.items)
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "interactions.csv"
            write_csv(args.users, n_items, args.rows, csv_path)
            size = csv_path.stat().st_size / 2**20
            seconds, peak = run_measured(
                [*PBATCH, "train", "-r", "user-personalization", "-i", str(csv_path)]
                + ["-o", str(Path(tmp) / "model.npz"), "-q"]
            )
        print(f"cli {seconds:.0f}s peak {peak:.0f} MB", file=sys.stderr, flush=True)
        cli = [
            "",
            f"The whole command, as a user runs it, on the {n_items:,}-item data written as a "
            f"CSV ({size:,.0f} MiB): `pbatch train -r user-personalization -i interactions.csv "
            f"-o model.npz` took **{seconds:.0f} s** with a peak RSS of **{peak:,.0f} MiB** "
            "(reading the CSV, the search, the fit, writing the solution). Target: at most "
            "15 minutes and 8 GB.",
        ]
    bundled = [] if args.no_cli else bundled_rows()
    body = "\n".join(
        [
            f"Written by `benchmarks/fit_scaling.py` ({started}; the machine is shared, so "
            "times are noisy). Synthetic data: "
            f"{args.users:,} users, {args.rows:,} interactions (log-normal history lengths, "
            "Zipf-like popularity, 200 taste clusters, no order within users), built in "
            "memory. *plain train* is what `pbatch train` does by default: the search for "
            "settings (on a sample of the users, see docs/reference.md) and the fit of the "
            "chosen ones; *--no-tune* fits the defaults. Targets: a plain train under 15 "
            "minutes and 8 GB at 100k items.",
            "",
            table(
                [
                    "catalogue",
                    "modelled items",
                    "train",
                    "item-model path",
                    "search s",
                    "total s",
                    "peak RSS MB",
                    "solution arrays MB",
                    "chosen (differs from the defaults)",
                ],
                rows,
            ),
            *cli,
            *bundled,
        ]
    )
    if args.no_write:
        print(body)
    else:
        write_section(
            "fit-scaling", "## Fit scaling (`python benchmarks/fit_scaling.py`)\n\n" + body
        )


if __name__ == "__main__":
    main()
