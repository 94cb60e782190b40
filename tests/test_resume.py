"""`pbatch run --resume`: a job stopped at a random point (SIGKILL or SIGTERM), then
resumed, writes the bytes and the counts of an uninterrupted run; a job whose input or
solution changed, or whose output cannot be continued, is refused with the reason."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from conftest import EXAMPLES, PBATCH
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from personalize_batch.job.checkpoint import counts_json
from personalize_batch.job.counts import Counts
from personalize_batch.job.store import JobStore

COUNTS = ("linesRead", "linesAnswered", "linesWithErrors", "blankLinesSkipped", "unknownUsers")


def make_input(lines: int, seed: int) -> bytes:
    """Example users, shuffled, with blank and bad lines, a BOM and a last line without
    its newline."""
    rng = random.Random(seed)
    users = (EXAMPLES / "users.json").read_bytes().splitlines()
    out = []
    for k in range(lines):
        out.append(rng.choice(users))
        if k % 97 == 0:
            out.append(b"  ")
        if k % 101 == 0:
            out.append(b"not json")
    return b"\xef\xbb\xbf" + b"\n".join(out)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("resume-inputs")
    (folder / "a.json").write_bytes(make_input(6000, 1))
    (folder / "b.json").write_bytes(make_input(9000, 2))
    return folder


@pytest.fixture(scope="module")
def reference(inputs, solutions, tmp_path_factory) -> tuple[Path, dict]:
    """The uninterrupted run."""
    home = tmp_path_factory.mktemp("ref-home")
    out = tmp_path_factory.mktemp("ref-out")
    args = ["run", "-s", str(solutions["user-personalization"]), "-i", str(inputs)]
    result = pbatch(args + ["-o", str(out), "-q", "--job-name", "ref", "--workers", "1"], home)
    assert result.returncode == 3, result.stderr
    return out, JobStore(home).get("ref")


def pbatch(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PBATCH_HOME": str(home)}
    return subprocess.run(PBATCH + args, env=env, capture_output=True, text=True, timeout=120)


def lines_done(home: Path, name: str) -> int:
    """Input lines answered so far, from the job's checkpoint (0 before the first chunk)."""
    try:
        state = orjson.loads((home / "checkpoints" / f"{name}.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return -1
    return 1_000_000 * len(state["done"]) + ((state["current"] or {}).get("lines", 0))


def ready(home: Path, name: str, target: int) -> bool:
    """The checkpoint has passed `target`; for a job without one (target -1), its
    temporary output exists."""
    if target >= 0:
        return lines_done(home, name) >= target
    out = home.parent / "out"
    return out.exists() and any(n.endswith(".tmp") for n in os.listdir(out))


def start_and_stop(
    args, home, name, target: int, sig: int, delay: float, every_chunk: bool = True
) -> None:
    """Start `pbatch run`, stop it with `sig` once its checkpoint has passed `target`
    (input index * 1e6 + lines) and `delay` seconds more. `every_chunk`: the job writes
    a checkpoint after every chunk (not at most once a second), so a stop lands anywhere."""
    env = {**os.environ, "PBATCH_HOME": str(home)}
    if every_chunk:
        env["PBATCH_CHECKPOINT_SECONDS"] = "0"
    proc = subprocess.Popen(PBATCH + args + ["--job-name", name], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while proc.poll() is None and not ready(home, name, target):
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(sig)
    proc.wait(timeout=60)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(target=0, delay=0.0, sig=signal.SIGTERM, workers="1")  # stopped before any output
@given(
    target=st.sampled_from([0, 1024, 3000, 1_000_000, 1_002_048, 1_008_000]),
    delay=st.sampled_from([0.0, 0.01, 0.05]),
    sig=st.sampled_from([signal.SIGKILL, signal.SIGTERM]),
    workers=st.sampled_from(["1", "2"]),
)
def test_resume_after_a_stop_gives_the_bytes_of_an_uninterrupted_run(
    target, delay, sig, workers, inputs, solutions, reference, tmp_path_factory
):
    home = tmp_path_factory.mktemp("home")
    out = tmp_path_factory.mktemp("out")
    args = ["run", "-s", str(solutions["user-personalization"]), "-i", str(inputs)]
    args += ["-o", str(out), "-q", "--workers", workers]
    start_and_stop(args, home, "job", target, sig, delay)
    record = JobStore(home).get("job")
    if record["status"] == "CREATE FAILED":
        if sig == signal.SIGTERM:
            assert record["failureReason"] == "stopped by SIGTERM"
        result = pbatch(["run", "--resume", "job", "-q", "--workers", "2"], home)
        assert result.returncode == 3, result.stderr
    ref_out, ref_record = reference
    for name in ("a.json.out", "b.json.out"):
        assert (out / name).read_bytes() == (ref_out / name).read_bytes(), name
    assert sorted(os.listdir(out)) == ["a.json.out", "b.json.out"]  # no temp file left
    record = JobStore(home).get("job")
    assert record["status"] == "ACTIVE" and "resume" not in record
    assert {k: record[k] for k in COUNTS} == {k: ref_record[k] for k in COUNTS}
    assert not (home / "checkpoints" / "job.json").exists()


def stopped_job(
    tmp_path: Path, solutions, extra: list[str] = (), target: int = 1024
) -> tuple[Path, Path, Path]:
    """A job over a copy of the input, stopped by SIGTERM after its first chunk."""
    home, out = tmp_path / "home", tmp_path / "out"
    tmp_path.mkdir(exist_ok=True)
    src = tmp_path / "in.json"
    src.write_bytes(make_input(8000, 3))
    solution = tmp_path / "model.npz"
    shutil.copy(solutions["user-personalization"], solution)
    args = ["run", "-s", str(solution), "-i", str(src), "-o", str(out), "-q", "--workers", "1"]
    start_and_stop(args + list(extra), home, "job", target, signal.SIGTERM, 0.0)
    return home, src, solution


def test_a_stopped_job_keeps_its_temp_file_and_shows_it(solutions, tmp_path):
    home, _, _ = stopped_job(tmp_path, solutions)
    record = JobStore(home).get("job")
    assert record["status"] == "CREATE FAILED"
    kept = record["resume"]
    assert kept["checkpoint"] == str(home / "checkpoints" / "job.json")
    assert os.path.getsize(kept["temporaryFile"]) >= kept["bytesDone"] > 0
    assert kept["linesDone"] >= 1024
    assert Path(kept["temporaryFile"]).name.startswith(".in.json.out.")


def test_a_stop_between_timed_checkpoints_records_the_last_chunk(solutions, tmp_path):
    """Checkpoints are written at most once a second; a stop writes one for the chunks
    since, so the record and the checkpoint agree and the resume re-scores nothing twice."""
    home, out, src = tmp_path / "home", tmp_path / "out", tmp_path / "in.json"
    src.write_bytes(make_input(60000, 4))
    args = ["run", "-s", str(solutions["user-personalization"]), "-i", str(src), "-o", str(out)]
    start_and_stop(args + ["-q", "--workers", "1"], home, "job", -1, signal.SIGTERM, 0.3, False)
    record = JobStore(home).get("job")
    assert record["status"] == "CREATE FAILED"
    state = orjson.loads((home / "checkpoints" / "job.json").read_bytes())["current"]
    assert record["resume"]["linesDone"] == state["lines"] > 0
    assert os.path.getsize(record["resume"]["temporaryFile"]) == state["bytes"]
    result = pbatch(["run", "--resume", "job", "-q"], home)
    assert result.returncode == 3, result.stderr
    whole = tmp_path / "whole"
    args = ["run", "-s", str(solutions["user-personalization"]), "-i", str(src), "-o", str(whole)]
    assert pbatch(args + ["-q", "--job-name", "whole"], home).returncode == 3
    assert (out / "in.json.out").read_bytes() == (whole / "in.json.out").read_bytes()


def test_resume_refuses_a_changed_input_or_solution(solutions, tmp_path):
    home, src, solution = stopped_job(tmp_path, solutions)
    data = src.read_bytes()
    src.write_bytes(data + b'\n{"userId": "653"}')
    result = pbatch(["run", "--resume", "job"], home)
    assert result.returncode == 1
    assert f"refusing to resume: input {src} changed since the job started" in result.stderr
    assert "size" in result.stderr and "modified" in result.stderr
    src.write_bytes(data)  # the same bytes, a new mtime: still refused
    result = pbatch(["run", "--resume", "job"], home)
    assert result.returncode == 1 and "(modified)" in result.stderr
    record = JobStore(home).get("job")
    assert record["status"] == "CREATE FAILED" and os.path.exists(record["resume"]["temporaryFile"])

    home, src, solution = stopped_job(tmp_path / "2", solutions)
    shutil.copy(solutions["popularity-count"], solution)
    result = pbatch(["run", "--resume", "job"], home)
    assert result.returncode == 1
    assert "refusing to resume: the solution changed" in result.stderr


def test_what_cannot_be_resumed(solutions, tmp_path):
    home, _, _ = stopped_job(tmp_path, solutions, ["--compress", "gzip"], target=-1)
    result = pbatch(["run", "--resume", "job"], home)
    assert result.returncode == 1
    assert "--compress gzip outputs are not resumable" in result.stderr
    assert [n for n in os.listdir(tmp_path / "out") if n.endswith(".tmp")] == []
    result = pbatch(["run", "--resume", "nope"], home)
    assert (result.returncode, result.stderr) == (
        1,
        "pbatch: error: no job named 'nope'\n",
    )
    result = pbatch(["run", "--resume", "job", "-n", "3"], home)
    assert result.returncode == 2 and "not with --num-results" in result.stderr


def test_resume_with_events_needs_the_same_events(solutions, tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("USER_ID,ITEM_ID,TIMESTAMP\n653,0770828,2000000000\nnew,1670345,2000000001\n")
    home, _, _ = stopped_job(tmp_path / "a", solutions, ["--events", str(events)])
    events.write_text("USER_ID,ITEM_ID,TIMESTAMP\n653,1300854,2000000000\n")
    result = pbatch(["run", "--resume", "job"], home)
    assert result.returncode == 1
    assert f"refusing to resume: the events file {events} changed" in result.stderr
    # unchanged events: the resumed output is that of an uninterrupted run with them
    home, src, solution = stopped_job(tmp_path / "b", solutions, ["--events", str(events)])
    assert pbatch(["run", "--resume", "job", "-q"], home).returncode in (0, 3)
    ref = tmp_path / "ref"
    args = ["run", "-s", str(solution), "-i", str(src), "-o", str(ref), "-q"]
    assert pbatch([*args, "--events", str(events)], tmp_path / "h2").returncode in (0, 3)
    out = tmp_path / "b" / "out" / "in.json.out"
    assert out.read_bytes() == (ref / "in.json.out").read_bytes()


@pytest.mark.parametrize("created", [False, True])
def test_a_kill_around_the_temp_files_creation_leaves_nothing_behind(created, solutions, tmp_path):
    """The checkpoint names a temp file before it is created, so a `kill -9` just before
    or just after the creation leaves no temp file that a resume would not take over."""
    home, src, _ = stopped_job(tmp_path, solutions)
    path = home / "checkpoints" / "job.json"
    state = orjson.loads(path.read_bytes())
    cur = state["current"]
    assert Path(cur["temp"]).exists()
    # as the checkpoint stood when the file was named: no line answered yet
    cur.update(lines=0, bytes=0, counts=counts_json(Counts()))
    cur["base"] = {"read": 0, "blank": 0}
    if created:
        Path(cur["temp"]).write_bytes(b"")
    else:
        Path(cur["temp"]).unlink()
    path.write_bytes(orjson.dumps(state))
    result = pbatch(["run", "--resume", "job", "-q"], home)
    assert result.returncode == 3, result.stderr
    out = tmp_path / "out"
    whole = tmp_path / "whole"
    args = ["run", "-s", str(solutions["user-personalization"]), "-i", str(src), "-o", str(whole)]
    assert pbatch(args + ["-q", "--job-name", "whole"], home).returncode == 3
    assert os.listdir(out) == ["in.json.out"]  # no temp file left
    assert (out / "in.json.out").read_bytes() == (whole / "in.json.out").read_bytes()
    jobs = JobStore(home)
    assert [jobs.get("job")[k] for k in COUNTS] == [jobs.get("whole")[k] for k in COUNTS]
