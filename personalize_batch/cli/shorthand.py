"""Structure-valued options as the aws CLI takes them: JSON, `file://PATH` (JSON in a
file), or the shorthand syntax `s3DataSource={path=s3://b/k,kmsKeyArn=...}`.

The shorthand subset: `key=value` pairs separated by commas; a value is `{...}` (nested
pairs, or JSON when it starts with `{"`), `[a,b]` (a list), a quoted string ('...' or
"..." with backslash escapes) or bare text up to the next `,`, `}` or `]`, with spaces
around it trimmed. A bare value holding a comma must be quoted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError

_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:")


class _Parser:
    def __init__(self, text: str, option: str) -> None:
        self.text, self.pos, self.option = text, 0, option

    def fail(self, what: str) -> UsageError:
        return UsageError(
            f"{self.option}: {what} at character {self.pos + 1} of {self.text!r} "
            "(shorthand is key=value,key={key=value}; JSON works too)"
        )

    def space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def pairs(self, closing: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            self.space()
            start = self.pos
            while self.peek() and self.peek() in _KEY_CHARS:
                self.pos += 1
            key = self.text[start : self.pos]
            self.space()
            if not key or self.peek() != "=":
                raise self.fail("expected key=value")
            self.pos += 1
            out[key] = self.value(closing)
            self.space()
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() == closing:
                return out
            raise self.fail(f"expected ',' or {closing!r}" if closing else "expected ','")

    def value(self, closing: str) -> Any:
        self.space()
        char = self.peek()
        if char == "{":
            rest = self.text[self.pos + 1 :].lstrip()
            if rest.startswith('"'):  # JSON inside shorthand: s3DataSource={"path": "..."}
                try:
                    obj, end = json.JSONDecoder().raw_decode(self.text, self.pos)
                except json.JSONDecodeError as exc:
                    raise self.fail(f"invalid JSON ({exc.msg})") from None
                self.pos = end
                return obj
            self.pos += 1
            self.space()
            if self.peek() == "}":
                self.pos += 1
                return {}
            obj = self.pairs("}")
            self.pos += 1
            return obj
        if char == "[":
            self.pos += 1
            items = []
            while True:
                self.space()
                if self.peek() == "]":
                    self.pos += 1
                    return items
                items.append(self.value("]"))
                self.space()
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "]":
                    raise self.fail("expected ',' or ']'")
        if char in ("'", '"'):
            return self.quoted(char)
        start = self.pos
        while self.peek() and self.peek() not in ",}]":
            self.pos += 1
        text = self.text[start : self.pos].strip()
        if not text and self.peek() != closing and self.peek() != ",":
            raise self.fail("expected a value")
        return text

    def quoted(self, quote: str) -> str:
        self.pos += 1
        chars = []
        while True:
            char = self.peek()
            if not char:
                raise self.fail("unclosed quote")
            self.pos += 1
            if char == "\\" and self.peek():
                chars.append(self.peek())
                self.pos += 1
            elif char == quote:
                return "".join(chars)
            else:
                chars.append(char)


def parse_structure(text: str, option: str) -> Any:
    """An option's value as JSON, file://PATH or shorthand."""
    if text.startswith("file://"):
        path = text[len("file://") :]
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{option}: invalid JSON: {exc}") from None
    parser = _Parser(stripped, option)
    result = parser.pairs("")
    if parser.pos != len(stripped):
        raise parser.fail("unexpected text")
    return result
