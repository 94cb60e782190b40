"""Input lines: parse and validate each JSON Lines record once, at the edge (A.3).

A line becomes either a Request (the echoed input plus the ids it asks about) or an
error message; the job goes on either way. Which keys a line needs is the recipe's
`Query` (recipes.protocol); `LineParser` reads any query the same way.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..recipes.protocol import ITEM, ITEMS, TEXT, USER, Recipe
from .framing import MAX_LINE_BYTES

MAX_ID_LENGTH = 256
MAX_LIST = 500
MAX_DEPTH = 250  # an output line must be able to echo the input (orjson writes 255 levels)
LIST_KEYS = ("itemList", "itemIds", "inputList")
# a line's filterValues map (B.3, B.7)
MAX_FILTER_KEYS = 25
MAX_FILTER_KEY_LENGTH = 50
MAX_FILTER_VALUE_LENGTH = 1000
_FILTER_KEY = re.compile(r"[A-Za-z0-9_]+")


@dataclass(slots=True)
class Request:
    """A valid line: the echoed object and the ids it asks about."""

    obj: dict[str, Any]
    user: str | None = None
    item: str | None = None
    items: list[str] | None = None
    ignored: str | None = None  # a list key the recipe does not read (itemList…)
    text: str | None = None  # the value of a key that names no id (a TEXT query)


@dataclass(slots=True)
class BadLine:
    """An invalid line: what to echo (object or raw text) and what was wrong."""

    echo: Any
    error: str


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _id(obj: dict[str, Any], key: str) -> str | None:
    """The id under `key`, or raise ValueError with the line's error message."""
    value = obj.get(key)
    if value.__class__ is str and 0 < len(value) <= MAX_ID_LENGTH:
        return value  # the usual id, checked at once
    return _text_value(obj, key, MAX_ID_LENGTH)


def _squash(key: str) -> str:
    return key.replace("_", "").replace("-", "").replace(" ", "").lower()


def _missing(recipe: str, wanted: str, obj: dict[str, Any], also: str = "") -> ValueError:
    """'<recipe> needs "<wanted>"', with a near-miss hint from the keys the line has."""
    message = f'{recipe} needs "{wanted}"{also}'
    target = _squash(wanted)
    near = [k for k in obj if isinstance(k, str) and _squash(k) == target]
    if not near:
        near = difflib.get_close_matches(wanted, [k for k in obj if isinstance(k, str)], 1, 0.75)
    if near:
        message += f'; found "{near[0]}" – did you mean "{wanted}"?'
    return ValueError(message)


def _text_value(obj: dict[str, Any], key: str, longest: int | None = None) -> str | None:
    """The string under `key` (an id, or a TEXT query's text), None when the line has
    no such key, or ValueError with the line's error."""
    value = obj.get(key)
    if value is None and key not in obj:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    if not value:
        raise ValueError(f"{key} must not be empty")
    if longest is not None and len(value) > longest:
        raise ValueError(f"{key} is longer than {longest} characters")
    return value


def _item_list(obj: dict[str, Any], recipe: str) -> list[str]:
    key = next((k for k in LIST_KEYS if k in obj), None)
    if key is None:
        raise _missing(recipe, "itemList", obj, ' (or "itemIds", "inputList")')
    value = obj[key]
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list of item ids")
    if not value:
        raise ValueError(f"{key} must not be empty")
    if len(value) > MAX_LIST:
        raise ValueError(f"{key} has {len(value)} items (at most {MAX_LIST})")
    for member in value:
        if not isinstance(member, str) or not member:
            raise ValueError(f"{key} members must be non-empty strings")
        if len(member) > MAX_ID_LENGTH:
            raise ValueError(f"{key} has an id longer than {MAX_ID_LENGTH} characters")
    return value


