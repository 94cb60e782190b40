"""`--engine dask`: the same job on a real Dask cluster, byte for byte (A.14).

One LocalCluster (2 worker processes, everything on 127.0.0.1) serves the whole module;
jobs read from and write to the SeaweedFS fixture. Every output is compared byte for byte
with the local engine's on the same input, and every job record's counts with the local
job's. Failures must leave no output, no staging parts and no pending multipart upload.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import io
import logging
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import orjson
import pytest
from conftest import EXAMPLE_INPUTS, EXAMPLES, PBATCH, RECIPES
from dask_faults import KillWorker
from distributed import Client, LocalCluster
from hypothesis import given, settings
from hypothesis import strategies as st
from memprobe import chunk_faults
from s3server import ACCESS_KEY, REGION, SECRET_KEY

from personalize_batch.errors import JobFailed, PbatchError
from personalize_batch.job import framing
from personalize_batch.job.counts import Counts
from personalize_batch.job.engines import dask as engine
from personalize_batch.job.engines.parts import plan_upload
from personalize_batch.job.params import JobParams
from personalize_batch.job.process import GC_THRESHOLD
from personalize_batch.job.reading import read_numbered_chunks
from personalize_batch.job.run import run_job
from personalize_batch.job.store import JobStore

COUNT_FIELDS = (
    "linesRead",
    "linesAnswered",
    "linesWithErrors",
    "blankLinesSkipped",
    "unknownUsers",
    "unknownItems",
)
ROOT = Path(__file__).resolve().parent.parent


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws_env(s3_server, tmp_path_factory) -> dict[str, str]:
    """AWS_* variables for the S3 fixture, set before the cluster's workers start (they
    inherit them) and kept for the whole module."""
    folder = tmp_path_factory.mktemp("aws")
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_CONFIG_FILE": str(folder / "absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "absent"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        yield env


@pytest.fixture(scope="module")
def client(aws_env) -> Client:
    """A client of a 2-process LocalCluster on 127.0.0.1; a partition whose worker dies
    is retried once (allowed-failures 1), so the fault tests stay short."""
    config = {
        "distributed.scheduler.allowed-failures": 1,
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,  # as pbatch's
    }
    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,
        )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def make_input(recipe: str, copies: int, seed: int = 0) -> bytes:
    """The example lines of a recipe, shuffled and repeated, with a BOM, CRLF endings,
    blank lines, bad lines and a last line without its newline."""
    rng = random.Random(seed)
    lines = (EXAMPLES / EXAMPLE_INPUTS[recipe]).read_bytes().splitlines()
    extra = [b"", b"  \t", b"not json", b"[1]", b'{"userId": 7, "itemId": 7}', b'{"x":"\xc3\xa9"}']
    out = []
    for k in range(copies):
        out.append(rng.choice(lines) + (b"\r\n" if k % 11 == 0 else b"\n"))
        if k % 13 == 0:
            out.append(rng.choice(extra) + b"\n")
    return b"\xef\xbb\xbf" + b"".join(out) + lines[0]


def local_run(solution: Path, src: Path, out: Path, **kw: Any) -> tuple[dict[str, Any], Path]:
    """The reference: the local engine, one process."""
    record = run_job(
        JobParams(solution=str(solution), input=str(src), output=str(out), workers=1, **kw),
        JobStore(),
    )
    return record, out


def dask_run(client: Client, solution: str | Path, src: str, out: str, **kw: Any) -> dict:
    """The same job on the module's cluster, in this process."""
    params = JobParams(
        solution=str(solution),
        input=src,
        output=out,
        engine="dask",
        scheduler=client.scheduler.address,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        **kw,
    )
    return run_job(params, JobStore())


