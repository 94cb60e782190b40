"""Segment jobs through `pbatch run`: users for items and for attribute expressions,
error lines for what a segment recipe cannot answer, the same bytes for any number of
workers, and inputs of the other kind refused up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from personalize_batch.cli import main
from personalize_batch.training import train

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def pbatch(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="pbatch")


@pytest.fixture(scope="module")
def segment_solutions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments")
    items = folder / "items.csv"
    ids = [
        line.split(",")[1] for line in (EXAMPLES / "interactions.csv").read_text().splitlines()[1:]
    ]
    distinct = sorted(set(ids))
    rows = [f"{i},{'Comedy|Action' if k % 3 == 0 else 'Drama'}" for k, i in enumerate(distinct)]
    items.write_text("ITEM_ID,GENRES\n" + "\n".join(rows) + "\n")
    out = {}
    for recipe in ("item-affinity", "item-attribute-affinity"):
        out[recipe] = folder / f"{recipe}.npz"
        train(
            recipe,
            str(EXAMPLES / "interactions.csv"),
            str(out[recipe]),
            items=str(items),
            tune=False,
        )
    out["items"] = distinct
    return out


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_item_segment_job_names_users_and_an_unknown_item_is_an_error_line(
    segment_solutions, tmp_path
):
    known = segment_solutions["items"][:3]
    data = [{"itemId": i} for i in known[:2]] + [{"itemId": "no-such-item"}, {"itemId": known[2]}]
    (tmp_path / "in.json").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    result = pbatch(
        "run",
        "-s",
        segment_solutions["item-affinity"],
        "-i",
        tmp_path / "in.json",
        "-o",
        tmp_path / "out",
        "-n",
        "4",
    )
    assert result.exit_code == 3, result.output
    got = lines_of(tmp_path / "out" / "in.json.out")
    assert [g["input"] for g in got] == data
    assert got[2]["output"] is None and "not in the solution" in got[2]["error"]
    for g in (got[0], got[1], got[3]):
        assert g["error"] is None
        assert len(g["output"]["recommendedUsers"]) == 4
        assert g["output"]["scores"] == sorted(g["output"]["scores"], reverse=True)


def test_the_same_bytes_for_any_number_of_workers(segment_solutions, tmp_path):
    data = [{"itemId": i} for i in segment_solutions["items"][:40]]
    (tmp_path / "in.json").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        result = pbatch(
            "run",
            "-s",
            segment_solutions["item-affinity"],
            "-i",
            tmp_path / "in.json",
            "-o",
            out,
            "-n",
            "10",
            "--workers",
            workers,
        )
        assert result.exit_code == 0, result.output
        outs.append((out / "in.json.out").read_bytes())
    assert outs[0] == outs[1]


def test_attribute_lines_and_their_errors(segment_solutions, tmp_path):
    data = [
        {"itemAttributes": 'ITEMS.genres = "Comedy" AND ITEMS.genres = "Action"'},
        {"itemAttributes": 'ITEMS.mood = "dark"'},
        {"itemAttributes": 'ITEMS.genres = "Comedy" AND'},
        {"itemAttributes": 'ITEMS.genres = "Western"'},
    ]
    (tmp_path / "in.json").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    result = pbatch(
        "run",
        "-s",
        segment_solutions["item-attribute-affinity"],
        "-i",
        tmp_path / "in.json",
        "-o",
        tmp_path / "out",
        "-n",
        "5",
    )
    assert result.exit_code == 3, result.output
    got = lines_of(tmp_path / "out" / "in.json.out")
    assert len(got[0]["output"]["recommendedUsers"]) == 5
    assert got[1]["error"] == (
        "itemAttributes: the item metadata has no field MOOD (its fields: GENRES)"
    )
    assert "at character 28, found the end" in got[2]["error"]
    assert got[3]["error"] == 'the expression matches no item: ITEMS.GENRES = "Western"'


def test_inputs_of_the_other_kind_are_refused_up_front(segment_solutions, solutions, tmp_path):
    (tmp_path / "users.json").write_text('{"userId": "1"}\n{"userId": "2"}\n')
    result = pbatch(
        "run",
        "-s",
        segment_solutions["item-affinity"],
        "-i",
        tmp_path / "users.json",
        "-o",
        tmp_path / "out1",
    )
    assert result.exit_code == 2
    assert 'item-affinity needs "itemId"' in result.stderr
    (tmp_path / "items.json").write_text('{"itemAttributes": "ITEMS.genres = \\"Drama\\""}\n')
    result = pbatch(
        "run",
        "-s",
        solutions["user-personalization"],
        "-i",
        tmp_path / "items.json",
        "-o",
        tmp_path / "out2",
    )
    assert result.exit_code == 2
    assert 'user-personalization needs "userId"' in result.stderr
