"""Golden file for --item-metadata on run, recommend and rank, and its usage errors (exit 2
before any output). Regenerate with `PBATCH_UPDATE_GOLDEN=1`."""

from __future__ import annotations

import os

import pytest
from conftest import EXAMPLES
from test_golden_filters import Transcript

from personalize_batch.job.store import JobStore
from personalize_batch.training import train


@pytest.fixture(scope="module")
def with_items(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("metadata")
    out = {}
    for recipe in ("user-personalization", "personalized-ranking", "sims"):
        out[recipe] = folder / f"{recipe}.npz"
        items = str(EXAMPLES / "items.csv")
        train(recipe, str(EXAMPLES / "interactions.csv"), str(out[recipe]), items=items, tune=False)
    return out


def test_item_metadata(with_items, solutions, tmp_path):
    t = Transcript(tmp_path)
    src = str(tmp_path / "in.json")
    up, rank, sims = (
        str(with_items[r]) for r in ("user-personalization", "personalized-ranking", "sims")
    )
    t.run(
        ["run -s up.npz -i in.json -o - -n 2 -q --item-metadata TITLE,GENRES"],
        ["run", "-s", up, "-i", src, "-o", "-", "-n", "2", "-q", "--item-metadata", "TITLE,GENRES"],
        ['{"userId": "653"}', '{"userId": 653}', '{"userId": "unknown-user"}'],
    )
    t.run(
        ["run -s rank.npz -i in.json -o - -q --item-metadata genres"],
        ["run", "-s", rank, "-i", src, "-o", "-", "-q", "--item-metadata", "genres"],
        ['{"userId": "8", "itemList": ["1300854", "not-an-item", "0770828"]}'],
    )
    t.run(
        ["run -s sims.npz -i in.json -o - -n 2 -q --item-metadata title"],
        ["run", "-s", sims, "-i", src, "-o", "-", "-n", "2", "-q", "--item-metadata", "title"],
        ['{"itemId": "1300854"}'],
    )
    t.run(
        ["recommend -s up.npz --user-id 653 -n 2 --item-metadata TITLE"],
        ["recommend", "-s", up, "--user-id", "653", "-n", "2", "--item-metadata", "TITLE"],
    )
    t.run(
        ["rank -s rank.npz --user-id 8 --items 1300854,nope --item-metadata GENRES,TITLE"],
        ["rank", "-s", rank, "--user-id", "8", "--items", "1300854,nope"]
        + ["--item-metadata", "GENRES,TITLE"],
    )
    # usage errors: exit 2, one line, nothing written
    out = tmp_path / "out"
    t.run(
        ["run -s up.npz -i in.json -o out --item-metadata TITLE,YEAR --job-name no-field"],
        ["run", "-s", up, "-i", src, "-o", str(out), "--item-metadata", "TITLE,YEAR"]
        + ["--job-name", "no-field"],
    )
    plain = str(solutions["user-personalization"])
    t.run(
        ["run -s no-items.npz -i in.json -o out --item-metadata TITLE --job-name no-items"],
        ["run", "-s", plain, "-i", src, "-o", str(out), "--item-metadata", "TITLE"]
        + ["--job-name", "no-items"],
    )
    t.run(
        ["run -s up.npz -i in.json --item-metadata ,"],
        ["run", "-s", up, "-i", src, "--item-metadata", ","],
    )
    t.run(
        ["run -s up.npz -i in.json --item-metadata A,B,C,D,E,F,G,H,I,J,K"],
        ["run", "-s", up, "-i", src, "--item-metadata", "A,B,C,D,E,F,G,H,I,J,K"],
    )
    t.run(
        ["recommend -s up.npz --user-id 653 -n 51 --item-metadata TITLE"],
        ["recommend", "-s", up, "--user-id", "653", "-n", "51", "--item-metadata", "TITLE"],
    )
    assert not out.exists() or not os.listdir(out)
    record = JobStore().get("no-field")
    assert record["status"] == "CREATE FAILED" and "YEAR" in record["failureReason"]
    t.check("item-metadata")
