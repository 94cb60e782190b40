"""Inputs and outputs: local files, directories, `-`, gzip/bz2 and s3:// URLs (A.8).

Reading goes through smart_open. Writing is atomic: a local output is written to a
temporary file in the same folder and renamed at the end; an S3 output is a multipart
upload completed only on success and aborted on failure. Compression of outputs is done
here (gzip on top of the raw stream), so that a failure can always abort the raw stream
before anything is completed. The S3 output of a resumable job (`run --resume`) is
written by `S3PartsWriter`, whose parts end where the job's checkpoints say, and is kept
(not aborted) on a failure the job may be resumed after.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import io
import os
import posixpath
import secrets
import select
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from .errors import StorageError, UsageError

COMPRESSED_SUFFIXES = (".gz", ".bz2")
S3_PART_SIZE = 16 << 20  # the parts of a resumable S3 output (PBATCH_S3_PART_SIZE: tests)
S3_MIN_PART = 5 << 20  # S3's minimum size of every part but the last
S3_MAX_PARTS = 10_000  # S3's maximum number of parts of one upload
OUT_SUFFIX = ".out"
BLANK = b" \t\r\n"  # what a blank line holds (A.3)


def is_s3(path: str) -> bool:
    """True for an `s3://bucket/key` URL."""
    return path.startswith("s3://")


def split_s3(url: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> (`bucket`, `some/key`).

    Not urlsplit: `?` and `#` are ordinary characters of an S3 key (`a?b.json`), and
    urlsplit would cut the key there (the output of `in/a?b.json` went to `out/a`).
    """
    bucket, _, key = url[len("s3://") :].partition("/") if is_s3(url) else ("", "", "")
    if not bucket:
        raise StorageError(f"not an S3 URL: {url}")
    if "@" in bucket:  # smart_open's s3://KEY:SECRET@bucket form; "@" is no bucket character
        raise StorageError(
            f"{redact(url)}: credentials in s3:// URLs are not supported (they would end up"
            " in job records); use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile"
        )
    return bucket, key.lstrip("/")


def redact(url: str) -> str:
    """`s3://KEY:SECRET@bucket/key` -> `s3://***@bucket/key`; anything else unchanged."""
    if not is_s3(url):
        return url
    bucket, sep, key = url[len("s3://") :].partition("/")
    return f"s3://***@{bucket.rsplit('@', 1)[1]}{sep}{key}" if "@" in bucket else url


def _endpoint(endpoint_url: str | None) -> str | None:
    return (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )


_clients: dict[str | None, Any] = {}


def check_endpoint(url: str) -> str:
    """An S3 endpoint must be an http(s) URL with a host (botocore refuses anything else
    with a ValueError, deep in a job)."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"S3 endpoint {url!r} is not a URL: give http://HOST[:PORT] or https://HOST[:PORT]"
        )
    return url


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client (imported only when an s3:// path is used)."""
    endpoint = _endpoint(endpoint_url)
    if endpoint is not None:
        check_endpoint(endpoint)  # also one taken from the environment (the SDK's way)
    if endpoint not in _clients:
        import boto3  # noqa: PLC0415  (deferred: keeps `pbatch` start-up cheap)
        from botocore.config import Config  # noqa: PLC0415

        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10)
        _clients[endpoint] = boto3.client("s3", endpoint_url=endpoint, config=config)
    return _clients[endpoint]


def describe_s3_error(exc: BaseException) -> str:
    """A one-line reason for an S3/botocore failure, never including credentials."""
    return " ".join(_describe_s3_error(exc).split())  # botocore's messages may span lines


