"""trending-now: does a rising item lead, and does a faded one stay out; and how well
the latest window's growth foretells the next window on MovieTweetings. One command:

    .venv/bin/python benchmarks/trending.py

writes the "Trending-now" section of BENCHMARKS.md.

Planted trend: a seeded synthetic of 20,000 users and 2,000 items over 60 days, the
items' daily rates Zipf-shaped and steady, except two: the *rising* item (the 200th
most popular) has twenty times its rate in the last day, and the *faded* item (the most
popular) has no interaction after day 30. `pbatch train -r trending-now` (the plain
command: its window chosen from the data) and with each of Personalize's windows, and
`pbatch train -r popularity-count` for contrast, each answered by a real `pbatch run`
of one line `{}` with numResults 25: the rising item's place in the list (1 = first)
and whether the faded item is in it.

Foretelling (MovieTweetings-100k): for each window W of Personalize's four, the data up
to W before its latest timestamp trains each method and the last W is the future: the
share of the future's interactions that fall on a method's 25 items (one list for
everyone, `{}`), and that share over the items' share of the two windows W before the
cut (the lift: above 1, the listed items went on rising; what trending-now's automatic
window choice measures), against popularity-count and the items most interacted with in
the last W before the cut (recent popularity over the same window).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, PBATCH, machine, table, write_section  # noqa: E402

from personalize_batch import recipes  # noqa: E402
from personalize_batch.data import Interactions, read_interactions  # noqa: E402
from personalize_batch.recipes.trending import FREQUENCIES, choose_frequency  # noqa: E402
from personalize_batch.solution import build_meta, in_memory, model_arrays  # noqa: E402

DAY = 86400
LIST = 25
USERS, ITEMS, DAYS, PER_DAY = 20_000, 2_000, 60, 4_000
RISING, FADED = 199, 0  # item indices (popularity order of the steady rates)


def planted(path: Path, seed: int = 0) -> None:
    """The planted-trend interactions CSV (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    rate = 1.0 / np.arange(1, ITEMS + 1) ** 0.9
    rate /= rate.sum()
    end = 1_700_000_000
    rows = []
    for day in range(DAYS):
        r = rate.copy()
        if day >= DAYS // 2:
            r[FADED] = 0.0
        if day == DAYS - 1:
            r[RISING] *= 20.0
        r /= r.sum()
        n = PER_DAY
        items = rng.choice(ITEMS, n, p=r)
        users = rng.integers(0, USERS, n)
        t = end - (DAYS - day) * DAY + rng.integers(0, DAY, n)
        rows.append(np.stack([users, items, t], axis=1))
    data = np.concatenate(rows)
    data = data[np.lexsort((data[:, 2], data[:, 0]))]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP"])
        w.writerows((f"u{u}", f"i{i}", t) for u, i, t in data.tolist())


def pbatch(*args: str, home: Path) -> None:
    env = {**os.environ, "PBATCH_HOME": str(home)}
    subprocess.run([*PBATCH, *args], check=True, env=env, capture_output=True)


def listed(tmp: Path, csv_path: Path, recipe: str, hp: list[str]) -> list[str]:
    """The 25 items a real `pbatch run` of one line `{}` answers, after a real
    `pbatch train` with the given `--hp` values."""
    name = f"{recipe}-{len(list(tmp.glob('*.npz')))}"
    sol = tmp / f"{name}.npz"
    args = ["train", "-r", recipe, "-i", str(csv_path), "-o", str(sol), "-q"]
    for value in hp:
        args += ["--hp", value]
    pbatch(*args, home=tmp / "home")
    src, out = tmp / f"{name}.json", tmp / f"{name}-out"
    src.write_text("{}\n")
    pbatch(
        "run",
        "-s",
        str(sol),
        "-i",
        str(src),
        "-o",
        str(out),
        "-q",
        "-n",
        str(LIST),
        home=tmp / "home",
    )
    line = orjson.loads((out / f"{name}.json.out").read_bytes().splitlines()[0])
    return line["output"]["recommendedItems"]


def planted_rows(tmp: Path) -> list[list[object]]:
    csv_path = tmp / "planted.csv"
    planted(csv_path)
    cases = [("trending-now (plain train)", "trending-now", [])]
    cases += [
        (f"trending-now, {name}", "trending-now", [f"trend_discovery_frequency={name}"])
        for name in FREQUENCIES
    ]
    cases.append(("popularity-count", "popularity-count", []))
    rows = []
    for label, recipe, hp in cases:
        items = listed(tmp, csv_path, recipe, hp)
        rising = f"i{RISING}"
        place = items.index(rising) + 1 if rising in items else "not listed"
        rows.append([label, place, "yes" if f"i{FADED}" in items else "no", len(items)])
        print(rows[-1], flush=True)
    return rows


def before(data: Interactions, cut: int) -> Interactions:
    """The rows at or before `cut` (ids kept, so item indices stay comparable)."""
    keep = data.timestamps <= cut
    return Interactions(
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        users=data.users[keep],
        items=data.items[keep],
        timestamps=data.timestamps[keep],
        event_types=data.event_types[keep],
        has_timestamps=True,
    )


def top_of(recipe: str, train: Interactions, hp: dict) -> np.ndarray:
    sol = in_memory(build_meta(recipe, hp, {}), model_arrays(recipe, train, hp))
    idx, _, lengths = recipes.recipe(recipe).scorer(sol).recommend(np.array([-1]), LIST, True)
    return idx[0, : lengths[0]]


def foretelling_rows() -> list[list[object]]:
    data = read_interactions(str(DATA / "movietweetings-100k" / "interactions.csv.gz"))
    end = int(data.timestamps.max())
    rows = []
    for name, width in FREQUENCIES.items():
        cut = end - width
        train = before(data, cut)
        future = data.items[data.timestamps > cut]
        recent = train.items[train.timestamps > cut - width]
        counts = np.bincount(recent, minlength=data.n_items)
        recent_top = np.lexsort((np.arange(data.n_items), -counts))[:LIST]
        recent_top = recent_top[counts[recent_top] > 0]
        lists = {
            "trending-now": top_of("trending-now", train, {"trend_discovery_frequency": name}),
            "popularity-count": top_of("popularity-count", train, {}),
            "recent popularity (same window)": recent_top,
        }
        made = train.items[train.timestamps > cut - 2 * width]  # the list's two windows
        cells = []
        for items in lists.values():
            share = float(np.isin(future, items).mean()) if len(future) else 0.0
            base = float(np.isin(made, items).mean()) if len(made) else 0.0
            cells.append(f"{share:.3f} / {share / base:.2f}" if base else f"{share:.3f} / –")
        rows.append([name, f"{len(future):,}", *cells])
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tmp", default="/tmp/pbatch-trending-bench")
    args = parser.parse_args()
    tmp = Path(args.tmp) / time.strftime("%Y%m%d-%H%M%S")
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    mt = read_interactions(str(DATA / "movietweetings-100k" / "interactions.csv.gz"))
    auto = choose_frequency(mt)[0]
    planted_table = table(
        ["solution", "rising item's place", "faded item listed", "list length"],
        planted_rows(tmp),
    )
    foretold = table(
        [
            "window W",
            "future interactions",
            "trending-now: share / lift",
            "popularity-count",
            "recent popularity (same window)",
        ],
        foretelling_rows(),
    )
    write_section(
        "trending",
        "\n".join(
            [
                "## Trending-now (`python benchmarks/trending.py`)",
                "",
                f"Written by `benchmarks/trending.py` ({machine()}; started {started}).",
                "",
                "Planted trend (see the script's docstring): real `pbatch train` and "
                f"`pbatch run` of one line `{{}}`, numResults {LIST}.",
                "",
                planted_table,
                "",
                "Foretelling on MovieTweetings-100k: the share of the last window's "
                f"interactions that fall on each method's {LIST} items, trained on the "
                "data before that window, and its lift over the items' share of the two "
                "windows before the cut. trending-now asks what is rising, not what is "
                "popular: its lift is the measure of a trend found, its share is not. "
                f"On all the data, `pbatch train -r trending-now` chooses {auto}.",
                "",
                foretold,
            ]
        ),
    )


if __name__ == "__main__":
    main()
