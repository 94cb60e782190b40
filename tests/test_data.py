"""Reading Personalize CSVs: ids stay strings, bad rows name their file and line."""

from __future__ import annotations

import gzip

import pytest
from click.testing import CliRunner

from personalize_batch.cli import main
from personalize_batch.data import read_interactions, read_items
from personalize_batch.errors import DataError


def _csv(tmp_path, text: str, name: str = "i.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_ids_stay_strings_and_rows_sort_by_time(tmp_path):
    path = _csv(tmp_path, "user_id,Item_ID,timestamp\n007,0114508,20\n007,114508,10\n7,1,5\n")
    data = read_interactions(path)
    assert data.user_ids.tolist() == ["007", "7"]
    assert data.item_ids.tolist() == ["0114508", "1", "114508"]
    # user "007": item 114508 at t=10 comes before 0114508 at t=20
    assert [data.item_ids[i] for i in data.items] == ["114508", "0114508", "1"]
    assert data.has_timestamps and not data.warnings


def test_gzip_bom_and_no_timestamp(tmp_path):
    path = tmp_path / "i.csv.gz"
    path.write_bytes(gzip.compress("\ufeffUSER_ID,ITEM_ID\nu,b\nu,a\n".encode()))
    data = read_interactions(str(path))
    assert [data.item_ids[i] for i in data.items] == ["b", "a"]  # file order kept
    assert "no TIMESTAMP" in data.warnings[0]


def test_event_type_and_threshold(tmp_path):
    path = _csv(
        tmp_path,
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"
        "u,a,1,click,1\nu,b,2,Purchase,5\nu,c,3,purchase,\nv,d,4,purchase,9\n",
    )
    assert read_interactions(path, event_type="PURCHASE").item_ids.tolist() == ["b", "c", "d"]
    kept = read_interactions(path, event_value_threshold=5)
    assert kept.item_ids.tolist() == ["b", "d"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("ITEM_ID,TIMESTAMP\na,1\n", "no USER_ID column"),
        ("USER_ID,ITEM_ID,TIMESTAMP\nu,a,1\nu,b\n", "line 3: expected 3 fields, found 2"),
        ("USER_ID,ITEM_ID,TIMESTAMP\nu,a,1\n,b,2\n", "line 3: empty USER_ID"),
        ("USER_ID,ITEM_ID,TIMESTAMP\nu,a,yesterday\n", "line 2: TIMESTAMP 'yesterday'"),
        ("USER_ID,ITEM_ID,TIMESTAMP\nu," + "x" * 257 + ",1\n", "longer than 256"),
        ("USER_ID,USER_ID,ITEM_ID\nu,u,a\n", "duplicate column"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, text, message):
    path = _csv(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        read_interactions(path)
    assert str(err.value).startswith(path)


def test_items_csv(tmp_path):
    path = _csv(tmp_path, 'ITEM_ID,TITLE,GENRES\n1,"A, B",Action|Comedy\n2,C,\n', "items.csv")
    items = read_items(path)
    assert items.item_ids.tolist() == ["1", "2"]
    assert items.columns["TITLE"].tolist() == ["A, B", "C"]
    with pytest.raises(DataError, match="appears twice"):
        read_items(_csv(tmp_path, "ITEM_ID,T\n1,a\n1,b\n", "dup.csv"))


def test_train_cli_reports_bad_row(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu,a,1\nu,b,x\n")
    result = CliRunner().invoke(
        main,
        ["train", "-r", "popularity-count", "-i", path, "-o", str(tmp_path / "m.npz")],
        prog_name="pbatch",
    )
    assert result.exit_code == 1
    assert (
        result.stderr == f"pbatch: error: {path}: line 3: TIMESTAMP 'x' is not whole unix seconds\n"
    )
    assert not (tmp_path / "m.npz").exists()


def test_items_join_the_catalogue(tmp_path):
    from personalize_batch.solution import load
    from personalize_batch.training import train

    inter = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu,a,1\nu,b,2\nv,b,3\n")
    items = _csv(tmp_path, "ITEM_ID,GENRES\nb,X\nz,Y\n", "items.csv")
    train("popularity-count", inter, str(tmp_path / "m.npz"), items=items)
    sol = load(str(tmp_path / "m.npz"))
    assert sol.item_ids.tolist() == ["a", "b", "z"]
    assert sol.arrays["item_counts"].tolist() == [1, 2, 0]
    assert sol.arrays["items_GENRES"].tolist() == ["", "X", "Y"]
