"""Golden files for filters on the command line: every clause kind, placeholder values per
line (missing, empty, malformed), every parse-error kind (exit 2 before any output).

The solutions are trained with the example items plus a numeric YEAR field taken from
each title ("Iron Man 3 (2013)" -> 2013). Regenerate with `PBATCH_UPDATE_GOLDEN=1`.
"""

from __future__ import annotations

import csv
import re

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_INPUTS, EXAMPLES, RECIPES
from test_golden import compare_golden, invoke

from personalize_batch.training import train

HEADER = "pbatch {args}\n"


@pytest.fixture(scope="module")
def item_solutions(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("item-solutions")
    items = folder / "items.csv"
    with (
        open(EXAMPLES / "items.csv", encoding="utf-8") as src,
        open(items, "w", encoding="utf-8", newline="") as out,
    ):
        w = csv.writer(out)
        for k, row in enumerate(csv.reader(src)):
            year = re.search(r"\((\d{4})\)\s*$", row[1])
            w.writerow([*row, "YEAR" if k == 0 else (year.group(1) if year else "")])
    out = {}
    for recipe in RECIPES:
        path = folder / f"{recipe}.npz"
        train(recipe, str(EXAMPLES / "interactions.csv"), str(path), items=str(items), tune=False)
        out[recipe] = path
    return out


class Transcript:
    """Several invocations in one golden file: the command, exit code, stdout, stderr."""

    def __init__(self, tmp_path) -> None:
        self.runner, self.tmp_path, self.parts = CliRunner(), tmp_path, []

    def run(self, shown: list[str], args: list[str], input_lines: list[str] | None = None):
        if input_lines is not None:
            (self.tmp_path / "in.json").write_text("\n".join(input_lines) + "\n")
        result = invoke(self.runner, args)
        self.parts.append(
            f"$ pbatch {' '.join(shown)}\nexit: {result.exit_code}\n--- stdout\n"
            f"{result.stdout}--- stderr\n{result.stderr}"
        )
        return result

    def check(self, name: str) -> None:
        compare_golden(name, "\n".join(self.parts))


CLAUSES = [
    # (recipe, filter, extra args)
    ("user-personalization", 'INCLUDE ItemID WHERE Items.GENRES IN ("Horror", "Sci-Fi")', []),
    ("popularity-count", 'EXCLUDE ItemID WHERE Items.GENRES NOT IN ("Comedy")', []),
    ("popularity-count", "INCLUDE ItemID WHERE Items.YEAR = 2012", []),
    ("popularity-count", "INCLUDE ItemID WHERE Items.YEAR != 2013", []),
    ("popularity-count", "INCLUDE ItemID WHERE Items.YEAR < 1980", []),
    ("popularity-count", "INCLUDE ItemID WHERE Items.YEAR <= 1980", []),
    ("popularity-count", "INCLUDE ItemID WHERE Items.YEAR > 2012", []),
    ("popularity-count", "INCLUDE ItemID WHERE Items.YEAR >= 2013.5", []),
    ("popularity-count", 'INCLUDE ItemID WHERE Items.ITEM_ID IN ("0816711", "1300854")', []),
    (
        "user-personalization",
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("RATING")',
        ["--include-seen"],
    ),
    (
        "popularity-count",
        'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
        ["--include-seen"],
    ),
    (
        "popularity-count",
        'INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("rating")',
        ["--include-seen"],
    ),
    (
        "user-personalization",
        'INCLUDE ItemID WHERE Items.GENRES IN ("Comedy") AND Items.YEAR < 2000 OR '
        'Items.GENRES IN ("Western")',
        [],
    ),
    (
        "user-personalization",
        'INCLUDE ItemID WHERE Items.GENRES IN ("Drama") | INCLUDE ItemID WHERE Items.YEAR > 2013'
        ' | EXCLUDE ItemID WHERE Items.GENRES IN ("Romance")',
        [],
    ),
    ("sims", "INCLUDE ItemID WHERE Items.GENRES IN CurrentItem.GENRES", []),
    ("sims", "INCLUDE ItemID WHERE Items.YEAR < CurrentItem.YEAR", []),
    ("personalized-ranking", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Action")', []),
]


def test_every_clause_kind(item_solutions, tmp_path):
    t = Transcript(tmp_path)
    users = '{"userId": "653"}\n{"userId": "2000"}\n{"userId": "999999999"}\n'
    (tmp_path / "users.json").write_text(users)
    for recipe, expr, extra in CLAUSES:
        model = str(item_solutions[recipe])
        name = EXAMPLE_INPUTS[recipe]
        src = str(tmp_path / name if recipe == "user-personalization" else EXAMPLES / name)
        args = ["-n", "3", "-q", *extra, "--filter", expr]
        shown = ["run", "-s", f"{recipe}.npz", "-i", name, "-o", "-", *args]
        result = t.run(shown, ["run", "-s", model, "-i", src, "-o", "-", *args])
        assert result.exit_code == 0, result.output
    t.check("filter-clauses")


PLACEHOLDER_LINES = [
    '{"userId": "653", "filterValues": {"GENRE": "\\"Horror\\",\\"Western\\"", "YEAR": "2010"}}',
    '{"userId": "653", "filterValues": {"GENRE": "\\"Horror\\"", "YEAR": "\\"2013\\""}}',
    '{"userId": "653", "filterValues": {"GENRE": "\\"Horror\\""}}',  # EXCLUDE skipped
    '{"userId": "653", "filterValues": {"GENRE": ""}}',  # empty: missing
    '{"userId": "653"}',  # INCLUDE without its value
    '{"userId": "653", "filterValues": {"GENRE": "Horror"}}',  # not quoted
    '{"userId": "653", "filterValues": {"GENRE": "\\"Horror", "YEAR": "1"}}',  # no closing quote
    '{"userId": "653", "filterValues": {"GENRE": "\\"Horror\\"", "YEAR": "\\"x\\""}}',
    '{"userId": "653", "filterValues": {"GENRE": "\\"Horror\\"", "YEAR": "\\"1\\",\\"2\\""}}',
    '{"userId": "653", "filterValues": {"GENRE": 5}}',
    '{"userId": "653", "filterValues": {"bad-key": "\\"x\\""}}',
    '{"userId": "653", "filterValues": {"GENRE": "\\"' + "x" * 1000 + '\\""}}',
    '{"userId": "653", "filterValues": {'
    + ", ".join(f'"K{k}": "\\"x\\""' for k in range(26))
    + "}}",
]


def test_placeholder_values_per_line(item_solutions, tmp_path):
    t = Transcript(tmp_path)
    expr = "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE) | EXCLUDE ItemID WHERE Items.YEAR < $YEAR"
    model = str(item_solutions["user-personalization"])
    src = str(tmp_path / "in.json")
    args = ["-o", "-", "-n", "3", "-q", "--filter", expr]
    result = t.run(
        ["run", "-s", "up.npz", "-i", "in.json", *args],
        ["run", "-s", model, "-i", src, *args],
        PLACEHOLDER_LINES,
    )
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert len(lines) == len(PLACEHOLDER_LINES)
    # Interactions placeholders, case-insensitive event types
    expr = "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENTS)"
    args = ["-o", "-", "-n", "3", "-q", "--include-seen", "--filter", expr]
    t.run(
        ["run", "-s", "up.npz", "-i", "in.json", *args],
        ["run", "-s", model, "-i", src, *args],
        [
            '{"userId": "2000", "filterValues": {"EVENTS": "\\"Rating\\""}}',
            '{"userId": "2000"}',  # no value: the EXCLUDE is skipped
        ],
    )
    t.check("filter-placeholders")


def test_filter_file_recommend_and_rank(item_solutions, tmp_path):
    t = Transcript(tmp_path)
    (tmp_path / "filter.txt").write_text('INCLUDE ItemID WHERE Items.GENRES IN ("Western")\n')
    up = str(item_solutions["user-personalization"])
    f = str(tmp_path / "filter.txt")
    t.run(
        ["recommend", "-s", "up.npz", "--user-id", "653", "-n", "2", "--filter-file", "filter.txt"],
        ["recommend", "-s", up, "--user-id", "653", "-n", "2", "--filter-file", f],
    )
    args = ["--user-id", "653", "-n", "2", "--filter", "INCLUDE ItemID WHERE Items.YEAR < $Y"]
    t.run(
        ["recommend", "-s", "up.npz", *args, "--filter-values", '{"Y": "\\"1950\\""}'],
        ["recommend", "-s", up, *args, "--filter-values", '{"Y": "\\"1950\\""}'],
    )
    t.run(  # the INCLUDE's value missing: a usage error, as GetRecommendations refuses it
        ["recommend", "-s", "up.npz", *args],
        ["recommend", "-s", up, *args],
    )
    rank = str(item_solutions["personalized-ranking"])
    args = ["--user-id", "8", "--items", "1300854,0770828,unknown-item,0816711", "--filter"]
    expr = 'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")'
    t.run(["rank", "-s", "rank.npz", *args, expr], ["rank", "-s", rank, *args, expr])
    t.check("filter-file-recommend-rank")


PARSE_ERRORS = [
    "",
    "INCLUDE ItemID WHERE Items.GENRES IN ('Drama')",
    'INCLUDE ItemID WHERE Items.GENRES IN ("Drama)',
    "INCLUDE ItemID WHERE Items.GENRES IN ($)",
    'KEEP ItemID WHERE Items.GENRES IN ("Drama")',
    'INCLUDE UserID WHERE Items.GENRES IN ("Drama")',
    'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("rating")',
    'INCLUDE ItemID Items.GENRES IN ("Drama")',
    'INCLUDE ItemID WHERE Users.AGE IN ("30")',
    'INCLUDE ItemID WHERE GENRES IN ("Drama")',
    'INCLUDE ItemID WHERE Items.GENRES LIKE ("Drama")',
    'INCLUDE ItemID WHERE Items.GENRES NOT ("Drama")',
    "INCLUDE ItemID WHERE Items.GENRES IN Drama",
    "INCLUDE ItemID WHERE Items.GENRES IN (Drama)",
    'INCLUDE ItemID WHERE Items.GENRES IN ("Drama" "Comedy")',
    'INCLUDE ItemID WHERE Items.GENRES IN ("Drama", $G)',
    "EXCLUDE ItemID WHERE Items.GENRES NOT IN ($G)",
    "INCLUDE ItemID WHERE Items.GENRES IN (*)",
    'INCLUDE ItemID WHERE Items.YEAR < "2000"',
    "INCLUDE ItemID WHERE Items.YEAR < ($Y",
    'EXCLUDE ItemID WHERE Interactions.EVENT_VALUE IN ("5")',
    "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE > 3",
    'INCLUDE ItemID WHERE Items.GENRES IN ("Drama") AND Interactions.EVENT_TYPE IN ("rating")',
    'INCLUDE ItemID WHERE Items.GENRES IN ("Drama") IF CurrentUser.AGE = $AGE',
    'INCLUDE ItemID WHERE Items.GENRES IN ("Drama") EXCLUDE',
    "INCLUDE ItemID WHERE Items.GENRES NOT IN CurrentItem.GENRES",
    'EXCLUDE ItemID WHERE Items.TITLE IN ("' + "x" * 2500 + '")',
    " | ".join(f'EXCLUDE ItemID WHERE Items.F{k} IN ("a")' for k in range(11)),
    # parse, but do not fit the solution: exit 2 too
    'INCLUDE ItemID WHERE Items.GENRE IN ("Drama")',
    "INCLUDE ItemID WHERE Items.GENRES IN CurrentItem.GENRES",
]


def test_parse_errors_exit_2_before_any_output(item_solutions, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.json").write_text('{"userId": "653"}\n')
    t = Transcript(tmp_path)
    model = str(item_solutions["user-personalization"])
    for k, expr in enumerate(PARSE_ERRORS):
        args = [
            "run",
            "-s",
            model,
            "-i",
            "in.json",
            "-q",
            "--job-name",
            f"bad{k}",
            "--filter",
            expr,
        ]
        shown = expr if len(expr) < 200 else expr[:60] + "…"
        result = t.run(["run", "-s", "up.npz", "-i", "in.json", "--filter", shown], args)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert not (tmp_path / "in.json.out").exists()
    t.run(
        ["run", "-s", "up.npz", "-i", "in.json", "--filter", "X", "--filter-file", "in.json"],
        ["run", "-s", model, "-i", "in.json", "--filter", "X", "--filter-file", "in.json"],
    )
    (tmp_path / "f.txt").write_text("EXCLUDE ItemID WHERE\n")
    t.run(
        ["run", "-s", "up.npz", "-i", "in.json", "--filter-file", "f.txt"],
        ["run", "-s", model, "-i", "in.json", "--filter-file", "f.txt"],
    )
    t.check("filter-errors")
