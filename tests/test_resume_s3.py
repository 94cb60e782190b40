"""`pbatch run --resume` with an S3 output: the output is a multipart upload whose parts
end at chunk boundaries, named in the checkpoint. A job stopped at a random point
(SIGKILL or SIGTERM), then resumed, writes the object an uninterrupted run writes; a
stop keeps the upload's completed parts (pending, named in the record) and a resume
completes it; an upload aborted meanwhile is refused with the reason."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import PBATCH
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from s3server import start_weed
from test_resume import COUNTS, make_input, pbatch, start_and_stop

from personalize_batch import storage as pio
from personalize_batch.job.checkpoint import check_upload
from personalize_batch.job.store import JobStore

PART = 5 << 20  # S3's (and SeaweedFS's) minimum part size: the tests' part size


@pytest.fixture
def small_parts(monkeypatch) -> int:
    monkeypatch.setenv("PBATCH_S3_PART_SIZE", str(PART))
    return PART


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    """A folder: a small input (one small part), then a big one (several parts)."""
    folder = tmp_path_factory.mktemp("s3-resume-input")
    (folder / "0.json").write_bytes(make_input(300, 6))
    (folder / "a.json").write_bytes(make_input(9000, 5))
    return folder


def run_args(solutions, src: Path, out: str) -> list[str]:
    """100 results a line: an output of several 5 MiB parts."""
    solution = str(solutions["user-personalization"])
    return ["run", "-s", solution, "-i", str(src), "-o", out, "-q", "-n", "100", "--workers", "1"]


@pytest.fixture(scope="module")
def reference(big_input, solutions, tmp_path_factory) -> tuple[dict[str, bytes], dict]:
    """The uninterrupted run (to a local folder: the same bytes as to S3)."""
    home = tmp_path_factory.mktemp("s3-ref-home")
    out = tmp_path_factory.mktemp("s3-ref-out")
    result = pbatch([*run_args(solutions, big_input, str(out)), "--job-name", "ref"], home)
    assert result.returncode == 3, result.stderr
    data = {name: (out / name).read_bytes() for name in ("0.json.out", "a.json.out")}
    assert len(data["a.json.out"]) > 3 * PART  # several parts, and a last one
    return data, JobStore(home).get("ref")


def uploads(client: Any, bucket: str, prefix: str) -> list[tuple[str, str]]:
    """(key, upload id) of the pending multipart uploads under `prefix`."""
    listed = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [(u["Key"], u["UploadId"]) for u in listed if u["Key"].startswith(prefix)]


def checkpoint(home: Path, name: str) -> dict:
    return orjson.loads((home / "checkpoints" / f"{name}.json").read_bytes())


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(target=1_000_001, delay=0.0, sig=signal.SIGTERM)  # stopped with completed parts
@example(target=0, delay=0.0, sig=signal.SIGTERM)  # stopped before any part
@given(
    target=st.sampled_from([0, 100, 1_000_000, 1_000_001, 1_003_000, 1_006_000]),
    delay=st.sampled_from([0.0, 0.02, 0.1]),
    sig=st.sampled_from([signal.SIGKILL, signal.SIGTERM]),
)
def test_resume_after_a_stop_gives_the_object_of_an_uninterrupted_run(
    target,
    delay,
    sig,
    big_input,
    solutions,
    reference,
    s3_env,
    s3_client,
    s3_bucket,
    small_parts,
    tmp_path_factory,
):
    home = tmp_path_factory.mktemp("home")
    prefix = f"{uuid.uuid4().hex}/"
    key = prefix + "a.json.out"
    args = run_args(solutions, big_input, f"s3://{s3_bucket}/{prefix}")
    # target: 1e6 x inputs done + input lines covered by completed parts of the next
    start_and_stop(args, home, "job", target, sig, delay)
    record = JobStore(home).get("job")
    if record["status"] == "CREATE FAILED":
        state = checkpoint(home, "job")["current"]
        if sig == signal.SIGTERM:
            assert record["failureReason"] == "stopped by SIGTERM"
            kept = record["resume"].get("multipartUpload")
            # completed parts are kept, named in the record; an upload without one is not
            if kept is None:
                assert uploads(s3_client, s3_bucket, prefix) == []
            else:
                assert kept["url"] == f"s3://{s3_bucket}/{key}"
                assert kept["partsDone"] == len(state["parts"]) >= 1
                assert uploads(s3_client, s3_bucket, prefix) == [(key, kept["uploadId"])]
                assert record["resume"]["linesDone"] == state["lines"] > 0
                assert record["resume"]["bytesDone"] == state["bytes"] >= PART
        if state is not None:  # parts are cut at chunk boundaries, at least PART bytes
            assert all(p["Size"] >= PART for p in state.get("parts", []))
        result = pbatch(["run", "--resume", "job", "-q", "--workers", "2"], home)
        assert result.returncode == 3, result.stderr
    ref_bytes, ref_record = reference
    for name, data in ref_bytes.items():
        got = s3_client.get_object(Bucket=s3_bucket, Key=prefix + name)["Body"].read()
        assert got == data, name
    # the kept upload was completed; kill -9 right after an upload was created, before
    # the checkpoint named it, may leave that one behind, empty (as for any killed job)
    for key_, upload_id in uploads(s3_client, s3_bucket, prefix):
        assert sig == signal.SIGKILL, key_
        listed = s3_client.list_parts(Bucket=s3_bucket, Key=key_, UploadId=upload_id)
        assert listed.get("Parts", []) == []
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)["Contents"]
    assert sorted(o["Key"] for o in listed) == [prefix + "0.json.out", key]
    record = JobStore(home).get("job")
    assert record["status"] == "ACTIVE" and "resume" not in record
    assert {k: record[k] for k in COUNTS} == {k: ref_record[k] for k in COUNTS}
    assert not (home / "checkpoints" / "job.json").exists()


def test_resume_is_refused_when_the_upload_is_gone(
    big_input, solutions, s3_env, s3_client, s3_bucket, small_parts, tmp_path
):
    """A lifecycle rule (AbortIncompleteMultipartUpload) or a person aborted the kept
    upload: the parts are gone, the job cannot go on; it stays as it was."""
    home = tmp_path / "home"
    args = run_args(solutions, big_input, f"s3://{s3_bucket}/out/")
    start_and_stop(args, home, "job", 1_000_001, signal.SIGTERM, 0.0)
    record = JobStore(home).get("job")
    assert record["status"] == "CREATE FAILED"
    kept = record["resume"]["multipartUpload"]
    assert uploads(s3_client, s3_bucket, "out/") == [("out/a.json.out", kept["uploadId"])]
    s3_client.abort_multipart_upload(
        Bucket=s3_bucket, Key="out/a.json.out", UploadId=kept["uploadId"]
    )
    result = pbatch(["run", "--resume", "job"], home)
    assert result.returncode == 1
    assert (
        f"refusing to resume: the multipart upload of s3://{s3_bucket}/out/a.json.out "
        f"({kept['partsDone']} completed parts, {record['resume']['bytesDone']:,} bytes) is gone"
    ) in result.stderr, result.stderr
    assert "run the job again under a new name" in result.stderr
    assert JobStore(home).get("job")["status"] == "CREATE FAILED"
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]
    assert [o["Key"] for o in listed] == ["out/0.json.out"]  # the first input's, done


def test_parts_writer_keeps_or_aborts_and_continues(s3_env, s3_client, s3_bucket, small_parts):
    """AtomicOutput(resumable=True): parts are cut only when asked and big enough; a kept
    failure leaves the completed parts pending, an abort drops them; a continued upload
    completes into the bytes of one stream."""
    url = f"s3://{s3_bucket}/o/x.out"
    first = bytes(range(256)) * (PART // 256) + b"end of part one\n"
    for keep in (False, True):
        output = pio.AtomicOutput(pio.S3Object(url, resumable=True))
        out = output.__enter__()
        out.write(first[:100])
        assert not out.cut()  # under the part size: stays buffered
        out.write(first[100:])
        assert out.cut() and out.parts[0]["Size"] == len(first)
        out.write(b"lost on a failure\n")
        assert not out.cut()
        output.abort(keep=keep)  # what a failure does
        pending = uploads(s3_client, s3_bucket, "o/")
        assert pending == ([("o/x.out", out.upload_id)] if keep else [])
    parts = out.parts
    cur = {"upload": {"url": url, "uploadId": out.upload_id}, "parts": parts, "bytes": 1}
    check_upload(cur, None)  # every part there
    assert pio.list_upload_parts(url, out.upload_id)[1]["Size"] == len(first)
    with pio.AtomicOutput(pio.S3Object(url, resume_upload=(out.upload_id, parts))) as out2:
        out2.write(b"the rest\n")
    got = s3_client.get_object(Bucket=s3_bucket, Key="o/x.out")["Body"].read()
    assert got == first + b"the rest\n"
    assert uploads(s3_client, s3_bucket, "o/") == []
    assert pio.list_upload_parts(url, out.upload_id) is None  # completed: gone
    with pytest.raises(Exception, match="is gone"):
        check_upload(cur, None)
    # a failure before any part is completed leaves nothing, even when asked to keep
    output = pio.AtomicOutput(pio.S3Object(f"s3://{s3_bucket}/o/y.out", resumable=True))
    out3 = output.__enter__()
    out3.write(b"small\n")
    output.abort(keep=True)
    assert uploads(s3_client, s3_bucket, "o/") == []
    # and an empty output is an empty object
    with pio.AtomicOutput(pio.S3Object(f"s3://{s3_bucket}/o/z.out", resumable=True)):
        pass
    assert s3_client.get_object(Bucket=s3_bucket, Key="o/z.out")["Body"].read() == b""


def test_an_s3_outage_keeps_the_upload_and_a_resume_completes_it(
    big_input, solutions, reference, s3_env, small_parts, tmp_path
):
    """The S3 server dies under the job after some parts: exit 1 naming S3, the upload
    pending with its parts (nobody could abort it, and the job wants it kept), named in
    the record. Once the server is back, the resume completes it: the object of an
    uninterrupted run, nothing pending."""
    weed_dir = Path(tempfile.mkdtemp(prefix="pbw-"))  # weed's socket paths must be short
    server = start_weed(weed_dir)
    try:
        client = server.client()
        bucket = f"t-{uuid.uuid4().hex}"
        client.create_bucket(Bucket=bucket)
        home = tmp_path / "home"
        env = {**os.environ, "AWS_ENDPOINT_URL": server.endpoint_url, "PBATCH_HOME": str(home)}
        args = run_args(solutions, big_input, f"s3://{bucket}/out/")
        proc = subprocess.Popen(
            [*PBATCH, *args, "--job-name", "outage"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        path = home / "checkpoints" / "outage.json"
        while proc.poll() is None:
            try:
                if (checkpoint(home, "outage")["current"] or {}).get("parts"):
                    break
            except (FileNotFoundError, orjson.JSONDecodeError):
                pass
            time.sleep(0.005)
        server.kill()
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 1 and "S3" in err, err
        record = JobStore(home).get("outage")
        assert record["status"] == "CREATE FAILED"
        kept = record["resume"]["multipartUpload"]
        assert kept["partsDone"] >= 1 and path.exists()
        server.restart()
        assert uploads(client, bucket, "out/") == [("out/a.json.out", kept["uploadId"])]
        result = subprocess.run(
            [*PBATCH, "run", "--resume", "outage", "-q"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 3, result.stderr
        for name, data in reference[0].items():
            assert client.get_object(Bucket=bucket, Key="out/" + name)["Body"].read() == data
        assert uploads(client, bucket, "out/") == []
        assert JobStore(home).get("outage")["status"] == "ACTIVE" and not path.exists()
    finally:
        server.stop()
        shutil.rmtree(weed_dir, ignore_errors=True)


def test_deleting_a_stopped_job_aborts_its_kept_upload(
    big_input, solutions, s3_env, s3_client, s3_bucket, small_parts, tmp_path
):
    """S3 bills a pending upload's parts until someone aborts it: `jobs delete` does."""
    home = tmp_path / "home"
    args = run_args(solutions, big_input, f"s3://{s3_bucket}/kept/")
    start_and_stop(args, home, "job", 1_000_001, signal.SIGTERM, 0.0)
    kept = JobStore(home).get("job")["resume"]["multipartUpload"]
    assert uploads(s3_client, s3_bucket, "kept/") == [("kept/a.json.out", kept["uploadId"])]
    again = pbatch([*args, "--job-name", "again"], home)
    assert (
        f"pbatch: warning: a pending multipart upload of s3://{s3_bucket}/kept/a.json.out is "
        "the kept output of stopped job job: `pbatch run --resume job` continues it"
    ) in again.stderr
    result = pbatch(["jobs", "delete", "job"], home)
    assert result.returncode == 0, result.stderr
    assert f"pending upload of s3://{s3_bucket}/kept/a.json.out" in result.stderr
    assert uploads(s3_client, s3_bucket, "kept/") == []
    assert [r["jobName"] for r in JobStore(home).records()] == ["again"]