def keys(s3: Any, bucket: str, prefix: str = "") -> set[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {obj["Key"] for obj in listed.get("Contents", [])}


def get(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def pending_uploads(s3: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def assert_same_counts(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert {k: got[k] for k in COUNT_FIELDS} == {k: want[k] for k in COUNT_FIELDS}


# --- partitions and upload plans (no cluster) ------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), st.booleans()),
        max_size=30,
    ),
    partition_size=st.integers(1, 40),
    last_newline=st.booleans(),
)
def test_partitions_tile_the_file(lines, partition_size, last_newline):
    """Whatever the partition size, the partitions' lines are the file's lines, once each
    and in order (short max_bytes: over-long lines cross partition boundaries too)."""
    data = b"".join(body + (b"\r\n" if crlf else b"\n") for body, crlf in lines)
    if lines and not last_newline:
        data = data[:-1]
    whole = list(framing.iter_lines(io.BytesIO(data), 5))
    parts = []
    for start, end in engine.plan_ranges(len(data), partition_size, compressed=False):
        parts += list(framing.iter_partition_lines(io.BytesIO(data), start, end, 5))
    assert parts == whole


def read_chunks(stream, counts, chunk_lines, *, start=0, end=None):
    """The chunks of lines, without their numbers."""
    for numbered in read_numbered_chunks(stream, counts, chunk_lines, start=start, end=end):
        if numbered is not None:
            yield numbered[0]


def test_partition_counts_add_up():
    """Blank lines, lines and the BOM are counted once, whatever the partitioning."""
    data = make_input("user-personalization", 400)
    whole = Counts()
    want = [c for chunk in read_chunks(io.BytesIO(data), whole, 7) for c in chunk]
    total, got = Counts(), []
    for start, end in engine.plan_ranges(len(data), 333, compressed=False):
        part = Counts()
        got += [
            c
            for chunk in read_chunks(io.BytesIO(data), part, 7, start=start, end=end)
            for c in chunk
        ]
        total.merge(part)
    assert got == want
    assert (total.read, total.blank) == (whole.read, whole.blank)


def test_ranges_stop_at_the_part_limit():
    ranges = engine.plan_ranges(10**9, 1, compressed=False)
    assert len(ranges) == engine.MAX_PARTS
    assert engine.plan_ranges(10**9, 1, compressed=True) == [(0, None)]
    assert engine.plan_ranges(0, 100, compressed=False) == [(0, None)]


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(0, 120), max_size=12))
def test_upload_plan_covers_every_byte_within_s3_limits(sizes):
    plan = plan_upload(sizes, min_part=10, max_part=25)
    pieces = [p for part in plan for p in part]
    covered = [(p.source, b) for p in pieces for b in range(p.start, p.end)]
    assert covered == [(s, b) for s, size in enumerate(sizes) for b in range(size)]
    for n, part in enumerate(plan):
        size = sum(p.end - p.start for p in part)
        assert size <= 25
        assert size >= 10 or n == len(plan) - 1
        if len(part) > 1:  # merged through the driver: never more than min_part
            assert size <= 10


# --- jobs on the cluster ---------------------------------------------------------------------


@pytest.mark.parametrize("recipe", RECIPES)
def test_same_bytes_and_counts_as_local(recipe, client, solutions, s3_client, s3_bucket, tmp_path):
    data = make_input(recipe, 600)
    src = tmp_path / "in.json"
    src.write_bytes(data)
    want, out = local_run(solutions[recipe], src, tmp_path / "local")
    s3_client.put_object(Bucket=s3_bucket, Key="in/in.json", Body=data)
    got = dask_run(
        client,
        solutions[recipe],
        f"s3://{s3_bucket}/in/in.json",
        f"s3://{s3_bucket}/out/",
        partition_size=len(data) // 20,
    )
    assert get(s3_client, s3_bucket, "out/in.json.out") == (out / "in.json.out").read_bytes()
    assert_same_counts(got, want)
    assert got["status"] == "ACTIVE"
    assert (got["engine"], got["workers"]) == ("dask", 2)
    assert got["partitions"] == got["partitionsDone"] >= 20
    assert keys(s3_client, s3_bucket) == {"in/in.json", "out/in.json.out"}  # no parts left
    assert pending_uploads(s3_client, s3_bucket) == []


