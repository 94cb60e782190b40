"""pbatch in pipelines and cron: a reader that stops early, a name taken by a stopped
job, what a stopped job leaves behind."""

from __future__ import annotations

import subprocess

import pytest
from conftest import EXAMPLES, PBATCH

from personalize_batch.jobs import JobStore


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
