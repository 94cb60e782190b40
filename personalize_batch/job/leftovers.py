"""What finished jobs leave behind, and removing it: `pbatch jobs delete NAME…` and
`pbatch jobs prune --older-than DURATION` remove job records with their checkpoint,
the temporary output a stopped job keeps for `--resume` (or its pending S3 upload) and
the log of a background job; outputs (`NAME.out`, `--errors-to`) are never touched.

A run that writes an output for which such a kept file exists names it, with the way
to continue or discard it: a stopped job's hidden temp file can be large (75 MB in the
trial) and nothing else shows it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .. import storage
from ..errors import PbatchError, UsageError
from . import store as jobs_mod
from .checkpoint import checkpoint_path

DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` -> seconds."""
    match = DURATION_RE.match(text)
    if not match:
        raise UsageError(
            f"--older-than takes a number and a unit (s, m, h, d, w), like 30d or 12h; not {text!r}"
        )
    return float(match[1]) * UNIT_SECONDS[match[2]]


@dataclass
class Kept:
    """What a job keeps beyond its record."""

    checkpoint: Path | None = None
    temporary_files: list[str] = field(default_factory=list)
    upload: dict[str, str] | None = None  # {"url", "uploadId"}: a pending S3 upload
    log: Path | None = None


def _checkpoint_state(path: Path) -> dict[str, Any] | None:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def kept_by(record: dict[str, Any], home: Path) -> Kept:
    """The checkpoint, temporary output, pending upload and log of a job (those that
    exist)."""
    name = record["jobName"]
    resume = record.get("resume") or {}
    kept = Kept()
    ckpt = Path(resume["checkpoint"]) if resume.get("checkpoint") else checkpoint_path(home, name)
    state = _checkpoint_state(ckpt) if ckpt.exists() else None
    if ckpt.exists():
        kept.checkpoint = ckpt
    cur = (state or {}).get("current") or {}
    temps = [resume.get("temporaryFile"), cur.get("temp")]
    kept.temporary_files = [t for t in dict.fromkeys(temps) if t and os.path.exists(t)]
    upload = resume.get("multipartUpload") or (cur.get("upload") if cur.get("parts") else None)
    if upload:
        kept.upload = {"url": upload["url"], "uploadId": upload["uploadId"]}
    log = home / "logs" / f"{name}.log"
    kept.log = log if log.exists() else None
    return kept


