"""Paths a command may write (A.18): never its own inputs, never another output of the
same job; `train -o` replaces only a solution. Refused with exit 2 and one line naming
both paths, before anything is read, fitted or written."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, PBATCH

from personalize_batch.cli import main
from personalize_batch.job.store import JobStore
from personalize_batch.storage.paths import is_solution_file, same


def _sums(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _pbatch(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="pbatch")


@pytest.fixture
def work(tmp_path, solutions, monkeypatch):
    """A folder with a solution, an input, interactions and items; cwd there."""
    (tmp_path / "model.npz").write_bytes(solutions["user-personalization"].read_bytes())
    (tmp_path / "in.json").write_bytes((EXAMPLES / "users.json").read_bytes())
    (tmp_path / "interactions.csv").write_bytes((EXAMPLES / "interactions.csv").read_bytes())
    (tmp_path / "filter.txt").write_text('EXCLUDE ItemID WHERE Items.ITEM_ID IN ("1")\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--errors-to", "in.json"],
            "--errors-to in.json is the input in.json: pbatch never writes over a command's "
            "own inputs; choose another path",
        ),
        (
            ["--errors-to", "model.npz"],
            "--errors-to model.npz is the solution model.npz: pbatch never writes over a "
            "command's own inputs; choose another path",
        ),
        (
            ["--errors-to", "./sub/../in.json"],
            "--errors-to ./sub/../in.json is the input in.json: pbatch never writes over",
        ),
        (
            ["--errors-to", "out/in.json.out"],
            "the output out/in.json.out and --errors-to out/in.json.out are the same file: "
            "each output of a job needs its own path; choose another path",
        ),
        (
            ["--errors-to", "filter.txt", "--filter-file", "filter.txt"],
            "--errors-to filter.txt is the --filter-file filter.txt: pbatch never writes",
        ),
        (
            ["--errors-to", "interactions.csv", "--events", "interactions.csv"],
            "--errors-to interactions.csv is the --events file interactions.csv: pbatch",
        ),
        (["-o", "model.npz"], "--output model.npz is a file; it takes a folder"),
        (["--errors-to", "."], "--errors-to . is a folder; give a file name"),
        # a folder that does not exist yet: the job would write its output, then fail
        (["--errors-to", "newdir/"], "--errors-to newdir/ is a folder; give a file name"),
    ],
)
def test_run_never_writes_its_inputs_or_one_path_twice(work, args, message):
    before = _sums(work)
    result = _pbatch(
        "run", "-s", "model.npz", "-i", "in.json", "-o", "out", "--workers", "1", *args
    )
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"pbatch: error: {message}")
    assert result.stderr.count("\n") == 1
    assert _sums(work) == before
    assert JobStore().records() == []  # refused before the job existed: the name stays free


def test_errors_to_a_hard_link_of_the_input_is_the_input(work):
    os.link(work / "in.json", work / "alias.json")
    result = _pbatch(
        "run", "-s", "model.npz", "-i", "in.json", "-o", "out", "--errors-to", "alias.json"
    )
    assert result.exit_code == 2
    assert "--errors-to alias.json is the input in.json" in result.stderr


def test_errors_to_and_output_both_stdout_is_refused(work):
    result = _pbatch("run", "-s", "model.npz", "-i", "in.json", "-o", "-", "--errors-to", "-")
    assert result.exit_code == 2
    assert result.stderr == (
        "pbatch: error: --errors-to - and --output - are stdout: each output of a job needs "
        "its own path; choose another path\n"
    )


def test_an_input_in_a_folder_is_protected_too(work):
    (work / "batch").mkdir()
    (work / "batch" / "a.json").write_bytes(b'{"userId": "653"}\n')
    result = _pbatch("run", "-s", "model.npz", "-i", "batch", "--errors-to", "batch/a.json")
    assert result.exit_code == 2
    assert "--errors-to batch/a.json is the input batch/a.json" in result.stderr


@pytest.mark.parametrize(
    "output, message",
    [
        (
            "interactions.csv",
            "-o interactions.csv is the --interactions file interactions.csv: pbatch never "
            "writes over a command's own inputs; choose another -o",
        ),
        ("items.csv", "-o items.csv is the --items file items.csv"),
        (
            "in.json",
            "-o in.json exists and is not a pbatch solution; pbatch train replaces only "
            "solutions: remove it or choose another -o",
        ),
        ("sub", "-o sub names a folder; give a file name, e.g. sub/model.npz"),
        ("newdir/", "-o newdir/ names a folder; give a file name, e.g. newdir/model.npz"),
        ("nodir/m.npz", "-o nodir/m.npz: folder nodir does not exist"),
        ("-", "-o -: a solution is a file (a zip), not a stream; give a file name"),
        ("s3://bucket/m.npz", "-o s3://bucket/m.npz: pbatch train writes a local file"),
    ],
)
def test_train_output_is_checked_before_the_fit(work, output, message):
    (work / "sub").mkdir()
    (work / "items.csv").write_bytes((EXAMPLES / "items.csv").read_bytes())
    before = _sums(work)
    result = _pbatch(
        "train", "-r", "user-personalization", "-i", "interactions.csv", "--items", "items.csv",
        "-o", output,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"pbatch: error: {message}")
    assert result.stderr.count("\n") == 1
    assert _sums(work) == before


def test_train_replaces_a_solution(work):
    result = _pbatch("train", "-r", "popularity-count", "-i", "interactions.csv", "-o", "model.npz")
    assert result.exit_code == 0, result.output
    assert is_solution_file("model.npz")


def test_a_cut_short_solution_is_still_a_solution(work):
    data = (work / "model.npz").read_bytes()
    (work / "cut.npz").write_bytes(data[:200])
    assert is_solution_file("cut.npz")
    assert not is_solution_file("in.json")


def test_a_full_disk_during_train_is_one_line(work):
    """It was a traceback, after the whole fit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    command = [*PBATCH, "train", "-r", "user-personalization", "-i", "interactions.csv", "-q"]
    done = subprocess.run(
        [*command, "-o", "new.npz"], preexec_fn=limit, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr == "pbatch: error: cannot write new.npz: File too large\n"
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []


def test_diff_changed_never_overwrites_what_it_compares(work):
    (work / "a.out").write_text('{"input":{"userId":"1"},"output":{"recommendedItems":[]}}\n')
    before = _sums(work)
    result = _pbatch("diff", "a.out", "a.out", "--changed", "./a.out")
    assert result.exit_code == 2
    assert result.stderr.startswith("pbatch: error: --changed ./a.out is OLD.out a.out:")
    assert _sums(work) == before


def test_same():
    assert same("s3://b/a/k", "s3://b/a/k")
    assert not same("s3://b/a/k", "s3://c/a/k")
    assert not same("s3://b/k", "b/k")
    assert same("-", "-") and not same("-", "x")
