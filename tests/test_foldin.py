"""`pbatch run --events`: fresh interactions folded into the solution at run time."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import orjson
from click.testing import CliRunner
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_batch.cli import main
from personalize_batch.job.foldin import fold_in
from personalize_batch.job.params import JobParams
from personalize_batch.job.run import run_job
from personalize_batch.job.store import JobStore
from personalize_batch.recipes.numeric import splice_rows
from personalize_batch.solution import load

HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]


def write_events(path: Path, rows: list[tuple[str, str, int, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def run(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(main, ["run", *args, "-o", "-", "-q"])
    lines = [orjson.loads(x) for x in result.stdout.splitlines() if x.strip()]
    return result.exit_code, lines, result.stderr


def training_rows() -> list[list[str]]:
    with open(EXAMPLES / "interactions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- an independent, slow reference of what fold-in must produce -------------------


def reference_history(old: list[str], events: list[str], keep: int) -> list[str]:
    """The user's history after the events: latest occurrence of each item, last `keep`."""
    seq = old + events
    out: list[str] = []
    for pos, item in enumerate(seq):
        if item not in seq[pos + 1 :]:
            out.append(item)
    return out[-keep:]


def rows_of(sol, prefix: str, user: int, with_times: bool = False):
    a = sol.arrays
    lo, hi = a[f"{prefix}_indptr"][user], a[f"{prefix}_indptr"][user + 1]
    key = "up_history_items" if prefix == "up_history" else "seen_indices"
    items = [str(sol.item_ids[i]) for i in a[key][lo:hi]]
    if with_times:
        return items, a["up_history_times"][lo:hi].tolist()
    return items


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fold_in_matches_a_slow_reference(solutions, tmp_path, data) -> None:
    sol = load(str(solutions["user-personalization"]))
    keep = sol.hyperparameters["max_history_length"]
    users = sorted(sol.user_ids.tolist())[:40] + ["new-a", "new-b"]
    items = sorted(sol.item_ids.tolist())[:60] + ["not-an-item"]
    rows = data.draw(
        st.lists(
            st.tuples(st.sampled_from(users), st.sampled_from(items), st.integers(0, 50)),
            max_size=60,
        )
    )
    # timestamps after the training data; ties keep file order
    events = [(u, i, 2_000_000_000 + t, "rating") for u, i, t in rows]
    path = write_events(tmp_path / "events.csv", events)
    folded, report = fold_in(sol, str(path))

    in_time = sorted(range(len(events)), key=lambda k: (events[k][2], k))
    per_user: dict[str, list[str]] = {}
    for k in in_time:
        u, i, _, _ = events[k]
        if i in sol.item_index:
            per_user.setdefault(u, []).append(i)
    # new users join after the known ones, in id order
    new_users = sorted(u for u in per_user if u not in sol.user_index)
    assert report["newUsers"] == len(new_users)
    assert report["eventsUsed"] == sum(len(v) for v in per_user.values())
    assert report["eventsUnknownItems"] == sum(r[1] == "not-an-item" for r in events)
    assert folded.user_ids.tolist() == sol.user_ids.tolist() + new_users
    for u in set(users) & (set(sol.user_ids.tolist()) | set(new_users)):
        row = folded.user_index.get(u)
        old = rows_of(sol, "up_history", row) if u in sol.user_index else []
        expected = reference_history(old, per_user.get(u, []), keep)
        assert rows_of(folded, "up_history", row) == expected
        old_seen = set(rows_of(sol, "seen", row)) if u in sol.user_index else set()
        assert set(rows_of(folded, "seen", row)) == old_seen | set(per_user.get(u, []))
    # untouched users keep their rows exactly
    for u in sorted(sol.user_ids.tolist())[40:80]:
        row = sol.user_index.get(u)
        assert rows_of(folded, "up_history", row) == rows_of(sol, "up_history", row)
        assert rows_of(folded, "seen", row) == rows_of(sol, "seen", row)


