"""The workflow around a job: validate first, see unknown ids and their likely cause,
set errors aside, stop on a wrong-recipe input, and diff two runs."""

from __future__ import annotations

import re

import orjson
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from personalize_batch.cli import main
from personalize_batch.job.store import FAILED, JobStore


def invoke(args: list[str]):
    return CliRunner().invoke(main, args, prog_name="pbatch")


BAD = (
    b'{"userId": "653"}\n'
    b"\n"
    b'{"user_id": "653"}\n'
    b'{"UserID": "653"}\n'
    b'{"userId": 653}\n'
    b"{oops\n"
    b'{"userId": "1984"}\n'
)


def test_validate_lists_each_bad_line_with_a_hint(solutions, tmp_path):
    src = tmp_path / "in.json"
    src.write_bytes(BAD)
    result = invoke(["validate", "-s", str(solutions["user-personalization"]), "-i", str(src)])
    assert result.exit_code == 3
    assert result.stdout.splitlines() == [
        'in.json:3: user-personalization needs "userId"; found "user_id" – did you mean "userId"?',
        'in.json:4: user-personalization needs "userId"; found "UserID" – did you mean "userId"?',
        "in.json:5: userId must be a string",
        "in.json:6: invalid JSON: unexpected character, expected a string key: "
        "line 1 column 2 (char 1)",
    ]
    summary = orjson.loads(result.stderr.splitlines()[0])
    assert (summary["linesRead"], summary["validLines"], summary["blankLinesSkipped"]) == (6, 2, 1)
    assert 'ids must be strings ("0042", not 42)' in result.stderr
    # --dry-run is the same check, and it neither writes output nor records a job
    dry = invoke(["run", "--dry-run", "-s", str(solutions["user-personalization"]), "-i", str(src)])
    assert (dry.exit_code, dry.stdout) == (3, result.stdout)
    assert not (tmp_path / "in.json.out").exists()
    assert JobStore().list()["batchInferenceJobs"] == []


def test_sims_validate_counts_unknown_items(solutions, tmp_path):
    src = tmp_path / "items.json"
    src.write_bytes(b'{"itemId": "1300854"}\n{"itemId": "nope"}\n{"items": "0770828"}\n')
    result = invoke(
        [
            "validate",
            "-s",
            str(solutions["sims"]),
            "-i",
            str(src),
        ]
    )
    assert result.exit_code == 0 and result.stdout == ""
    summary = orjson.loads(result.stderr.splitlines()[0])
    assert summary["unknownItemIds"] == 1 and summary["unknownItemExamples"] == ["nope"]


def test_lost_leading_zeros_are_named(solutions, tmp_path):
    src = tmp_path / "items.json"
    src.write_bytes(b'{"itemId": "770828"}\n{"itemId": "816711"}\n{"itemId": "1300854"}\n')
    result = invoke(
        [
            "run",
            "-s",
            str(solutions["sims"]),
            "-i",
            str(src),
            "-o",
            str(tmp_path),
            "--job-name",
            "zeros",
            "--workers",
            "1",
        ]
    )
    assert result.exit_code == 0
    assert (
        'pbatch: warning: 67% of itemIds (2 of 3) are not in the solution, e.g. "770828", '
        '"816711"; likely cause: leading zeros differ: "770828" is "0770828" in the '
        "solution"
    ) in result.stderr
    ids = JobStore().get("zeros")["idDiagnostics"]
    assert ids["unknownItemIds"] == 2 and ids["unknownItemShare"] == pytest.approx(0.6667)


def test_errors_aside_and_skipped(solutions, tmp_path):
    src = tmp_path / "in.json"
    src.write_bytes(BAD)
    errors = tmp_path / "errors.jsonl"
    result = invoke(
        [
            "run",
            "-s",
            str(solutions["user-personalization"]),
            "-i",
            str(src),
            "-o",
            str(tmp_path / "out"),
            "-q",
            "--errors-to",
            str(errors),
            "--skip-errors",
        ]
    )
    assert result.exit_code == 3
    out = (tmp_path / "out" / "in.json.out").read_bytes().splitlines()
    assert [orjson.loads(line)["input"]["userId"] for line in out] == ["653", "1984"]
    aside = [orjson.loads(line) for line in errors.read_bytes().splitlines()]
    assert [(e["file"], e["line"]) for e in aside] == [("in.json", n) for n in (3, 4, 5, 6)]
    assert aside[2] == {
        "file": "in.json",
        "line": 5,
        "input": {"userId": 653},
        "error": "userId must be a string",
    }


def test_max_error_rate_fails_the_job_without_output(solutions, tmp_path):
    src = tmp_path / "items.json"  # a sims input given to a user model, but for one line
    src.write_bytes(b'{"userId": "653"}\n' + b'{"itemId": "1300854"}\n' * 300)
    result = invoke(
        [
            "run",
            "-s",
            str(solutions["user-personalization"]),
            "-i",
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--job-name",
            "wrong-recipe",
            "--max-error-rate",
            "0.5",
        ]
    )
    assert result.exit_code == 1
    assert "above --max-error-rate 0.5" in result.stderr
    assert not (tmp_path / "out" / "items.json.out").exists()
    record = JobStore().get("wrong-recipe")
    assert record["status"] == FAILED
    # the job stops at the first chunk boundary past 100 lines (where chunks end depends
    # on the worker count): every line read but the user line is an error
    found = re.match(
        r"(\d+) of (\d+) lines are errors \(\d+%\), above --max-error-rate 0\.5; ",
        record["failureReason"],
    )
    assert found is not None, record["failureReason"]
    errors, read = int(found[1]), int(found[2])
    assert errors == read - 1 and 100 <= read <= 301


def test_diff_of_two_runs(solutions, tmp_path):
    users = (EXAMPLES / "users.json").read_bytes()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder, n in (("a", "5"), ("b", "6")):
        (tmp_path / folder / "users.json").write_bytes(users)
        assert (
            invoke(
                [
                    "run",
                    "-s",
                    str(solutions["user-personalization"]),
                    "-i",
                    str(tmp_path / folder / "users.json"),
                    "-q",
                    "-n",
                    n,
                ]
            ).exit_code
            == 0
        )
    old, new = tmp_path / "a" / "users.json.out", tmp_path / "b" / "users.json.out"
    same = invoke(["diff", str(old), str(old)])
    assert orjson.loads(same.stdout)["unchanged"] == 20
    changed = tmp_path / "changed.jsonl"
    result = invoke(["diff", str(old), str(new), "--changed", str(changed)])
    summary = orjson.loads(result.stdout)
    assert summary["changed"] == 20 and summary["itemsAdded"] == 20
    assert summary["itemsRemoved"] == 0 and summary["meanAbsoluteRankShift"] == 0.0
    assert changed.read_bytes() == new.read_bytes()
    # a new input line is reported on its own
    extra = tmp_path / "b" / "more.out"
    extra.write_bytes(
        new.read_bytes()
        + new.read_bytes().splitlines(keepends=True)[0].replace(b'"653"', b'"new-user"')
    )
    summary = orjson.loads(invoke(["diff", str(new), str(extra)]).stdout)
    assert (summary["unchanged"], summary["onlyInNew"], summary["onlyInOld"]) == (20, 1, 0)
