"""Rough edges a new user meets, each said in one clear line: a split too small to
measure, an unreachable Dask scheduler."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from personalize_batch.cli import main


def test_a_split_with_few_test_users_warns_and_says_how_many(tmp_path):
    """On data too small for its split, evaluate printed metrics of one test user as
    if they meant something."""
    path = tmp_path / "small.csv"
    lines = (EXAMPLES / "interactions.csv").read_text().splitlines()[:30]
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        main, ["evaluate", "-r", "popularity-count", "-i", str(path)], prog_name="pbatch"
    )
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1].startswith("1 test user, 1 held-out item (1 not in")
    assert result.stderr == (
        "pbatch: warning: the personalize split has only 1 test user: one user's list moves "
        "each metric by up to 1, so they say little (fewer than 20 test users); evaluate on "
        "more interactions; --split leave-last-out tests every user with 2 or more "
        "interactions\n"
    )
    quiet = CliRunner().invoke(
        main, ["evaluate", "-r", "popularity-count", "-i", str(path), "-q", "--json"]
    )
    assert quiet.stderr == "" and '"testUsers": 1' in quiet.stdout


def _refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_scheduler_fails_in_seconds(solutions, tmp_path):
    """Dask retried a refused connection for 30 s before the job failed; a TCP probe with
    a 5 s bound now answers at once."""
    pytest.importorskip("distributed")
    port = _refused_port()
    result = CliRunner().invoke(
        main,
        ["run", "-s", str(solutions["sims"]), "-i", str(EXAMPLES / "items.json")]
        + ["-o", str(tmp_path), "--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"],
        prog_name="pbatch",
    )
    assert result.exit_code == 1
    assert result.stderr.endswith(
        f"failed: cannot reach the Dask scheduler tcp://127.0.0.1:{port}: connection refused "
        "(is the scheduler running, on this port?)\n"
    )
    assert result.stderr.count("\n") == 1  # the probe's words: Dask's came after 30 s