@given(
    st.lists(st.lists(st.integers(0, 9), max_size=5), min_size=1, max_size=8),
    st.data(),
)
def test_splice_rows_replaces_exactly_the_given_rows(rows, data) -> None:
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    col = np.array([x for r in rows for x in r], dtype=np.int64)
    n_rows = len(rows) + data.draw(st.integers(0, 3))
    chosen = sorted(data.draw(st.sets(st.integers(0, n_rows - 1))))
    new_rows = {r: data.draw(st.lists(st.integers(100, 109), max_size=4)) for r in chosen}
    lengths = np.array([len(new_rows[r]) for r in chosen], dtype=np.int64)
    new = np.array([x for r in chosen for x in new_rows[r]], dtype=np.int64)
    ptr, (out,) = splice_rows(indptr, [col], np.array(chosen, np.int64), lengths, [new], n_rows)
    for r in range(n_rows):
        expected = new_rows[r] if r in new_rows else (rows[r] if r < len(rows) else [])
        assert out[ptr[r] : ptr[r + 1]].tolist() == expected


def test_a_new_user_whose_events_repeat_a_known_history_gets_that_users_list(
    solutions, tmp_path
) -> None:
    """Events make an unknown user exactly as known as the training made another one."""
    sol = load(str(solutions["user-personalization"]))
    keep = sol.hyperparameters["max_history_length"]
    by_user: dict[str, list[dict]] = {}
    for r in training_rows():
        by_user.setdefault(r["USER_ID"], []).append(r)
    # a user with several distinct items, no repeats, history shorter than the model reads
    user = next(
        u
        for u, rs in sorted(by_user.items())
        if 5 <= len(rs) < keep and len({r["ITEM_ID"] for r in rs}) == len(rs)
    )
    rs = sorted(by_user[user], key=lambda r: int(r["TIMESTAMP"]))
    events = [("someone-new", r["ITEM_ID"], int(r["TIMESTAMP"]), "rating") for r in rs]
    path = write_events(tmp_path / "events.csv", events)
    inp = tmp_path / "in.json"
    inp.write_text(f'{{"userId": "{user}"}}\n{{"userId": "someone-new"}}\n')
    code, lines, _ = run("-s", str(solutions["user-personalization"]), "-i", str(inp))
    assert code == 0
    assert lines[1]["output"] != lines[0]["output"]  # without events: the popular list
    code, lines, _ = run(
        "-s", str(solutions["user-personalization"]), "-i", str(inp), "--events", str(path)
    )
    assert code == 0
    assert lines[1]["output"] == lines[0]["output"]


def test_events_change_lists_and_exclude_their_items(solutions, tmp_path) -> None:
    up = str(solutions["user-personalization"])
    inp = tmp_path / "in.json"
    inp.write_text('{"userId": "653"}\n')
    _, before, _ = run("-s", up, "-i", str(inp), "-n", "10")
    top = before[0]["output"]["recommendedItems"]
    # the user just watched the first two recommended items, then one more
    events = [("653", top[0], 2_000_000_000, "rating"), ("653", top[1], 2_000_000_001, "rating")]
    path = write_events(tmp_path / "events.csv", events)
    code, after, _ = run("-s", up, "-i", str(inp), "-n", "10", "--events", str(path))
    assert code == 0
    items = after[0]["output"]["recommendedItems"]
    assert top[0] not in items and top[1] not in items
    # the order of the events matters: the latest item drives the transitions
    swapped = write_events(
        tmp_path / "swapped.csv", [(u, i, 4_000_000_000 - t, e) for u, i, t, e in events]
    )
    _, other, _ = run("-s", up, "-i", str(inp), "-n", "10", "--events", str(swapped))
    assert other[0]["output"] != after[0]["output"]
    # --include-seen keeps them
    _, kept, _ = run("-s", up, "-i", str(inp), "-n", "10", "--events", str(path), "--include-seen")
    assert set(kept[0]["output"]["recommendedItems"]) & {top[0], top[1]}


