"""aws-CLI-shaped commands (A.15): asynchronous jobs that return their ARN at once, run
in a detached process that outlives its terminal, show progress, and are reported
CREATE FAILED when their process dies; the shorthand, JSON and doc spellings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import orjson
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, PBATCH_SCRIPT

from personalize_batch.cli import main
from personalize_batch.cli.shorthand import parse_structure
from personalize_batch.errors import UsageError
from personalize_batch.job.params import JobParams
from personalize_batch.job.run import start_job
from personalize_batch.job.store import ACTIVE, FAILED, IN_PROGRESS, JobStore


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str]):
    return runner.invoke(main, args, catch_exceptions=False)


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "s3DataSource={path=s3://b/in/users.json}",
            {"s3DataSource": {"path": "s3://b/in/users.json"}},
        ),
        ("s3DataSource=s3://b/in.json", {"s3DataSource": "s3://b/in.json"}),  # older docs
        (
            "s3DataSource={path=s3://b/k, kmsKeyArn=arn:aws:kms:us-east-1:1:key/x}",
            {"s3DataSource": {"path": "s3://b/k", "kmsKeyArn": "arn:aws:kms:us-east-1:1:key/x"}},
        ),
        (
            "itemExplorationConfig={explorationWeight=0.3, explorationItemAgeCutOff=30}",
            {
                "itemExplorationConfig": {
                    "explorationWeight": "0.3",
                    "explorationItemAgeCutOff": "30",
                }
            },
        ),
        (
            's3DataSource={\n "path": "s3://b/x",\n "kmsKeyArn": ""\n}',
            {"s3DataSource": {"path": "s3://b/x", "kmsKeyArn": ""}},
        ),
        ('{"s3DataSource": {"path": "a b.json"}}', {"s3DataSource": {"path": "a b.json"}}),
        ("s3DataSource={path='in,1.json'}", {"s3DataSource": {"path": "in,1.json"}}),
        ("a=[x, 'y,z'],b={}", {"a": ["x", "y,z"], "b": {}}),
    ],
)
def test_shorthand(text, expected):
    assert parse_structure(text, "--job-input") == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("s3DataSource", "expected key=value at character 13"),
        ("s3DataSource={path=x", "expected ',' or '}'"),
        ("s3DataSource={path='x}", "unclosed quote"),
        ('{"s3DataSource": ', "invalid JSON"),
        ("file:///nonexistent/request.json", "cannot read /nonexistent/request.json"),
    ],
)
def test_shorthand_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_structure(text, "--job-input")


def test_three_spellings_run_like_pbatch_run(solutions, runner, tmp_path):
    model = str(solutions["user-personalization"])
    users = str(EXAMPLES / "users.json")
    request = tmp_path / "output.json"
    request.write_text(json.dumps({"s3DataDestination": {"path": str(tmp_path / "json")}}))
    spellings = {
        "shorthand": [
            "--job-input",
            f"s3DataSource={{path={users}}}",
            "--job-output",
            f"s3DataDestination={{path={tmp_path / 'shorthand'}}}",
        ],
        "json": [
            "--job-input",
            json.dumps({"s3DataSource": {"path": users}}),
            "--job-output",
            f"file://{request}",
        ],
        "docs": [
            "--jobInput",
            f"s3DataSource={users}",
            "--jobOutput",
            f"s3DataSource={tmp_path / 'docs'}/",
        ],
    }
    for name, args in spellings.items():
        result = invoke(
            runner,
            [
                "create-batch-inference-job",
                "--job-name",
                name,
                "--solution-version-arn",
                model,
                "--num-results",
                "4",
                "--role-arn",
                "arn:aws:iam::123456789012:role/R",
                "--region",
                "us-west-2",
                *args,
            ],
        )
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout) == {
            "batchInferenceJobArn": f"arn:pbatch:local:batch-inference-job/{name}"
        }
    for name in spellings:
        result = invoke(
            runner,
            [
                "wait",
                "batch-inference-job-active",
                "--batch-inference-job-arn",
                name,
                "--delay",
                "0.1",
            ],
        )
        assert (result.exit_code, result.stdout) == (0, "")
    expected = invoke(runner, ["run", "-s", model, "-i", users, "-o", "-", "-n", "4", "-q"]).stdout
    for name in spellings:
        assert (tmp_path / name / "users.json.out").read_text() == expected
    described = orjson.loads(
        invoke(
            runner,
            [
                "describe-batch-inference-job",
                "--batch-inference-job-arn",
                "arn:pbatch:local:batch-inference-job/docs",
            ],
        ).stdout
    )["batchInferenceJob"]
    assert described["status"] == ACTIVE
    assert described["roleArn"] == "arn:aws:iam::123456789012:role/R"
    assert (described["linesRead"], described["numResults"]) == (20, 4)


def test_detached_job_survives_hangup_shows_progress_and_finishes(solutions, tmp_path):
    fifo = tmp_path / "in.json"
    os.mkfifo(fifo)  # the job reads what we write, when we write it
    out = tmp_path / "out"
    create = " ".join(
        [
            *PBATCH_SCRIPT,
            "create-batch-inference-job",
            "--job-name",
            "detached",
            "--solution-version-arn",
            str(solutions["popularity-count"]),
            "--job-input",
            f"'s3DataSource={{path={fifo}}}'",
            "--job-output",
            f"'s3DataDestination={{path={out}}}'",
        ]
    )
    # a "terminal": a shell in its own session; the job is created from it, then the
    # terminal hangs up (SIGHUP to its whole process group) while the job runs
    terminal = subprocess.Popen(
        ["bash", "-c", f"{create} && exec sleep 60"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
        # a terminal's shell dies of SIGHUP, even where the tests run under nohup
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    started = time.monotonic()
    arn = json.loads(
        terminal.stdout.readline() + terminal.stdout.readline() + terminal.stdout.readline()
    )["batchInferenceJobArn"]
    assert time.monotonic() - started < 20  # at once, not after the job
    store = JobStore()
    wait_for(lambda: store.get(arn)["status"] == IN_PROGRESS, what="IN PROGRESS")
    worker = store.owner("detached")
    assert os.getsid(worker) == worker != os.getsid(terminal.pid)
    os.killpg(terminal.pid, signal.SIGHUP)
    assert terminal.wait(10) == -signal.SIGHUP
    with open(fifo, "wb") as pipe:
        pipe.write(b"{}\n" * 1500)
        pipe.flush()
        time.sleep(2.5)  # progress is recorded every 2 s
        pipe.write(b'{"userId": "653"}\n' * 1500)
        pipe.flush()

        def progressed() -> dict | None:
            record = store.get(arn)
            return record if record.get("linesRead") else None

        record = wait_for(progressed, what="progress")
        assert record["status"] == IN_PROGRESS and 1000 <= record["linesRead"] <= 3000
        pipe.write(b"{}\n" * 500)
    done = subprocess.run(
        [
            *PBATCH_SCRIPT,
            "wait",
            "batch-inference-job-active",
            "--batch-inference-job-arn",
            arn,
            "--delay",
            "0.1",
        ],
        timeout=60,
    )
    assert done.returncode == 0
    record = store.get(arn)
    assert (record["status"], record["linesRead"], record["linesAnswered"]) == (ACTIVE, 3500, 3500)
    assert (out / "in.json.out").read_bytes().count(b"\n") == 3500


def test_killed_job_is_create_failed_and_wait_exits_255(solutions, tmp_path):
    fifo = tmp_path / "in.json"
    os.mkfifo(fifo)
    created = subprocess.run(
        [
            *PBATCH_SCRIPT,
            "create-batch-inference-job",
            "--job-name",
            "doomed",
            "--solution-version-arn",
            str(solutions["popularity-count"]),
            "--job-input",
            f"s3DataSource={{path={fifo}}}",
            "--job-output",
            f"s3DataDestination={{path={tmp_path}}}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    store = JobStore()
    wait_for(lambda: store.get("doomed")["status"] == IN_PROGRESS, what="IN PROGRESS")
    os.kill(store.owner("doomed"), signal.SIGKILL)
    waited = subprocess.run(
        [
            *PBATCH_SCRIPT,
            "wait",
            "batch-inference-job-active",
            "--batch-inference-job-arn",
            "doomed",
            "--delay",
            "0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert waited.returncode == 255
    assert waited.stdout == ""
    assert waited.stderr == (
        "pbatch: error: Waiter BatchInferenceJobActive failed: Waiter encountered a terminal "
        'failure state: For expression "batchInferenceJob.status" we matched expected path: '
        '"CREATE FAILED" (failureReason: process exited)\n'
    )
    record = store.get("doomed")
    assert (record["status"], record["failureReason"]) == (FAILED, "process exited")
    assert not list(tmp_path.glob("*.out"))


def test_refusals_listing_and_waiter_limits(solutions, runner, tmp_path):
    model = str(solutions["sims"])
    base = [
        "create-batch-inference-job",
        "--solution-version-arn",
        model,
        "--job-output",
        f"s3DataDestination={{path={tmp_path}}}",
    ]
    users = f"s3DataSource={{path={EXAMPLES / 'users.json'}}}"
    cases = {
        "bad shorthand": (
            ["--job-name", "a", "--job-input", "s3DataSource"],
            2,
            "--job-input: expected key=value",
        ),
        "mismatch": (
            ["--job-name", "a", "--job-input", users],
            2,
            "does not fit the sims solution: none of the 20 lines of ",
        ),
        "bad name": (["--job-name", "a b", "--job-input", users], 2, "invalid job name"),
        "no solution": (
            [
                "--job-name",
                "a",
                "--job-input",
                users,
                "--solution-version-arn",
                str(tmp_path / "gone.npz"),
            ],
            1,
            "solution version not found",
        ),
    }
    for name, (args, code, message) in cases.items():
        result = invoke(runner, [*base, *args])
        assert result.exit_code == code, name
        assert result.stdout == ""
        assert result.stderr.startswith("pbatch: error: ") and message in result.stderr, name
    assert orjson.loads(invoke(runner, ["list-batch-inference-jobs"]).stdout) == {
        "batchInferenceJobs": []
    }
    result = invoke(runner, ["describe-batch-inference-job", "--batch-inference-job-arn", "x"])
    assert (result.exit_code, result.stderr) == (
        1,
        "pbatch: error: no batch inference job named 'x'\n",
    )

    store = JobStore()
    for i in range(3):  # PENDING jobs owned by this (living) process
        start_job(
            JobParams(solution=model, input="in.json", output=str(tmp_path), job_name=f"p-{i}"),
            store,
        )
    first = orjson.loads(
        invoke(runner, ["list-batch-inference-jobs", "--max-items", "2", "--page-size", "1"]).stdout
    )
    assert [j["jobName"] for j in first["batchInferenceJobs"]] == ["p-2", "p-1"]
    rest = orjson.loads(
        invoke(runner, ["list-batch-inference-jobs", "--starting-token", first["NextToken"]]).stdout
    )
    assert rest == {
        "batchInferenceJobs": [{k: v for k, v in store.list()["batchInferenceJobs"][2].items()}]
    }
    result = invoke(runner, ["list-batch-inference-jobs", "--starting-token", "abc"])
    assert result.exit_code == 2 and "invalid nextToken" in result.stderr
    result = invoke(
        runner,
        [
            "wait",
            "batch-inference-job-active",
            "--batch-inference-job-arn",
            "p-0",
            "--delay",
            "0.05",
            "--max-attempts",
            "3",
        ],
    )
    assert (result.exit_code, result.stderr) == (
        255,
        "pbatch: error: Waiter BatchInferenceJobActive failed: Max attempts exceeded\n",
    )


def test_run_takes_solution_arns_and_refuses_a_replaced_file(solutions, runner, tmp_path):
    model = tmp_path / "model.npz"
    shutil.copy(solutions["popularity-count"], model)
    arn = f"arn:pbatch:local:solution-version/{model}"
    users = str(EXAMPLES / "popularity.json")
    ok = invoke(runner, ["run", "-s", arn, "-i", users, "-o", "-", "-q", "--job-name", "by-arn"])
    assert ok.exit_code == 0
    recorded = JobStore().get("by-arn")["solutionVersionArn"]
    assert recorded.startswith(arn + "@sha256:")
    shutil.copy(solutions["sims"], model)  # a new model at the same path
    result = invoke(runner, ["run", "-s", recorded, "-i", users, "-o", "-", "--job-name", "stale"])
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        "solution version not found" in result.stderr and "the file was replaced" in result.stderr
    )
    assert JobStore().get("stale")["status"] == FAILED


def test_a_stopped_detached_job_fails_cleanly(solutions, tmp_path, pbatch_home):
    """SIGTERM to an asynchronous job's process: CREATE FAILED, a one-line reason in its
    log (no traceback), no output left behind."""
    fifo = tmp_path / "in.json"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    subprocess.run(
        [
            *PBATCH_SCRIPT,
            "create-batch-inference-job",
            "--job-name",
            "stopped",
            "--solution-version-arn",
            str(solutions["user-personalization"]),
            "--job-input",
            f"s3DataSource={{path={fifo}}}",
            "--job-output",
            f"s3DataDestination={{path={out}}}",
        ],
        check=True,
        capture_output=True,
    )
    store = JobStore()
    with open(fifo, "wb") as pipe:
        pipe.write(b'{"userId": "653"}\n' * 100)
        pipe.flush()
        wait_for(lambda: store.get("stopped")["status"] == IN_PROGRESS, what="IN PROGRESS")
        os.kill(store.owner("stopped"), signal.SIGTERM)
        record = wait_for(
            lambda: (r := store.get("stopped"))["status"] == "CREATE FAILED" and r,
            what="CREATE FAILED",
        )
    assert record["failureReason"] == "stopped by SIGTERM"
    log = (pbatch_home / "logs" / "stopped.log").read_text()
    assert "Traceback" not in log and "stopped by SIGTERM" in log
    assert not out.exists() or not any(out.iterdir())