def check_filter_values(values: object) -> None:
    """Personalize's limits on a line's filterValues map; ValueError with the line's error."""
    if not isinstance(values, dict):
        raise ValueError("filterValues must be an object of strings")
    if len(values) > MAX_FILTER_KEYS:
        raise ValueError(f"filterValues has {len(values)} keys (at most {MAX_FILTER_KEYS})")
    for key, value in values.items():
        if not _FILTER_KEY.fullmatch(key) or len(key) > MAX_FILTER_KEY_LENGTH:
            raise ValueError(
                f"filterValues key {key!r} must be 1-{MAX_FILTER_KEY_LENGTH} of A-Z, a-z, 0-9 and _"
            )
        if not isinstance(value, str):
            raise ValueError(f"filterValues.{key} must be a string")
        if len(value) > MAX_FILTER_VALUE_LENGTH:
            raise ValueError(
                f"filterValues.{key} has {len(value)} characters "
                f"(at most {MAX_FILTER_VALUE_LENGTH})"
            )


def _depth(obj: Any) -> int:
    """How many objects and arrays deep a parsed JSON value goes (without recursion)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in value)
    return deepest


class LineParser:
    """Parses the lines of one recipe's jobs: the keys of its Query (A.3)."""

    def __init__(self, recipe: Recipe) -> None:
        q = recipe.query
        self.recipe = recipe.name
        self.key, self.spellings, self.required = q.key, q.spellings, q.required
        self.names, self.ranks = q.names, q.ranks
        self.user = q.user and q.names != USER  # an optional userId besides the key
        read = (q.key, *q.spellings, *(("userId",) if self.user else ()))
        read += (*(LIST_KEYS if q.ranks else ()), "filterValues")
        # the keys the line is read by: one given twice in a line is an error line
        self.quoted = [(k, f'"{k}"'.encode()) for k in read]
        self.user_only = q.names == USER and not q.ranks  # the usual line: {"userId": ...}

    def parse(self, raw: bytes, too_long: bool = False) -> Request | BadLine:
        """Parse one non-blank line."""
        if too_long:
            return BadLine(_text(raw[:1024]), f"line is longer than {MAX_LINE_BYTES} bytes (1 MiB)")
        line = raw.rstrip(b"\r\n")
        try:
            obj = orjson.loads(line)  # which also refuses invalid UTF-8
        except orjson.JSONDecodeError as exc:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                return BadLine(_text(line), f"line is not valid UTF-8 (byte {bad.start})")
            return BadLine(_text(line), f"invalid JSON: {exc}")
        if not isinstance(obj, dict):
            return BadLine(_text(line), "line is not a JSON object")
        # orjson reads 1024 levels but writes 255: a line between the two used to stop the
        # whole job when its answer was written. Nesting that deep takes more than
        # 2 * MAX_DEPTH bytes of brackets, and counting brackets is cheap: only lines that
        # might be that deep pay for the real check.
        if (
            len(line) > 2 * MAX_DEPTH
            and line.count(b"[") + line.count(b"{") > MAX_DEPTH
            and _depth(obj) > MAX_DEPTH
        ):
            return BadLine(_text(line), f"line is nested more than {MAX_DEPTH} levels deep")
        try:
            # orjson keeps the last of a key given twice. A line of one key holds one colon
            # (and more only in its value): only other lines are looked at more closely.
            ignored = None
            if len(obj) > 1 or line.count(b":") > 1:
                ignored = self._more_keys(line, obj)
            if obj.get("filterValues") is not None:
                check_filter_values(obj["filterValues"])
            if self.user_only:  # inlined: most lines of most jobs
                user = _id(obj, self.key)
                if user is None and self.required:
                    raise _missing(self.recipe, self.key, obj)
                return Request(obj, user, None, None, ignored)  # positional: faster
            return self._request(obj, ignored)
        except ValueError as exc:
            return BadLine(obj, str(exc))

    def _request(self, obj: dict[str, Any], ignored: str | None) -> Request:
        """The Request of a line that is a JSON object, or ValueError with its error."""
        if self.names == TEXT:
            value = _text_value(obj, self.key)
        else:
            value = _id(obj, self.key)
            for other in self.spellings:
                if value is None and other in obj:
                    value = _id(obj, other)
        if value is None and self.required:
            raise _missing(self.recipe, self.key, obj)
        if self.names == USER:
            if self.ranks:
                return Request(obj, user=value, items=_item_list(obj, self.recipe))
            return Request(obj, value, None, None, ignored)  # positional: faster
        user = _id(obj, "userId") if self.user else None
        if self.names == ITEM:
            return Request(obj, user, value, None, ignored)
        return Request(obj, user, None, None, ignored, value)

    def _more_keys(self, line: bytes, obj: dict[str, Any]) -> str | None:
        """ValueError for a key the recipe reads that the line gives twice; else the
        ranking list key of a line whose recipe does not rank (None: it has none)."""
        for key, quoted in self.quoted:
            if line.count(quoted) > 1:
                _check_once(line, key)
        if not self.ranks:
            for key in LIST_KEYS:
                if key in obj:
                    return key
        return None


