"""Inputs that cannot be answered are said up front: the wrong shape for the recipe,
text that is not UTF-8, nothing to answer; and what a line says twice or in vain."""

from __future__ import annotations

import gzip

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize_batch import recipes
from personalize_batch.cli import main
from personalize_batch.job.lines import BadLine, Request, parse_line
from personalize_batch.job.preflight import LOOK_LINES, look
from personalize_batch.job.store import JobStore

# the kinds of line there are, each by a recipe whose lines are of that kind
KINDS = {
    "user": "user-personalization",
    "any": "popularity-count",
    "ranking": "personalized-ranking",
    "item": "sims",
}


def _parse(line: bytes, kind: str):
    return parse_line(line, recipes.recipe(KINDS[kind]))


def _run(*args: str):
    return CliRunner().invoke(main, ["run", *args, "--workers", "1"], prog_name="pbatch")


@pytest.mark.parametrize(
    "recipe, lines, message",
    [
        (
            "sims",
            (EXAMPLES / "users.json").read_bytes(),
            'none of the 20 lines of IN has "itemId" (line 1: sims needs "itemId")',
        ),
        (
            "user-personalization",
            b'not json\n{"user_id": "653"}\n' * 80,
            'none of the first 100 lines of IN has "userId" (line 2: user-personalization '
            'needs "userId"; found "user_id" – did you mean "userId"?)',
        ),
        (
            "personalized-ranking",
            (EXAMPLES / "users.json").read_bytes(),
            'none of the 20 lines of IN has "itemList" (or "itemIds", "inputList") (line 1: '
            'personalized-ranking needs "itemList" (or "itemIds", "inputList"))',
        ),
    ],
)
def test_an_input_of_the_wrong_shape_is_refused_up_front(
    solutions, tmp_path, recipe, lines, message
):
    """`pbatch run` wrote an ACTIVE file of 100 % error lines, while
    create-batch-inference-job refused the same input."""
    src = tmp_path / "in.json"
    src.write_bytes(lines)
    result = _run("-s", str(solutions[recipe]), "-i", str(src), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"pbatch: error: the input does not fit the {recipe} solution: "
        + message.replace("IN", str(src))
        + "\n"
    )
    assert not (tmp_path / "out").exists()
    [record] = JobStore().records()
    assert record["status"] == "CREATE FAILED"


def test_one_line_that_fits_is_enough(solutions, tmp_path):
    src = tmp_path / "in.json"
    src.write_bytes(b'{"itemId": "1"}\n' * 50 + b'{"userId": "653"}\n')
    result = _run("-s", str(solutions["user-personalization"]), "-i", str(src), "-o", "-", "-q")
    assert result.exit_code == 3
    assert result.stdout.count("\n") == 51


def test_a_wrong_shape_beyond_the_look_is_left_to_error_lines(solutions, tmp_path):
    src = tmp_path / "in.json"
    src.write_bytes(b'{"userId": "653"}\n' * LOOK_LINES + b'{"itemId": "1"}\n')
    result = _run("-s", str(solutions["user-personalization"]), "-i", str(src), "-o", "-", "-q")
    assert result.exit_code == 3
    assert result.stderr == "pbatch: 1 line had errors\n"


@pytest.mark.parametrize(
    "encoding, what",
    [
        ("utf-16", "is UTF-16 text (it starts with a UTF-16 byte-order mark)"),
        ("utf-16-be", "is not UTF-8 text: its first line holds NUL bytes"),
        ("utf-32", "is UTF-32 text (it starts with a UTF-32 byte-order mark)"),
    ],
)
def test_an_input_that_is_not_utf8_names_its_encoding(solutions, tmp_path, encoding, what):
    src = tmp_path / "in.json"
    src.write_bytes((EXAMPLES / "users.json").read_text().encode(encoding))
    for command in (["run", "-o", str(tmp_path / "out")], ["validate"]):
        result = CliRunner().invoke(
            main, [*command, "-s", str(solutions["sims"]), "-i", str(src)], prog_name="pbatch"
        )
        assert result.exit_code == 2
        assert result.stderr.startswith(f"pbatch: error: {src} {what}")
        assert "pbatch reads UTF-8 JSON Lines" in result.stderr
        assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_gzip_data_without_its_name_is_named(solutions, tmp_path):
    src = tmp_path / "in.json"
    src.write_bytes(gzip.compress((EXAMPLES / "users.json").read_bytes()))
    result = _run("-s", str(solutions["sims"]), "-i", str(src), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"pbatch: error: {src} is gzip-compressed, but its name does not end in .gz; pbatch "
        "reads UTF-8 JSON Lines\n"
    )