def test_ranking_and_popularity_use_the_events(solutions, tmp_path) -> None:
    pop = str(solutions["popularity-count"])
    inp = tmp_path / "in.json"
    inp.write_text('{"userId": "653"}\n')
    _, before, _ = run("-s", pop, "-i", str(inp), "-n", "5")
    first = before[0]["output"]["recommendedItems"][0]
    path = write_events(tmp_path / "e.csv", [("653", first, 2_000_000_000, "rating")])
    _, after, _ = run("-s", pop, "-i", str(inp), "-n", "5", "--events", str(path))
    assert first not in after[0]["output"]["recommendedItems"]

    rank = str(solutions["personalized-ranking"])
    line = '{"userId": "brand-new", "itemList": ["1300854", "0770828", "0816711", "1670345"]}\n'
    inp.write_text(line)
    _, cold, _ = run("-s", rank, "-i", str(inp))
    path = write_events(
        tmp_path / "e2.csv",
        [
            ("brand-new", "0816711", 2_000_000_000, "rating"),
            ("brand-new", "1457767", 2_000_000_001, "rating"),
        ],
    )
    _, warm, _ = run("-s", rank, "-i", str(inp), "--events", str(path))
    assert warm[0]["output"] != cold[0]["output"]
    assert sorted(warm[0]["output"]["recommendedItems"]) == sorted(
        cold[0]["output"]["recommendedItems"]
    )


def test_interaction_filters_see_the_events(solutions, tmp_path) -> None:
    up = str(solutions["user-personalization"])
    inp = tmp_path / "in.json"
    inp.write_text('{"userId": "653"}\n')
    _, before, _ = run("-s", up, "-i", str(inp), "-n", "5", "--include-seen")
    first = before[0]["output"]["recommendedItems"][0]
    path = write_events(tmp_path / "e.csv", [("653", first, 2_000_000_000, "Click")])
    flt = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    _, plain, _ = run("-s", up, "-i", str(inp), "-n", "5", "--include-seen", "--filter", flt)
    assert first in plain[0]["output"]["recommendedItems"]  # no training clicks
    _, after, _ = run(
        "-s", up, "-i", str(inp), "-n", "5", "--include-seen", "--filter", flt,
        "--events", str(path),
    )  # fmt: skip
    assert first not in after[0]["output"]["recommendedItems"]


def test_same_bytes_for_any_worker_count(solutions, tmp_path) -> None:
    rows = training_rows()
    users = sorted({r["USER_ID"] for r in rows})
    rng = np.random.default_rng(0)
    items = sorted({r["ITEM_ID"] for r in rows})
    events = [
        (str(u), str(rng.choice(items)), 2_000_000_000 + k, "rating")
        for k, u in enumerate([*rng.choice(users, 300), "x1", "x2", "x1"])
    ]
    path = write_events(tmp_path / "e.csv", events)
    inp = tmp_path / "in.json"
    inp.write_text("".join(f'{{"userId": "{u}"}}\n' for u in users + ["x1", "x2"]))
    outs = []
    for workers in (1, 2):
        params = JobParams(
            solution=str(solutions["user-personalization"]),
            input=str(inp),
            output=str(tmp_path / f"w{workers}"),
            events=str(path),
            workers=workers,
            chunk_lines=64,
        )
        record = run_job(params, JobStore())
        assert record["foldIn"]["newUsers"] == 2
        outs.append((tmp_path / f"w{workers}" / "in.json.out").read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == len(users) + 2


def test_refusals(solutions, tmp_path) -> None:
    path = write_events(tmp_path / "e.csv", [("653", "0770828", 2_000_000_000, "rating")])
    code, _, err = run(
        "-s", str(solutions["sims"]), "-i", str(EXAMPLES / "items.json"), "--events", str(path)
    )
    assert code == 2 and "sims does not take fresh events" in err and "Traceback" not in err
    code, _, err = run(
        "-s", str(solutions["user-personalization"]), "-i", str(EXAMPLES / "users.json"),
        "--events", str(tmp_path / "missing.csv"),
    )  # fmt: skip
    assert code == 1 and "missing.csv" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text("USER,ITEM\n1,2\n")
    code, _, err = run(
        "-s", str(solutions["user-personalization"]), "-i", str(EXAMPLES / "users.json"),
        "--events", str(bad),
    )  # fmt: skip
    assert code == 1 and "no USER_ID column" in err


def test_a_folded_solution_gets_its_own_scorer(solutions, tmp_path) -> None:
    """A solution keeps its scorer for later queries (the SDK's and the console's); the
    solution with events folded in must not reuse the one made before the events."""
    sol = load(str(solutions["popularity-count"]))
    users = sol.user_index.lookup(["653"])
    first = int(sol.scorer().recommend(users, 5, include_seen=False)[0][0, 0])
    assert sol.scorer() is sol.scorer()
    path = write_events(tmp_path / "e.csv", [("653", str(sol.item_ids[first]), 2 * 10**9, "x")])
    folded, _ = fold_in(sol, str(path), None)
    assert folded.scorer() is not sol.scorer()
    assert first not in folded.scorer().recommend(users, 5, include_seen=False)[0][0].tolist()


def two_tastes(tmp_path: Path) -> Path:
    """Items a0..a59 and b0..b59; a third of the users like the a's, the others the more
    popular b's, each in no particular order."""
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, 61) ** 0.8
    weights /= weights.sum()
    rows = []
    for u in range(600):
        taste = "a" if u % 3 == 0 else "b"
        picks = rng.choice(60, size=int(rng.integers(5, 15)), replace=False, p=weights)
        start = 1_600_000_000 + int(rng.integers(0, 10**7))
        rows += [(f"u{u}", f"{taste}{i}", start + 1000 * k, "watch") for k, i in enumerate(picks)]
    return write_events(tmp_path / "tastes.csv", rows)