def delete_job(
    store: jobs_mod.JobStore, name_or_arn: str, endpoint_url: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Remove a finished job's record and what it keeps; its record and what was
    removed. A running job is refused; outputs are never touched."""
    record = store.get(name_or_arn)  # a dead process reads as CREATE FAILED
    name = record["jobName"]
    if record["status"] in (jobs_mod.PENDING, jobs_mod.IN_PROGRESS):
        pid = store.owner(name)
        raise PbatchError(
            f"job {name} is {record['status']}"
            + (f" (process {pid})" if pid else "")
            + "; only a finished job can be deleted: stop it first, or wait for it"
        )
    kept = kept_by(record, store.home)
    store.delete(name, record["status"])  # refused if a resume took it meanwhile
    removed = []
    for temp in kept.temporary_files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
            removed.append(f"temporary output {temp}")
    if kept.upload is not None:
        url, upload_id = kept.upload["url"], kept.upload["uploadId"]
        try:
            aborted = _abort(url, upload_id, endpoint_url)
        except PbatchError as exc:
            removed.append(f"NOT the pending upload of {url} (id {upload_id}): {exc}")
        else:
            if aborted:
                removed.append(f"pending upload of {url}")
    for path, what in ((kept.checkpoint, "checkpoint"), (kept.log, "log")):
        if path is not None:
            for each in (path, path.with_suffix(".json.tmp")):
                with contextlib.suppress(FileNotFoundError):
                    each.unlink()
            removed.append(f"{what} {path}")
    return record, removed


def _abort(url: str, upload_id: str, endpoint_url: str | None) -> bool:
    """Abort a pending multipart upload; False if it is already gone."""
    if storage.list_upload_parts(url, upload_id, endpoint_url) is None:
        return False
    bucket, key = storage.split_s3(url)
    try:
        storage.s3_client(endpoint_url).abort_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id
        )
    except storage.s3_errors() as exc:
        raise PbatchError(storage.describe_s3_error(exc)) from None
    return True


def older_than(store: jobs_mod.JobStore, seconds: float) -> list[dict[str, Any]]:
    """Finished jobs (ACTIVE or CREATE FAILED) last updated more than `seconds` ago,
    oldest first."""
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    old = [
        r
        for r in store.records()
        if r["status"] in (jobs_mod.ACTIVE, jobs_mod.FAILED)
        and dt.datetime.fromisoformat(r["lastUpdatedDateTime"]) < cutoff
    ]
    return old[::-1]


# ---------------------------------------------------------------- the next run's warnings


def _temp_re(leaf: str) -> re.Pattern[str]:
    """The hidden temp files storage.AtomicOutput makes for an output named `leaf`."""
    return re.compile(rf"^\.{re.escape(leaf)}\.(\d+)\.[0-9a-f]{{8}}\.tmp$")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _owners(store: jobs_mod.JobStore) -> dict[str, tuple[str, str]]:
    """Temp file or upload URL -> (job name, status), for every job that keeps one."""
    owners: dict[str, tuple[str, str]] = {}
    folder = store.home / "checkpoints"
    names = [p.stem for p in folder.glob("*.json")] if folder.is_dir() else []
    for name in names:
        try:
            record = store.get(name)
        except PbatchError:
            continue
        kept = kept_by(record, store.home)
        for temp in kept.temporary_files:
            owners[os.path.abspath(temp)] = (name, record["status"])
        if kept.upload is not None:
            owners[kept.upload["url"]] = (name, record["status"])
    return owners


def _what_it_is(name: str, status: str) -> str:
    if status in (jobs_mod.PENDING, jobs_mod.IN_PROGRESS):
        return f"is being written by job {name} ({status}), to the same output"
    return (
        f"is the kept output of stopped job {name}: `pbatch run --resume {name}` continues "
        f"it, `pbatch jobs delete {name}` discards it"
    )


def warnings_for(
    outputs: Iterable[str], store: jobs_mod.JobStore, own: str | None = None
) -> list[str]:
    """One warning per kept temporary output or pending upload of another job that
    would become one of `outputs` (a job's own, `own`, excepted): what it is and how
    to continue or discard it."""
    outputs = [o for o in outputs if o != "-"]
    if not outputs:
        return []
    owners = _owners(store)
    warnings = []
    listed: dict[str, list[str]] = {}
    for url in outputs:
        if storage.is_s3(url):
            owner = owners.get(url)
            if owner is not None and owner[0] != own:
                warnings.append(f"a pending multipart upload of {url} {_what_it_is(*owner)}")
            continue
        folder, leaf = os.path.split(os.path.abspath(url))
        if folder not in listed:
            try:
                listed[folder] = os.listdir(folder)
            except OSError:
                listed[folder] = []
        pattern = _temp_re(leaf)
        for entry in sorted(listed[folder]):
            match = pattern.match(entry)
            if match is None:
                continue
            temp = os.path.join(folder, entry)
            owner = owners.get(temp)
            if owner is not None and owner[0] == own:
                continue
            try:
                size = _size(os.path.getsize(temp))
            except OSError:
                continue
            shown = os.path.relpath(temp) if not os.path.isabs(url) else temp
            if owner is not None:
                why = _what_it_is(*owner)
            elif _alive(int(match[1])):
                why = f"is being written by process {match[1]}, to the same output"
            else:
                why = (
                    "was left by a job that was killed while writing the same output; "
                    f"nothing can continue it: remove it (rm '{shown}')"
                )
            warnings.append(f"{shown} ({size}) {why}")
    return warnings


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return pid != os.getpid()
