#!/usr/bin/env python3
"""Cut the bundled example data out of the MovieTweetings 100K snapshot.

Usage:
    python examples/make_examples.py SOURCE_DIR [OUT_DIR]

SOURCE_DIR is the MovieTweetings 100K snapshot in Personalize format
(datasets/movietweetings-100k in this repository): it holds
interactions.csv.gz (USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE),
items.csv.gz (ITEM_ID,TITLE,GENRES) and LICENSE. OUT_DIR defaults to the
directory of this script.

Writes to OUT_DIR:
    interactions.csv  every row of the users whose numeric USER_ID is at most
                      MAX_USER_ID and who have at least MIN_EVENTS rows,
                      unchanged and in source order
    items.csv         the items.csv.gz rows of the items rated in that slice,
                      in source order
    LICENSE           the upstream licence, copied byte for byte
    users.json        input for the user-personalization recipe
    popularity.json   input for the popularity-count recipe
    ranking.json      input for the personalized-ranking recipe
    items.json        input for the sims recipe
    bad.json          malformed lines, for the error-line demonstration

Standard library only. Ids are always handled as strings (item ids keep their
leading zeros). The output depends only on the input files: every choice is
made by a fixed rule with explicit tie-breaks, so re-running gives
byte-identical files. README.md is written by hand and is not touched.
"""

import csv
import gzip
import json
import os
import shutil
import sys

MAX_USER_ID = 2000  # keep user ids 1 .. 2000 (numeric)
MIN_EVENTS = 3  # ... that have at least this many interactions
UNKNOWN_USER = "999999999"  # not a user of the snapshot: cold-start example
UNKNOWN_ITEM = "9999999"  # not an item of the snapshot

INTERACTIONS_HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
ITEMS_HEADER = ["ITEM_ID", "TITLE", "GENRES"]


def read_csv_gz(path, header):
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        got = next(reader)
        if got != header:
            raise SystemExit(f"{path}: unexpected header {got!r}")
        return list(reader)


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_jsonl(path, lines):
    """lines: dicts/lists (dumped as JSON) or str (written verbatim)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        for line in lines:
            if not isinstance(line, str):
                line = json.dumps(line, ensure_ascii=False)
            f.write(line + "\n")


def spread(seq, n):
    """n elements of seq, evenly spaced from the first to the last."""
    if n == 1:
        return [seq[0]]
    return [seq[round(i * (len(seq) - 1) / (n - 1))] for i in range(n)]


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    src = argv[1]
    out = argv[2] if len(argv) == 3 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)

    # ---- the slice -------------------------------------------------------
    rows = read_csv_gz(os.path.join(src, "interactions.csv.gz"), INTERACTIONS_HEADER)
    all_items = read_csv_gz(os.path.join(src, "items.csv.gz"), ITEMS_HEADER)
    all_users = {r[0] for r in rows}
    catalogue = {r[0] for r in all_items}
    for unknown, known in ((UNKNOWN_USER, all_users), (UNKNOWN_ITEM, catalogue)):
        if unknown in known:
            raise SystemExit(f"{unknown!r} is in the source data; pick another id")

    events = {}
    for r in rows:
        events[r[0]] = events.get(r[0], 0) + 1
    keep = {u for u, n in events.items() if int(u) <= MAX_USER_ID and n >= MIN_EVENTS}
    sliced = [r for r in rows if r[0] in keep]

    item_events = {}
    for r in sliced:
        item_events[r[1]] = item_events.get(r[1], 0) + 1
    items = [r for r in all_items if r[0] in item_events]
    if len(items) != len(item_events):
        raise SystemExit("some rated items are missing from items.csv.gz")

    write_csv(os.path.join(out, "interactions.csv"), INTERACTIONS_HEADER, sliced)
    write_csv(os.path.join(out, "items.csv"), ITEMS_HEADER, items)
    shutil.copyfile(os.path.join(src, "LICENSE"), os.path.join(out, "LICENSE"))

    # ---- ids for the input files ------------------------------------------
    # users from the most active to the least active (ties: lower id first)
    by_activity = sorted(keep, key=lambda u: (-events[u], int(u)))
    # users in numeric id order
    by_id = sorted(keep, key=int)
    # items from the most rated to the least rated in the slice (ties: id)
    popular = sorted(item_events, key=lambda i: (-item_events[i], i))

    # user-personalization: 19 known users across the whole activity range,
    # then one user that is not in the data (cold start)
    users = spread(by_activity, 19) + [UNKNOWN_USER]
    write_jsonl(os.path.join(out, "users.json"), [{"userId": u} for u in users])

    # popularity-count: the empty object, then four known users
    pop_users = spread(by_id, 4)
    write_jsonl(os.path.join(out, "popularity.json"), [{}] + [{"userId": u} for u in pop_users])

    # personalized-ranking: 10 users; line k ranks 3 + k % 8 items taken from
    # the 40 most rated items, starting at position 4 * k (wrapping around)
    rank_users = spread(by_id[1:-1], 10)
    pool = popular[:40]
    ranking = []
    for k, user in enumerate(rank_users):
        n = 3 + k % 8
        ids = [pool[(4 * k + j) % len(pool)] for j in range(n)]
        key = "itemList"
        if k == 7:
            key = "itemIds"  # alias
        elif k == 8:
            key = "inputList"  # alias
        elif k == 9:
            ids.insert(len(ids) // 2, UNKNOWN_ITEM)  # an item not in the slice
        ranking.append({"userId": user, key: ids})
    write_jsonl(os.path.join(out, "ranking.json"), ranking)

    # sims: the 10 most rated items, the 11th in the documented alias shape
    # {"items": id}, then an unknown item
    sims = [{"itemId": i} for i in popular[:10]]
    sims.append({"items": popular[10]})
    sims.append({"itemId": UNKNOWN_ITEM})
    write_jsonl(os.path.join(out, "items.json"), sims)

    # bad lines for user-personalization: valid, then one of each bad kind,
    # a blank line, and a final valid line
    bad = [
        {"userId": by_activity[0]},
        '{"userId": "1"',  # not JSON (truncated)
        '["1"]',  # JSON, but not an object
        '{"user": "1"}',  # no userId
        '{"userId": ""}',  # empty userId
        '{"userId": 1}',  # number instead of string
        "",  # blank line
        {"userId": by_activity[-1]},
    ]
    write_jsonl(os.path.join(out, "bad.json"), bad)

    print(f"interactions.csv: {len(sliced)} rows, {len(keep)} users, {len(item_events)} items")
    print(f"items.csv: {len(items)} rows")
    print(f"users.json: {len(users)} lines: {' '.join(users)}")
    print(f"popularity.json: {1 + len(pop_users)} lines: {{}} {' '.join(pop_users)}")
    print(f"ranking.json: {len(ranking)} lines")
    print(f"items.json: {len(sims)} lines")
    print(f"bad.json: {len(bad)} lines")


if __name__ == "__main__":
    main(sys.argv)
