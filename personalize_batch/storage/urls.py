"""Names of inputs and outputs: `s3://bucket/key` URLs, local paths and `-` (stdin,
stdout); the output an input gives (`NAME` -> `NAME.out`, beside it or in `--output`);
how a path is shown in job records. Pure string rules: nothing here reads or writes."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import StorageError

COMPRESSED_SUFFIXES = (".gz", ".bz2")
OUT_SUFFIX = ".out"


@dataclass(frozen=True)
class InputRef:
    """One input of a job: its URL and the name its output is derived from."""

    url: str
    name: str


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


def is_compressed(url: str) -> bool:
    """True for inputs that are decompressed on reading (they cannot be split by bytes)."""
    return url.endswith(COMPRESSED_SUFFIXES)


def is_output_name(name: str) -> bool:
    """A job's output (`NAME.out`, `NAME.out.gz`): never listed as an input."""
    return name.endswith(OUT_SUFFIX) or name.endswith(OUT_SUFFIX + ".gz")


def safe_relative(name: str) -> str:
    """A relative output name that cannot climb out of the output folder."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise StorageError(f"cannot derive an output name from {name!r}")
    return "/".join(parts)


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
    leaf = "stdin" if name == "-" else safe_relative(name)
    if is_s3(output):
        return output.rstrip("/") + "/" + leaf + suffix
    return os.path.join(output, *leaf.split("/")) + suffix