def test_gz_and_plain_inputs_gzip_output_local_files(client, solutions, tmp_path):
    """A .gz input is one partition; --compress gzip gives the local engine's bytes."""
    src = tmp_path / "in"
    src.mkdir()
    plain = make_input("sims", 300, seed=1)
    (src / "a.json").write_bytes(plain)
    (src / "b.json.gz").write_bytes(gzip.compress(make_input("sims", 300, seed=2), mtime=0))
    want, out = local_run(solutions["sims"], src, tmp_path / "local", compress="gzip")
    got = dask_run(
        client,
        solutions["sims"],
        str(src),
        str(tmp_path / "dask"),
        compress="gzip",
        partition_size=-(-len(plain) // 5),  # five partitions
    )
    for name in ("a.json.out.gz", "b.json.gz.out.gz"):
        assert (tmp_path / "dask" / name).read_bytes() == (out / name).read_bytes(), name
    assert sorted(os.listdir(tmp_path / "dask")) == ["a.json.out.gz", "b.json.gz.out.gz"]
    assert got["partitions"] == 5 + 1
    assert_same_counts(got, want)


def test_prefix_with_nested_compressed_and_odd_names(
    client, solutions, s3_client, s3_bucket, tmp_path
):
    """Every input under a prefix gets its NAME.out, in the key's folder; `?`, `#`, `%`
    and spaces are plain key characters for the parts and the join too."""
    inputs = {
        "in/a.json": make_input("popularity-count", 200, seed=7),
        "in/sub/c é+%20?#1.json": make_input("popularity-count", 150, seed=8),
        "in/b.json.gz": gzip.compress(make_input("popularity-count", 100, seed=9), mtime=0),
    }
    (tmp_path / "local-in").mkdir()
    for key, body in inputs.items():
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=body)
        (tmp_path / "local-in" / key.rsplit("/", 1)[1]).write_bytes(body)
    _, out = local_run(solutions["popularity-count"], tmp_path / "local-in", tmp_path / "local")
    got = dask_run(
        client,
        solutions["popularity-count"],
        f"s3://{s3_bucket}/in/",
        f"s3://{s3_bucket}/out/",
        partition_size=2000,
    )
    assert got["outputs"] == [f"s3://{s3_bucket}/out/{k[3:]}.out" for k in sorted(inputs)]
    for key in inputs:
        want = (out / (key.rsplit("/", 1)[1] + ".out")).read_bytes()
        assert get(s3_client, s3_bucket, f"out/{key[3:]}.out") == want, key
    assert keys(s3_client, s3_bucket, "out/") == {f"out/{k[3:]}.out" for k in inputs}
    assert pending_uploads(s3_client, s3_bucket) == []


def test_large_output_is_assembled_server_side(client, solutions, s3_client, s3_bucket, tmp_path):
    """Parts over and under S3's 5 MiB minimum, and empty ones (a stretch of blank
    lines): copied server-side, merged, skipped – the bytes stay the local engine's."""
    dense = make_input("popularity-count", 5000, seed=3)
    data = dense + b"\n" + b" \n" * 40_000 + dense
    src = tmp_path / "in.json"
    src.write_bytes(data)
    want, out = local_run(solutions["popularity-count"], src, tmp_path / "local", num_results=100)
    expected = (out / "in.json.out").read_bytes()
    assert len(expected) > 15 << 20
    s3_client.put_object(Bucket=s3_bucket, Key="in/in.json", Body=data)
    got = dask_run(
        client,
        solutions["popularity-count"],
        f"s3://{s3_bucket}/in/in.json",
        f"s3://{s3_bucket}/out/",
        num_results=100,
        partition_size=len(dense) // 2,
    )
    assert get(s3_client, s3_bucket, "out/in.json.out") == expected
    assert_same_counts(got, want)
    assert keys(s3_client, s3_bucket) == {"in/in.json", "out/in.json.out"}
    assert pending_uploads(s3_client, s3_bucket) == []


