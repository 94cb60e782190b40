"""S3: the client, its errors, listing and reading objects, and the multipart uploads
that outputs are written with (boto3 through smart_open; imported only when an s3://
path is used, so a local job never loads boto3).

A plain output is smart_open's multipart writer, completed only by an explicit
`complete()` (`AbortingMultipartWriter`). The output of a resumable job (`run
--resume`) is written by `S3PartsWriter`, whose parts end where the job's checkpoints
say, and is kept (not aborted) on a failure the job may be resumed after.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import sys
from typing import IO, Any

from ..errors import StorageError, UsageError
from .urls import OUT_SUFFIX, InputRef, is_output_name, safe_relative, split_s3

S3_PART_SIZE = 16 << 20  # the parts of a resumable S3 output (PBATCH_S3_PART_SIZE: tests)
S3_MIN_PART = 5 << 20  # S3's minimum size of every part but the last
S3_MAX_PARTS = 10_000  # S3's maximum number of parts of one upload


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


def list_objects(url: str, endpoint_url: str | None) -> list[InputRef]:
    """The objects an `s3://bucket/key` or `s3://bucket/prefix` input names (Personalize's
    prefix rule), sorted; hidden names and outputs are left out."""
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
                if k.endswith("/") or hidden or is_output_name(leaf):
                    continue
                refs.append(InputRef(f"s3://{bucket}/{k}", safe_relative(rel)))
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


def open_object(url: str, endpoint_url: str | None) -> IO[bytes]:
    """An object's bytes, streamed (smart_open; decompressed by the key's extension)."""
    import smart_open  # noqa: PLC0415  (deferred: it imports boto3)

    params = {"client": s3_client(endpoint_url)}
    errors = s3_errors()
    try:
        return smart_open.open(url, "rb", transport_params=params)
    except errors as exc:
        raise StorageError(f"cannot read {url}: {describe_s3_error(exc)}") from None
    except OSError as exc:
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            raise StorageError(f"cannot read {url}: {describe_s3_error(cause)}") from None
        raise StorageError(f"cannot read {url}: {exc.strerror or exc}") from None


def object_size(url: str, endpoint_url: str | None) -> int:
    """The size in bytes of an object, as stored."""
    bucket, key = split_s3(url)
    try:
        return int(s3_client(endpoint_url).head_object(Bucket=bucket, Key=key)["ContentLength"])
    except s3_errors() as exc:
        raise StorageError(f"cannot read {url}: {describe_s3_error(exc)}") from None


def open_writer(
    url: str,
    endpoint_url: str | None,
    resumable: bool = False,
    resume_upload: tuple[str, list[dict[str, Any]]] | None = None,
) -> Any:
    """A new multipart upload of `url`: smart_open's writer, completed only by
    `complete()`; S3PartsWriter when `resumable` (continuing `resume_upload`, (upload
    id, parts), when given)."""
    from smart_open import s3 as s3_transport  # noqa: PLC0415

    # smart_open retries EndpointConnectionError itself, 6 times with 10 s sleeps, on
    # top of botocore's retries (s3_client): a refused endpoint took 62 s and ended in
    # a bare OSError. botocore's retries are enough.
    s3_transport.RETRY.exceptions = []
    bucket, key = split_s3(url)
    errors = s3_errors()
    if resumable:
        upload_id, parts = resume_upload or (None, [])
        try:
            return S3PartsWriter(
                s3_client(endpoint_url), bucket, key, upload_id=upload_id, parts=parts
            )
        except errors as exc:
            raise StorageError(f"cannot write {url}: {describe_s3_error(exc)}") from None
    try:
        return _s3_writer_class()(
            bucket, key, part_size=16 * 1024 * 1024, client=s3_client(endpoint_url)
        )
    except (ValueError, OSError, *errors) as exc:
        cause = exc.__cause__ if isinstance(exc, ValueError) else exc
        reason = describe_s3_error(cause) if cause is not None else str(exc)
        raise StorageError(f"cannot write {url}: {reason}") from None


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


def download(url: str, path: str, endpoint_url: str | None = None) -> None:
    """Copy an S3 object to a local file (a multi-threaded ranged download)."""
    bucket, key = split_s3(url)
    try:
        s3_client(endpoint_url).download_file(bucket, key, path)
    except s3_errors() as exc:
        raise StorageError(f"cannot read {url}: {describe_s3_error(exc)}") from None
