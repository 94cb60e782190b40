"""Placeholder values as Personalize writes them in `filterValues`: quoted values separated
by commas (`"Action","Comedy"`, in JSON "\\"Action\\",\\"Comedy\\""), or one number."""

from __future__ import annotations


def scan_string(text: str, pos: int) -> tuple[str, int]:
    """The contents of the double-quoted string starting at `pos` (\\" and \\\\ escape)
    and the offset after its closing quote; ValueError naming the problem."""
    out = []
    k = pos + 1
    while k < len(text):
        ch = text[k]
        if ch == "\\" and k + 1 < len(text) and text[k + 1] in '"\\':
            out.append(text[k + 1])
            k += 2
        elif ch == '"':
            return "".join(out), k + 1
        else:
            out.append(ch)
            k += 1
    raise ValueError("this string has no closing double quote")


def parse_value_list(key: str, raw: str) -> tuple[str, ...]:
    """Personalize's placeholder value format: quoted values separated by commas,
    `"Action","Comedy"` (in JSON: "\\"Action\\",\\"Comedy\\""); ValueError otherwise."""
    example = 'like "\\"Action\\",\\"Comedy\\""'
    out = []
    pos = 0
    while True:
        while pos < len(raw) and raw[pos].isspace():
            pos += 1
        if pos >= len(raw) or raw[pos] != '"':
            raise ValueError(
                f"filterValues.{key} must be quoted values separated by commas, {example}"
            )
        try:
            value, pos = scan_string(raw, pos)
        except ValueError:
            raise ValueError(f"filterValues.{key} has a value with no closing quote") from None
        out.append(value)
        while pos < len(raw) and raw[pos].isspace():
            pos += 1
        if pos == len(raw):
            return tuple(out)
        if raw[pos] != ",":
            raise ValueError(
                f"filterValues.{key} must be quoted values separated by commas, {example}"
            )
        pos += 1


def parse_number(key: str, raw: str) -> float:
    """A placeholder value for a comparison: one number, quoted ("\\"10\\"") or bare ("10")."""
    text = raw.strip()
    if text.startswith('"'):
        values = parse_value_list(key, raw)
        if len(values) != 1:
            raise ValueError(f"filterValues.{key} must be one number, not {len(values)} values")
        text = values[0].strip()
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"filterValues.{key} must be a number, not {text!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"filterValues.{key} must be a finite number")
    return number
