"""The misuse suite (tests/misusekit.py has the cases): every misuse gets its exit code
and one clear line on stderr, no traceback, and no file the user had changes.

RELIABILITY.md's misuse table is made from the cases and their results; after a change,
`PBATCH_UPDATE_MISUSE=1 pytest tests/test_misuse.py -k table` rewrites it.
A hypothesis test draws commands from options and paths over one workspace and checks
that no pre-existing file other than the command's declared output changes.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PBATCH, ROOT
from docs_examples import sandbox_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from misusekit import CASES, Case, checksums, make_workspace

from personalize_batch import storage as pio
from personalize_batch.cli import main

JOB_NAME = re.compile(r"pbatch-\d{8}-\d{6}-[0-9a-f]{6}")
TABLE_START = "<!-- misuse table: tests/test_misuse.py -->"
TABLE_END = "<!-- end of misuse table -->"
UPDATE = os.environ.get("PBATCH_UPDATE_MISUSE") == "1"


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))


def run_case(case: Case, ws: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """The case's exit code, stdout and stderr, run in the workspace (after its `before`
    line: run_before)."""
    if case.process:
        done = subprocess.run(
            [*PBATCH, *case.args],
            cwd=ws,
            env=sandbox_env(ws, sys.executable),
            capture_output=True,
            text=True,
            preexec_fn=_limit_file_size,
            timeout=300,
        )
        return done.returncode, done.stdout, done.stderr
    monkeypatch.chdir(ws)
    result = CliRunner().invoke(main, list(case.args), prog_name="pbatch")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a failure of its own
    return result.exit_code, result.stdout, result.stderr


def run_before(case: Case, ws: Path) -> None:
    """The case's preparation (a link, an earlier job), with `pbatch` on PATH."""
    env = {**sandbox_env(ws, sys.executable), "PBATCH_HOME": os.environ["PBATCH_HOME"]}
    if case.before:
        subprocess.run(["bash", "-c", case.before], cwd=ws, env=env, check=True)


@pytest.fixture
def workspace(tmp_path, solutions) -> Path:
    return make_workspace(tmp_path / "ws", solutions)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}: {c.name}" for c in CASES])
def test_misuse(case, workspace, monkeypatch):
    run_before(case, workspace)
    before = checksums(workspace)
    code, stdout, stderr = run_case(case, workspace, monkeypatch)
    assert "Traceback" not in stderr + stdout
    prefix = "pbatch: warning: " if case.exit == 0 else "pbatch: error: "
    assert JOB_NAME.sub("pbatch-JOBNAME", stderr) == prefix + case.message + "\n"
    assert (code, stdout) == (case.exit, "")
    after = checksums(workspace)
    changed = {k for k in before if before[k] != after.get(k)}
    assert not changed, f"changed or removed: {sorted(changed)}"
    if case.exit:  # refused: nothing new either (a warned job writes its empty output)
        assert set(after) == set(before), f"new: {sorted(set(after) - set(before))}"


def test_the_suite_is_large_enough():
    assert len(CASES) >= 60
    assert len({(c.kind, c.name) for c in CASES}) == len(CASES)


def _table() -> str:
    rows = [
        "| kind | misuse | command | exit | the one line on stderr |",
        "|---|---|---|--:|---|",
    ]
    for c in CASES:
        command = "pbatch " + " ".join(a if a and " " not in a else repr(a) for a in c.args)
        line = ("pbatch: warning: " if c.exit == 0 else "pbatch: error: ") + c.message
        if "\n" in line:  # a filter's error shows the filter, a caret under the place
            line = line.split("\n")[0] + "` (then the filter, a caret under the place) `"
        shown = f"`{c.before}`, then `{command}`" if c.before else f"`{command}`"
        cells = [c.kind, c.name, shown, str(c.exit), f"`{line}`"]
        rows.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    return "\n".join(rows)


def test_the_reliability_table_lists_every_case():
    """RELIABILITY.md shows each case as this suite runs it (regenerate: PBATCH_UPDATE_MISUSE=1)."""
    path = ROOT / "RELIABILITY.md"
    text = path.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    table = _table()
    if UPDATE:
        text = text[:start] + "\n" + table + "\n" + text[end:]
        path.write_text(text, encoding="utf-8")
        end = text.index(TABLE_END)
    assert text[start:end].strip() == table


# ------------------------------------------------------------ options and paths, drawn


