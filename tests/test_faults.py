"""Faults a cron job meets: signals, kill -9, a dying S3 server, a full disk, many runs at
once. After each one the job record tells the truth and no partial output is visible."""

from __future__ import annotations

import gc
import os
import types
from pathlib import Path
from typing import Any

import pytest

from personalize_batch import io as pio
from personalize_batch.errors import Interrupted

# --- AtomicOutput: a signal can land between any two bytecodes -----------------------------


def _interrupt(*args: Any, **kwargs: Any) -> None:
    raise Interrupted("stopped by SIGTERM", 15)


def test_signal_while_opening_local_output_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    """SIGTERM right after mkstemp (seen as a flaky leftover `.x.out.*.tmp`)."""
    monkeypatch.setattr(pio, "_umask", _interrupt)
    with pytest.raises(Interrupted), pio.AtomicOutput(str(tmp_path / "x.out")) as out:
        out.write(b"never\n")
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
    monkeypatch.setattr(pio, "gzip", types.SimpleNamespace(GzipFile=_interrupt))
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