def _describe_s3_error(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code = err.get("Code") or "error"
        msg = err.get("Message") or ""
        return f"S3 {code}" + (f" ({msg})" if msg else "")
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return "S3 credentials not found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if name in ("EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError"):
        return f"S3 endpoint unreachable ({exc})"
    return f"S3 {name}: {exc}"


def s3_errors() -> tuple[type[BaseException], ...]:
    """botocore's exception classes, to catch (none while boto3 was never imported)."""
    if "botocore" not in sys.modules:
        return ()
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    return (BotoCoreError, ClientError)


@dataclass(frozen=True)
class InputRef:
    """One input of a job: its URL and the name its output is derived from."""

    url: str
    name: str


def _safe_relative(name: str) -> str:
    """A relative output name that cannot climb out of the output folder."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise StorageError(f"cannot derive an output name from {name!r}")
    return "/".join(parts)


def list_inputs(path: str, endpoint_url: str | None = None) -> list[InputRef]:
    """Expand `--input` into the files a job reads, in a stable (sorted) order."""
    if path == "-":
        return [InputRef("-", "-")]
    if is_s3(path):
        return _list_s3(path, endpoint_url)
    if os.path.isdir(path):
        names = sorted(
            n
            for n in os.listdir(path)
            if not n.startswith(".")
            and not n.endswith(OUT_SUFFIX)
            and not n.endswith(OUT_SUFFIX + ".gz")
            and os.path.isfile(os.path.join(path, n))
        )
        if not names:
            raise StorageError(f"input directory {path} holds no input files")
        return [InputRef(os.path.join(path, n), n) for n in names]
    if not os.path.exists(path):
        raise StorageError(f"input not found: {path}")
    return [InputRef(path, os.path.basename(path))]


def _list_s3(url: str, endpoint_url: str | None) -> list[InputRef]:
    bucket, key = split_s3(url)
    client = s3_client(endpoint_url)
    errors = s3_errors()
    try:
        if key and not key.endswith("/"):
            try:
                client.head_object(Bucket=bucket, Key=key)
                return [InputRef(url, posixpath.basename(key))]
            except errors as exc:  # a missing key may still be a prefix
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code not in ("404", "NoSuchKey", "NotFound"):
                    raise
        base = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        refs = []
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                rel = k[len(base) :]
                leaf = posixpath.basename(k)
                hidden = any(part.startswith(".") for part in rel.split("/"))
                if k.endswith("/") or hidden or leaf.endswith(OUT_SUFFIX):
                    continue
                if leaf.endswith(OUT_SUFFIX + ".gz"):
                    continue
                refs.append(InputRef(f"s3://{bucket}/{k}", _safe_relative(rel)))
    except errors as exc:
        raise StorageError(f"cannot list {url}: {describe_s3_error(exc)}") from None
    if not refs:
        raise StorageError(f"input not found: no objects under {url}")
    refs.sort(key=lambda r: r.url)
    first: dict[str, str] = {}
    for ref in refs:  # `a\\b.json` and `a/b.json`, `/b.json` and `b.json`: one output name
        other = first.setdefault(ref.name, ref.url)
        if other != ref.url:
            raise StorageError(
                f"{other} and {ref.url} would write the same output ({ref.name}{OUT_SUFFIX});"
                " rename one of them"
            )
    return refs


def display_path(path: str) -> str:
    """A path as job records show it: local paths absolute, URLs and `-` as given."""
    if path == "-" or is_s3(path):
        return redact(path)
    return os.path.abspath(path)


def default_output(path: str) -> str:
    """Where outputs go without `--output`: beside the input (stdout for stdin)."""
    if path == "-":
        return "-"
    if is_s3(path):
        bucket, key = split_s3(path)
        base = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        return f"s3://{bucket}/{base}"
    if os.path.isdir(path):
        return path
    return os.path.dirname(os.path.abspath(path))


def output_url(output: str, name: str, compress: str | None) -> str:
    """The output URL for the input called `name` (`batch.json` -> `batch.json.out`)."""
    suffix = OUT_SUFFIX + (".gz" if compress == "gzip" else "")
    if output == "-":
        return "-"
    leaf = "stdin" if name == "-" else _safe_relative(name)
    if is_s3(output):
        return output.rstrip("/") + "/" + leaf + suffix
    return os.path.join(output, *leaf.split("/")) + suffix


def open_input(url: str, endpoint_url: str | None = None) -> IO[bytes]:
    """A binary stream of an input, decompressed by its extension."""
    if url == "-":
        return sys.stdin.buffer
    if not is_s3(url):
        return _open_local_input(url)
    import smart_open  # noqa: PLC0415  (deferred: it imports boto3)

    params = {"client": s3_client(endpoint_url)}
    errors = s3_errors()
    try:
        return smart_open.open(url, "rb", transport_params=params)
    except errors as exc:
        raise StorageError(f"cannot read {url}: {describe_s3_error(exc)}") from None
    except OSError as exc:
        cause = exc.__cause__ or exc.__context__
        if is_s3(url) and cause is not None:
            raise StorageError(f"cannot read {url}: {describe_s3_error(cause)}") from None
        raise StorageError(f"cannot read {url}: {exc.strerror or exc}") from None


def is_complete(url: str) -> bool:
    """The input is all there to read: an S3 object or a regular file (stdin too, when it
    is redirected from one). A pipe, FIFO, socket or terminal may deliver its lines
    slowly, and its reader should hand each line on soon."""
    if is_s3(url):
        return True
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode if url == "-" else os.stat(url).st_mode
    except (OSError, ValueError, AttributeError):  # stdin closed or replaced
        return False
    return stat.S_ISREG(mode)


def _open_local_input(path: str) -> IO[bytes]:
    """A local file, decompressed by extension (the standard library's gzip/bz2, so a
    local job never loads boto3)."""
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        if path.endswith(".bz2"):
            return bz2.open(path, "rb")
        return open(path, "rb", buffering=1 << 20)  # noqa: SIM115  (the caller closes it)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicOutput:
    """A binary output that appears only when closed successfully.

    `with AtomicOutput(url) as out: out.write(b"...")` – on an exception nothing appears
    and an existing file at `url` is left as it was.
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        compresslevel: int | None = None,
        durable: bool = True,
        resume_from: tuple[str, int] | None = None,
        resumable: bool = False,
        resume_upload: tuple[str, list[dict[str, Any]]] | None = None,
        naming: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        # (temp file, size): continue a kept temp file cut back to size (`run --resume`)
        self.resume_from = resume_from
        # called with a new temp file's name before the file exists: a checkpoint that
        # records it then names every temp file a `kill -9` can leave behind
        self.naming = naming
        # S3: write with S3PartsWriter (parts cut by the caller, kept on request); and
        # (upload id, parts): continue that upload after those parts (`run --resume`)
        self.resumable = resumable or resume_upload is not None
        self.resume_upload = resume_upload
        self.endpoint_url = endpoint_url
        self.gzip = url.endswith(".gz")
        self.compresslevel = compresslevel if compresslevel is not None else 1
        self.durable = durable  # False: no fsync (a temporary part, deleted after the job)
        self._raw: Any = None
        self._tmp: str | None = None
        self._stream: Any = None

    def __enter__(self) -> IO[bytes]:
        try:
            if self.url == "-":
                self._raw = sys.stdout.buffer
            elif is_s3(self.url):
                with _stop_signals_held():  # the upload's id exists only in the response
                    self._raw = self._open_s3()
            else:
                self._raw = self._open_local()
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
            self.abort(keep=self.resume_from is not None or self.resume_upload is not None)
            raise
        return self._stream

    @property
    def temp_path(self) -> str | None:
        """The local temporary file being written (None for stdout and S3)."""
        return self._tmp

    def _open_local(self) -> IO[bytes]:
        if self.resume_from is not None:
            return self._reopen_local(*self.resume_from)
        folder = os.path.dirname(os.path.abspath(self.url))
        prefix = f".{os.path.basename(self.url)}.{os.getpid()}."
        try:
            os.makedirs(folder, exist_ok=True)
            while True:
                # The name is ours before the file exists: a signal handled right after
                # the open still finds it to remove (mkstemp hands it over only later).
                tmp = os.path.join(folder, prefix + secrets.token_hex(4) + ".tmp")
                if self.naming is not None:
                    self.naming(tmp)
                self._tmp = tmp
                try:  # 0o666 less the umask: an ordinary new file
                    fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    break
                except FileExistsError:
                    continue
        except OSError as exc:
            self._tmp = None
            raise StorageError(f"cannot write {self.url}: {exc.strerror or exc}") from None
        try:
            return os.fdopen(fd, "wb", buffering=1 << 20)
        except BaseException:  # __enter__ removes the temp file
            with contextlib.suppress(OSError):  # a dropped file object may have closed it
                os.close(fd)
            raise

    def _reopen_local(self, path: str, size: int) -> IO[bytes]:
        """A kept temp file, cut back to `size` bytes, for appending."""
        self._tmp = path
        try:
            f = open(path, "r+b", buffering=1 << 20)  # noqa: SIM115  (closed by commit/abort)
        except OSError as exc:
            self._tmp = None
            raise StorageError(f"cannot reopen {path}: {exc.strerror or exc}") from None
        try:
            f.truncate(size)
            f.seek(size)
        except BaseException:
            f.close()
            raise
        return f

    def _open_s3(self) -> Any:
        from smart_open import s3 as s3_transport  # noqa: PLC0415

        # smart_open retries EndpointConnectionError itself, 6 times with 10 s sleeps, on
        # top of botocore's retries (s3_client): a refused endpoint took 62 s and ended in
        # a bare OSError. botocore's retries are enough.
        s3_transport.RETRY.exceptions = []
        bucket, key = split_s3(self.url)
        errors = s3_errors()
        if self.resumable:
            upload_id, parts = self.resume_upload or (None, [])
            try:
                return S3PartsWriter(
                    s3_client(self.endpoint_url), bucket, key, upload_id=upload_id, parts=parts
                )
            except errors as exc:
                raise StorageError(f"cannot write {self.url}: {describe_s3_error(exc)}") from None
        try:
            return _s3_writer_class()(
                bucket, key, part_size=16 * 1024 * 1024, client=s3_client(self.endpoint_url)
            )
        except (ValueError, OSError, *errors) as exc:
            cause = exc.__cause__ if isinstance(exc, ValueError) else exc
            reason = describe_s3_error(cause) if cause is not None else str(exc)
            raise StorageError(f"cannot write {self.url}: {reason}") from None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def commit(self, keep: Callable[[BaseException], bool] | None = None) -> None:
        """Finish the output and make it visible under its name. On a failure the output
        is dropped, or kept (see `abort`) when `keep(the error raised)` is true."""
        errors = s3_errors()
        try:
            if self._stream is not self._raw:
                self._stream.close()
            if self.url == "-":
                self._raw.flush()
                return
            if is_s3(self.url):
                self._raw.complete()
                return
            self._raw.flush()
            if self.durable:
                os.fsync(self._raw.fileno())
            self._raw.close()
            os.replace(self._tmp, self.url)
            self._tmp = None
        except BrokenPipeError:  # stdout's reader went away: not a storage failure
            raise
        except errors as exc:
            failure = StorageError(f"cannot write {self.url}: {describe_s3_error(exc)}")
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
        upload pending with its completed parts (none: it is aborted), for `run --resume`."""
        if self.url == "-":
            return
        if is_s3(self.url):
            if self._raw is not None and not self._raw.closed:
                if keep and isinstance(self._raw, S3PartsWriter) and self._raw.parts:
                    self._raw.keep()
                    return
                try:
                    self._raw.terminate()
                except s3_errors():
                    # The server is gone, so the upload cannot be aborted: it stays pending
                    # (never an object) until someone aborts it or a bucket lifecycle rule
                    # (AbortIncompleteMultipartUpload) removes it. Not again at exit.
                    self._raw.abandon()
            return
        if self._raw is not None:
            try:
                self._raw.close()
            except OSError:
                pass  # closing a temp file we are about to delete
        if self._tmp is not None and keep:
            self._tmp = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None


def is_compressed(url: str) -> bool:
    """True for inputs that are decompressed on reading (they cannot be split by bytes)."""
    return url.endswith(COMPRESSED_SUFFIXES)


def input_size(url: str, endpoint_url: str | None = None) -> int:
    """The size in bytes of a local file or S3 object (as stored, before decompression)."""
    if not is_s3(url):
        try:
            return os.path.getsize(url)
        except OSError as exc:
            raise StorageError(f"cannot read {url}: {exc.strerror or exc}") from None
    bucket, key = split_s3(url)
    try:
        return int(s3_client(endpoint_url).head_object(Bucket=bucket, Key=key)["ContentLength"])
    except s3_errors() as exc:
        raise StorageError(f"cannot read {url}: {describe_s3_error(exc)}") from None


def download(url: str, path: str, endpoint_url: str | None = None) -> None:
    """Copy an S3 object to a local file (a multi-threaded ranged download)."""
    bucket, key = split_s3(url)
    try:
        s3_client(endpoint_url).download_file(bucket, key, path)
    except s3_errors() as exc:
        raise StorageError(f"cannot read {url}: {describe_s3_error(exc)}") from None


class _Tracked:
    """A binary stream that knows the offset of the next byte `readline` returns."""

    def __init__(self, stream: IO[bytes], pos: int) -> None:
        self.stream, self.pos = stream, pos

    def readline(self, size: int = -1) -> bytes:
        line = self.stream.readline(size)
        self.pos += len(line)
        return line


def iter_partition_lines(
    stream: IO[bytes], start: int, end: int | None, max_bytes: int
) -> Iterator[tuple[bytes, bool]]:
    """The lines of the byte range [start, end) of a seekable stream, as `iter_lines`.

    The rule of Hadoop and Dask (`read_block`): a range that does not start at 0 starts
    after the first newline at or after `start`; it ends with the line that holds byte
    `end` (a line starting at `end` included). Ranges that tile a file therefore yield
    every line exactly once. `end=None` reads to the end of the stream.
    """
    if start > 0:
        stream.seek(start)
        while True:  # skip through the first newline at or after `start`
            rest = stream.readline(1 << 20)
            start += len(rest)
            if not rest or rest.endswith(b"\n"):
                break
    tracked = _Tracked(stream, start)
    lines = iter_lines(tracked, max_bytes)
    while end is None or tracked.pos <= end:
        item = next(lines, None)
        if item is None:
            return
        yield item


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
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


def s3_part_size() -> int:
    """The size at which a resumable S3 output cuts a part (at least S3's minimum)."""
    try:
        size = int(os.environ.get("PBATCH_S3_PART_SIZE") or S3_PART_SIZE)
    except ValueError:
        size = S3_PART_SIZE
    return max(size, S3_MIN_PART)


class S3PartsWriter:
    """A multipart upload whose parts end where the caller says: pbatch's own writer for
    the S3 output of a resumable job.

    `write` only buffers. `cut()`, called by the job once a chunk is wholly written,
    uploads the buffer as the next part when it holds at least `s3_part_size()` bytes
    (S3's minimum for all parts but the last), so every completed part ends at a chunk
    boundary and a checkpoint can name it: its number, ETag and size, and the input
    lines it covers. `complete()` uploads the rest as the last part and completes the
    upload; `terminate()` aborts it; `keep()` drops the buffer and leaves the upload
    pending with its parts, for a resume, which passes `upload_id` and `parts` to go on
    after them. Nothing here completes an upload by itself (no finalizer).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        upload_id: str | None = None,
        parts: list[dict[str, Any]] | None = None,
    ) -> None:
        self._client, self.bucket, self.key = client, bucket, key
        self.parts: list[dict[str, Any]] = [dict(part) for part in parts or []]
        self.uploaded = sum(part["Size"] for part in self.parts)  # bytes in the parts
        self.part_size = s3_part_size()
        self._buffer = bytearray()
        self.closed = False
        if upload_id is None:
            upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        self.upload_id: str = upload_id

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("write to a closed S3 output")
        self._buffer += data
        return len(data)

    def flush(self) -> None:
        """Nothing to do: bytes reach S3 only as whole parts (`cut`, `complete`)."""

    def cut(self) -> bool:
        """Upload the buffer as the next part if it is big enough; True if it was. The
        size wanted grows by `part_size` every 1,000 parts, to stay under 10,000 parts."""
        if len(self._buffer) < self.part_size * (1 + len(self.parts) // 1000):
            return False
        if len(self.parts) >= S3_MAX_PARTS - 1:
            return False  # the rest goes into the last part
        self._upload_part()
        return True

    def _upload_part(self) -> None:
        number = len(self.parts) + 1
        body = bytes(self._buffer)
        response = self._client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"], "Size": len(body)})
        self.uploaded += len(body)
        self._buffer = bytearray()

    def complete(self) -> None:
        """Upload the last part and complete the upload: the object appears."""
        if not self.parts and not self._buffer:  # S3 needs a part: an empty object instead
            self.terminate()
            self._client.put_object(Bucket=self.bucket, Key=self.key, Body=b"")
            return
        if self._buffer:
            self._upload_part()
        self._client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in self.parts]
            },
        )
        self.closed = True

    def terminate(self) -> None:
        """Abort the upload: its parts are deleted, nothing appears."""
        self.closed = True
        self._buffer = bytearray()
        self._client.abort_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
        )

    def keep(self) -> None:
        """Leave the upload pending with its completed parts (for `run --resume`)."""
        self.closed = True
        self._buffer = bytearray()

    def abandon(self) -> None:
        """Forget the upload: nothing will complete or abort it from here."""
        self.closed = True
        self._buffer = bytearray()


def list_upload_parts(
    url: str, upload_id: str, endpoint_url: str | None = None
) -> dict[int, dict[str, Any]] | None:
    """The parts of a pending multipart upload of `url` by number (None: the upload is
    gone, completed or aborted)."""
    bucket, key = split_s3(url)
    client = s3_client(endpoint_url)
    found: dict[int, dict[str, Any]] = {}
    try:
        pages = client.get_paginator("list_parts").paginate(
            Bucket=bucket, Key=key, UploadId=upload_id
        )
        for page in pages:
            for part in page.get("Parts", []):
                found[int(part["PartNumber"])] = part
    except s3_errors() as exc:
        response = getattr(exc, "response", None) or {}
        code = response.get("Error", {}).get("Code")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchUpload", "NoSuchKey", "404") or status == 404:
            return None
        raise StorageError(f"cannot read the upload of {url}: {describe_s3_error(exc)}") from None
    return found


def abort_upload(url: str, upload_id: str, endpoint_url: str | None = None) -> None:
    """Abort a pending multipart upload of `url`, if it is still there (best effort)."""
    bucket, key = split_s3(url)
    client = s3_client(endpoint_url)  # imports botocore, whose errors are suppressed
    with contextlib.suppress(*s3_errors()):
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


@functools.cache
def _s3_writer_class() -> type:
    """smart_open's MultipartWriter, completed only by an explicit `complete()`.

    smart_open's writer completes the upload in `close()`, and io's finalizer calls
    `close()` when the writer is garbage-collected: a writer dropped by a signal or a
    failed abort would publish a partial object (or an empty one when nothing was
    written yet), replacing the old output. Here `close()` aborts instead.
    """
    from smart_open import s3 as s3_transport  # noqa: PLC0415  (deferred import)

    class AbortingMultipartWriter(s3_transport.MultipartWriter):
        def complete(self) -> None:
            """Upload the last part and complete the upload: the object appears."""
            super().close()

        def close(self) -> None:
            self.terminate()

        def abandon(self) -> None:
            """Forget the upload: nothing will complete or abort it from here."""
            self._upload_id = None

    return AbortingMultipartWriter


def iter_lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """Yield (line, too_long) from a binary stream without ever holding more than
    `max_bytes` of one line: an over-long line yields its first `max_bytes` bytes and
    True, and the rest of it is skipped (an over-long blank line yields a blank line)."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        if len(line) > max_bytes and not line.endswith(b"\n"):
            head = line[:max_bytes]
            blank = not line.strip(BLANK)
            while line and not line.endswith(b"\n"):
                line = stream.readline(1 << 20)
                blank = blank and not line.strip(BLANK)
            yield (b"\n", False) if blank else (head, True)  # A.3: blank however long
            continue
        yield line, False


class LineCutter:
    """Whole lines from bytes fed in reads of any size, as `iter_lines` cuts them, without
    holding more than `max_bytes` of one line: `feed(data)` returns the lines that `data`
    ends (each with its newline; b"" if none), `finish()` the stream's last line (ended
    with a newline when cut). An over-long line keeps its first `max_bytes + 1` bytes
    (still over-long: `block_lines` marks it) and the rest is skipped; an over-long blank
    line becomes an empty one."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._begun: list[bytes] = []  # the line begun by earlier reads (no newline yet)
        self._begun_size = 0
        self._head: bytes | None = None  # an over-long line's head, while its rest is skipped
        self._blank = False  # and whether all of it so far is blank

    def feed(self, data: bytes) -> bytes:
        step = self.max_bytes
        if len(data) <= step:
            return self._feed(data)
        # in pieces of at most max_bytes: a line a piece ends and begins is never too long
        return b"".join(self._feed(data[i : i + step]) for i in range(0, len(data), step))

    def _feed(self, data: bytes) -> bytes:
        first = data.find(b"\n")
        if first < 0:  # the begun line goes on
            if self._head is not None:
                self._blank = self._blank and not data.strip(BLANK)
                return b""
            self._begun.append(data)
            self._begun_size += len(data)
            if self._begun_size > self.max_bytes:
                line = b"".join(self._begun)
                self._begun.clear()
                self._head, self._blank = line[: self.max_bytes + 1], not line.strip(BLANK)
                self._begun_size = 0
            return b""
        last = data.rfind(b"\n")
        block = data[: last + 1]
        if self._begun or self._head is not None:
            block = self._end_begun(data[: first + 1]) + data[first + 1 : last + 1]
        if last + 1 < len(data):  # shorter than a piece, so never over-long yet
            self._begun.append(data[last + 1 :])
            self._begun_size = len(data) - last - 1
        return block

    def finish(self) -> bytes:
        return self._end_begun(b"") if self._begun or self._head is not None else b""

    def _end_begun(self, tail: bytes) -> bytes:
        """The begun line, ended by `tail` (which holds its newline, if any)."""
        if self._head is not None:
            line = b"\n" if self._blank and not tail.strip(BLANK) else self._head + b"\n"
            self._head = None
            return line
        line = b"".join(self._begun) + tail if self._begun else tail
        self._begun.clear()
        self._begun_size = 0
        if len(line) - line.endswith(b"\n") > self.max_bytes:
            return b"\n" if not line.strip(BLANK) else line[: self.max_bytes + 1] + b"\n"
        return line


def iter_blocks(stream: IO[bytes], read_size: Callable[[], int], max_bytes: int) -> Iterator[bytes]:
    """The stream in blocks of whole lines, each read `read_size()` bytes at a time (at
    most `max_bytes`): a block ends with a newline, but for the stream's last line when
    it has none. Split at its newlines (`block_lines`), a block gives the lines
    `iter_lines` gives (see LineCutter). So a reader hands whole blocks on without
    looking at each line."""
    cutter = LineCutter(max_bytes)
    while data := stream.read(min(read_size(), max_bytes)):
        if block := cutter.feed(data):
            yield block
    if block := cutter.finish():
        yield block


def block_lines(block: bytes, max_bytes: int) -> list[tuple[bytes, bool]]:
    """A block's lines (see iter_blocks) as (line, too_long), cut as `iter_lines` cuts
    them, without their newlines."""
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    return [(line, False) if len(line) <= max_bytes else (line[:max_bytes], True) for line in lines]


def pipe_fd(stream: IO[bytes]) -> int | None:
    """The descriptor of a pipe, FIFO or terminal the stream reads; None for a file or a
    decompressed stream, and off POSIX."""
    if os.name != "posix" or not isinstance(stream, io.BufferedReader):
        return None
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(mode) else fd


def pipe_source(stream: IO[bytes]) -> tuple[int, bytes] | None:
    """A pipe, FIFO or terminal to read directly: its descriptor and the bytes the stream
    had buffered from it; None for a file or a decompressed stream, and off POSIX."""
    fd = pipe_fd(stream)
    if fd is None:
        return None
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)  # take what is buffered or has arrived, without waiting
    try:
        buffered = stream.peek(0)
    except BlockingIOError:
        buffered = b""
    finally:
        os.set_blocking(fd, blocking)
    return fd, stream.read(len(buffered)) if buffered else b""


def iter_pipe_lines(
    fd: int, max_bytes: int, head: bytes = b""
) -> Iterator[tuple[bytes, bool] | None]:
    """`iter_lines` for a pipe (after `head`, bytes already read from it), reading what
    has arrived; before a read that would wait for the writer, None (once a line came
    since the last None), so that the lines so far can be answered meanwhile."""
    cutter = LineCutter(max_bytes)
    fresh = False  # a line was yielded since the last None
    while True:
        if fresh and not select.select([fd], [], [], 0)[0]:
            fresh = False
            yield None
        data, head = head or os.read(fd, 1 << 20), b""
        if not data:
            break
        if block := cutter.feed(data):
            yield from _as_read(block, max_bytes)
            fresh = True
    yield from _as_read(cutter.finish(), max_bytes)


def _as_read(block: bytes, max_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """A LineCutter's lines as `iter_lines` yields them: (line, too_long), each line with
    its newline (but for a stream's last one without), an over-long one its head."""
    lines = block.split(b"\n")
    last = lines.pop()  # b"" when the block ends with a newline
    for line in lines:
        yield (line[:max_bytes], True) if len(line) > max_bytes else (line + b"\n", False)
    if last:
        yield last, False
