"""Faults a cron job meets: signals, kill -9, a dying S3 server, a full disk, many runs at
once. After each one the job record tells the truth and no partial output is visible."""

from __future__ import annotations

import gc
import os
import types
from pathlib import Path
from typing import Any

import faultkit
import pytest
from conftest import npz_arrays, write_npz

from personalize_batch import storage as pio
from personalize_batch.errors import Interrupted

# --- AtomicOutput: a signal can land between any two bytecodes -----------------------------


def _interrupt(*args: Any, **kwargs: Any) -> None:
    raise Interrupted("stopped by SIGTERM", 15)


@pytest.mark.parametrize("where", ["open", "fdopen"])
def test_signal_while_opening_local_output_leaves_no_temp(
    tmp_path: Path, monkeypatch, where
) -> None:
    """A signal handled just after the temp file was created (a flaky leftover
    `.x.out.*.tmp`; mkstemp itself had such a window: the file existed before its name
    was handed back)."""
    real = getattr(os, where)

    def created_then_interrupted(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        _interrupt()

    monkeypatch.setattr(os, where, created_then_interrupted)
    with pytest.raises(Interrupted), pio.AtomicOutput(str(tmp_path / "x.out")) as out:
        out.write(b"never\n")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_signal_while_committing_local_output_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "x.out").write_bytes(b"old\n")
    with pytest.raises(Interrupted), pio.AtomicOutput(str(tmp_path / "x.out")) as out:
        out.write(b"new\n")
        monkeypatch.setattr(os, "fsync", _interrupt)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["x.out"]
    assert (tmp_path / "x.out").read_bytes() == b"old\n"