def _outputs(args: dict[str, str | None], ws: Path) -> set[str]:
    """The files a command that succeeds may write (relative to the workspace)."""
    declared = set()
    if args["command"] == "run":
        out = args["-o"] or pio.default_output(args["-i"])
        if out != "-":
            for ref in pio.list_inputs(str(ws / args["-i"])):
                declared.add(os.path.relpath(pio.output_url(str(ws / out), ref.name, None), ws))
        if args["--errors-to"] not in (None, "-"):
            declared.add(os.path.normpath(args["--errors-to"]))
    elif args["command"] == "train":
        declared.add(os.path.normpath(args["-o"]))
    elif args["--changed"]:
        declared.add(os.path.normpath(args["--changed"]))
    return declared


def _inputs(args: dict[str, str | None], ws: Path) -> set[str]:
    """What the command reads, and the files that are the same file (hard links): none of
    them may change, whatever the command is asked to write (A.18). Also a file that
    `train -o` would replace but is not a solution."""
    named = [args.get(k) for k in ("-s", "-i", "--events", "--filter-file", "--items")]
    named += [args.get("old"), args.get("new")]
    if args["command"] == "train":
        named.append(args["-i"])
        target = ws / args["-o"]
        if target.is_file() and target.suffix != ".npz":
            named.append(args["-o"])
    files = []
    for name in filter(None, named):
        path = ws / name
        files += sorted(path.rglob("*")) if path.is_dir() else [path]
    inodes = {p.stat().st_ino for p in files if p.is_file()}
    return {
        str(p.relative_to(ws))
        for p in ws.rglob("*")
        if p.is_file() and not p.is_symlink() and p.stat().st_ino in inodes
    }


PATHS = ["users.json", "model.npz", "sims.npz", "out/users.json.out", "events.csv", "notes.txt",
         "filter.txt", "interactions.csv", "batch", "batch/a.json", "out", ".", "new.json",
         "new.npz", "newdir/", "-", "./users.json", "alias.json"]  # fmt: skip


@st.composite
def commands(draw) -> dict[str, str | None]:
    kind = draw(st.sampled_from(["run", "run", "train", "diff"]))
    maybe = st.one_of(st.none(), st.sampled_from(PATHS))
    if kind == "run":
        return {
            "command": "run",
            "-s": draw(st.sampled_from(["model.npz", "pop.npz", "pop.npz", "alias.json"])),
            "-i": draw(st.sampled_from(["users.json", "batch", "batch/a.json", "alias.json"])),
            "-o": draw(maybe),
            "--errors-to": draw(maybe),
            "--events": draw(st.sampled_from([None, "events.csv"])),
            "--filter-file": draw(st.sampled_from([None, "filter.txt"])),
        }
    if kind == "train":
        return {
            "command": "train",
            "-i": draw(st.sampled_from(["interactions.csv", "alias.json"])),
            "--items": draw(st.sampled_from([None, "items.csv"])),
            "-o": draw(st.sampled_from(PATHS)),
        }
    return {
        "command": "diff",
        "old": "old.out",
        "new": draw(st.sampled_from(["new.out", "old.out", "out/users.json.out"])),
        "--changed": draw(maybe),
    }


def _argv(args: dict[str, str | None]) -> list[str]:
    if args["command"] == "diff":
        argv = ["diff", args["old"], args["new"]]
    elif args["command"] == "train":
        argv = ["train", "-r", "popularity-count"]
    else:
        argv = ["run", "-q", "--workers", "1"]
    for key, value in args.items():
        if key.startswith("-") and value is not None:
            argv += [key, value]
    return argv


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=commands())
def test_no_file_but_the_declared_output_changes(args, solutions, tmp_path_factory, monkeypatch):
    ws = make_workspace(tmp_path_factory.mktemp("ws"), solutions)
    os.link(ws / "users.json", ws / "alias.json")  # a second name for an input
    before, protected = checksums(ws), _inputs(args, ws)
    monkeypatch.chdir(ws)
    result = CliRunner().invoke(main, _argv(args), prog_name="pbatch")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.output
    after = checksums(ws)
    changed = {k for k in before if before[k] != after.get(k)}
    assert not changed & protected, (args, result.stderr)
    if result.exit_code in (0, 3):
        assert changed <= _outputs(args, ws), (args, result.stderr)
    else:
        assert not changed, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("pbatch: error: ")
