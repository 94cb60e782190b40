"""Checkpoints of local jobs, so `pbatch run --resume NAME` continues a failed job after
its last written chunk and gives the bytes an uninterrupted run gives.

A resumable job (local engine, uncompressed output files or S3 objects, no --errors-to) keeps a
checkpoint at `$PBATCH_HOME/checkpoints/NAME.json`: the job's parameters, the sha256 of
its solution, a fingerprint of each input (size and mtime, or an S3 ETag), the outputs
already committed, and for the input being answered its temporary output file, the
input lines consumed and the output bytes written. It is rewritten (to a temporary name,
then renamed) after a chunk once the chunk's bytes are in the file, at most every
CHECKPOINT_SECONDS (a resume re-scores at most that much work) and after every completed
S3 part. On a failure
the temporary output file is kept; resuming cuts it back to the checkpoint's size, skips
the consumed lines and goes on.

An S3 output is a multipart upload whose parts end at chunk boundaries
(storage.S3PartsWriter): the checkpoint names the upload and, each time a part is completed,
the parts (number, ETag, size) with the input lines and bytes they cover. On a failure
worth resuming after, the upload stays pending with its parts (not aborted); resuming
checks that they are all still there, skips the lines they cover and goes on with the
next part number. An upload aborted meanwhile (e.g. by a bucket lifecycle rule) cannot
be continued: the resume is refused.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from pathlib import Path
from typing import IO, Any

import orjson

from .. import storage
from ..errors import PbatchError
from . import params
from .counts import Counts
from .params import JobParams

VERSION = 1
# the least time between two checkpoints written after chunks (PBATCH_CHECKPOINT_SECONDS:
# tests); writing one per chunk cost a tenth of a fast recipe's time
CHECKPOINT_SECONDS = 1.0


def not_resumable(p: JobParams) -> str | None:
    """Why a job's output cannot be continued after a failure (None: it can)."""
    output = p.output_url()
    if p.engine != "local":
        return "--engine dask jobs are not resumable (their parts are retried instead)"
    if p.input == "-" or output == "-":
        return "stdin and stdout cannot be read or written again"
    if not storage.is_s3(p.input) and os.path.exists(p.input):
        mode = os.stat(p.input).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            return f"{p.input} is not a regular file (a pipe cannot be read again)"
    if p.compress:
        return (
            "--compress gzip outputs are not resumable: a continued gzip stream would not "
            "be byte-identical to an uninterrupted one"
        )
    if p.errors_to:
        return "jobs with --errors-to are not resumable"
    return None


def fingerprint(url: str, endpoint_url: str | None) -> dict[str, Any]:
    """What tells whether an input changed: size and mtime (local), size and ETag (S3)."""
    if storage.is_s3(url):
        bucket, key = storage.split_s3(url)
        try:
            head = storage.s3_client(endpoint_url).head_object(Bucket=bucket, Key=key)
        except storage.s3_errors() as exc:
            raise PbatchError(f"cannot read {url}: {storage.describe_s3_error(exc)}") from None
        return {"url": url, "size": int(head["ContentLength"]), "etag": head.get("ETag")}
    try:
        st = os.stat(url)
    except OSError as exc:
        raise PbatchError(f"cannot read {url}: {exc.strerror or exc}") from None
    return {"url": os.path.abspath(url), "size": st.st_size, "mtimeNs": st.st_mtime_ns}


def counts_json(counts: Counts) -> dict[str, Any]:
    ids = counts.ids
    return {
        "read": counts.read,
        "answered": counts.answered,
        "errors": counts.errors,
        "blank": counts.blank,
        "idsNotStrings": counts.ids_not_strings,
        "listsIgnored": counts.lists_ignored,
        "ids": dataclasses.asdict(ids),
    }


def restore_counts(counts: Counts, d: dict[str, Any]) -> None:
    counts.read, counts.answered, counts.errors = d["read"], d["answered"], d["errors"]
    counts.blank, counts.ids_not_strings = d["blank"], d["idsNotStrings"]
    counts.lists_ignored = d.get("listsIgnored", 0)
    for key, value in d["ids"].items():
        setattr(counts.ids, key, value)


def checkpoint_path(home: Path, name: str) -> Path:
    return home / "checkpoints" / f"{name}.json"


