"""A bounded look at the first lines of a job's input before it is scored, so that an
input every line of which would be an error line is refused up front (exit 2) instead
of producing a file of errors (`pbatch run`, `pbatch validate`, the SDK, the aws-shaped
commands and the console all use it):

- text that is not UTF-8 (UTF-16 or UTF-32, compressed data without its extension, a
  zip): every line would be invalid;
- the wrong shape for the solution's recipe: none of the first JSON-object lines has
  the recipe's key (a users file given to a sims solution). Lines that are not JSON
  objects are left for the job's error lines, and one line that fits is enough.

It reads at most LOOK_LINES non-blank lines and LOOK_BYTES bytes of the first input, and
only where reading does not consume anything (a regular file or an S3 object, not a
pipe or stdin).
"""

from __future__ import annotations

import bz2
import gzip
import os
import stat
import zlib
from dataclasses import dataclass

from .. import recipes, storage
from ..data import not_utf8_text
from ..errors import PbatchError, UsageError
from .framing import MAX_LINE_BYTES, is_blank, without_bom
from .lines import Request, line_parser

LOOK_LINES = 100
LOOK_BYTES = 1 << 20


@dataclass
class Look:
    """What the first lines of an input are."""

    url: str
    not_text: str | None = None  # what the input is, when it is not UTF-8 text
    lines: int = 0  # non-blank lines looked at
    whole: bool = False  # the look reached the end of the input
    objects: int = 0  # lines that are JSON objects
    fitting: int = 0  # lines the recipe can answer
    first_missing: tuple[int, str] | None = None  # (line number, error) of a missing key


def _open(url: str, endpoint_url: str | None):
    """The input's bytes (decompressed), or None where reading would consume it."""
    if storage.is_s3(url):
        return storage.open_input(url, endpoint_url)
    try:
        if not stat.S_ISREG(os.stat(url).st_mode):
            return None  # a FIFO or device: reading would consume it
        opener = {".gz": gzip.open, ".bz2": bz2.open}.get(os.path.splitext(url)[1], open)
        return opener(url, "rb")  # not smart_open: its import costs half a second
    except OSError:
        return None


def look(url: str, recipe: str, endpoint_url: str | None = None) -> Look | None:
    """Look at the first lines of one input (None: it cannot be read without
    consuming it, or not at all; the job reports that)."""
    if url == "-":
        return None
    try:
        stream = _open(url, endpoint_url)
    except PbatchError:
        return None  # the job reports it
    if stream is None:
        return None
    found = Look(url)
    parse = line_parser(recipes.recipe(recipe))
    missing = f"{recipe} needs "
    try:
        head = stream.read(LOOK_BYTES)
        found.not_text = not_utf8_text(head[:4096])
        if found.not_text is not None:
            return found
        found.whole = len(head) < LOOK_BYTES
        head = without_bom(head)
        lines = head.split(b"\n")
        if not found.whole:
            lines.pop()  # cut by the read
        for number, raw in enumerate(lines, 1):
            if is_blank(raw) or len(raw) > MAX_LINE_BYTES:
                continue
            found.lines += 1
            parsed = parse(raw)
            if isinstance(parsed, Request):
                found.objects += 1
                found.fitting += 1
            elif isinstance(parsed.echo, dict):
                found.objects += 1
                if parsed.error.startswith(missing) and found.first_missing is None:
                    found.first_missing = (number, parsed.error)
            if found.lines >= LOOK_LINES:
                found.whole = False
                break
    except (OSError, EOFError, zlib.error, *storage.s3_errors()):
        return None  # the job reads it again and reports the failure with its line
    finally:
        stream.close()
    return found


def check(refs: list[storage.InputRef], recipe: str, endpoint_url: str | None = None) -> None:
    """Refuse an input whose first lines are not UTF-8 text, or of which none fits the
    recipe (see the module's docstring); the first input is looked at."""
    if not refs:
        return
    found = look(refs[0].url, recipe, endpoint_url)
    if found is None:
        return
    shown = storage.redact(found.url)
    if found.not_text is not None:
        raise UsageError(
            f"{shown} is {found.not_text}; pbatch reads UTF-8 JSON Lines (convert it first, "
            "e.g. iconv -f UTF-16 -t UTF-8)"
            if "UTF-16" in found.not_text or "UTF-32" in found.not_text
            else f"{shown} is {found.not_text}; pbatch reads UTF-8 JSON Lines"
        )
    if found.fitting or found.first_missing is None:
        return
    number, error = found.first_missing
    span = f"of the {found.lines:,}" if found.whole else f"of the first {found.lines:,}"
    key = error[len(f"{recipe} needs ") :].split(";")[0]
    raise UsageError(
        f"the input does not fit the {recipe} solution: none {span} lines of {shown} has "
        f"{key} (line {number}: {error})"
    )


def refused(
    refs: list[storage.InputRef], recipe: str, endpoint_url: str | None = None
) -> str | None:
    """check's message, or None when the input would be accepted (for `validate`)."""
    try:
        check(refs, recipe, endpoint_url)
    except UsageError as exc:
        return str(exc)
    return None


def unknown_event_types(text: str | None, source: str, event_types: list[str] | None) -> str | None:
    """A warning for a filter's `Interactions.EVENT_TYPE` values that no training
    interaction has (an INCLUDE of them keeps nothing, an EXCLUDE drops nothing): the
    values and the event types the solution has. None when every value is known."""
    if text is None or event_types is None:
        return None
    from ..filters.parse import parse_filter  # noqa: PLC0415

    known = {t.lower() for t in event_types}
    asked = [
        value
        for expression in parse_filter(text, source).expressions
        for cond in expression.conditions
        if cond.dataset == "Interactions" and cond.values
        for value in cond.values
        if value != "*"
    ]
    unknown = [v for v in dict.fromkeys(asked) if v.lower() not in known]
    if not unknown:
        return None
    have = ", ".join(f'"{t}"' for t in sorted(known) if t) or "none (no EVENT_TYPE column)"
    names = ", ".join(f'"{v}"' for v in unknown)
    kinds = "event type" if len(unknown) == 1 else "event types"
    return (
        f"{source}: no training interaction has the {kinds} {names} (matched ignoring "
        f"case); the solution's event types: {have}"
    )
