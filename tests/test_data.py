"""Reading Personalize CSVs: ids stay strings, bad rows name their file and line."""

from __future__ import annotations

import gzip
import re

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


@pytest.mark.parametrize(
    "rows, message",
    [
        ("u,a,1378067256\nu,b,1378067256000\n", "line 3: TIMESTAMP 1378067256000 is not unix"),
        ("u,a,1378067256000\n", "it looks like milliseconds (2013-09-01 UTC)"),
        ("u,a,1378067256000000\n", "it looks like microseconds (2013-09-01 UTC)"),
        ("u,a,1378067256000000000\n", "it looks like nanoseconds (2013-09-01 UTC)"),
        ("u,a,-100000000000\n", "line 2: TIMESTAMP -100000000000 is not unix seconds"),
    ],
)
def test_a_timestamp_that_is_not_seconds_is_refused_with_its_line(tmp_path, rows, message):
    """One millisecond timestamp among seconds used to be read as a date millennia away:
    that item became the most recent of its user's history, and a top item for all."""
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\n" + rows)
    with pytest.raises(DataError, match=re.escape(message)):
        read_interactions(path)


def test_timestamps_below_the_bound_are_seconds(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu,a,99999999999\nu,b,-5\n")
    assert read_interactions(path).timestamps.tolist() == [-5, 99999999999]


def test_a_creation_timestamp_in_milliseconds_is_refused(tmp_path):
    path = _csv(tmp_path, "ITEM_ID,CREATION_TIMESTAMP\na,1378067256000\n", "items.csv")
    with pytest.raises(DataError, match="line 2: CREATION_TIMESTAMP 1378067256000 is not unix"):
        read_items(path)


@pytest.mark.parametrize(
    "data, what",
    [
        ("USER_ID,ITEM_ID\nu,a\n".encode("utf-16"), "is UTF-16 text (it starts with a UTF-16"),
        ("USER_ID,ITEM_ID\nu,a\n".encode("utf-16-le"), "its first line holds NUL bytes"),
        ("USER_ID,ITEM_ID\nu,a\n".encode("utf-32"), "is UTF-32 text"),
        (gzip.compress(b"USER_ID,ITEM_ID\nu,a\n"), "gzip-compressed, but its name does not"),
        (b"PK\x03\x04rest", "is a zip file (a pbatch solution?); pbatch reads UTF-8 CSV files"),
    ],
)
def test_a_file_that_is_not_utf8_text_says_what_it_is(tmp_path, data, what):
    path = tmp_path / "i.csv"
    path.write_bytes(data)
    with pytest.raises(DataError, match=re.escape(what)) as err:
        read_interactions(str(path))
    assert str(err.value).endswith("pbatch reads UTF-8 CSV files")


def test_a_bad_byte_names_its_own_line(tmp_path):
    """The decoder meets the byte a buffer ahead of the CSV reader: the message used to
    name a line hundreds of lines before it."""
    rows = [f"u{k},i{k},{1000 + k}" for k in range(20000)]
    rows[15000] = "u15000,caf\xe9,16000"
    path = tmp_path / "i.csv"
    path.write_bytes(("USER_ID,ITEM_ID,TIMESTAMP\n" + "\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_interactions(str(path))
    assert str(err.value) == (
        f"{path}: line 15002: byte 0xe9 at column 11 is not UTF-8; pbatch reads UTF-8 CSV files"
    )


def test_an_event_type_with_no_rows_names_the_types_there_are(tmp_path):
    path = _csv(
        tmp_path,
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"
        "u,a,1,click,1\nu,b,2,Purchase,5\nu,c,3,purchase,\nv,d,4,view,9\n",
    )
    with pytest.raises(DataError) as err:
        read_interactions(path, event_type="watch")
    assert str(err.value) == (
        f"{path}: no interactions of event type 'watch' (matched ignoring case); its event "
        "types: purchase (2 rows), click (1 rows), view (1 rows)"
    )
    with pytest.raises(DataError, match="4 rows, 2 of event type 'PURCHASE', none with EVENT_V"):
        read_interactions(path, event_type="PURCHASE", event_value_threshold=6)
