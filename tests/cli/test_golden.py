"""Golden files for the CLI's exact output: every recipe, every bad-input kind.

Regenerate after an intended change with `PBATCH_UPDATE_GOLDEN=1 pytest tests/cli`,
then read the diff before committing it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_INPUTS, EXAMPLES, RECIPES

from personalize_batch.cli import main

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PBATCH_UPDATE_GOLDEN") == "1"

LONG_LINE = b'{"userId": "' + b"9" * (1 << 20) + b'"}'

# recipe -> the bytes of an input with one line of each bad kind (and some good ones)
BAD_INPUTS: dict[str, bytes] = {
    "user-personalization": b"\n".join(
        [
            b'\xef\xbb\xbf{"userId": "653"}\r',  # BOM at the start, CRLF ending
            b'{"userId": "1"',  # not JSON
            b'["1"]',  # JSON, not an object
            b'"653"',
            b"null",
            b'{"userId": "\xff\xfe"}',  # invalid UTF-8
            b'{"user_id": "653"}',  # missing userId
            b'{"userId": ""}',  # empty userId
            b'{"userId": 653}',  # a number as id
            b'{"userId": null}',
            b'{"userId": ["653"]}',
            b'{"userId": "' + b"x" * 257 + b'"}',  # an id over 256 characters
            b'{"userId": "653", "filterValues": "x"}',  # filterValues not an object
            b"   \t\r",  # blank: skipped, no output line
            LONG_LINE,  # over 1 MiB
            b"",
            b'{"userId": "999999999", "extra": {"kept": [1, 2.5, true]}}',  # unknown user
            b'{"userId": "1984"}\r',
        ]
    )
    + b"\n",
    "popularity-count": b"\n".join(
        [
            b"{}",
            b'{"userId": "653", "itemId": "ignored"}',
            b'{"userId": 12}',
            b'{"userId": ""}',
            b"not json",
            b'{"userId": "999999999"}',
        ]
    )
    + b"\n",
    "personalized-ranking": b"\n".join(
        [
            b'{"userId": "8", "itemList": ["1300854", "0770828", "0816711", "0770828", "nope"]}',
            b'{"userId": "8", "itemIds": ["0816711", "1300854"]}',
            b'{"userId": "8", "inputList": ["nope2", "nope1"]}',
            b'{"userId": "8"}',  # no list
            b'{"userId": "8", "itemList": "1300854"}',  # not a list
            b'{"userId": "8", "itemList": []}',  # empty
            b'{"userId": "8", "itemList": ' + orjson.dumps([str(i) for i in range(501)]) + b"}",
            b'{"userId": "8", "itemList": ["1300854", 5]}',  # non-string member
            b'{"userId": "8", "itemList": ["1300854", ""]}',  # empty member
            b'{"itemList": ["1300854"]}',  # no user
            b'{"userId": "999999999", "itemList": ["0816711", "1300854", "0770828"]}',
        ]
    )
    + b"\n",
    "sims": b"\n".join(
        [
            b'{"itemId": "1300854"}',
            b'{"items": "1045658"}',
            b'{"itemId": 1300854}',
            b'{"itemId": ""}',
            b'{"item": "1300854"}',
            b'{"itemId": "9999999"}',
            b"[]",
        ]
    )
    + b"\n",
}


def _check(name: str, result, stdout: str | None = None) -> None:
    """Compare exit code, stdout and stderr with tests/cli/golden/NAME.txt."""
    text = (
        f"exit: {result.exit_code}\n--- stdout\n{result.stdout if stdout is None else stdout}"
        f"--- stderr\n{result.stderr}"
    )
    compare_golden(name, text)


def compare_golden(name: str, text: str) -> None:
    """Compare text with tests/cli/golden/NAME.txt (or write it, with PBATCH_UPDATE_GOLDEN=1)."""
    path = GOLDEN / f"{name}.txt"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"no golden file {path}; run with PBATCH_UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str]):
    return runner.invoke(main, args, prog_name="pbatch")


@pytest.mark.parametrize("recipe", RECIPES)
def test_run_example_input(recipe, solutions, runner, tmp_path):
    src = EXAMPLES / EXAMPLE_INPUTS[recipe]
    result = invoke(
        runner,
        [
            "run",
            "-s",
            str(solutions[recipe]),
            "-i",
            str(src),
            "-o",
            "-",
            "-n",
            "5",
            "-q",
            "--job-name",
            "golden",
        ],
    )
    _check(f"run-{recipe}", result)


@pytest.mark.parametrize("recipe", RECIPES)
def test_run_bad_input(recipe, solutions, runner, tmp_path):
    src = tmp_path / "bad.json"
    src.write_bytes(BAD_INPUTS[recipe])
    result = invoke(
        runner,
        ["run", "-s", str(solutions[recipe]), "-i", str(src), "-n", "3", "-q", "--job-name", "bad"],
    )
    assert result.exit_code == 3
    out = (tmp_path / "bad.json.out").read_text(encoding="utf-8")
    # the over-long line is echoed as its first KiB only
    _check(f"bad-{recipe}", result, stdout=out)


def test_bad_example_file(solutions, runner):
    result = invoke(
        runner,
        [
            "run",
            "-s",
            str(solutions["user-personalization"]),
            "-i",
            str(EXAMPLES / "bad.json"),
            "-o",
            "-",
            "-n",
            "3",
            "-q",
        ],
    )
    _check("run-bad-example", result)


def test_recommend_and_rank(solutions, runner):
    up = solutions["user-personalization"]
    _check(
        "recommend-user",
        invoke(runner, ["recommend", "-s", str(up), "--user-id", "653", "-n", "3"]),
    )
    _check(
        "recommend-sims",
        invoke(
            runner, ["recommend", "-s", str(solutions["sims"]), "--item-id", "1300854", "-n", "3"]
        ),
    )
    _check(
        "rank",
        invoke(
            runner,
            [
                "rank",
                "-s",
                str(solutions["personalized-ranking"]),
                "--user-id",
                "8",
                "--items",
                "1300854,0770828,unknown-item,0816711",
            ],
        ),
    )


def test_usage_and_failure_messages(solutions, runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(solutions["popularity-count"], "model.npz")
    (tmp_path / "in.json").write_text('{"userId": "653"}\n')
    cases = {
        "num-results-too-big": ["run", "-s", "model.npz", "-i", "in.json", "-n", "501"],
        "bad-job-name": ["run", "-s", "model.npz", "-i", "in.json", "--job-name", "-x"],
        "missing-input": ["run", "-s", "model.npz", "-i", "nope.json", "--job-name", "j1"],
        "missing-solution": ["run", "-s", "nope.npz", "-i", "in.json", "--job-name", "j2"],
        "unknown-recipe": ["train", "-r", "deep-magic", "-i", "x.csv", "-o", "m.npz"],
        "bad-hyperparameter": [
            "train",
            "-r",
            "sims",
            "-i",
            "x.csv",
            "-o",
            "m.npz",
            "--hp",
            "popularity_discount_factor=2",
        ],
        "recommend-needs-user": ["recommend", "-s", "model.npz", "--user-id", ""],
    }
    for name, args in cases.items():
        _check(f"error-{name}", invoke(runner, args))
    assert not (tmp_path / "in.json.out").exists()
    # a used job name is a usage error
    invoke(runner, ["run", "-s", "model.npz", "-i", "in.json", "-q", "--job-name", "same"])
    _check(
        "error-name-in-use",
        invoke(runner, ["run", "-s", "model.npz", "-i", "in.json", "-q", "--job-name", "same"]),
    )


def test_run_with_fresh_events(solutions, runner, tmp_path):
    """--events: a known user's list moves, a new user gets a personalized list, an event
    on an unknown item is counted; and --events with sims is refused."""
    events = tmp_path / "events.csv"
    events.write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
        "653,0770828,1999999999,rating\n"
        "653,1300854,2000000000,rating\n"
        "newbie,1670345,2000000001,rating\n"
        "newbie,1535108,2000000002,rating\n"
        "ghost,NOT-AN-ITEM,2000000003,rating\n"
    )
    src = tmp_path / "users.json"
    src.write_text('{"userId": "653"}\n{"userId": "newbie"}\n{"userId": "ghost"}\n')
    args = ["run", "-i", str(src), "-o", "-", "-n", "4", "-q", "--job-name", "fresh"]
    result = invoke(
        runner, [*args, "-s", str(solutions["user-personalization"]), "--events", str(events)]
    )
    record = invoke(runner, ["jobs", "describe", "fresh"])
    fold = orjson.loads(record.stdout)["batchInferenceJob"]["foldIn"]
    fold["events"] = Path(fold["events"]).name
    _check("run-events", result, result.stdout + orjson.dumps(fold).decode() + "\n")
    result = invoke(
        runner,
        ["run", "-s", str(solutions["sims"]), "-i", str(EXAMPLES / "items.json"), "-o", "-"]
        + ["--events", str(events)],
    )
    _check("run-events-sims", result)


def test_segment_jobs(segment_solutions, solutions, runner, tmp_path):
    """A segment job's lines (users for items, an unknown item's error line) and the
    refusals of a job of the wrong kind, word for word."""
    src = tmp_path / "items.json"
    src.write_bytes((EXAMPLES / "items.json").read_bytes() + b'{"itemId": "no-such-item"}\n')
    args = ["run", "-s", str(segment_solutions["item-affinity"]), "-i", str(src), "-o", "-"]
    _check("run-item-affinity", invoke(runner, [*args, "-n", "5", "-q", "--job-name", "golden"]))
    unrated = 'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("rating")'
    _check(
        "run-item-affinity-filtered",
        invoke(runner, [*args, "-n", "5", "-q", "--include-seen", "--filter", unrated]),
    )
    item_filter = tmp_path / "items.filter"
    item_filter.write_text('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating")\n')
    out = str(tmp_path / "out")
    create = [
        "--job-name",
        "wrong",
        "--job-input",
        f"s3DataSource={{path={src}}}",
        "--job-output",
        f"s3DataDestination={{path={out}}}",
        "--solution-version-arn",
    ]
    text = ""
    for args in (
        ["create-batch-segment-job", *create, str(solutions["sims"])],
        ["create-batch-inference-job", *create, str(segment_solutions["item-affinity"])],
        [
            "create-batch-segment-job",
            *create,
            str(segment_solutions["item-affinity"]),
            "--filter-arn",
            str(item_filter),
        ],
        ["run", "-s", str(segment_solutions["item-affinity"]), "-i", str(src)]
        + ["--filter", 'EXCLUDE UserID WHERE Users.AGE IN ("30")'],
        ["recommend", "-s", str(segment_solutions["item-affinity"]), "--item-id", "1300854"],
        ["run", "-s", str(solutions["sims"]), "-i", str(src), "-n", "501"],
    ):
        result = invoke(runner, args)
        text += f"$ pbatch {args[0]}\nexit: {result.exit_code}\n{result.stdout}{result.stderr}\n"
    compare_golden("segment-refusals", text.replace(str(tmp_path), "TMP"))