def test_s3_solution_is_loaded_once_per_worker(client, solutions, s3_client, s3_bucket, tmp_path):
    data = make_input("personalized-ranking", 600)
    src = tmp_path / "in.json"
    src.write_bytes(data)
    _, out = local_run(solutions["personalized-ranking"], src, tmp_path / "local")
    s3_client.put_object(Bucket=s3_bucket, Key="in/in.json", Body=data)
    model = f"s3://{s3_bucket}/models/rank.npz"
    s3_client.upload_file(str(solutions["personalized-ranking"]), s3_bucket, "models/rank.npz")
    got = dask_run(
        client,
        model,
        f"s3://{s3_bucket}/in/in.json",
        f"s3://{s3_bucket}/out/",
        partition_size=len(data) // 30,
    )
    assert get(s3_client, s3_bucket, "out/in.json.out") == (out / "in.json.out").read_bytes()
    assert got["solutionVersionArn"].startswith(f"arn:pbatch:local:solution-version/{model}@")
    loads = [w.get(model, (0, 0.0))[0] for w in client.run(engine.solution_loads).values()]
    assert got["partitions"] >= 30
    assert sum(loads) >= 1 and max(loads) == 1, loads


@contextlib.contextmanager
def killing(client: Client, plugin: KillWorker) -> Iterator[None]:
    """The plugin on every worker (restarted ones too) for the block; afterwards the
    cluster is back to its 2 workers."""
    client.register_plugin(plugin, name="kill")
    try:
        yield
    finally:
        client.unregister_worker_plugin("kill")
        client.wait_for_workers(2, timeout=60)


def test_worker_killed_mid_partition_still_gives_the_full_output(
    client, solutions, s3_client, s3_bucket, tmp_path
):
    data = make_input("user-personalization", 4000, seed=4)
    src = tmp_path / "in.json"
    src.write_bytes(data)
    want, out = local_run(solutions["user-personalization"], src, tmp_path / "local")
    s3_client.put_object(Bucket=s3_bucket, Key="in/in.json", Body=data)
    with killing(client, KillWorker("killed-once", "000002", 0.15, str(tmp_path / "killed"))):
        got = dask_run(
            client,
            solutions["user-personalization"],
            f"s3://{s3_bucket}/in/in.json",
            f"s3://{s3_bucket}/out/",
            job_name="killed-once",
            partition_size=len(data) // 6,
        )
    assert (tmp_path / "killed").exists()  # a worker did die running partition 2
    assert got["status"] == "ACTIVE"
    assert get(s3_client, s3_bucket, "out/in.json.out") == (out / "in.json.out").read_bytes()
    assert_same_counts(got, want)
    assert keys(s3_client, s3_bucket) == {"in/in.json", "out/in.json.out"}
    assert pending_uploads(s3_client, s3_bucket) == []


def test_partition_killing_every_worker_fails_the_job_cleanly(
    client, solutions, s3_client, s3_bucket, tmp_path
):
    data = make_input("user-personalization", 2000, seed=5)
    s3_client.put_object(Bucket=s3_bucket, Key="in/in.json", Body=data)
    old = b'{"an":"old output","that":"must survive"}\n'
    s3_client.put_object(Bucket=s3_bucket, Key="out/in.json.out", Body=old)
    with killing(client, KillWorker("doomed", "000001", 0.0, None)):
        with pytest.raises(JobFailed, match="died 2 times"):
            dask_run(
                client,
                solutions["user-personalization"],
                f"s3://{s3_bucket}/in/in.json",
                f"s3://{s3_bucket}/out/",
                job_name="doomed",
                partition_size=len(data) // 4,
            )
    record = JobStore().get("doomed")
    assert record["status"] == "CREATE FAILED"
    # partition 1 kills its workers; a partition that shared a dying worker with it may
    # reach its death limit first, and is the one named
    assert re.match(
        r"partition \d+ \(.*\): the workers running it died 2 times", record["failureReason"]
    )
    assert record["outputs"] == []
    assert get(s3_client, s3_bucket, "out/in.json.out") == old
    assert keys(s3_client, s3_bucket) == {"in/in.json", "out/in.json.out"}
    assert pending_uploads(s3_client, s3_bucket) == []


