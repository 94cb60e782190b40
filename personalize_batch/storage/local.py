"""Local inputs: a file or a folder of them, stdin (`-`), decompressed by extension with
the standard library (a local job never loads boto3 or smart_open)."""

from __future__ import annotations

import bz2
import gzip
import os
import stat
import sys
from typing import IO

from ..errors import StorageError
from .urls import InputRef, is_output_name


def list_files(path: str) -> list[InputRef]:
    """A file, or a folder's files (not hidden, not outputs), sorted by name."""
    if os.path.isdir(path):
        names = sorted(
            n
            for n in os.listdir(path)
            if not n.startswith(".")
            and not is_output_name(n)
            and os.path.isfile(os.path.join(path, n))
        )
        if not names:
            raise StorageError(f"input directory {path} holds no input files")
        return [InputRef(os.path.join(path, n), n) for n in names]
    if not os.path.exists(path):
        raise StorageError(f"input not found: {path}")
    return [InputRef(path, os.path.basename(path))]


def open_file(path: str) -> IO[bytes]:
    """A local file, decompressed by extension (the standard library's gzip/bz2)."""
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        if path.endswith(".bz2"):
            return bz2.open(path, "rb")
        return open(path, "rb", buffering=1 << 20)  # noqa: SIM115  (the caller closes it)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None


def file_size(path: str) -> int:
    """The size in bytes of a local file (as stored, before decompression)."""
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None


def is_regular(path: str) -> bool:
    """A regular file (stdin too, for `-`, when it is redirected from one): all there to
    read. A pipe, FIFO, socket or terminal may deliver its lines slowly."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode if path == "-" else os.stat(path).st_mode
    except (OSError, ValueError, AttributeError):  # stdin closed or replaced
        return False
    return stat.S_ISREG(mode)
