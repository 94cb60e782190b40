"""Outputs that appear whole or not at all (A.8).

`with AtomicOutput(url) as out: out.write(b"...")` – on an exception nothing appears and
an existing output at `url` is left as it was. Where the bytes go until then depends on
the scheme (`target_for`): a local output is a temporary file in the same folder,
renamed at the end (`LocalFile`); an S3 output is a multipart upload completed only on
success and aborted otherwise (`S3Object`); stdout is written as it comes (`Stdout`).
Compression is a gzip layer on top of the target (by the `.gz` name), so that a failure
can always abort the raw target before anything is completed. A resumed job passes a
target of its own: a kept temporary file to continue, or an upload whose parts are kept.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from ..errors import StorageError
from . import s3
from .urls import is_s3


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a resource is created and recorded: a stop that lands in
    between would strand it. Released, a held stop is handled at once (main thread)."""
    if not hasattr(signal, "pthread_sigmask") or (
        threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


class Stdout:
    """Standard output: written as it comes, nothing to commit or drop."""

    url = "-"
    resuming = False

    def open(self) -> IO[bytes]:
        self.stream = sys.stdout.buffer
        return self.stream

    def commit(self) -> None:
        self.stream.flush()

    def abort(self, keep: bool) -> None:
        pass


class LocalFile:
    """A temporary file beside `path`, renamed over it on commit.

    `resume_from` (temp file, size): continue a kept temporary file cut back to size
    (`run --resume`). `naming(temp)` is called with a new temporary file's name before
    the file exists: a checkpoint that records it then names every temporary file a
    `kill -9` can leave behind. `durable=False`: no fsync (a part deleted after the job).
    """

    def __init__(
        self,
        path: str,
        *,
        durable: bool = True,
        resume_from: tuple[str, int] | None = None,
        naming: Callable[[str], None] | None = None,
    ) -> None:
        self.url = path
        self.durable = durable
        self.resume_from = resume_from
        self.resuming = resume_from is not None
        self.naming = naming
        self.temp: str | None = None
        self._file: Any = None

    def open(self) -> IO[bytes]:
        if self.resume_from is not None:
            self._file = self._reopen(*self.resume_from)
            return self._file
        folder = os.path.dirname(os.path.abspath(self.url))
        prefix = f".{os.path.basename(self.url)}.{os.getpid()}."
        try:
            os.makedirs(folder, exist_ok=True)
            while True:
                # The name is ours before the file exists: a signal handled right after
                # the open still finds it to remove (mkstemp hands it over only later).
                temp = os.path.join(folder, prefix + secrets.token_hex(4) + ".tmp")
                if self.naming is not None:
                    self.naming(temp)
                self.temp = temp
                try:  # 0o666 less the umask: an ordinary new file
                    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    break
                except FileExistsError:
                    continue
        except OSError as exc:
            self.temp = None
            raise StorageError(f"cannot write {self.url}: {exc.strerror or exc}") from None
        try:
            self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        except BaseException:  # the caller's abort removes the temp file
            with contextlib.suppress(OSError):  # a dropped file object may have closed it
                os.close(fd)
            raise
        return self._file

    def _reopen(self, path: str, size: int) -> IO[bytes]:
        """A kept temp file, cut back to `size` bytes, for appending."""
        self.temp = path
        try:
            f = open(path, "r+b", buffering=1 << 20)  # noqa: SIM115  (closed by commit/abort)
        except OSError as exc:
            self.temp = None
            raise StorageError(f"cannot reopen {path}: {exc.strerror or exc}") from None
        try:
            f.truncate(size)
            f.seek(size)
        except BaseException:
            f.close()
            raise
        return f

    def commit(self) -> None:
        self._file.flush()
        if self.durable:
            os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.url)
        self.temp = None

    def abort(self, keep: bool) -> None:
        """Remove the temporary file; with `keep`, close it and leave it (a resume)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # closing a temp file we are about to delete
        if self.temp is not None and keep:
            self.temp = None
        if self.temp is not None:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass
            self.temp = None


class S3Object:
    """A multipart upload of `url`, completed on commit, aborted otherwise.

    `resumable`: written by s3.S3PartsWriter, whose parts the job cuts at chunk
    boundaries and which is kept on request; `resume_upload` (upload id, parts):
    continue that upload after those parts (`run --resume`).
    """

    def __init__(
        self,
        url: str,
        endpoint_url: str | None = None,
        *,
        resumable: bool = False,
        resume_upload: tuple[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.url = url
        self.endpoint_url = endpoint_url
        self.resumable = resumable or resume_upload is not None
        self.resume_upload = resume_upload
        self.resuming = resume_upload is not None
        self.writer: Any = None

    def open(self) -> IO[bytes]:
        with stop_signals_held():  # the upload's id exists only in the response
            self.writer = s3.open_writer(
                self.url, self.endpoint_url, self.resumable, self.resume_upload
            )
        return self.writer

    def commit(self) -> None:
        self.writer.complete()

    def abort(self, keep: bool) -> None:
        """Abort the upload; with `keep`, leave a resumable upload pending with its
        completed parts (none: it is aborted)."""
        writer = self.writer
        if writer is None or writer.closed:
            return
        if keep and isinstance(writer, s3.S3PartsWriter) and writer.parts:
            writer.keep()
            return
        try:
            writer.terminate()
        except s3.s3_errors():
            # The server is gone, so the upload cannot be aborted: it stays pending
            # (never an object) until someone aborts it or a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) removes it. Not again at exit.
            writer.abandon()


Target = Stdout | LocalFile | S3Object


def target_for(url: str, endpoint_url: str | None = None, *, durable: bool = True) -> Target:
    """Where an output named `url` is written until it is committed, by its scheme."""
    if url == "-":
        return Stdout()
    if is_s3(url):
        return S3Object(url, endpoint_url)
    return LocalFile(url, durable=durable)


class AtomicOutput:
    """A binary output that appears only when closed successfully (see the module).
    `output` is a URL (its target chosen by scheme) or a target of the caller's."""

    def __init__(
        self,
        output: str | Target,
        *,
        endpoint_url: str | None = None,
        compresslevel: int | None = None,
    ) -> None:
        self.target = target_for(output, endpoint_url) if isinstance(output, str) else output
        self.url = self.target.url
        self.gzip = self.url.endswith(".gz")
        self.compresslevel = compresslevel if compresslevel is not None else 1
        self._raw: Any = None
        self._stream: Any = None

    def __enter__(self) -> IO[bytes]:
        try:
            self._raw = self.target.open()
            if self.gzip:
                self._stream = gzip.GzipFile(
                    filename="",
                    mode="wb",
                    fileobj=self._raw,
                    compresslevel=self.compresslevel,
                    mtime=0,
                )
            else:
                self._stream = self._raw
        except BaseException:  # a signal once the temp file or the upload exists
            self.abort(keep=self.target.resuming)
            raise
        return self._stream

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def commit(self, keep: Callable[[BaseException], bool] | None = None) -> None:
        """Finish the output and make it visible under its name. On a failure the output
        is dropped, or kept (see `abort`) when `keep(the error raised)` is true."""
        errors = s3.s3_errors()
        try:
            if self._stream is not self._raw:
                self._stream.close()
            self.target.commit()
        except BrokenPipeError:  # stdout's reader went away: not a storage failure
            raise
        except errors as exc:
            failure = StorageError(f"cannot write {self.url}: {s3.describe_s3_error(exc)}")
            self._failed(failure, exc, keep)
            raise failure from None
        except OSError as exc:
            failure = StorageError(f"cannot write {self.url}: {exc.strerror or exc}")
            self._failed(failure, exc, keep)
            raise failure from None
        except BaseException as exc:  # a signal while finishing: drop the output, keep the old one
            self.abort(keep=keep is not None and keep(exc))
            raise

    def _failed(
        self,
        failure: StorageError,
        cause: BaseException,
        keep: Callable[[BaseException], bool] | None,
    ) -> None:
        failure.__context__ = cause  # what `keep` looks at (e.g. a full disk is not kept)
        self.abort(keep=keep is not None and keep(failure))

    def abort(self, keep: bool = False) -> None:
        """Drop everything written: remove the temp file or abort the multipart upload.
        `keep`: close a local temp file and leave it, or leave a resumable S3 output's
        upload pending with its completed parts, for `run --resume`."""
        self.target.abort(keep)
