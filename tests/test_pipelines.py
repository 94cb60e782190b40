"""pbatch in pipelines and cron: a reader that stops early, a name taken by a stopped
job, what a stopped job leaves behind."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import EXAMPLES, PBATCH
from test_resume import make_input, pbatch, start_and_stop

from personalize_batch.job.store import JobStore


@pytest.fixture
def big_input(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes((EXAMPLES / "users.json").read_bytes() * 1000)  # 20,000 lines
    return path


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_reader_that_stops_early_ends_the_job_quietly(solutions, big_input, workers):
    """`pbatch run -o - | head -1` exited 1 with nothing on stderr, and recorded the job
    CREATE FAILED with `BrokenPipeError`."""
    job = subprocess.Popen(
        [*PBATCH, "run", "-s", str(solutions["popularity-count"]), "-i", str(big_input)]
        + ["-o", "-", "--job-name", "piped", "--workers", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = job.stdout.readline()
    job.stdout.close()  # what `head -1` does
    stderr = job.stderr.read()
    assert job.wait() == 141  # 128 + SIGPIPE, as `yes | head -1` leaves it
    assert stderr == b""
    assert first.startswith(b'{"input":{"userId":"653"}')
    record = JobStore().get("piped")
    assert record["status"] == "CREATE FAILED"
    assert record["failureReason"].startswith(
        "stdout's reader stopped reading (a closed pipe, e.g. `| head`) after "
    )
    assert record["failureReason"].endswith(
        "lines were written; the rest of the input was not answered"
    )


def test_other_commands_end_quietly_too(solutions, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"[]\n" * 20000)
    job = subprocess.Popen(
        [*PBATCH, "validate", "-s", str(solutions["sims"]), "-i", str(bad), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    job.stdout.readline()
    job.stdout.close()
    assert job.stderr.read() == b""
    assert job.wait() == 141


def _stopped(solutions, tmp_path, name="nightly"):
    """A job stopped by SIGTERM midway, keeping its temp output and checkpoint."""
    src = tmp_path / "in.json"
    src.write_bytes(make_input(8000, 3))
    out = tmp_path / "out"
    args = ["run", "-s", str(solutions["user-personalization"]), "-i", str(src), "-o", str(out)]
    args += ["-q", "--workers", "1"]
    start_and_stop(args, Path(os.environ["PBATCH_HOME"]), name, 1024, signal.SIGTERM, 0.0)
    record = JobStore().get(name)
    assert record["status"] == "CREATE FAILED"
    return args, out, record


def test_a_name_taken_by_a_stopped_job_says_how_to_resume_or_discard_it(solutions, tmp_path):
    """It said "choose another --job-name", as if the job were lost."""
    args, _, _ = _stopped(solutions, tmp_path)
    result = pbatch([*args, "--job-name", "nightly"], Path(os.environ["PBATCH_HOME"]))
    assert result.returncode == 2
    assert result.stderr == (
        "pbatch: error: a job named 'nightly' already exists (CREATE FAILED: stopped by "
        "SIGTERM); `pbatch run --resume nightly` continues it, `pbatch jobs delete nightly` "
        "discards it and frees the name\n"
    )


def test_the_next_run_names_a_kept_temp_file_and_delete_removes_it(solutions, tmp_path):
    args, out, record = _stopped(solutions, tmp_path)
    temp = Path(record["resume"]["temporaryFile"])
    assert temp.exists() and temp.parent == out
    home = Path(os.environ["PBATCH_HOME"])
    result = pbatch([*args, "--job-name", "again"], home)
    assert result.returncode == 3
    size = temp.stat().st_size
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} KB"
    assert result.stderr.splitlines()[0] == (
        f"pbatch: warning: {temp} ({shown}) is the kept output of stopped job nightly: "
        "`pbatch run --resume nightly` continues it, `pbatch jobs delete nightly` discards it"
    )
    assert JobStore().get("again")["warnings"] == [result.stderr.splitlines()[0][17:]]
    output = (out / "in.json.out").read_bytes()

    result = pbatch(["jobs", "delete", "nightly"], home)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"pbatch: deleted job nightly (CREATE FAILED) and its temporary output {temp}, "
        f"checkpoint {home / 'checkpoints' / 'nightly.json'}\n"
    )
    assert not temp.exists() and not (home / "checkpoints" / "nightly.json").exists()
    assert (out / "in.json.out").read_bytes() == output  # outputs are never touched
    assert [r["jobName"] for r in JobStore().records()] == ["again"]
    result = pbatch([*args, "--job-name", "nightly"], home)  # the name is free again
    assert result.returncode == 3 and "warning" not in result.stderr


def test_delete_refuses_a_running_job_and_goes_on_with_the_others(solutions, tmp_path):
    store = JobStore()
    store.create({"jobName": "busy", "solutionVersionArn": "x"})  # this process runs it
    store.create({"jobName": "done", "solutionVersionArn": "x"})
    store.update("done", status="ACTIVE")
    home = Path(os.environ["PBATCH_HOME"])
    result = pbatch(["jobs", "delete", "busy", "nope", "done"], home)
    assert result.returncode == 1
    assert result.stderr == (
        f"pbatch: error: job busy is PENDING (process {os.getpid()}); only a finished job "
        "can be deleted: stop it first, or wait for it\n"
        "pbatch: error: no job named 'nope'\n"
        "pbatch: deleted job done (ACTIVE)\n"
    )
    assert [r["jobName"] for r in JobStore().records()] == ["busy"]


def _age(name: str, days: float) -> None:
    """Make a job's record `days` old."""
    store = JobStore()
    record = store.get(name)
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
    record["lastUpdatedDateTime"] = when.isoformat(timespec="milliseconds")
    store.db.execute(
        "UPDATE jobs SET record = ? WHERE name = ?", (orjson.dumps(record).decode(), name)
    )