def _pending(client: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_signal_while_opening_s3_output_aborts_the_upload(
    s3_env, s3_client, s3_bucket, monkeypatch
) -> None:
    """The multipart upload exists once the writer is open; a signal while the gzip layer
    is set up must still abort it."""
    s3_client.put_object(Bucket=s3_bucket, Key="o/x.out.gz", Body=b"old\n")
    monkeypatch.setattr(pio.atomic, "gzip", types.SimpleNamespace(GzipFile=_interrupt))
    with pytest.raises(Interrupted), pio.AtomicOutput(f"s3://{s3_bucket}/o/x.out.gz") as out:
        out.write(b"never\n")
    gc.collect()  # smart_open's writer completes itself when garbage-collected
    assert _pending(s3_client, s3_bucket) == []
    assert s3_client.get_object(Bucket=s3_bucket, Key="o/x.out.gz")["Body"].read() == b"old\n"


def test_signal_while_completing_s3_output_aborts_the_upload(
    s3_env, s3_client, s3_bucket, monkeypatch
) -> None:
    from smart_open import s3 as s3_transport

    s3_client.put_object(Bucket=s3_bucket, Key="o/x.out", Body=b"old\n")
    with pytest.raises(Interrupted), pio.AtomicOutput(f"s3://{s3_bucket}/o/x.out") as out:
        out.write(b"new\n")
        monkeypatch.setattr(s3_transport.MultipartWriter, "close", _interrupt)
    monkeypatch.undo()
    assert _pending(s3_client, s3_bucket) == []
    assert s3_client.get_object(Bucket=s3_bucket, Key="o/x.out")["Body"].read() == b"old\n"


# --- whole runs: one trial of each fault (benchmarks/reliability.py runs many) -----------


@pytest.fixture
def ctx(solutions, s3_server, tmp_path) -> faultkit.Context:
    return faultkit.Context(solutions=solutions, scratch=tmp_path, s3=s3_server)


def _passed(trial: faultkit.Trial) -> None:
    assert trial.problems == [], trial
    assert trial.partial == 0 and trial.lost == 0, trial


@pytest.mark.parametrize("output", ["local", "s3"])
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_stopped_midway(ctx, how, output) -> None:
    """kill -9: the old output stays, `jobs describe` says "process exited" (a hidden temp
    file or a pending upload may stay: nothing can remove them). SIGTERM/SIGINT: exit
    143/130, "stopped by SIG…", and nothing at all is left behind."""
    _passed(faultkit.trial_stop(ctx, how, output, gzip=how == "SIGINT"))


@pytest.mark.parametrize(
    "phase", ["killed-mid-upload", "killed-mid-download", "restarted-mid-upload"]
)
def test_s3_server_dies(ctx, phase) -> None:
    """Killed: exit 1, one line naming S3, CREATE FAILED, the old output untouched (for a
    killed upload the upload stays pending: no one can abort it on a dead server).
    Restarted before pbatch needed it again: the job just succeeds."""
    trial = faultkit.trial_s3_dies(ctx, phase, 40_000 if "download" in phase else 3000)
    _passed(trial)
    if phase == "killed-mid-upload":
        assert trial.leftovers <= 1


@pytest.mark.parametrize("how", ["fsize", "tmpfs"])
def test_disk_full(ctx, how) -> None:
    if how == "tmpfs" and os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the fsize case covers the rest")
    _passed(faultkit.trial_disk_full(ctx, how))


def test_twenty_concurrent_runs_on_one_job_store(ctx) -> None:
    _passed(faultkit.trial_concurrent(ctx, runs=20))


def test_no_credentials_fail_in_one_line(ctx) -> None:
    """The other wrong settings are cases of test_s3_jobs.py's FAILURES (and all of them
    run in benchmarks/reliability.py)."""
    _passed(faultkit.trial_config_error(ctx, "no-credentials"))


def test_failed_abort_is_not_retried_at_exit(s3_env, s3_client, s3_bucket, monkeypatch) -> None:
    """When the abort cannot reach the server, the writer is forgotten: its finalizer
    must not try again (more retries at exit) – nor ever complete the upload."""
    from botocore.exceptions import EndpointConnectionError

    calls = []

    def unreachable(**kw: Any) -> None:
        calls.append(kw["UploadId"])
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    output = pio.AtomicOutput(f"s3://{s3_bucket}/o/x.out")
    with pytest.raises(Interrupted), output as out:
        out.write(b"partial\n")
        monkeypatch.setattr(output._raw._client, "abort_multipart_upload", unreachable)
        _interrupt()
    del out, output
    gc.collect()
    assert len(calls) == 1
    assert "Contents" not in s3_client.list_objects_v2(Bucket=s3_bucket)


def test_signal_during_an_s3_request_is_not_retried_away(s3_env, s3_bucket, monkeypatch) -> None:
    """botocore wraps any Exception raised while it sends a request into a retryable
    HTTPClientError: a SIGTERM that landed there was swallowed, the request retried, and
    the job ran on (with a FIFO or an idle pipe as input: forever)."""
    import urllib3

    real = urllib3.connectionpool.HTTPConnectionPool.urlopen
    calls: list[int] = []

    def urlopen(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            _interrupt()  # what the signal handler does, in the middle of the request
        return real(self, *args, **kwargs)

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)
    with pytest.raises(Interrupted), pio.AtomicOutput(f"s3://{s3_bucket}/o/x.out"):
        pass
    assert len(calls) == 1  # the stop came through at the first request: no retry


def test_signal_while_loading_a_solution_is_not_a_damaged_file(
    solutions, tmp_path, monkeypatch
) -> None:
    from personalize_batch import solution as solution_mod

    # read_magic is where both ways of reading a member start: the mapped view and
    # read_array (np.savez's unaligned file below)
    monkeypatch.setattr(solution_mod.np.lib.format, "read_magic", _interrupt)
    with pytest.raises(Interrupted):
        solution_mod.load(str(solutions["popularity-count"]))
    unaligned = write_npz(tmp_path / "savez.npz", npz_arrays(solutions["popularity-count"]))
    with pytest.raises(Interrupted):
        solution_mod.load(unaligned)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the __del__
def test_a_stop_swallowed_by_a_finalizer_still_stops_the_job(solutions, tmp_path, monkeypatch):
    """Python runs a signal handler wherever the main thread is – also in a __del__ or a
    weakref callback, which print the exception and drop it. One SIGTERM in ~30 landed
    there (importlib's module-lock callback): the job ran on, and on an idle pipe it
    waited forever. The stop must arrive anyway."""
    import signal
    import threading

    from personalize_batch.job.params import JobParams
    from personalize_batch.job.run import run_job
    from personalize_batch.job.store import JobStore

    class Dropped:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGTERM)  # handled here; __del__ drops the exception

    class IdlePipe:
        calls = 0

        def readline(self, limit: int = -1) -> bytes:
            self.calls += 1
            if self.calls == 1:
                return b'{"userId": "653"}\n'
            Dropped()
            threading.Event().wait(10)  # no more input for a while
            return b""

        read = readline  # worker processes are handed blocks read with read()

        def close(self) -> None:
            pass

    src = tmp_path / "in.json"
    src.write_bytes(b"\n")
    monkeypatch.setattr(pio, "open_input", lambda url, endpoint_url=None: IdlePipe())
    params = JobParams(
        solution=str(solutions["popularity-count"]),
        input=str(src),
        output=str(tmp_path / "out"),
        job_name="swallowed",
    )
    with pytest.raises(Interrupted):
        run_job(params, JobStore())
    record = JobStore().get("swallowed")
    assert record["failureReason"] == "stopped by SIGTERM"
    # only the temp output kept for `pbatch run --resume`, named in the record
    kept = os.path.basename(record["resume"]["temporaryFile"])
    assert os.listdir(tmp_path / "out") == [kept]


def test_stop_while_the_upload_is_created_aborts_it(s3_env, s3_client, s3_bucket, monkeypatch):
    """The upload id exists only in CreateMultipartUpload's response: a SIGTERM handled
    between the response and the writer being recorded stranded the upload (1 benchmark
    trial in 10). The stop now waits for the writer to be recorded, then aborts it."""
    import signal

    import urllib3

    real = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def urlopen(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = real(self, *args, **kwargs)
        signal.raise_signal(signal.SIGTERM)  # the upload exists: stop now
        return response

    old = signal.signal(signal.SIGTERM, lambda s, f: _interrupt())
    try:
        monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)
        with pytest.raises(Interrupted), pio.AtomicOutput(f"s3://{s3_bucket}/o/x.out"):
            pass
    finally:
        signal.signal(signal.SIGTERM, old)
    monkeypatch.undo()
    assert _pending(s3_client, s3_bucket) == []