def test_partition_raising_past_its_retries_fails_the_job_cleanly(client, solutions, tmp_path):
    """The solution file changes after the job started: every worker refuses it, Dask
    retries each partition, and the job fails with no output and no parts."""
    model = tmp_path / "model.npz"
    model.write_bytes(solutions["sims"].read_bytes())
    src = tmp_path / "in.json"
    src.write_bytes(make_input("sims", 200))

    def replace(solution: Any) -> None:
        model.write_bytes(solutions["popularity-count"].read_bytes())

    params = JobParams(
        solution=str(model),
        input=str(src),
        output=str(tmp_path / "out"),
        job_name="changed",
        engine="dask",
        scheduler=client.scheduler.address,
        partition_size=1000,
    )
    with pytest.raises(JobFailed, match="changed after the job started"):
        run_job(params, JobStore(), on_solution=replace)
    assert JobStore().get("changed")["status"] == "CREATE FAILED"
    assert sorted(os.listdir(tmp_path)) == ["in.json", "model.npz"]  # no output, no parts


# --- the command line ------------------------------------------------------------------------


def pbatch(*args: Any, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PBATCH, *map(str, args)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_sigterm_stops_the_job_cleanly_and_progress_was_recorded(client, solutions, tmp_path):
    """SIGTERM mid-job: exit 143, CREATE FAILED, no output and no parts left; the record
    showed partitions done while the job ran."""
    src = tmp_path / "in.json"
    src.write_bytes(make_input("user-personalization", 200_000, seed=6))  # lasts seconds
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [*PBATCH, "run", "-s", solutions["user-personalization"], "-i", src, "-o"]
        + [tmp_path / "out", "--job-name", "stopped", "--engine", "dask"]
        + ["--scheduler", client.scheduler.address, "--partition-size", "8000"],
        env={**os.environ, "PBATCH_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            seen = JobStore(home).get("stopped")
        except PbatchError:
            seen = {}  # not created yet
        if seen.get("partitionsDone"):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert seen["status"] == "IN PROGRESS"
    assert 0 < seen["partitionsDone"] < seen["partitions"] and seen["linesRead"] > 0
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert stderr == "pbatch: error: stopped by SIGTERM\n"
    record = JobStore(home).get("stopped")
    assert (record["status"], record["failureReason"]) == ("CREATE FAILED", "stopped by SIGTERM")
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_cli_with_a_scheduler(client, solutions, aws_env, s3_client, s3_bucket, tmp_path):
    data = make_input("popularity-count", 300)
    (tmp_path / "in.json").write_bytes(data)
    _, out = local_run(solutions["popularity-count"], tmp_path / "in.json", tmp_path / "local")
    s3_client.put_object(Bucket=s3_bucket, Key="in/in.json", Body=data)
    env = {**os.environ, "PBATCH_HOME": str(tmp_path / "home")}
    args = ["-s", solutions["popularity-count"], "--job-name", "cli-dask", "--engine", "dask"]
    result = pbatch(
        "run",
        *args,
        "-i",
        f"s3://{s3_bucket}/in/in.json",
        "-o",
        f"s3://{s3_bucket}/out/",
        "--scheduler",
        client.scheduler.address,
        "--partition-size",
        len(data) // 3,
        env=env,
    )
    assert result.returncode == 3, result.stderr  # the input has error lines
    assert result.stdout == ""
    assert any(ln.startswith("pbatch: job cli-dask ACTIVE") for ln in result.stderr.splitlines())
    assert get(s3_client, s3_bucket, "out/in.json.out") == (out / "in.json.out").read_bytes()
    record = JobStore(tmp_path / "home").get("cli-dask")
    assert (record["engine"], record["partitions"], record["partitionsDone"]) == ("dask", 3, 3)


def test_cli_starts_its_own_local_cluster_and_writes_stdout(solutions, tmp_path):
    src = tmp_path / "in.json"
    src.write_bytes(make_input("sims", 300))
    want, out = local_run(solutions["sims"], src, tmp_path / "local")
    result = subprocess.run(
        [*PBATCH, "run", "-s", solutions["sims"], "-i", src, "-o", "-", "-q"]
        + ["--engine", "dask", "--workers", "1", "--partition-size", "2000"],
        env={**os.environ, "PBATCH_HOME": str(tmp_path / "home")},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.decode().splitlines()[0] == (
        f"pbatch: {want['linesWithErrors']} lines had errors"
    )
    assert result.stdout == (out / "in.json.out").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["home", "in.json", "local"]


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)
def test_own_local_cluster_workers_are_tuned_as_a_batch_process(client):
    """The cluster `--engine dask` starts runs one job: its workers keep freed memory for
    the next chunk and collect garbage rarely, as `pbatch run` does, and do not sample
    their tasks for a dashboard nobody watches. The workers of a cluster the user gives
    (the fixture's) are left as they are."""
    cluster, own = engine.start_local_cluster(1)
    try:
        (tuned_faults,) = own.run(chunk_faults).values()
        (tuned_gc,) = own.run(gc.get_threshold).values()
        # a task on each cluster, then past a profile cycle (1 s), when samples are kept
        tasks = [c.submit(time.sleep, 1.5, pure=False) for c in (own, client)]
        for task in tasks:
            task.result()
        time.sleep(1.2)
        samples = [c.profile()["count"] for c in (own, client)]
    finally:
        own.close()
        cluster.close()
    assert tuned_faults < 2048  # reused: not one buffer's worth of faults in ten chunks
    assert tuned_gc == (GC_THRESHOLD, 50, 100)
    assert samples[0] == 0  # no statistical profiler interrupting the tasks
    assert samples[1] > 0  # Dask's profiler samples every 10 ms
    for faults in client.run(chunk_faults).values():
        assert faults >= 10 * 2048  # glibc's default gives much of it back each chunk
    assert (GC_THRESHOLD, 50, 100) not in client.run(gc.get_threshold).values()


def test_cli_without_the_dask_extra_says_how_to_install_it(solutions, tmp_path):
    code = (
        "import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None; "
        "from personalize_batch.cli import main; main(prog_name='pbatch')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "run", "-s", solutions["sims"], "-i", EXAMPLES / "items.json"]
        + ["-o", tmp_path, "--engine", "dask"],
        env={**os.environ, "PBATCH_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "pbatch: error: --engine dask needs the dask extra: pip install 'personalize-batch[dask]'\n"
    )


def test_cli_unreachable_scheduler_fails_the_job(solutions, tmp_path):
    env = {
        **os.environ,
        "PBATCH_HOME": str(tmp_path / "home"),
        "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s",
    }
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = pbatch(
        "run",
        "-s",
        solutions["sims"],
        "-i",
        EXAMPLES / "items.json",
        "-o",
        tmp_path / "out",
        "--engine",
        "dask",
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
        "--job-name",
        "nowhere",
        env=env,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("pbatch: error: job nowhere failed: cannot reach the Dask")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--scheduler", "tcp://127.0.0.1:1"],
        ["--engine", "dask", "-i", "-"],
        ["--engine", "dask", "--scheduler", "tcp://127.0.0.1:1", "-o", "-"],
        ["--engine", "dask", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
        ["--engine", "dask", "--scheduler", "http://127.0.0.1:8786"],
        ["--engine", "dask", "--scheduler", "tcp://127.0.0.1:port"],
        ["--engine", "dask", "--scheduler", "scheduler.example"],
    ],
)
def test_cli_usage_errors(args, solutions, tmp_path):
    if "-i" not in args:
        args = [*args, "-i", EXAMPLES / "items.json"]
    result = pbatch(
        "run", "-s", solutions["sims"], *args, env={**os.environ, "PBATCH_HOME": str(tmp_path)}
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("pbatch: error: ")


def test_item_metadata_travels_to_the_workers(client, tmp_path):
    """--item-metadata reaches every partition: the same bytes as the local engine."""
    from personalize_batch.training import train

    solution = tmp_path / "sims.npz"
    train(
        "sims",
        str(EXAMPLES / "interactions.csv"),
        str(solution),
        items=str(EXAMPLES / "items.csv"),
        tune=False,
    )
    data = make_input("sims", 400, seed=3)
    src = tmp_path / "in.json"
    src.write_bytes(data)
    fields = ("TITLE", "GENRES")
    _, out = local_run(solution, src, tmp_path / "local", item_metadata=fields)
    got = dask_run(
        client,
        solution,
        str(src),
        str(tmp_path / "dask"),
        partition_size=len(data) // 6,
        item_metadata=fields,
    )
    want = (out / "in.json.out").read_bytes()
    assert (tmp_path / "dask" / "in.json.out").read_bytes() == want
    assert b'"metadata":[{"TITLE":' in want
    assert got["partitions"] >= 6 and got["itemMetadata"] == list(fields)


def test_fresh_events_travel_to_the_workers(client, solutions, tmp_path):
    """--events is folded in on every worker: the same bytes as the local engine."""
    events = tmp_path / "events.csv"
    events.write_text(
        "USER_ID,ITEM_ID,TIMESTAMP\n653,0770828,2000000000\n653,1300854,2000000001\n"
        "newbie,1670345,2000000002\n"
    )
    data = make_input("user-personalization", 300, seed=5) + b'{"userId": "newbie"}\n' * 50
    src = tmp_path / "in.json"
    src.write_bytes(data)
    solution = solutions["user-personalization"]
    _, out = local_run(solution, src, tmp_path / "local", events=str(events))
    got = dask_run(
        client, solution, str(src), str(tmp_path / "dask"), partition_size=len(data) // 5,
        events=str(events),
    )  # fmt: skip
    want = (out / "in.json.out").read_bytes()
    assert (tmp_path / "dask" / "in.json.out").read_bytes() == want
    assert got["partitions"] >= 5 and got["foldIn"]["newUsers"] == 1
    plain, _ = local_run(solution, src, tmp_path / "plain")
    assert (tmp_path / "plain" / "in.json.out").read_bytes() != want


@pytest.mark.parametrize(
    "recipe, line_filter",
    [
        ("item-affinity", None),
        ("item-affinity", 'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("rating")'),
        ("item-attribute-affinity", None),
    ],
)
def test_segment_jobs_give_the_local_bytes(
    client, segment_solutions, recipe, line_filter, tmp_path
):
    """A batch segment job (users for items) on the cluster: the local engine's bytes,
    with a user filter too."""
    if recipe == "item-affinity":
        lines = [orjson.dumps({"itemId": i}) for i in segment_solutions["items"][:150]]
        lines.append(b'{"itemId": "no-such-item"}')
    else:
        lines = [
            b'{"itemAttributes": "ITEMS.genres = \\"Drama\\""}',
            b'{"itemAttributes": "ITEMS.genres = \\"Comedy\\" OR ITEMS.genres = \\"Action\\""}',
            b'{"itemAttributes": "ITEMS.nope = \\"x\\""}',
        ] * 20
    src = tmp_path / "items.json"
    src.write_bytes(b"\n".join(lines) + b"\n")
    kw = {"num_results": 40, "filter_expression": line_filter}
    want, out = local_run(segment_solutions[recipe], src, tmp_path / "local", **kw)
    got = dask_run(
        client,
        segment_solutions[recipe],
        str(src),
        str(tmp_path / "dask"),
        partition_size=-(-src.stat().st_size // 4),
        **kw,
    )
    mine = (tmp_path / "dask" / "items.json.out").read_bytes()
    assert mine == (out / "items.json.out").read_bytes()
    assert b"recommendedUsers" in mine and got["partitions"] >= 4
    assert_same_counts(got, want)
