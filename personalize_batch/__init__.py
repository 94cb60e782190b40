"""pbatch: an offline, command-line twin of Amazon Personalize batch inference.

`personalize_batch.client("personalize" | "personalize-runtime")` is a boto3-shaped
client; its exceptions are importable from here too (loaded on first use, so the CLI
does not pay for botocore).
"""

from __future__ import annotations

from typing import Any

from .version import __version__ as __version__  # the package's version, as usual

_SDK_NAMES = (
    "client",
    "InvalidInputException",
    "InvalidNextTokenException",
    "ResourceAlreadyExistsException",
    "ResourceNotFoundException",
)


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from .service import sdk  # noqa: PLC0415

        return getattr(sdk, name)
    raise AttributeError(f"module 'personalize_batch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SDK_NAMES])