@functools.cache
def line_parser(recipe: Recipe) -> Callable[..., Request | BadLine]:
    """The parser of a recipe's lines (one per recipe): (raw, too_long=False) -> a
    Request or a BadLine."""
    return LineParser(recipe).parse


def parse_line(raw: bytes, recipe: Recipe, too_long: bool = False) -> Request | BadLine:
    """Parse one non-blank line of a job of `recipe`."""
    return line_parser(recipe)(raw, too_long)


class _Pairs(list):
    """An object's (key, value) pairs, every one kept (json.loads' object_pairs_hook)."""


def _plain(value: Any) -> Any:
    """A value with its _Pairs as dicts again (to show it)."""
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _check_once(line: bytes, key: str) -> None:
    """ValueError when the line's object has `key` more than once (its bytes hold the
    quoted key twice, maybe inside a value or a nested object: parsed again to know)."""
    try:
        pairs = json.loads(line, object_pairs_hook=_Pairs)
    except ValueError:
        return
    values = [v for k, v in pairs if k == key] if isinstance(pairs, _Pairs) else []
    if len(values) > 1:
        shown = ", then ".join(json.dumps(_plain(v), ensure_ascii=False)[:40] for v in values[:3])
        times = "twice" if len(values) == 2 else f"{len(values)} times"
        raise ValueError(f"{key} is given {times} in the line ({shown}); give it once")


def success_line(
    obj: dict[str, Any],
    items: list[str],
    scores: list[float],
    metadata: list[dict[str, str]] | None = None,
    key: str = ITEMS.key,
) -> bytes:
    """One output line (A.4), with its newline: the answer's ids under `key` (the
    recipe's Output), then `scores`; `metadata` (--item-metadata) is one map of field ->
    value per recommended item, after them."""
    output: dict[str, Any] = {key: items, "scores": scores}
    if metadata is not None:
        output["metadata"] = metadata
    return orjson.dumps(
        {"input": obj, "output": output, "error": None}, option=orjson.OPT_APPEND_NEWLINE
    )


def success_lines(
    objs: Iterable[dict[str, Any]], answers: Iterable[tuple[list, list]], key: str = ITEMS.key
) -> bytes:
    """success_line of each line, joined. An answer that several lines share (the same
    pair of lists: scoring.Answerer makes identical answers once) is serialized once from
    its second line on, and those lines are spliced from the bytes orjson gives for
    their parts."""
    answers = list(answers)
    if len({id(items) for items, _ in answers}) == len(answers):  # nothing shared
        return b"".join(
            [success_line(o, i, s, None, key) for o, (i, s) in zip(objs, answers, strict=True)]
        )
    # keyed by the lists' ids, and keeping the lists: no other list can take those ids
    seen: dict[tuple[int, int], tuple[list, list, bytes | None]] = {}
    parts: list[bytes] = []
    for obj, (items, scores) in zip(objs, answers, strict=True):
        pair = (id(items), id(scores))
        known = seen.get(pair)
        if known is None:
            seen[pair] = (items, scores, None)
            parts.append(success_line(obj, items, scores, None, key))
            continue
        output = known[2]
        if output is None:
            output = orjson.dumps({key: items, "scores": scores})
            seen[pair] = (items, scores, output)
        parts += (b'{"input":', orjson.dumps(obj), b',"output":', output, b',"error":null}\n')
    return b"".join(parts)


def error_line(echo: Any, error: str) -> bytes:
    """One error line (A.4), with its newline."""
    return orjson.dumps(
        {"input": echo, "output": None, "error": error}, option=orjson.OPT_APPEND_NEWLINE
    )