@pytest.mark.parametrize(
    "data, said",
    [
        (b"", "IN is empty: no line to answer"),
        (b"\n  \n\t\r\n", "IN holds only 3 blank lines: no line to answer"),
    ],
)
def test_an_input_with_no_line_says_so_in_one_line(solutions, tmp_path, data, said):
    src = tmp_path / "in.json"
    src.write_bytes(data)
    said = said.replace("IN", str(src))
    result = _run("-s", str(solutions["sims"]), "-i", str(src), "-o", str(tmp_path / "o"), "-q")
    assert (result.exit_code, result.stderr) == (0, f"pbatch: warning: {said}\n")
    assert (tmp_path / "o" / "in.json.out").read_bytes() == b""
    assert JobStore().records()[0]["warnings"] == [said]
    result = CliRunner().invoke(
        main, ["validate", "-s", str(solutions["sims"]), "-i", str(src), "-q"]
    )
    assert result.stderr == f"pbatch: warning: {said.replace(str(src), 'in.json')}\n"


@pytest.mark.parametrize(
    "line, error",
    [
        (b'{"userId":"1","userId":"2"}', 'userId is given twice in the line ("1", then "2")'),
        (b'{"userId" : "1", "userId":2}', 'userId is given twice in the line ("1", then 2)'),
        (
            b'{"userId":"1","filterValues":{},"filterValues":{"G":"\\"A\\""}}',
            'filterValues is given twice in the line ({}, then {"G": "\\"A\\""})',
        ),
    ],
)
def test_a_key_given_twice_is_an_error_line(line, error):
    parsed = _parse(line, "user")
    assert isinstance(parsed, BadLine)
    assert parsed.error == error + "; give it once"


@pytest.mark.parametrize(
    "line",
    [
        b'{"userId":"1","context":{"userId":"2"}}',
        b'{"userId":"1","note":"\\"userId\\""}',
        b'{"userId":"1","note":"userId"}',
    ],
)
def test_the_key_elsewhere_in_the_line_is_no_duplicate(line):
    assert isinstance(_parse(line, "user"), Request)


@settings(max_examples=200, deadline=None)
@given(
    query=st.sampled_from(sorted(KINDS)),
    keys=st.lists(
        st.sampled_from(["userId", "itemId", "items", "itemList", "filterValues", "x"]),
        min_size=1,
        max_size=5,
    ),
)
def test_duplicates_are_found_exactly_for_the_keys_a_recipe_reads(query, keys):
    """Against a parse that keeps every pair: an error line exactly when a key the
    recipe reads appears twice at the top level."""
    values = {"userId": '"u"', "itemId": '"i"', "items": '"i"', "x": "1"}
    values |= {"itemList": '["i"]', "filterValues": "{}"}
    line = ("{" + ",".join(f'"{k}":{values[k]}' for k in keys) + "}").encode()
    read = {
        "user": {"userId", "filterValues"},
        "any": {"userId", "filterValues"},
        "ranking": {"userId", "itemList", "filterValues"},
        "item": {"itemId", "items", "userId", "filterValues"},
    }[query]
    twice = [k for k in dict.fromkeys(keys) if keys.count(k) > 1 and k in read]
    parsed = _parse(line, query)
    said = isinstance(parsed, BadLine) and " is given " in parsed.error
    assert said == bool(twice)


def test_an_item_list_the_recipe_does_not_read_is_counted_and_said(solutions, tmp_path):
    src = tmp_path / "in.json"
    src.write_bytes(
        b'{"userId": "653", "itemList": ["1300854"]}\n{"userId": "8", "inputList": ["1"]}\n'
        b'{"userId": "653"}\n'
    )
    result = _run("-s", str(solutions["user-personalization"]), "-i", str(src), "-o", "-", "-q")
    assert result.exit_code == 0
    assert result.stderr == (
        "pbatch: warning: 2 lines have an item list (itemList, itemIds or inputList), which "
        "a user-personalization solution does not read: it was ignored (a "
        "personalized-ranking solution re-ranks such lists)\n"
    )
    assert JobStore().records()[0]["idDiagnostics"]["listsIgnored"] == 2


def test_look_reads_no_pipe(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert look(str(fifo), "sims") is None  # opening it would wait for a writer


def test_a_filter_on_an_event_type_no_interaction_has_names_those_there_are(solutions):
    """EXCLUDE … EVENT_TYPE IN ("click") on a solution of ratings excluded nothing, silently."""
    result = _run(
        "-s", str(solutions["user-personalization"]), "-i", str(EXAMPLES / "users.json"),
        "-o", "-", "-q", "--filter",
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "Rating", "view")',
    )  # fmt: skip
    assert result.exit_code == 0
    assert result.stderr == (
        'pbatch: warning: --filter: no training interaction has the event types "click", '
        '"view" (matched ignoring case); the solution\'s event types: "rating"\n'
    )
    assert JobStore().records()[0]["warnings"] == [result.stderr[17:-1]]
