"""Which failed jobs keep what for `pbatch run --resume`, and how a resumed input is
written: continued from its kept temporary file or S3 upload, with the checkpoint saved
after each chunk (the checkpoint file itself: job.checkpoint)."""

from __future__ import annotations

import errno
import functools
import os
import zlib
from typing import IO, Any

from .. import storage
from ..errors import Interrupted, PbatchError, StorageError
from . import checkpoint, signals
from .counts import Counts
from .params import JobParams


def keep_for_resume(exc: BaseException) -> bool:
    """Failures worth resuming after: a stop, a storage outage, a crash; not a job that
    is wrong in itself (too many error lines, a usage error)."""
    cause = exc.__context__  # a StorageError is raised from the OSError it reports
    if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return False  # a full disk needs its space back more than a resume
    if isinstance(cause, (EOFError, zlib.error)):
        return False  # a damaged input: the same input would fail the same way
    return isinstance(exc, (Interrupted, StorageError)) or not isinstance(exc, PbatchError)


def kept_fields(
    ckpt: checkpoint.Checkpointer | None, p: JobParams, exc: BaseException
) -> dict[str, Any]:
    """The record's `resume` field for a failed job: its kept checkpoint and temporary
    output, or why its kind of job is not resumable; a job that cannot be resumed
    loses its checkpoint (and the field). A job stopped between two outputs (or before
    the first) keeps its checkpoint: the resume starts the next output afresh."""
    if ckpt is None:
        why = checkpoint.not_resumable(p)
        return {"resume": {"notResumable": why}} if why else {}
    between = ckpt.state["current"] is None and (ckpt.state["done"] or keep_for_resume(exc))
    # a resumed job that failed before it reopened its kept output left that as it was
    untouched = ckpt.state["current"] is not None and ckpt.out is None
    if ckpt.kept or between or untouched:
        return {"resume": ckpt.summary()}
    ckpt.remove()
    return {"drop": ("resume",)}


def _naming(ckpt: checkpoint.Checkpointer, index: int, counts: Counts, temp: str) -> None:
    """The checkpoint names a temp file before it is created (see storage.LocalFile)."""
    with signals.held():
        ckpt.begin(index, temp, counts)


def resumed_output(
    ckpt: checkpoint.Checkpointer,
    index: int,
    cur: dict[str, Any] | None,
    counts: Counts,
    url: str,
    endpoint_url: str | None,
) -> tuple[storage.Target, dict[str, Any], dict[str, Any]]:
    """How input `index` is written under a checkpoint: continued from the kept temporary
    file (or S3 upload) when the checkpoint is in it, and saved after each chunk. Returns
    the output's target, and the arguments of signals.guarded_output and of answering.answer_stream.

    An S3 output is written in parts cut at chunk boundaries (S3PartsWriter): after a
    chunk, once at least a part's worth is buffered, it is uploaded and the checkpoint
    records it with the lines it covers; a resume goes on after the last recorded part
    (the lines buffered since are answered again)."""
    before = cur["bytes"] if cur is not None else 0
    if cur is not None:
        checkpoint.restore_counts(counts, cur["counts"])
        counts.read, counts.blank = cur["base"]["read"], cur["base"]["blank"]  # recounted
    upload = (cur or {}).get("upload")
    target: storage.Target
    if storage.is_s3(url):
        kept_parts = None
        if upload and cur.get("parts"):
            kept_parts = (upload["uploadId"], cur["parts"])
        elif upload:  # no part was completed: start afresh, dropping the old upload
            storage.abort_upload(upload["url"], upload["uploadId"], endpoint_url)
        target = storage.S3Object(url, endpoint_url, resumable=True, resume_upload=kept_parts)
    else:
        # a temp file the checkpoint named just before a kill kept it from being created
        fresh = cur is None or (before == 0 and not os.path.exists(cur["temp"]))
        target = storage.LocalFile(
            url,
            resume_from=None if fresh else (cur["temp"], before),
            naming=functools.partial(_naming, ckpt, index, counts),
        )
    writers: list[storage.S3PartsWriter] = []

    def opened(stream: IO[bytes]) -> None:
        ckpt.out = stream
        # a local temp file is in the checkpoint already: named before it was created
        # (_naming), or the kept one being continued
        if isinstance(stream, storage.S3PartsWriter):
            writers.append(stream)
            ckpt.begin(index, "", counts, upload={"url": url, "uploadId": stream.upload_id})

    def keep(exc: BaseException) -> bool:
        ckpt.kept = keep_for_resume(exc)
        if ckpt.kept and not writers:  # chunks since the last checkpoint count too
            try:
                with signals.held():
                    ckpt.save()
            except (PbatchError, OSError, ValueError):
                pass  # the last checkpoint written still holds
        return ckpt.kept

    def save_chunk(lines: int, size: int) -> None:
        # a stop waits for the checkpoint to be saved: the record then shows what it says
        if not writers:
            with signals.held():
                ckpt.chunk(lines, before + size, counts)
        elif writers[0].cut():
            with signals.held():
                ckpt.chunk(lines, writers[0].uploaded, counts, parts=writers[0].parts)

    skip = cur["lines"] if cur is not None else 0
    return target, {"keep": keep, "opened": opened}, {"skip": skip, "checkpoint": save_chunk}