class Checkpointer:
    """The checkpoint of one running job (see the module's docstring)."""

    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        self.path = path
        self.state = state
        self.out: IO[bytes] | None = None  # the output being written, flushed before saving
        self.kept = False  # a failure kept the temporary output for a resume
        self.interval = float(os.environ.get("PBATCH_CHECKPOINT_SECONDS", CHECKPOINT_SECONDS))
        self.saved = 0.0  # when the checkpoint was last written (time.monotonic)

    @classmethod
    def start(
        cls, path: Path, p: JobParams, sha256: str, refs: list[storage.InputRef]
    ) -> Checkpointer:
        """A new job's checkpoint: nothing done yet."""
        state = {
            "version": VERSION,
            "params": params.to_json(p),
            "solutionSha256": sha256,
            "inputs": [fingerprint(r.url, p.endpoint_url) for r in refs],
            "events": fingerprint(p.events, p.endpoint_url) if p.events else None,
            "done": [],
            "current": None,
        }
        ckpt = cls(path, state)
        ckpt.save()
        return ckpt

    @classmethod
    def load(cls, path: Path, name: str) -> Checkpointer:
        try:
            state = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise PbatchError(
                f"job {name} has no checkpoint to resume from: it failed before writing "
                "any output, or its output is not resumable; run it again under a new name"
            ) from None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise PbatchError(f"cannot read the checkpoint {path}: {exc}") from None
        if state.get("version") != VERSION:
            raise PbatchError(f"checkpoint {path} has an unknown version")
        return cls(path, state)

    def save(self) -> None:
        """Write the checkpoint whole (a temporary name, then a rename)."""
        if self.out is not None:
            self.out.flush()  # the bytes the checkpoint counts are in the file first
        tmp = self.path.with_suffix(".json.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(orjson.dumps(self.state))
            os.replace(tmp, self.path)
            self.saved = time.monotonic()
        except OSError as exc:
            raise PbatchError(f"cannot write the checkpoint {self.path}: {exc}") from None

    def begin(
        self, index: int, temp: str, counts: Counts, upload: dict[str, str] | None = None
    ) -> None:
        """Input `index` starts (or continues) into the temporary file `temp`, or into
        the S3 multipart upload `upload` ({"url", "uploadId"})."""
        cur = self.state["current"]
        if cur is None or cur["index"] != index:
            cur = self.state["current"] = {
                "index": index,
                "temp": temp,
                "lines": 0,
                "bytes": 0,
                "base": {"read": counts.read, "blank": counts.blank},
                "counts": counts_json(counts),
            }
        else:
            cur["temp"] = temp
        if upload is not None:
            if (cur.get("upload") or {}).get("uploadId") != upload["uploadId"]:
                cur["parts"] = []  # a new upload: nothing of it completed yet
            cur["upload"] = dict(upload)
        self.save()

    def chunk(
        self, lines: int, size: int, counts: Counts, parts: list[dict[str, Any]] | None = None
    ) -> None:
        """A chunk is written: `lines` input lines consumed, `size` output bytes in all
        (for an S3 output: a part completed, and `parts` all the completed ones)."""
        cur = self.state["current"]
        cur["lines"], cur["bytes"] = lines, size
        cur["counts"] = counts_json(counts)
        if parts is not None:
            cur["parts"] = [dict(part) for part in parts]
        if parts is not None or time.monotonic() - self.saved >= self.interval:
            self.save()

    def finish(self, url: str, counts: Counts) -> None:
        """The current input's output is committed under `url`."""
        self.state["done"].append(url)
        self.state["current"] = None
        self.state["counts"] = counts_json(counts)
        self.out = None
        self.save()

    def remove(self) -> None:
        for path in (self.path, self.path.with_suffix(".json.tmp")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def summary(self) -> dict[str, Any]:
        """What a job record shows of a kept checkpoint."""
        cur = self.state["current"] or {}
        out: dict[str, Any] = {"checkpoint": str(self.path)}
        if cur.get("upload"):
            if cur.get("parts"):  # an upload without a completed part is not kept
                out["multipartUpload"] = {
                    "url": cur["upload"]["url"],
                    "uploadId": cur["upload"]["uploadId"],
                    "partsDone": len(cur["parts"]),
                }
        else:
            out["temporaryFile"] = cur.get("temp")
        out.update(
            inputsDone=len(self.state["done"]),
            linesDone=cur.get("lines", 0),
            bytesDone=cur.get("bytes", 0),
        )
        return out

    def check_unchanged(self, sha256: str, refs: list[Any], endpoint_url: str | None) -> None:
        """Refuse to resume when the solution or an input is not what the job started with."""
        if sha256 != self.state["solutionSha256"]:
            raise PbatchError(
                f"refusing to resume: the solution changed (sha256 {sha256[:12]}…, the job "
                f"started with {self.state['solutionSha256'][:12]}…); the output would mix "
                "two models"
            )
        now = [fingerprint(r.url, endpoint_url) for r in refs]
        before = self.state["inputs"]
        if [f["url"] for f in now] != [f["url"] for f in before]:
            raise PbatchError(
                "refusing to resume: the input files changed (now "
                f"{len(now)}, the job started with {len(before)}); the output would not match"
            )
        for old, new in zip(before, now, strict=True):
            if old != new:
                what = []
                if old["size"] != new["size"]:
                    what.append(f"size {old['size']:,} -> {new['size']:,} bytes")
                if old.get("mtimeNs") != new.get("mtimeNs"):
                    what.append("modified")
                if old.get("etag") != new.get("etag"):
                    what.append(f"ETag {old.get('etag')} -> {new.get('etag')}")
                what = ", ".join(what)
                raise PbatchError(
                    f"refusing to resume: input {new['url']} changed since the job started "
                    f"({what}); the lines already answered may no longer be its lines"
                )
        events = self.state.get("events")
        if events is not None and fingerprint(events["url"], endpoint_url) != events:
            raise PbatchError(
                f"refusing to resume: the events file {events['url']} changed since the job "
                "started; the lines already answered saw the old events"
            )
        cur = self.state["current"]
        if cur is not None and cur.get("upload"):
            check_upload(cur, endpoint_url)
        elif cur is not None:
            try:
                size = os.path.getsize(cur["temp"])
            except OSError:
                size = -1
            if size < cur["bytes"] and cur["bytes"] > 0:  # 0: named, maybe never created
                raise PbatchError(
                    f"refusing to resume: the kept output {cur['temp']} is missing or shorter "
                    f"than the {cur['bytes']} bytes the checkpoint counts"
                )
        for url in self.state["done"]:
            if not _exists(url, endpoint_url):
                raise PbatchError(f"refusing to resume: the finished output {url} is gone")


def _exists(url: str, endpoint_url: str | None) -> bool:
    """Whether a finished output is still there (an S3 object: HeadObject)."""
    if not storage.is_s3(url):
        return os.path.exists(url)
    bucket, key = storage.split_s3(url)
    try:
        storage.s3_client(endpoint_url).head_object(Bucket=bucket, Key=key)
    except storage.s3_errors() as exc:
        response = getattr(exc, "response", None) or {}
        if response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise PbatchError(f"cannot read {url}: {storage.describe_s3_error(exc)}") from None
    return True


def check_upload(cur: dict[str, Any], endpoint_url: str | None) -> None:
    """Refuse to resume unless the S3 upload of the current input still holds every
    part the checkpoint names, as it was uploaded (an upload with no completed part is
    started afresh: nothing to check)."""
    parts = cur.get("parts") or []
    if not parts:
        return
    url, upload_id = cur["upload"]["url"], cur["upload"]["uploadId"]
    found = storage.list_upload_parts(url, upload_id, endpoint_url)
    if found is None:
        raise PbatchError(
            f"refusing to resume: the multipart upload of {url} ({len(parts)} completed "
            f"parts, {cur['bytes']:,} bytes) is gone: it was aborted or completed since the "
            "job failed (a bucket lifecycle rule AbortIncompleteMultipartUpload aborts "
            "pending uploads); run the job again under a new name"
        )
    for part in parts:
        got = found.get(part["PartNumber"])
        if got is None or (
            got.get("ETag", "").strip('"') != part["ETag"].strip('"')
            or int(got.get("Size", -1)) != part["Size"]
        ):
            raise PbatchError(
                f"refusing to resume: part {part['PartNumber']} of the multipart upload of "
                f"{url} is missing or not the one the job uploaded; run the job again "
                "under a new name"
            )
