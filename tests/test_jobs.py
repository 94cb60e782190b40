"""The job store: records shaped like Personalize's, statuses that tell the truth,
concurrent runs that do not block or lose each other."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson
import pytest
from conftest import EXAMPLES, PBATCH, run_on_fifo

from personalize_batch.errors import JobFailed, UsageError
from personalize_batch.job.params import JobParams
from personalize_batch.job.run import run_job
from personalize_batch.job.store import ACTIVE, FAILED, IN_PROGRESS, JobStore, check_name


def test_name_rules():
    for good in ("a", "A1", "job-2_x", "x" * 63):
        assert check_name(good) == good
    for bad in ("", "-a", "_a", "a b", "x" * 64, "a/b", "é"):
        with pytest.raises(UsageError):
            check_name(bad)


def test_record_of_a_successful_job(solutions, tmp_path):
    store = JobStore()
    record = run_job(
        JobParams(
            solution=str(solutions["user-personalization"]),
            input=str(EXAMPLES / "bad.json"),
            output=str(tmp_path),
            job_name="rec-1",
            num_results=7,
        ),
        store,
    )
    assert record["status"] == ACTIVE
    assert record["jobName"] == "rec-1"
    assert record["batchInferenceJobArn"] == "arn:pbatch:local:batch-inference-job/rec-1"
    assert record["solutionVersionArn"].startswith("arn:pbatch:local:solution-version/")
    assert record["solutionVersionArn"].endswith(
        "@sha256:" + store.get("rec-1")["solutionVersionArn"].rsplit(":", 1)[1]
    )
    assert record["numResults"] == 7
    assert record["jobInput"] == {"s3DataSource": {"path": str(EXAMPLES / "bad.json")}}
    assert record["jobOutput"] == {"s3DataDestination": {"path": str(tmp_path)}}
    assert (
        record["linesRead"],
        record["linesAnswered"],
        record["linesWithErrors"],
        record["blankLinesSkipped"],
    ) == (7, 2, 5, 1)
    assert record["durationSeconds"] >= 0
    assert record["creationDateTime"] <= record["lastUpdatedDateTime"]
    assert record["outputs"] == [str(tmp_path / "bad.json.out")]
    assert store.get("rec-1") == record
    assert store.get(record["batchInferenceJobArn"]) == record


def test_failed_job_keeps_its_reason(solutions, tmp_path):
    store = JobStore()
    with pytest.raises(JobFailed, match="input not found"):
        run_job(
            JobParams(
                solution=str(solutions["sims"]),
                input=str(tmp_path / "nope.json"),
                job_name="fail-1",
            ),
            store,
        )
    record = store.get("fail-1")
    assert record["status"] == FAILED
    assert "input not found" in record["failureReason"]


def test_list_filters_and_pages(solutions, tmp_path):
    store = JobStore()
    for k in range(5):
        run_job(
            JobParams(
                solution=str(solutions["popularity-count"]),
                input=str(EXAMPLES / "popularity.json"),
                output=str(tmp_path),
                job_name=f"pop-{k}",
            ),
            store,
        )
    with pytest.raises(JobFailed):
        run_job(JobParams(solution=str(solutions["sims"]), input="nope", job_name="s-x"), store)
    everything = store.list()
    assert [j["jobName"] for j in everything["batchInferenceJobs"]] == [
        "s-x",
        "pop-4",
        "pop-3",
        "pop-2",
        "pop-1",
        "pop-0",
    ]
    assert everything["nextToken"] is None
    assert set(everything["batchInferenceJobs"][0]) == {
        "batchInferenceJobArn",
        "jobName",
        "status",
        "creationDateTime",
        "lastUpdatedDateTime",
        "failureReason",
        "solutionVersionArn",
        "batchInferenceJobMode",  # a member of boto3's BatchInferenceJobSummary too
    }
    page = store.list(max_results=4)
    assert len(page["batchInferenceJobs"]) == 4 and page["nextToken"]
    rest = store.list(max_results=4, next_token=page["nextToken"])
    assert [j["jobName"] for j in rest["batchInferenceJobs"]] == ["pop-1", "pop-0"]
    assert len(store.list(solution=str(solutions["popularity-count"]))["batchInferenceJobs"]) == 5
    assert [j["jobName"] for j in store.list(status=FAILED)["batchInferenceJobs"]] == ["s-x"]


def test_dead_process_is_reported_failed(pbatch_home):
    store = JobStore()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.create({"jobName": "ghost", "solutionVersionArn": "arn:x"})
    store.db.execute("UPDATE jobs SET pid = ?, pid_start = NULL WHERE name = 'ghost'", (proc.pid,))
    store.update("ghost", status=IN_PROGRESS)
    record = store.get("ghost")
    assert record["status"] == FAILED
    assert record["failureReason"] == "process exited"


def test_four_concurrent_runs_leave_four_complete_records(solutions, tmp_path, pbatch_home):
    env = {**os.environ, "PBATCH_HOME": str(pbatch_home)}
    big = tmp_path / "users.json"
    lines = (EXAMPLES / "users.json").read_bytes()
    big.write_bytes(lines * 200)
    procs = [
        subprocess.Popen(
            [
                *PBATCH,
                "run",
                "-s",
                str(solutions["user-personalization"]),
                "-i",
                str(big),
                "-o",
                str(tmp_path / f"out{k}"),
                "-q",
                "--job-name",
                f"conc-{k}",
            ],
            env=env,
            stderr=subprocess.PIPE,
        )
        for k in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    listing = subprocess.run([*PBATCH, "jobs", "list"], env=env, capture_output=True, check=True)
    jobs = orjson.loads(listing.stdout)["batchInferenceJobs"]
    assert sorted(j["jobName"] for j in jobs) == [f"conc-{k}" for k in range(4)]
    expected = (tmp_path / "out0" / "users.json.out").read_bytes()
    for k in range(4):
        rec = orjson.loads(
            subprocess.run(
                [*PBATCH, "jobs", "describe", f"conc-{k}"], env=env, capture_output=True, check=True
            ).stdout
        )
        job = rec["batchInferenceJob"]
        assert job["status"] == ACTIVE
        assert job["linesRead"] == job["linesAnswered"] == 4000
        assert (tmp_path / f"out{k}" / "users.json.out").read_bytes() == expected


def test_killed_run_is_reported_failed_and_leaves_no_output(solutions, tmp_path, pbatch_home):
    env = {**os.environ, "PBATCH_HOME": str(pbatch_home)}
    out = tmp_path / "out"
    proc, fifo = run_on_fifo(
        solutions["popularity-count"],
        tmp_path,
        *("-o", str(out), "-q", "--job-name", "killed"),
        env=env,
    )
    with open(fifo, "wb") as w:
        w.write(b'{"userId": "653"}\n' * 5000)
        w.flush()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rec = JobStore(pbatch_home).get("killed")
            if rec["status"] == IN_PROGRESS:
                break
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    rec = JobStore(pbatch_home).get("killed")
    assert rec["status"] == FAILED and rec["failureReason"] == "process exited"
    assert not (out / "in.json.out").exists()