def test_prune_deletes_finished_jobs_older_than_the_duration(solutions, tmp_path):
    args, out, record = _stopped(solutions, tmp_path, "old-stopped")
    home = Path(os.environ["PBATCH_HOME"])
    for name in ("old-done", "new-done"):
        assert pbatch([*args, "--job-name", name], home).returncode == 3
    for name in ("old-stopped", "old-done"):
        _age(name, 31)
    store = JobStore()
    store.create({"jobName": "old-running", "solutionVersionArn": "x"})
    _age("old-running", 40)

    result = pbatch(["jobs", "prune", "--older-than", "30d", "--dry-run"], home)
    assert (result.returncode, result.stdout) == (0, "old-stopped\nold-done\n")
    assert len(JobStore().records()) == 4
    result = pbatch(["jobs", "prune", "--older-than", "30d", "-q"], home)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert sorted(r["jobName"] for r in JobStore().records()) == ["new-done", "old-running"]
    assert not Path(record["resume"]["temporaryFile"]).exists()
    assert sorted(os.listdir(out)) == ["in.json.out"]


@pytest.mark.parametrize("duration", ["30", "30 days", "-1d", "d", "1y"])
def test_prune_needs_a_duration_with_a_unit(duration):
    result = pbatch(["jobs", "prune", "--older-than", duration], Path(os.environ["PBATCH_HOME"]))
    assert result.returncode == 2
    assert result.stderr == (
        "pbatch: error: --older-than takes a number and a unit (s, m, h, d, w), like 30d or "
        f"12h; not {duration!r}\n"
    )


STOP_AT_THE_END = """
import os, signal, sys
from personalize_batch.job import run as batch
from personalize_batch.job.params import JobParams
from personalize_batch.job.store import JobStore

real = batch.diagnose

def diagnose(*args, **kwargs):  # every output is committed: the job's last step
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)

batch.diagnose = diagnose
params = JobParams(solution=sys.argv[1], input=sys.argv[2], output=sys.argv[3],
                   job_name="late", workers=1)
record = batch.run_job(params, JobStore())
print(record["status"])
"""


def test_a_stop_after_the_last_output_leaves_an_active_job(solutions, tmp_path):
    """A SIGTERM between the last commit and the ACTIVE record found the default handler
    back: the process died and the finished job read CREATE FAILED ("process exited")."""
    done = subprocess.run(
        [sys.executable, "-c", STOP_AT_THE_END, str(solutions["sims"])]
        + [str(EXAMPLES / "items.json"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ACTIVE\n", "")
    assert JobStore().get("late")["status"] == "ACTIVE"
    assert (tmp_path / "out" / "items.json.out").exists()
