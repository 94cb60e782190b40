"""Where a job reads and writes: local files and folders, `-` (stdin, stdout), gzip/bz2,
and s3:// URLs (A.8). Each operation dispatches on the scheme: `local` for paths and
stdin, `s3` for s3:// URLs, `atomic` for outputs that appear whole or not at all;
`urls` holds the rules of names (no I/O).
"""

from __future__ import annotations

import sys
from typing import IO

from . import local, s3
from .atomic import AtomicOutput, LocalFile, S3Object, Target, target_for
from .s3 import (
    S3PartsWriter,
    abort_upload,
    check_endpoint,
    describe_s3_error,
    download,
    list_upload_parts,
    s3_client,
    s3_errors,
)
from .urls import (
    InputRef,
    default_output,
    display_path,
    is_compressed,
    is_s3,
    output_url,
    redact,
    split_s3,
)


def list_inputs(path: str, endpoint_url: str | None = None) -> list[InputRef]:
    """Expand `--input` into the files a job reads, in a stable (sorted) order."""
    if path == "-":
        return [InputRef("-", "-")]
    if is_s3(path):
        return s3.list_objects(path, endpoint_url)
    return local.list_files(path)


def open_input(url: str, endpoint_url: str | None = None) -> IO[bytes]:
    """A binary stream of an input, decompressed by its extension."""
    if url == "-":
        return sys.stdin.buffer
    if is_s3(url):
        return s3.open_object(url, endpoint_url)
    return local.open_file(url)


def input_size(url: str, endpoint_url: str | None = None) -> int:
    """The size in bytes of a local file or S3 object (as stored, before decompression)."""
    return s3.object_size(url, endpoint_url) if is_s3(url) else local.file_size(url)


def is_complete(url: str) -> bool:
    """The input is all there to read: an S3 object or a regular file (stdin too, when it
    is redirected from one). A pipe, FIFO, socket or terminal may deliver its lines
    slowly, and its reader should hand each line on soon."""
    return is_s3(url) or local.is_regular(url)


__all__ = [
    "AtomicOutput",
    "InputRef",
    "LocalFile",
    "S3Object",
    "S3PartsWriter",
    "Target",
    "abort_upload",
    "check_endpoint",
    "default_output",
    "describe_s3_error",
    "display_path",
    "download",
    "input_size",
    "is_complete",
    "is_compressed",
    "is_s3",
    "list_inputs",
    "list_upload_parts",
    "open_input",
    "output_url",
    "redact",
    "s3_client",
    "s3_errors",
    "split_s3",
    "target_for",
]
