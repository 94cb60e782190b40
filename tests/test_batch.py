"""The job's promises: one output line per non-blank input line, in order; outputs that
appear whole or not at all; every kind of input path."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time

import orjson
from conftest import EXAMPLES, PBATCH, run_on_fifo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_batch.job.answering import answer_stream
from personalize_batch.job.counts import Counts
from personalize_batch.job.params import JobParams
from personalize_batch.job.reading import read_numbered_chunks
from personalize_batch.job.run import run_job
from personalize_batch.job.scoring import Answerer
from personalize_batch.job.store import FAILED, JobStore
from personalize_batch.solution import load

line_kinds = st.one_of(
    st.sampled_from([b'{"userId": "653"}', b'{"userId": "1984"}', b'{"userId": "nobody"}']),
    st.sampled_from([b"", b"   ", b"\t\r", b" \t "]),  # blank
    st.sampled_from([b"{", b"[]", b'{"userId": 1}', b'{"userId": ""}']),  # bad
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line_kinds, max_size=60), chunk=st.integers(1, 7))
def test_output_line_i_answers_input_line_i(solutions, lines, chunk):
    import io

    answerer = Answerer(load(str(solutions["user-personalization"])), 3)
    data = b"\n".join(lines) + (b"\n" if lines else b"")
    out = io.BytesIO()
    counts = Counts()
    answer_stream(io.BytesIO(data), out, answerer, counts, chunk)
    outputs = out.getvalue().splitlines()
    seen = [lines[0].removeprefix(b"\xef\xbb\xbf"), *lines[1:]] if lines else []
    non_blank = [ln for ln in seen if ln.strip(b" \t\r\n")]
    assert len(outputs) == len(non_blank) == counts.read
    assert counts.blank == len(lines) - len(non_blank)
    for raw, produced in zip(non_blank, outputs, strict=True):
        rec = orjson.loads(produced)
        assert list(rec) == ["input", "output", "error"]
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            assert rec["input"] == obj
        else:
            assert rec["error"] is not None and isinstance(rec["input"], str)
    # chunking never changes the bytes
    whole = io.BytesIO()
    answer_stream(io.BytesIO(data), whole, answerer, Counts(), 10_000)
    assert whole.getvalue() == out.getvalue()


def _run(solution, *args, env=None, input_bytes=None):
    return subprocess.run(
        [*PBATCH, "run", "-s", str(solution), "-q", *args],
        capture_output=True,
        input=input_bytes,
        env=env,
    )


def test_stdin_to_stdout(solutions):
    src = (EXAMPLES / "users.json").read_bytes()
    proc = _run(solutions["user-personalization"], "-i", "-", "-n", "4", input_bytes=src)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 20
    assert proc.stderr == b""


def test_default_output_is_beside_the_input(solutions, tmp_path):
    src = tmp_path / "batch.json"
    src.write_bytes((EXAMPLES / "items.json").read_bytes())
    assert _run(solutions["sims"], "-i", str(src)).returncode == 0
    assert len((tmp_path / "batch.json.out").read_bytes().splitlines()) == 12


def test_directory_gzip_input_and_compressed_output(solutions, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    users = (EXAMPLES / "users.json").read_bytes()
    (folder / "a.json").write_bytes(users)
    with gzip.open(folder / "b.json.gz", "wb") as f:
        f.write(users)
    (folder / ".hidden.json").write_bytes(b"not read\n")
    (folder / "old.json.out").write_bytes(b"not read\n")
    out = tmp_path / "out"
    proc = _run(solutions["user-personalization"], "-i", str(folder), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == ["a.json.out", "b.json.gz.out"]
    assert (out / "a.json.out").read_bytes() == (out / "b.json.gz.out").read_bytes()
    proc = _run(
        solutions["user-personalization"], "-i", str(folder), "-o", str(out), "--compress", "gzip"
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        gzip.decompress((out / "a.json.out.gz").read_bytes()) == (out / "a.json.out").read_bytes()
    )


def test_failure_midway_leaves_no_output_and_old_output_untouched(solutions, tmp_path):
    src = tmp_path / "users.json.gz"
    full = gzip.compress((EXAMPLES / "users.json").read_bytes() * 500)
    src.write_bytes(full[: len(full) // 2])  # a truncated gzip stream fails mid-read
    out = tmp_path / "out"
    out.mkdir()
    old = out / "users.json.gz.out"
    old.write_bytes(b"previous complete output\n")
    proc = _run(
        solutions["user-personalization"], "-i", str(src), "-o", str(out), "--job-name", "midway"
    )
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("pbatch: error: job midway failed:")
    assert b"Traceback" not in proc.stderr
    assert old.read_bytes() == b"previous complete output\n"
    assert os.listdir(out) == ["users.json.gz.out"]  # no temp file left either
    record = JobStore().get("midway")
    assert record["status"] == FAILED and "failed after" in record["failureReason"]


def test_sigterm_stops_cleanly(solutions, tmp_path, pbatch_home):
    out = tmp_path / "out"
    proc, fifo = run_on_fifo(
        solutions["popularity-count"],
        tmp_path,
        *("-o", str(out), "-q", "--job-name", "term"),
        stderr=subprocess.PIPE,
    )
    with open(fifo, "wb") as w:
        w.write(b'{"userId": "653"}\n' * 3000)
        w.flush()
        deadline = time.monotonic() + 30
        while JobStore(pbatch_home).get("term")["status"] != "IN PROGRESS":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert b"Traceback" not in err
    record = JobStore(pbatch_home).get("term")
    assert record["status"] == FAILED and record["failureReason"] == "stopped by SIGTERM"
    assert not out.exists() or os.listdir(out) == []


def test_same_input_same_bytes(solutions, tmp_path):
    for recipe in solutions:
        outs = []
        for k in range(2):
            rec = run_job(
                JobParams(
                    solution=str(solutions[recipe]),
                    input=str(EXAMPLES / "users.json")
                    if recipe not in ("sims", "personalized-ranking")
                    else str(EXAMPLES / ("items.json" if recipe == "sims" else "ranking.json")),
                    output=str(tmp_path / f"{recipe}{k}"),
                    chunk_lines=3 + k * 100,
                ),
                JobStore(),
            )
            outs.append(open(rec["outputs"][0], "rb").read())
        assert outs[0] == outs[1]


def test_long_lines_make_shorter_chunks_not_bigger_ones():
    """A chunk holds up to `chunk_lines` lines or that many KiB, so a file of long lines
    does not put thousands of them in memory at once; every line still comes once."""
    import io

    line = b'{"userId": "' + b"u" * 300_000 + b'"}\n'
    chunks = list(read_numbered_chunks(io.BytesIO(line * 10 + b"\n" + line), Counts(), 1024))
    assert [n for _, n in chunks] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 12]]
    assert all(raw == line and not long for c, _ in chunks for raw, long in c)