def test_a_newcomer_gets_lists_that_follow_their_events(tmp_path) -> None:
    """A user the solution has never met, with 8 events all among the less popular
    taste, is answered from that taste; without the events, from the popular one."""
    from personalize_batch.training import train

    model = tmp_path / "m.npz"
    train("user-personalization", str(two_tastes(tmp_path)), str(model))
    events = [("newbie", f"a{i}", 1_700_000_000 + k, "watch") for k, i in enumerate(range(10, 18))]
    path = write_events(tmp_path / "events.csv", events)
    inp = tmp_path / "in.json"
    inp.write_text('{"userId": "newbie"}\n')
    _, without, _ = run("-s", str(model), "-i", str(inp), "-n", "10")
    _, with_events, _ = run("-s", str(model), "-i", str(inp), "-n", "10", "--events", str(path))
    before = without[0]["output"]["recommendedItems"]
    after = with_events[0]["output"]["recommendedItems"]
    assert sum(i.startswith("b") for i in before) >= 8
    assert sum(i.startswith("a") for i in after) >= 8, after


def test_events_bring_recent_popularity_up_to_date(solutions, tmp_path) -> None:
    """An item everyone turns to after training leads the lists of users without
    history once the events are folded in, as it would after retraining."""
    sol = load(str(solutions["user-personalization"]))
    counts = sol.arrays["item_counts"]
    quiet = str(sol.item_ids[int(np.argsort(counts, kind="stable")[len(counts) // 2])])
    late = int(sol.arrays["up_prior_time"]) + 86400
    events = [(f"fan{k}", quiet, late + k, "rating") for k in range(40)]
    path = write_events(tmp_path / "events.csv", events)
    inp = tmp_path / "in.json"
    inp.write_text('{"userId": "nobody-known"}\n')
    _, plain, _ = run("-s", str(solutions["user-personalization"]), "-i", str(inp))
    _, fresh, _ = run(
        "-s", str(solutions["user-personalization"]), "-i", str(inp), "--events", str(path)
    )
    assert plain[0]["output"]["recommendedItems"][0] != quiet
    assert fresh[0]["output"]["recommendedItems"][0] == quiet
    folded, report = fold_in(sol, str(path))
    assert report["popularityUpdated"] is True
    assert int(folded.arrays["up_prior_time"]) == late + 39
