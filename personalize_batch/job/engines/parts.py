"""The parts of a distributed job's output, and how they become one `NAME.out`.

Each partition's worker writes its output lines to a part of its own, whole or not at all
(`storage.AtomicOutput`), in a hidden staging folder beside the output:
`.NAME.out.pbatch-JOB/part-000042-<token>` (inputs listing skips hidden names). When every
part of an input is written, the driver joins them in order:

- to a local file, to stdout, or with `--compress gzip`: the parts are streamed through
  `storage.AtomicOutput`, which compresses exactly as the local engine does (the same bytes);
- to S3 otherwise: one multipart upload assembled server-side (UploadPartCopy); parts
  under S3's 5 MiB minimum are merged by downloading them, a few MiB at a time. The upload
  is completed only when every part was copied, and aborted otherwise.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from ... import storage
from ...errors import StorageError

MIN_PART = 5 << 20  # S3's minimum size of every part but the last
MAX_PART = 5 << 30  # S3's maximum part size
MAX_PARTS = 10_000  # S3's maximum number of parts of one upload
COPY_THREADS = 8


@dataclass(frozen=True)
class Piece:
    """The bytes [start, end) of source part number `source`."""

    source: int
    start: int
    end: int


def plan_upload(
    sizes: list[int], min_part: int = MIN_PART, max_part: int = MAX_PART
) -> list[list[Piece]]:
    """Group the sources' bytes, in order, into the parts of one multipart upload.

    Every part but the last holds min_part to max_part bytes. A part that is one piece is
    copied server-side; a part of several pieces is merged through this process, and
    those hold at most `min_part` bytes, so that little data ever comes down.
    """
    parts: list[list[Piece]] = []
    buffer: list[Piece] = []
    buffered = 0
    for source, size in enumerate(sizes):
        pos = 0
        while pos < size:
            left = size - pos
            if buffered == 0 and left >= min_part:
                pieces = math.ceil(left / max_part)
                take = math.ceil(left / pieces)  # >= max_part / 2 >= min_part
                parts.append([Piece(source, pos, pos + take)])
            else:
                take = min(left, min_part - buffered)
                buffer.append(Piece(source, pos, pos + take))
                buffered += take
                if buffered >= min_part:
                    parts.append(buffer)
                    buffer, buffered = [], 0
            pos += take
    if buffer:
        parts.append(buffer)  # the last part may be small
    return parts


class Staging:
    """The hidden folder (or S3 prefix) holding one output's parts while a job runs."""

    def __init__(self, output_url: str, job_name: str, endpoint_url: str | None) -> None:
        self.output_url = output_url
        self.endpoint_url = endpoint_url
        if output_url == "-":  # stdout: the parts wait in a local temporary folder
            self.root = tempfile.mkdtemp(prefix="pbatch-parts-")
        else:
            if not storage.is_s3(output_url):  # workers may run in another directory
                output_url = os.path.abspath(output_url)
            folder, _, leaf = output_url.rpartition("/")
            self.root = f"{folder}/.{leaf}.pbatch-{job_name}"

    def part_url(self, index: int) -> str:
        """Where partition `index` writes (the worker adds a token of its own, so that a
        retried or duplicated attempt never writes over another's part)."""
        return f"{self.root}/part-{index:06d}"

    def join(self, parts: list[tuple[str, int]], compresslevel: int) -> None:
        """Join the parts (url, size), in order, into the output; it appears whole or not
        at all."""
        total = sum(size for _, size in parts)
        if storage.is_s3(self.output_url) and not self.output_url.endswith(".gz"):
            if total >= MIN_PART:
                _compose_s3(self.output_url, parts, self.endpoint_url)
                return
        with storage.AtomicOutput(
            self.output_url, endpoint_url=self.endpoint_url, compresslevel=compresslevel
        ) as out:
            for url, size in parts:
                _copy_part(url, size, out, self.endpoint_url)

    def remove(self) -> None:
        """Delete the staging folder and every part in it, and abort the multipart
        uploads of parts whose worker died while writing them."""
        if not storage.is_s3(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
            return
        bucket, prefix = storage.split_s3(self.root + "/")
        client = storage.s3_client(self.endpoint_url)
        try:
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                found = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if found:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": found, "Quiet": True})
            for page in client.get_paginator("list_multipart_uploads").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                for upload in page.get("Uploads", []):
                    client.abort_multipart_upload(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        except storage.s3_errors() as exc:
            raise StorageError(
                f"cannot remove the parts under {self.root}/: {storage.describe_s3_error(exc)}"
            ) from None


def _copy_part(url: str, size: int, out: Any, endpoint_url: str | None) -> None:
    """Append one part to `out`, checking that it holds the bytes its worker reported."""
    if not storage.is_s3(url) and _copy_file_range(url, size, out):
        return
    copied = 0
    stream = storage.open_input(url, endpoint_url)
    try:
        while block := stream.read(4 << 20):
            out.write(block)
            copied += len(block)
    finally:
        stream.close()
    if copied != size:
        raise StorageError(f"part {url} holds {copied} bytes, its worker wrote {size}")


def _copy_file_range(path: str, size: int, out: Any) -> bool:
    """Append a local part to a plain local output in the kernel (no copy through this
    process); False when `out` is not a plain file or the kernel cannot do it."""
    if not isinstance(out, io.BufferedWriter) or not hasattr(os, "copy_file_range"):
        return False
    out.flush()
    with open(path, "rb") as src:
        if os.fstat(src.fileno()).st_size != size:
            raise StorageError(f"part {path} does not hold the {size} bytes its worker wrote")
        done = 0
        try:
            while done < size:
                n = os.copy_file_range(src.fileno(), out.fileno(), size - done)
                if n == 0:
                    break
                done += n
        except OSError:
            if done:
                raise  # part of it was appended: the output is no longer what it was
            return False  # e.g. across file systems on some kernels: copy it in Python
    if done != size:
        raise StorageError(f"part {path} does not hold the {size} bytes its worker wrote")
    return True


def _compose_s3(dest: str, parts: list[tuple[str, int]], endpoint_url: str | None) -> None:
    """One multipart upload of the parts into `dest`, copied server-side where S3 allows."""
    plan = plan_upload([size for _, size in parts])
    if len(plan) > MAX_PARTS:
        raise StorageError(f"cannot write {dest}: {len(plan)} parts, S3 allows {MAX_PARTS}")
    bucket, key = storage.split_s3(dest)
    client = storage.s3_client(endpoint_url)
    sources = [storage.split_s3(url) for url, _ in parts]

    def upload(number: int, pieces: list[Piece]) -> dict[str, Any]:
        if len(pieces) == 1:
            p = pieces[0]
            src_bucket, src_key = sources[p.source]
            done = client.upload_part_copy(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": src_bucket, "Key": src_key},
                CopySourceRange=f"bytes={p.start}-{p.end - 1}",
            )
            return {"PartNumber": number, "ETag": done["CopyPartResult"]["ETag"]}
        body = b"".join(
            client.get_object(
                Bucket=sources[p.source][0],
                Key=sources[p.source][1],
                Range=f"bytes={p.start}-{p.end - 1}",
            )["Body"].read()
            for p in pieces
        )
        done = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": done["ETag"]}

    errors = storage.s3_errors()
    try:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    except errors as exc:
        raise StorageError(f"cannot write {dest}: {storage.describe_s3_error(exc)}") from None
    try:
        with cf.ThreadPoolExecutor(COPY_THREADS) as pool:
            done = list(pool.map(upload, range(1, len(plan) + 1), plan))
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    except BaseException as exc:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except errors:
            pass  # the upload was never completed, so no object appeared; it expires
        if isinstance(exc, errors):
            raise StorageError(f"cannot write {dest}: {storage.describe_s3_error(exc)}") from None
        raise
