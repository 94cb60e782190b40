"""Names and ARNs: a job's default name, the ARNs pbatch gives jobs and solution files,
and a solution named by its path or its ARN. The job, the service, the SDK and the
console all read them; they depend on nothing but storage's path display."""

from __future__ import annotations

import secrets
import time

from . import storage
from .errors import NotFound, UsageError

# the two kinds of batch job, named as their ARNs name them
INFERENCE, SEGMENT = "batch-inference-job", "batch-segment-job"
KINDS = (INFERENCE, SEGMENT)
ARN_PREFIX = f"arn:pbatch:local:{INFERENCE}/"
SEGMENT_ARN_PREFIX = f"arn:pbatch:local:{SEGMENT}/"
SOLUTION_ARN_PREFIX = "arn:pbatch:local:solution-version/"
# ARN kinds that name a solution file (a campaign is a deployed solution version)
SOLUTION_ARN_KINDS = ("solution-version", "solution", "campaign")


def job_arn(name: str, kind: str = INFERENCE) -> str:
    """A job's ARN: `arn:pbatch:local:batch-inference-job/NAME` or
    `arn:pbatch:local:batch-segment-job/NAME`."""
    return f"arn:pbatch:local:{kind}/{name}"


def job_name_from(name_or_arn: str) -> str:
    """Accept a job name or its ARN (of either kind)."""
    for prefix in (ARN_PREFIX, SEGMENT_ARN_PREFIX):
        if name_or_arn.startswith(prefix):
            return name_or_arn[len(prefix) :]
    return name_or_arn


def job_kind_from(name_or_arn: str) -> str | None:
    """The kind an ARN names (None for a plain name)."""
    for kind in KINDS:
        if name_or_arn.startswith(f"arn:pbatch:local:{kind}/"):
            return kind
    return None


def new_job_name() -> str:
    """A default name: pbatch-YYYYmmdd-HHMMSS-xxxxxx."""
    return time.strftime("pbatch-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def solution_arn(path: str, sha256: str | None = None) -> str:
    """`arn:pbatch:local:solution-version/<absolute path>[@sha256:<hex>]`."""
    arn = SOLUTION_ARN_PREFIX + storage.display_path(path)
    return arn + (f"@sha256:{sha256}" if sha256 else "")


def parse_solution_ref(ref: str) -> tuple[str, str | None]:
    """A solution named by its path or `arn:pbatch:local:solution-version/PATH[@sha256:HEX]`
    (also `.../solution/PATH`, `.../campaign/PATH`) -> (path, sha256 or None)."""
    if not ref.startswith("arn:"):
        return ref, None
    prefix, _, rest = ref.partition("/")
    parts = prefix.split(":")
    if len(parts) != 4 or parts[:3] != ["arn", "pbatch", "local"] or not rest:
        raise UsageError(
            f"not a pbatch solution ARN: {ref!r} (expected {SOLUTION_ARN_PREFIX}PATH or a path)"
        )
    if parts[3] not in SOLUTION_ARN_KINDS:
        raise UsageError(f"{ref!r} names a {parts[3]}, not a solution version")
    path, sep, sha = rest.rpartition("@sha256:")
    if not sep:
        return rest, None
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise UsageError(f"{ref!r}: @sha256: needs 64 lower-case hex digits")
    return path, sha


def check_solution_hash(path: str, loaded: str, wanted: str | None) -> None:
    """The file named by an ARN with @sha256: must still be that version."""
    if wanted is not None and loaded != wanted:
        raise NotFound(
            f"solution version not found: {path} has sha256 {loaded[:12]}…, "
            f"the ARN names {wanted[:12]}… (the file was replaced)"
        )
